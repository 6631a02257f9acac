"""The fine-tuning stage's inputs: each image decoded once for the stage, the frozen front of the
backbone run once per input that does not change.

Fine-tuning unfreezes the last ``retrained_layers`` blocks (``TransferNet.split_backbone``: the
frozen *front* and the trainable *tail*). What the front outputs for an image depends only on the
image, so:

* **fixed augmentation** (default): the training inputs are the head stage's own variants (the
  original and its ``augmented_copies`` seeded copies, the same images the head learnt from), each
  image decoded once for all of them; the front runs once per variant (ONNX Runtime on the CPU,
  exported once per cut beside the feature cache) and its outputs are kept (float16, in memory up
  to ``MEMORY_LIMIT``, in a file in the run directory beyond), so each epoch runs only the tail
  and the head. Measured in docs/benchmarks.md.
* **fresh augmentation** (``fine_tune_fresh_augmentation``): each image is decoded and resized once
  (``ResizedImages``: uint8, memory or a file), and augmented anew each epoch from that small image;
  the front then runs at every step, in inference mode.

Validation images are never augmented, so their front outputs are computed once in both modes, and
the evaluation after the stage reuses them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from visiontrain.data.dataset import Sample
from visiontrain.data.images import open_image
from visiontrain.data.transforms import model_input, resizer, small_image_input
from visiontrain.models.classifier import TransferNet
from visiontrain.models.preprocessing import Preprocessing
from visiontrain.settings import TrainingSettings
from visiontrain.training.backbone_runner import make_runner
from visiontrain.training.features import _variants, augmentation_key, file_hash, prefetch, variant_views

# Kept in memory up to this size, in a file in the run directory beyond (read back through the page cache).
MEMORY_LIMIT = 3 * 2**30


def _storage(shape: tuple[int, ...], dtype: np.dtype, spill: Path) -> np.ndarray:
    """An array of ``shape``: in memory when it fits ``MEMORY_LIMIT``, else a file-backed one at ``spill``."""
    size = math.prod(shape) * np.dtype(dtype).itemsize
    if size <= MEMORY_LIMIT:
        return np.empty(shape, dtype)
    spill.parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(spill, mode="w+", dtype=dtype, shape=shape)


class KeptFront:
    """The frozen front's outputs for one list of samples (rows variant-major within a sample, as
    ``extract_features`` orders them), float16, filled by whoever computes them first: the feature
    extraction when fine-tuning follows (``SplitRunner``), else ``front_outputs``."""

    def __init__(self, samples: Sequence[Sample], copies: int, spill: Path):
        self.samples, self.copies, self.spill = list(samples), copies, spill
        self.rows = len(self.samples) * (1 + copies)
        self.filled = np.zeros(self.rows, dtype=bool)
        self.store: np.ndarray | None = None

    def put(self, rows: Sequence[int], outputs: np.ndarray) -> None:
        if self.store is None:
            self.store = _storage((self.rows, *outputs.shape[1:]), np.float16, self.spill)
        self.store[list(rows)] = outputs.astype(np.float16)
        self.filled[list(rows)] = True

    @property
    def sample_index(self) -> torch.Tensor:
        return torch.arange(len(self.samples), dtype=torch.long).repeat_interleave(1 + self.copies)

    def tensor(self) -> torch.Tensor:
        if self.store is None or not self.filled.all():
            raise RuntimeError("fine-tuning inputs are incomplete")  # a bug, never user input
        return torch.from_numpy(self.store)


class SplitRunner:
    """The frozen backbone as front then tail (each its own runner, ONNX Runtime on the CPU): the
    same features as the whole backbone, and the front's outputs kept for fine-tuning on the way."""

    def __init__(self, front: nn.Module, tail: nn.Module, kept: KeptFront, *, device: torch.device, image_size: int,
                 export_dir: Path, batch_size: int):
        name = f"front{len(front)}"
        self.front = make_runner(front, device, image_size=image_size, export_dir=export_dir, batch_size=batch_size, name=name)
        with torch.inference_mode():
            shape = tuple(front.eval()(torch.zeros(1, 3, image_size, image_size)).shape[1:])
        self.tail = make_runner(tail, device, image_size=image_size, export_dir=export_dir, batch_size=batch_size,
                                name=f"tail{len(front)}", input_shape=shape)
        self.kept, self.batch_size = kept, self.front.batch_size

    def __call__(self, images: torch.Tensor, rows: Sequence[int]) -> np.ndarray:
        outputs = self.front(images)
        self.kept.put(rows, outputs)
        return self.tail(torch.from_numpy(outputs))


def front_outputs(front: nn.Module, kept: KeptFront, *, settings: TrainingSettings, preprocessing: Preprocessing,
                  device: torch.device, export_dir: Path, should_stop: Callable[[], bool] | None = None,
                  on_progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """``kept`` completed: the rows nobody computed yet (their features came from the cache) go
    through the front, each of their images decoded once for all its variants (the head stage's
    variants: same seeds, same images)."""
    variants = _variants(kept.copies, augmentation_key(settings))
    missing = np.flatnonzero(~kept.filled)
    rows_by_sample: dict[int, list[int]] = {}
    for row in missing.tolist():
        rows_by_sample.setdefault(row // len(variants), []).append(row)
    done, total = int(kept.filled.sum()), kept.rows
    if on_progress:
        on_progress(done, total)
    if not rows_by_sample:
        return kept.tensor()
    front.eval()
    runner = make_runner(front, device, image_size=preprocessing.image_size, export_dir=export_dir,
                         batch_size=settings.batch_size, name=f"front{len(front)}")
    hashes = [file_hash(s.path) for s in kept.samples]
    batch_rows: list[int] = []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        nonlocal done
        kept.put(batch_rows, runner(torch.stack(batch)))
        done += len(batch_rows)
        batch_rows.clear()
        batch.clear()
        if on_progress:
            on_progress(done, total)

    views = variant_views(kept.samples, hashes, rows_by_sample, variants, settings=settings, preprocessing=preprocessing,
                          depth=2 * runner.batch_size)
    for prepared in views:
        if should_stop is not None and should_stop():
            raise InterruptedError("stopped while preparing fine-tuning inputs")
        for row, tensor in prepared:
            batch_rows.append(row)
            batch.append(tensor)
            if len(batch) >= runner.batch_size:
                flush()
    if batch:
        flush()
    return kept.tensor()


class ResizedImages:
    """Each image decoded once and resized to the model's input (``resizer``: the same squash, crop
    or letterbox as prediction), kept as uint8 (memory, or a file beyond ``MEMORY_LIMIT``)."""

    def __init__(self, samples: Sequence[Sample], preprocessing: Preprocessing, spill: Path,
                 should_stop: Callable[[], bool] | None = None):
        size = preprocessing.image_size
        self.pixels = _storage((len(samples), size, size, 3), np.uint8, spill)
        resize = resizer(preprocessing)

        def decode(index: int) -> tuple[int, np.ndarray]:
            return index, np.asarray(resize(open_image(samples[index].path, draft_size=size)), dtype=np.uint8)

        for index, pixels in prefetch(decode, list(range(len(samples))), depth=16):
            if should_stop is not None and should_stop():
                raise InterruptedError("stopped while decoding images for fine-tuning")
            self.pixels[index] = pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def image(self, index: int) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(self.pixels[index]))


@dataclass
class FineTuneInputs:
    """What the fine-tuning stage trains and validates on (see the module's docstring)."""

    tail: nn.Module | None  # None: the backbone is not a chain of blocks; the whole network runs on images
    front_each_step: nn.Module | None  # fresh augmentation: the front the module runs on each training batch
    train: Dataset  # the training inputs, one row each; its targets are looked up through train_sample_index
    train_sample_index: torch.Tensor
    val: Dataset
    val_inputs: torch.Tensor | None  # the validation images' front outputs (float16), for the evaluation after
    decoded: int  # images decoded for the stage (each at most once; none whose outputs the extraction kept)

    def loaders(self, train_targets: torch.Tensor, val_targets: torch.Tensor, batch_size: int,
                generator: torch.Generator) -> tuple[DataLoader, DataLoader]:
        workers = 4 if torch.cuda.is_available() and self.front_each_step is not None else 0
        train = _WithTargets(self.train, train_targets[self.train_sample_index])
        val = _WithTargets(self.val, val_targets)
        return (DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator, num_workers=workers),
                DataLoader(val, batch_size=max(batch_size, 64)))


class _WithTargets(Dataset):
    def __init__(self, inputs: Dataset, targets: torch.Tensor):
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]


class _Rows(Dataset):
    """Rows of a kept float16 tensor, as float32."""

    def __init__(self, rows: torch.Tensor):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.rows[index].float()


class _Augmented(Dataset):
    """A new augmented view of each small image at every access (fresh augmentation)."""

    def __init__(self, images: ResizedImages, transform: Callable):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.images.image(index))


def keepers(network: TransferNet, settings: TrainingSettings, train: Sequence[Sample], val: Sequence[Sample],
            scratch: Path) -> tuple[KeptFront | None, KeptFront | None]:
    """Where the feature extraction keeps the front's outputs for fine-tuning (train, validation): only
    when fine-tuning follows and the backbone splits; fresh augmentation needs only the validation ones."""
    if not settings.fine_tune or network.split_backbone(settings.retrained_layers) is None:
        return None, None
    val_kept = KeptFront(val, 0, scratch / "val_inputs.npy")
    if settings.fine_tune_fresh_augmentation:
        return None, val_kept
    return KeptFront(train, settings.augmented_copies, scratch / "train_inputs.npy"), val_kept


def prepare_fine_tuning(network: TransferNet, samples_train: Sequence[Sample], samples_val: Sequence[Sample], *,
                        settings: TrainingSettings, preprocessing: Preprocessing, device: torch.device, export_dir: Path,
                        scratch: Path, kept: tuple[KeptFront | None, KeptFront | None] = (None, None),
                        should_stop: Callable[[], bool] | None = None,
                        on_progress: Callable[[int, int], None] | None = None) -> FineTuneInputs:
    """The stage's inputs for ``network`` with its best head loaded: what the feature extraction kept
    (``kept``, from ``keepers``), the rest computed with every image decoded once, the frozen front
    run once per input that does not change. Raises ``InterruptedError`` on a stop request."""
    network.eval()
    split = network.split_backbone(settings.retrained_layers)
    if split is None:
        train_images = ResizedImages(samples_train, preprocessing, scratch / "train_images.npy", should_stop)
        val_images = ResizedImages(samples_val, preprocessing, scratch / "val_images.npy", should_stop)
        plain = model_input(preprocessing)
        return FineTuneInputs(None, None, _Augmented(train_images, small_image_input(settings, preprocessing)),
                              torch.arange(len(samples_train)), _Augmented(val_images, lambda image: plain(image)), None,
                              decoded=len(samples_train) + len(samples_val))
    front, tail = split
    train_kept, val_kept = kept
    val_kept = val_kept or KeptFront(samples_val, 0, scratch / "val_inputs.npy")
    fresh = settings.fine_tune_fresh_augmentation
    if not fresh:
        train_kept = train_kept or KeptFront(samples_train, settings.augmented_copies, scratch / "train_inputs.npy")
    parts = [k for k in (val_kept, train_kept) if k is not None]
    total = sum(k.rows for k in parts) + (len(samples_train) if fresh else 0)
    decoded = sum(len({r // (1 + k.copies) for r in np.flatnonzero(~k.filled).tolist()}) for k in parts)
    offset = 0

    def progress(done: int, _: int) -> None:
        if on_progress:
            on_progress(offset + done, total)

    common = dict(settings=settings, preprocessing=preprocessing, device=device, export_dir=export_dir, should_stop=should_stop)
    val_inputs = front_outputs(front, val_kept, on_progress=progress, **common)
    offset = val_kept.rows
    if fresh:
        images = ResizedImages(samples_train, preprocessing, scratch / "train_images.npy", should_stop)
        decoded += len(samples_train)
        progress(len(samples_train), total)
        train: Dataset = _Augmented(images, small_image_input(settings, preprocessing))
        sample_index = torch.arange(len(samples_train))
        front_each_step: nn.Module | None = front.to(memory_format=torch.channels_last)
    else:
        train = _Rows(front_outputs(front, train_kept, on_progress=progress, **common))
        sample_index, front_each_step = train_kept.sample_index, None
    tail.to(memory_format=torch.channels_last)
    return FineTuneInputs(tail, front_each_step, train, sample_index, _Rows(val_inputs), val_inputs, decoded=decoded)

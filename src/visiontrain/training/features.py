"""The feature cache: a frozen backbone never runs twice on the same input.

Stage 1 trains the head on pooled backbone features. Features of every original image and of
each augmented copy are computed once and kept on disk, keyed by

* the image's content (sha256 of its bytes: renaming or moving a file keeps its features),
* the feature space (backbone, its weights' identity (for random weights, the seed that drew them),
  the preprocessing: size, resize mode, normalisation, and the versions of the libraries that
  change the numbers: torch, timm, torchvision, Pillow),
* the variant (original, or augmented copy k with the augmentation settings and seed that made it;
  the settings are every field of the settings' "Augmentation" group, so a new one is keyed too),

so a change to any of them is a cache miss, and a second run with other head settings reads
everything back. The cache persists across runs (default: the user cache directory), capped in size;
where and how it is kept (an LMDB store per feature space, shared by the processes of a machine, and
optionally a shared tier in the object store for a cluster): :mod:`visiontrain.training.feature_store`.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from visiontrain.data.dataset import Sample
from visiontrain.data.digests import file_sha256
from visiontrain.data.images import open_image
from visiontrain.data.transforms import model_input, training_input
from visiontrain.models.backbones import weights_identity
from visiontrain.models.classifier import TransferNet
from visiontrain.models.preprocessing import Preprocessing
from visiontrain.settings import TrainingSettings
from visiontrain.training.backbone_runner import make_runner
from visiontrain.training.feature_store import FeatureCache, FeatureCacheLocation, default_cache_dir

__all__ = ["FeatureCache", "FeatureCacheLocation", "FeatureSet", "FeatureSpace", "default_cache_dir", "extract_features"]

if TYPE_CHECKING:
    from visiontrain.training.fine_tune import KeptFront

# Computed vectors are stored this many at a time: one transaction, so one disk sync, for each.
STORE_BATCH = 256
# How many copies are made does not change what copy k looks like, so it is not part of the key.
AUGMENTATION_FIELDS = tuple(name for name in TrainingSettings.field_groups()["Augmentation"] if name != "augmented_copies")


def _library_versions() -> str:
    import PIL
    import timm
    import torchvision

    return f"torch-{torch.__version__}|timm-{timm.__version__}|torchvision-{torchvision.__version__}|pillow-{PIL.__version__}"


file_hash = file_sha256  # the cache's image key


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FeatureSpace:
    """Everything that decides what the backbone outputs for an unaugmented image."""

    backbone: str
    weights: str
    preprocessing: Preprocessing

    @classmethod
    def of(cls, settings: TrainingSettings, preprocessing: Preprocessing) -> "FeatureSpace":
        weights = weights_identity(settings.backbone, pretrained=settings.pretrained, weights_path=settings.weights_path)
        if not settings.pretrained and not settings.weights_path:
            # Random weights are drawn from the run's seed: another seed is another backbone.
            weights = f"{weights}:seed-{settings.seed}"
        return cls(settings.backbone, weights, preprocessing)

    def key(self) -> str:
        return _short_hash(f"{self.backbone}|{self.weights}|{self.preprocessing.key()}|{_library_versions()}")


def augmentation_key(settings: TrainingSettings) -> str:
    fields = {name: getattr(settings, name) for name in AUGMENTATION_FIELDS}
    return _short_hash(json.dumps({"aug": fields, "seed": settings.seed}, sort_keys=True))


@dataclass
class FeatureSet:
    """Features of a list of samples (rows in sample order, variant-major within a sample)."""

    features: torch.Tensor  # (rows, num_features) float32
    sample_index: torch.Tensor  # (rows,) int64: the sample each row comes from (targets are the task's)
    original: torch.Tensor  # (rows,) bool: row comes from the unaugmented image
    hits: int
    misses: int


def prefetch(function: Callable, items: Sequence, depth: int) -> Iterator:
    """``map(function, items)`` computed by one background thread, at most ``depth`` results ahead."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="visiontrain-prefetch") as pool:
        pending: deque = deque()
        iterator = iter(items)
        for item in iterator:
            pending.append(pool.submit(function, item))
            if len(pending) >= depth:
                break
        try:
            while pending:
                result = pending.popleft().result()
                for item in iterator:
                    pending.append(pool.submit(function, item))
                    break
                yield result
        finally:
            for future in pending:
                future.cancel()


def _variants(copies: int, aug_key: str) -> list[str]:
    return ["orig"] + [f"aug{k}-{aug_key}" for k in range(1, copies + 1)]


def _variant_seed(image_hash: str, variant: str, seed: int) -> int:
    return int(hashlib.sha256(f"{image_hash}|{variant}|{seed}".encode()).hexdigest()[:8], 16)


def variant_views(samples: Sequence[Sample], hashes: Sequence[str], rows_by_sample: dict[int, list[int]],
                  variants: Sequence[str], *, settings: TrainingSettings, preprocessing: Preprocessing,
                  depth: int) -> Iterator[list[tuple[int, torch.Tensor]]]:
    """For each sample in ``rows_by_sample`` (sample index -> rows, row % len(variants) naming the
    variant), its variants' model inputs: the image decoded once for all of them, the original
    through ``model_input``, augmented copy k through ``training_input`` seeded by (image, copy, seed),
    so copy k is the same image in every run, batch and stage. Decoding runs in a background thread,
    ``depth`` samples ahead, while the caller's network runs (PIL and torch both release the GIL)."""
    plain = model_input(preprocessing)
    augmented = training_input(settings, preprocessing)

    def prepare(item: tuple[int, list[int]]) -> list[tuple[int, torch.Tensor]]:
        sample_index, sample_rows = item
        image = open_image(samples[sample_index].path, draft_size=preprocessing.image_size)
        prepared = []
        for row in sample_rows:
            variant = variants[row % len(variants)]
            if variant == "orig":
                prepared.append((row, plain(image)))
                continue
            # One preparing thread only, so seeding the global generator here is race-free.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_variant_seed(hashes[sample_index], variant, settings.seed))
                prepared.append((row, augmented(image)))
        return prepared

    yield from prefetch(prepare, list(rows_by_sample.items()), depth=depth)


def extract_features(
    network: TransferNet,
    samples: Sequence[Sample],
    *,
    settings: TrainingSettings,
    preprocessing: Preprocessing,
    cache: FeatureCache,
    augmented_copies: int = 0,
    device: torch.device,
    on_progress: Callable[[int, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    keep_front: KeptFront | None = None,
) -> FeatureSet:
    """Features for each sample's original and ``augmented_copies`` augmented views, from the cache
    where present; the rest are computed in batches (``backbone_runner``: ONNX Runtime on the CPU,
    PyTorch on a GPU) and stored.

    Each augmented copy is made with a seed derived from (image, copy, seed), so it is the same image
    whatever the batch or run. Raises ``InterruptedError`` when ``should_stop`` turns true.
    ``keep_front`` (fine-tuning follows): the backbone runs as its frozen front then the rest, and
    the front's outputs of what is computed here are kept for the fine-tuning stage.
    """
    aug_key = augmentation_key(settings)
    variants = _variants(augmented_copies, aug_key)
    hashes = [file_hash(s.path) for s in samples]

    rows = cache.get_many([(image_hash, variant) for image_hash in hashes for variant in variants])
    pending = [(row, row // len(variants)) for row, vector in enumerate(rows) if vector is None]  # (row, sample) to compute
    hits, total = len(rows) - len(pending), len(rows)
    if on_progress:
        on_progress(hits, total, hits)

    network.eval()
    runner = None
    if pending:  # build (and maybe export) the runner only when something must be computed
        if keep_front is not None:
            from visiontrain.training.fine_tune import SplitRunner

            front, tail = network.split_backbone(settings.retrained_layers)  # type: ignore[misc]
            runner = SplitRunner(front, tail, keep_front, device=device, image_size=preprocessing.image_size,
                                 export_dir=cache.dir, batch_size=settings.batch_size)
        else:
            runner = make_runner(network.backbone, device, image_size=preprocessing.image_size, export_dir=cache.dir,
                                 batch_size=settings.batch_size)
    batch_size = runner.batch_size if runner else 1
    batch_rows: list[int] = []
    batch_tensors: list[torch.Tensor] = []
    computed: list[tuple[str, str, np.ndarray]] = []

    def store() -> None:
        cache.put_many(computed)
        computed.clear()

    def flush() -> None:
        images = torch.stack(batch_tensors)
        output = runner(images, batch_rows) if keep_front is not None else runner(images)
        for row, vector in zip(batch_rows, output):
            sample_index, variant = divmod(row, len(variants))
            computed.append((hashes[sample_index], variants[variant], vector))
            rows[row] = vector
        if len(computed) >= STORE_BATCH:
            store()
        batch_rows.clear()
        batch_tensors.clear()
        if on_progress:
            on_progress(total - sum(r is None for r in rows), total, hits)

    by_sample: dict[int, list[int]] = {}
    for row, sample_index in pending:
        by_sample.setdefault(sample_index, []).append(row)

    try:
        for prepared in variant_views(samples, hashes, by_sample, variants, settings=settings, preprocessing=preprocessing,
                                      depth=2 * batch_size):
            if should_stop is not None and should_stop():
                raise InterruptedError("stopped while computing features")
            for row, tensor in prepared:
                batch_rows.append(row)
                batch_tensors.append(tensor)
                if len(batch_rows) >= batch_size:
                    flush()
        if batch_rows:
            flush()
    finally:
        if computed:  # what was computed before a stop is kept too
            store()

    sample_index = torch.arange(len(samples), dtype=torch.long).repeat_interleave(len(variants))
    original = torch.tensor([v == "orig" for _ in samples for v in variants], dtype=torch.bool)
    features = torch.from_numpy(np.stack(rows)) if rows else torch.empty(0, network.num_features)
    return FeatureSet(features.float(), sample_index, original, hits=hits, misses=len(pending))

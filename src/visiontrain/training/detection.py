"""Training a detector: the frozen body runs once per image variant; the rest trains on its outputs.

Faster R-CNN's pyramid, proposal network and box head read the backbone's feature maps, not pooled
features, so detection cannot reuse the classification cache. Its equivalent: with the body frozen,
its output for a given (image, augmentation) never changes, so each training image is decoded,
augmented (boxes moved with the pixels) and passed through the body once per variant (the
original and ``augmented_copies`` seeded augmented versions), and validation images once. Those
outputs (float16, about 0.5 MB an image at the default size) are kept for the run: in memory up to
``BODY_MEMORY_BYTES``, on disk in the run directory beyond. Each epoch every training image is
seen once, as one of its variants drawn at random. On this CPU the body is about half of a step's
time with the default sizes, so epochs after the first cost half as much (docs/benchmarks.md).

Fine-tuning (``fine_tune``) unfreezes the last ``retrained_layers`` body blocks; then the body
runs every step on freshly augmented images, as it must.
"""

from __future__ import annotations

import random
import shutil
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Sampler
from torchmetrics import MeanMetric
from torchvision import tv_tensors

from visiontrain.data.dataset import Sample
from visiontrain.data.images import open_image
from visiontrain.data.transforms import detection_augmenter, detection_input
from visiontrain.models.detector import Detector
from visiontrain.settings import TrainingSettings
from visiontrain.tasks import Task
from visiontrain.training.module import StageModule

BODY_MEMORY_BYTES = 3 * 1024**3
BODY_DIR = "body_features"  # in the run directory, only while a run whose outputs do not fit in memory lasts
LOSS_NAMES = ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg")


@dataclass
class BodyItem:
    """One image variant after the frozen body: what a step needs, nothing re-decoded."""

    levels: list[torch.Tensor] | Path  # float16 (C, h, w) per level, or the file holding them
    image_size: tuple[int, int]  # after the detector's resize
    padded_size: tuple[int, int]  # image_size rounded up to the body's stride
    target: dict[str, torch.Tensor]  # boxes in resized pixels, labels 1-based (0 is background)
    original_size: tuple[int, int]
    original_target: dict[str, torch.Tensor]  # boxes in image pixels, labels 0-based (what metrics compare)

    def load_levels(self) -> list[torch.Tensor]:
        if isinstance(self.levels, Path):
            return torch.load(self.levels, weights_only=True)
        return self.levels


def detector_target(target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """0-based concept labels (the task's targets) → the detector's, where 0 is background."""
    return {"boxes": target["boxes"], "labels": target["labels"] + 1}


class BodyOutputs:
    """Every variant's body outputs, computed once: ``variants[i][k]`` is image i's variant k (0: original)."""

    def __init__(self, detector: Detector, samples: list[Sample], targets: list[dict[str, torch.Tensor]], *,
                 copies: int, settings: TrainingSettings, device: torch.device, spill_dir: Path,
                 should_stop: Callable[[], bool] = lambda: False, on_progress: Callable[[int], None] | None = None):
        self.variants: list[list[BodyItem]] = []
        self.bytes_in_memory = 0
        self.on_disk = 0
        self._spill_dir = spill_dir
        augment = detection_augmenter(settings)
        to_tensor = detection_input()
        detector.eval()
        body = detector.backbone.body.to(device)

        def decode(index: int) -> Any:
            return open_image(samples[index].path)

        with ThreadPoolExecutor(max_workers=2) as pool, torch.inference_mode():
            for index, image in enumerate(pool.map(decode, range(len(samples)))):
                if should_stop():
                    raise InterruptedError("stopped while preparing the body features")
                target = targets[index]
                variants = []
                for k in range(1 + copies):
                    pixels, boxes, labels = (to_tensor(image), target["boxes"], target["labels"]) if k == 0 else \
                        _augmented(augment, image, target, seed=_variant_seed(settings.seed, index, k))
                    variants.append(self._through_body(detector, body, pixels, boxes, labels, device))
                    if on_progress:
                        on_progress(1)
                self.variants.append(variants)

    def _through_body(self, detector: Detector, body: torch.nn.Module, pixels: torch.Tensor, boxes: torch.Tensor,
                      labels: torch.Tensor, device: torch.device) -> BodyItem:
        original = {"boxes": boxes, "labels": labels}
        images, (resized_target,) = detector.transform([pixels.to(device)], [detector_target(original)])
        levels = [level[0].to(torch.float16).cpu() for level in body(images.tensors).values()]
        item = BodyItem(
            levels=levels,
            image_size=tuple(images.image_sizes[0]),  # type: ignore[arg-type]
            padded_size=tuple(images.tensors.shape[-2:]),  # type: ignore[arg-type]
            target={k: v.cpu() for k, v in resized_target.items()},
            original_size=(int(pixels.shape[-2]), int(pixels.shape[-1])),
            original_target=original,
        )
        size = sum(level.numel() * level.element_size() for level in levels)
        if self.bytes_in_memory + size > BODY_MEMORY_BYTES:
            self._spill_dir.mkdir(parents=True, exist_ok=True)
            path = self._spill_dir / f"{self.on_disk}.pt"
            torch.save(levels, path)
            item.levels = path
            self.on_disk += 1
        else:
            self.bytes_in_memory += size
        return item


def _variant_seed(seed: int, index: int, k: int) -> int:
    return (seed * 1_000_003 + index * 7_919 + k) % (2**63)


def _augmented(augment: Callable, image: Any, target: dict[str, torch.Tensor], *, seed: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One seeded augmented variant: the image and its boxes moved with it (degenerate ones dropped)."""
    boxes = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=(image.height, image.width))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pixels, moved = augment(image, {"boxes": boxes, "labels": target["labels"]})
    return pixels, moved["boxes"].as_subclass(torch.Tensor).float(), moved["labels"]


class VariantSampler(Sampler[list[tuple[int, int]]]):
    """Batches of (image, variant): each epoch every image once, as one of its variants drawn at random
    (seeded by the run's seed and the epoch), images of one padded shape batched together (no padding
    wasted, and a batch looks like one image to the body). ``shuffle=False``: originals, in order."""

    def __init__(self, outputs: BodyOutputs, batch_size: int, *, seed: int, shuffle: bool):
        self.outputs, self.batch_size, self.seed, self.shuffle = outputs, batch_size, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[tuple[int, int]]]:
        rng = random.Random(self.seed * 7_919 + self.epoch)
        groups: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
        for index, variants in enumerate(self.outputs.variants):
            k = rng.randrange(len(variants)) if self.shuffle else 0
            groups[variants[k].padded_size].append((index, k))
        batches = []
        for shape in sorted(groups):
            members = groups[shape]
            if self.shuffle:
                rng.shuffle(members)
            batches += [members[i:i + self.batch_size] for i in range(0, len(members), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batches = self._batches()
        if self.shuffle:
            self.epoch += 1  # a fresh draw next time, also where Lightning does not call set_epoch
        return iter(batches)

    def __len__(self) -> int:
        return len(self._batches())


class BodyDataset(Dataset):
    def __init__(self, outputs: BodyOutputs):
        self.outputs = outputs

    def __len__(self) -> int:
        return len(self.outputs.variants)

    def __getitem__(self, key: tuple[int, int]) -> BodyItem:
        index, k = key
        return self.outputs.variants[index][k]


def collate_body(items: list[BodyItem]) -> dict[str, Any]:
    """Levels zero-padded to the batch's largest padded size (batches are grouped by shape: rarely needed)."""
    height = max(item.padded_size[0] for item in items)
    width = max(item.padded_size[1] for item in items)
    per_item = [item.load_levels() for item in items]
    levels = OrderedDict()
    for level in range(len(per_item[0])):
        stride = items[0].padded_size[0] // per_item[0][level].shape[-2]
        h, w = height // stride, width // stride
        levels[str(level)] = torch.stack([
            F.pad(maps[level].float(), (0, w - maps[level].shape[-1], 0, h - maps[level].shape[-2])) for maps in per_item
        ])
    return {
        "body": levels,
        "image_sizes": [item.image_size for item in items],
        "padded_size": (height, width),
        "targets": [item.target for item in items],
        "original_sizes": [item.original_size for item in items],
        "original_targets": [item.original_target for item in items],
    }


class DetectionImages(Dataset):
    """Images decoded on demand (fine-tuning, and scoring a fine-tuned detector): freshly augmented or not."""

    def __init__(self, samples: list[Sample], targets: list[dict[str, torch.Tensor]], settings: TrainingSettings | None):
        self.samples, self.targets = samples, targets
        self.augment = detection_augmenter(settings) if settings is not None else None
        self.to_tensor = detection_input()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = open_image(self.samples[index].path)
        target = self.targets[index]
        if self.augment is None:
            pixels, boxes, labels = self.to_tensor(image), target["boxes"], target["labels"]
        else:
            boxes_tv = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=(image.height, image.width))
            pixels, moved = self.augment(image, {"boxes": boxes_tv, "labels": target["labels"]})
            boxes, labels = moved["boxes"].as_subclass(torch.Tensor).float(), moved["labels"]
        return {"image": pixels, "target": {"boxes": boxes, "labels": labels}, "original_target": target}


def collate_images(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "images": [item["image"] for item in items],
        "targets": [item["target"] for item in items],
        "original_sizes": [tuple(item["image"].shape[-2:]) for item in items],
        "original_targets": [item["original_target"] for item in items],
    }


class DetectionModule(StageModule):
    """A stage of detector training. Head stage: batches of body outputs (``collate_body``), the
    pyramid, proposal network and box head learn. Fine-tuning: batches of images (``collate_images``),
    the last body blocks learn too."""

    def __init__(self, network: Detector, settings: TrainingSettings, *, task: Task, stage: str, learning_rate: float):
        super().__init__(settings, task=task, stage=stage, learning_rate=learning_rate)
        self.network = network
        self.val_metric = task.epoch_metrics()
        self.val_losses = torch.nn.ModuleDict({name: MeanMetric() for name in (*LOSS_NAMES, "total")})
        self._train_parts: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.trainable = list(network.trainable_parts())
        if stage == "fine_tune":
            self.trainable += network.unfreeze_last(settings.retrained_layers)
        else:
            network.freeze_body()

    def on_train_epoch_start(self) -> None:
        self.network.train()
        self.network.backbone.body.eval()  # frozen batch norm either way; no dropout to switch
        self._train_parts.clear()
        super().on_train_epoch_start()

    def run(self, batch: dict[str, Any], *, losses: bool, detections: bool
            ) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
        """Losses (detector targets, resized pixels) and detections in image pixels, 0-based labels."""
        network = self.network
        if "body" in batch:
            body, image_sizes, padded, targets = batch["body"], batch["image_sizes"], batch["padded_size"], batch["targets"]
        else:
            wanted = [detector_target(t) for t in batch["targets"]] if losses else None
            image_list, targets, body = network.body_features(batch["images"], wanted)
            image_sizes, padded = image_list.image_sizes, tuple(image_list.tensors.shape[-2:])
        loss_values, found = network.from_body_features(body, image_sizes, padded, targets if losses else None,
                                                        losses=losses, detections=detections)
        if detections:
            found = network.transform.postprocess(found, image_sizes, batch["original_sizes"])
            found = [{"boxes": f["boxes"], "scores": f["scores"], "labels": f["labels"] - 1} for f in found]
        return loss_values, found

    def training_step(self, batch: dict[str, Any], batch_index: int) -> torch.Tensor | None:
        loss_values, _ = self.run(batch, losses=True, detections=False)
        total = sum(loss_values.values())
        for name, value in loss_values.items():
            self._train_parts[name].append(value.detach())
        return self.guarded(total)  # type: ignore[arg-type]

    def validation_step(self, batch: dict[str, Any], batch_index: int) -> None:
        loss_values, found = self.run(batch, losses=True, detections=True)
        count = len(batch["original_targets"])
        for name, value in loss_values.items():
            self.val_losses[name].update(value.detach().float(), weight=count)
        self.val_losses["total"].update(sum(v.detach().float() for v in loss_values.values()), weight=count)
        self.val_metric.update(found, batch["original_targets"])

    def on_validation_epoch_end(self) -> None:
        values = {"val_loss": self.val_losses["total"].compute(),
                  **{f"val_{name}": self.val_losses[name].compute() for name in LOSS_NAMES},
                  **self.task.epoch_values(self.val_metric.compute())}
        for metric in self.val_losses.values():
            metric.reset()
        self.val_metric.reset()
        for name, value in values.items():
            self.log(name, value)
        for name, parts in self._train_parts.items():
            finite = [p for p in parts if bool(torch.isfinite(p))]
            if finite:
                self.log(f"train_{name}", torch.stack(finite).mean())
        self.log_train_loss()


def body_loaders(outputs_train: BodyOutputs, outputs_val: BodyOutputs, settings: TrainingSettings
                 ) -> tuple[DataLoader, DataLoader]:
    train = DataLoader(BodyDataset(outputs_train), batch_sampler=VariantSampler(outputs_train, settings.batch_size,
                       seed=settings.seed, shuffle=True), collate_fn=collate_body)
    val = DataLoader(BodyDataset(outputs_val), batch_sampler=VariantSampler(outputs_val, max(8, settings.batch_size),
                     seed=settings.seed, shuffle=False), collate_fn=collate_body)
    return train, val


def image_loaders(train: list[Sample], train_targets: list[dict[str, torch.Tensor]], val: list[Sample],
                  val_targets: list[dict[str, torch.Tensor]], settings: TrainingSettings, device: torch.device,
                  generator: torch.Generator) -> tuple[DataLoader, DataLoader]:
    workers = 4 if device.type == "cuda" else 0
    return (
        DataLoader(DetectionImages(train, train_targets, settings), batch_size=settings.batch_size, shuffle=True,
                   generator=generator, num_workers=workers, collate_fn=collate_images),
        # One image at a time, as predict and the final evaluation see them (a batch pads to its largest image).
        DataLoader(DetectionImages(val, val_targets, None), batch_size=1, num_workers=workers, collate_fn=collate_images),
    )


@torch.inference_mode()
def detect(network: Detector, samples: list[Sample], *, device: torch.device,
           outputs: BodyOutputs | None = None, batch_size: int = 8) -> list[dict[str, torch.Tensor]]:
    """The detector's boxes for each sample, in image pixels with 0-based labels.

    From body outputs when given (a head-stage model's validation images are not run through the body
    again; batches are of one padded shape, so each image is seen as alone). Otherwise image by image,
    as the predictor and the ONNX model see them: in a batch torchvision pads every image to the
    largest, which would make an image's boxes depend on the others.
    """
    network.eval()
    module_like = _Runner(network)
    found: list[dict[str, torch.Tensor]] = []
    network.to(device)
    try:
        if outputs is not None:
            by_index: dict[int, dict[str, torch.Tensor]] = {}
            dataset = BodyDataset(outputs)
            for keys in VariantSampler(outputs, batch_size, seed=0, shuffle=False):
                batch = collate_body([dataset[key] for key in keys])
                batch["body"] = OrderedDict((name, level.to(device)) for name, level in batch["body"].items())
                _, detected = module_like.run(batch)
                by_index.update({index: {k: v.cpu() for k, v in item.items()} for (index, _), item in zip(keys, detected)})
            return [by_index[i] for i in range(len(samples))]
        targets = [{"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)} for _ in samples]
        loader = DataLoader(DetectionImages(samples, targets, None), batch_size=1, collate_fn=collate_images)
        for batch in loader:
            batch["images"] = [image.to(device) for image in batch["images"]]
            _, detected = module_like.run(batch)
            found += [{k: v.cpu() for k, v in item.items()} for item in detected]
        return found
    finally:
        network.cpu()


class _Runner:
    """DetectionModule.run without a Lightning module (scoring after training)."""

    def __init__(self, network: Detector):
        self.network = network

    def run(self, batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
        return DetectionModule.run(self, batch, losses=False, detections=True)  # type: ignore[arg-type]


def spill_dir(run_dir: Path) -> Path:
    return run_dir / BODY_DIR


def clear_spill(run_dir: Path) -> None:
    shutil.rmtree(spill_dir(run_dir), ignore_errors=True)



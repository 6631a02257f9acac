"""Resizing and augmentation (torchvision transforms v2), built from the settings.

Training features are made from ``augmenter(settings)`` then ``model_input(preprocessing)``;
prediction uses ``model_input`` alone, so train and serve see identical pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from visiontrain.models.preprocessing import Preprocessing
from visiontrain.settings import TrainingSettings

LETTERBOX_FILL = (114, 114, 114)


class Letterbox(torch.nn.Module):
    """Resize so the longer side fits, then pad to a square (keeps the whole image, undistorted)."""

    def __init__(self, size: int, interpolation: InterpolationMode):
        super().__init__()
        self.size = size
        self.interpolation = interpolation

    def forward(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        scale = self.size / max(width, height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        image = F.resize(image, [new_h, new_w], interpolation=self.interpolation, antialias=True)
        left, top = (self.size - new_w) // 2, (self.size - new_h) // 2
        return F.pad(image, [left, top, self.size - new_w - left, self.size - new_h - top], fill=LETTERBOX_FILL)


class RandomZoom(torch.nn.Module):
    """Crop a random region keeping at least ``1 - scale`` of the area (the resizer follows)."""

    def __init__(self, scale: float):
        super().__init__()
        self.area = (1.0 - scale, 1.0)

    def forward(self, image: Image.Image) -> Image.Image:
        top, left, height, width = v2.RandomResizedCrop.get_params(image, self.area, (3 / 4, 4 / 3))  # type: ignore[arg-type]
        return F.crop(image, top, left, height, width)


def _interpolation(name: str) -> InterpolationMode:
    return {"bilinear": InterpolationMode.BILINEAR, "nearest": InterpolationMode.NEAREST}.get(name, InterpolationMode.BICUBIC)


def resizer(preprocessing: Preprocessing) -> torch.nn.Module:
    size, interpolation = preprocessing.image_size, _interpolation(preprocessing.interpolation)
    if preprocessing.resize_mode == "center_crop":
        return v2.Compose([v2.Resize(size, interpolation=interpolation, antialias=True), v2.CenterCrop(size)])
    if preprocessing.resize_mode == "letterbox":
        return Letterbox(size, interpolation)
    return v2.Resize((size, size), interpolation=interpolation, antialias=True)


class NormalizedTensor(torch.nn.Module):
    """PIL RGB image → float tensor (C, H, W), scaled to [0, 1] then normalised, as ``PILToTensor``,
    ``ToDtype(scale=True)`` and ``Normalize`` make it (equal within 1e-6), in NumPy on the calling thread.

    Why not those three: each is a PyTorch operation over the whole image, which PyTorch splits across its
    intra-op threads. Where several threads decode at once on busy cores (the API's concurrent prediction
    requests, next to ONNX Runtime) those splits wait on each other: measured on the 2-core machine under
    load, 7.5-32 ms an image against 1.9 ms here (docs/benchmarks.md)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        std_array = np.asarray(std, dtype=np.float32)
        self.scale = (1.0 / (255.0 * std_array)).astype(np.float32)
        self.shift = (np.asarray(mean, dtype=np.float32) / std_array).astype(np.float32)

    def forward(self, image: Image.Image) -> torch.Tensor:
        pixels = np.asarray(image, dtype=np.float32)  # (H, W, C), a new array
        if pixels.ndim != 3 or pixels.shape[2] != len(self.scale):
            raise ValueError(f"expected an RGB PIL image, got {getattr(image, 'mode', type(image).__name__)!r}")
        pixels *= self.scale
        pixels -= self.shift
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


def model_input(preprocessing: Preprocessing) -> v2.Compose:
    """PIL RGB image → normalised float tensor (C, H, W) at the model's size."""
    return v2.Compose([resizer(preprocessing), NormalizedTensor(preprocessing.mean, preprocessing.std)])


def augmenter(settings: TrainingSettings) -> v2.Compose:
    """Random flips, colour and skew, applied to the resized PIL image.

    They run after resizing and on PIL (C code): measured at 224 px, 3x cheaper than on the
    decoded photo or on tensors (hue jitter on tensors alone took 5.6 ms an image).
    """
    steps: list[torch.nn.Module] = []
    if settings.horizontal_flip:
        steps.append(v2.RandomHorizontalFlip())
    if settings.vertical_flip:
        steps.append(v2.RandomVerticalFlip())
    if settings.color > 0:
        c = settings.color
        steps.append(v2.ColorJitter(brightness=c, contrast=c, saturation=c, hue=min(0.5, c / 4)))
    if settings.skew > 0:
        steps.append(v2.RandomAffine(degrees=0, shear=20 * settings.skew))
        steps.append(v2.RandomPerspective(distortion_scale=0.5 * settings.skew, p=0.5))
    return v2.Compose(steps)


def training_input(settings: TrainingSettings, preprocessing: Preprocessing) -> v2.Compose:
    """One augmented training view: random zoom on the full image (keeps its detail), resize,
    then flips/colour/skew at the model's size, then noise (pixel space) and normalisation."""
    steps: list[torch.nn.Module] = []
    if settings.scale > 0:
        steps.append(RandomZoom(settings.scale))
    steps += [resizer(preprocessing), augmenter(settings), v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)]
    if settings.gaussian_noise > 0:
        steps.append(v2.GaussianNoise(mean=0.0, sigma=settings.gaussian_noise, clip=True))
    steps.append(v2.Normalize(mean=list(preprocessing.mean), std=list(preprocessing.std)))
    return v2.Compose(steps)


def small_image_input(settings: TrainingSettings, preprocessing: Preprocessing) -> v2.Compose:
    """One augmented view made from the image already resized to the model's size (fine-tuning keeps
    each image decoded and resized once for its stage): the same zoom, flips, colour, skew and noise
    as ``training_input``, the zoomed crop resized back to the model's size."""
    size = preprocessing.image_size
    steps: list[torch.nn.Module] = []
    if settings.scale > 0:
        steps += [RandomZoom(settings.scale), v2.Resize((size, size), interpolation=_interpolation(preprocessing.interpolation),
                                                       antialias=True)]
    steps += [augmenter(settings), v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)]
    if settings.gaussian_noise > 0:
        steps.append(v2.GaussianNoise(mean=0.0, sigma=settings.gaussian_noise, clip=True))
    steps.append(v2.Normalize(mean=list(preprocessing.mean), std=list(preprocessing.std)))
    return v2.Compose(steps)


def detection_augmenter(settings: TrainingSettings) -> v2.Compose:
    """One augmented view of a detection image: the boxes move with the pixels (``tv_tensors``).

    Call it as ``augment(image, {"boxes": BoundingBoxes, "labels": tensor})``. Flips, zoom in or out
    with a shift (an affine map without rotation or shear keeps every box exact), colour and noise;
    boxes are clipped to the image and those left smaller than 2 px are dropped with their labels.
    ``skew`` is not used: a sheared box no longer bounds its object.
    """
    steps: list[torch.nn.Module] = []
    if settings.horizontal_flip:
        steps.append(v2.RandomHorizontalFlip())
    if settings.vertical_flip:
        steps.append(v2.RandomVerticalFlip())
    if settings.scale > 0:
        s = settings.scale
        steps.append(v2.RandomAffine(degrees=0, translate=(s / 2, s / 2), scale=(1 - s, 1 + s)))
    if settings.color > 0:
        c = settings.color
        steps.append(v2.ColorJitter(brightness=c, contrast=c, saturation=c, hue=min(0.5, c / 4)))
    steps += [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)]
    if settings.gaussian_noise > 0:
        steps.append(v2.GaussianNoise(mean=0.0, sigma=settings.gaussian_noise, clip=True))
    steps += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=2.0)]
    return v2.Compose(steps)


def detection_input() -> v2.Compose:
    """A detection image as the model takes it: a float tensor in [0, 1] (the detector resizes and normalises)."""
    return v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)])

"""Prediction from a saved model, with PyTorch or ONNX Runtime, in batches, one result per image.

A :class:`Predictor` is loaded once and then called many times (the platform's REST endpoint keeps
one in memory and passes it the uploaded bytes); it holds no per-call state, so concurrent calls are
safe. Every image is decoded exactly as training decoded it (``open_image`` with the model's size as
JPEG draft size, then ``model_input``), so train and serve see the same pixels. An image that cannot
be read gets an ``error`` in its own result; the others are still predicted. What a prediction
looks like is the model's task's (``tasks``): classification, the top-k classes; tagging, every
concept with its probability, its threshold and whether it is on; detection, the boxes scoring at
least the model's score threshold, each with its concept and score, in the image's pixels.

A detector (``Task.model == "detector"``) takes each image whole, as training decoded it (no draft
decoding: the detector resizes it itself), and is run one image at a time with either backend: in a
batch, torchvision pads every image to the largest, which moves the scores near the borders, so an
image's boxes would depend on the images sent with it. ``batch_size`` then only bounds how many images
are decoded at once. :func:`draw_detections` draws a prediction's boxes on its image.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image, ImageOps

from visiontrain.data.errors import ImageError
from visiontrain.data.images import open_image, to_rgb
from visiontrain.data.transforms import detection_input, model_input
from visiontrain.models.checkpoint import CheckpointError, LoadedModel, load_checkpoint
from visiontrain.models.preprocessing import Preprocessing
from visiontrain.tasks import Task, get_task, output_activation

ImageInput = Union[str, Path, bytes, Image.Image]
BACKENDS = ("torch", "onnx")
DEFAULT_BATCH_SIZE = 32


@dataclass
class Scores:
    """Probabilities for the images that could be read, and the reason for each that could not."""

    probabilities: np.ndarray  # (readable images, classes), in input order
    indices: list[int]  # input position of each probability row
    errors: dict[int, str] = field(default_factory=dict)  # input position -> why it was not read


class TorchBackend:
    """The PyTorch network in eval mode; probabilities out (the task's output activation applied)."""

    name = "torch"

    def __init__(self, network: torch.nn.Module, device: str | torch.device, activation: str = "softmax"):
        self.activation = output_activation(activation)
        self.device = torch.device(device)
        # channels_last on the CPU: 32 images at 224 px took 0.82 s instead of 1.25-1.57 s on 2 cores
        # (EfficientNet's depthwise convolutions run faster in that layout with oneDNN).
        self.channels_last = self.device.type == "cpu"
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.network = network.eval().to(self.device, memory_format=memory_format)

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.activation(self.network(batch).float()).cpu().numpy()


class OnnxBackend:
    """An ONNX Runtime session on the exported model (which outputs probabilities)."""

    name = "onnx"

    def __init__(self, path: Path, device: str | None, *, threads: int | None = None):
        import onnxruntime as ort

        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device != "cpu" and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        # One session serves every caller (``run`` is thread-safe): its operators use the cores this process
        # may run on (not os.cpu_count(), which counts cores a container or taskset may have taken away).
        options.intra_op_num_threads = threads or available_cpus()
        options.inter_op_num_threads = 1
        # Between runs ONNX Runtime's threads spin by default, taking the cores that decode the next images and
        # answer HTTP: served with spinning off, 8 clients got 66 predictions/s instead of 43-49 (load_check).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.threads = options.intra_op_num_threads
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch.numpy()})[0]


def available_cpus() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


Found = dict[str, np.ndarray]  # one image's detections: boxes (N, 4) xyxy in its pixels, scores (N,), labels (N,) 0-based


class TorchDetectorBackend:
    """A detector in eval mode: one image (3, H, W) in [0, 1] → its detections (0-based labels)."""

    name = "torch"

    def __init__(self, network: torch.nn.Module, device: str | torch.device):
        self.device = torch.device(device)
        self.network = network.eval().to(self.device)

    def __call__(self, image: torch.Tensor) -> Found:
        with torch.inference_mode():
            found = self.network([image.to(self.device, non_blocking=True)])[0]
        return {
            "boxes": found["boxes"].float().cpu().numpy(),
            "scores": found["scores"].float().cpu().numpy(),
            "labels": (found["labels"] - 1).cpu().numpy(),  # the detector's 0 is background
        }


class OnnxDetectorBackend(OnnxBackend):
    """An ONNX Runtime session on an exported detector (``export.py``: one image in, boxes out)."""

    def __call__(self, image: torch.Tensor) -> Found:  # type: ignore[override]
        boxes, scores, labels = self.session.run(None, {self.input_name: image.numpy()})
        return {"boxes": boxes, "scores": scores, "labels": labels}


@dataclass
class Detections:
    """Detections for the images that could be read, and the reason for each that could not."""

    found: list[Found]  # per readable image, in input order
    sizes: list[tuple[int, int]]  # (width, height) of each readable image: what the boxes are in
    indices: list[int]  # input position of each
    errors: dict[int, str] = field(default_factory=dict)


class Predictor:
    """Predictions (the task's shape) for images given as paths, bytes or PIL images."""

    def __init__(self, classes: list[str], preprocessing: Preprocessing | None, backend: Callable[[torch.Tensor], Any],
                 task: str = "classification", task_state: dict[str, Any] | None = None):
        self.classes = list(classes)
        self.preprocessing = preprocessing
        self.backend = backend
        self.task: Task = get_task(task)
        self.task_state = dict(task_state or {})
        if self.detects:
            self._transform = detection_input()
        elif preprocessing is None:
            raise ValueError(f"a {task} model needs its preprocessing")
        else:
            self._transform = model_input(preprocessing)

    @classmethod
    def load(cls, model: str | Path | LoadedModel, backend: str = "torch", device: str | None = None) -> "Predictor":
        """``model``: a run directory, a checkpoint file, an already loaded checkpoint, or (onnx
        backend) a ``.onnx`` file exported by visiontrain. The onnx backend uses ``model.onnx`` in the
        run directory, exporting it first when it is missing or was made from another checkpoint.
        ``device``: "cpu", "cuda", ...; default the GPU when there is one. A loaded checkpoint's
        network is used in place (moved to the device, eval mode)."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        if backend == "onnx":
            from visiontrain.export import ensure_onnx, read_onnx_metadata

            if isinstance(model, LoadedModel):
                raise ValueError("the onnx backend needs a run directory, checkpoint file or .onnx file, not a loaded model")
            path = Path(model)
            if path.suffix == ".onnx" and not path.is_file():
                raise CheckpointError(f"no ONNX model at {path}")
            onnx_path = path if path.suffix == ".onnx" else ensure_onnx(path)
            meta = read_onnx_metadata(onnx_path)
            session = OnnxDetectorBackend if get_task(meta.task).model == "detector" else OnnxBackend
            return cls(meta.classes, meta.preprocessing, session(onnx_path, device), meta.task, meta.task_state)
        loaded = model if isinstance(model, LoadedModel) else load_checkpoint(model)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        task = get_task(loaded.task)
        if task.model == "detector":
            backend: Callable[[torch.Tensor], Any] = TorchDetectorBackend(loaded.network, device)
        else:
            backend = TorchBackend(loaded.network, device, task.activation)
        return cls(loaded.classes, loaded.preprocessing, backend, loaded.task, loaded.task_state)

    @property
    def backend_name(self) -> str:
        return getattr(self.backend, "name", type(self.backend).__name__)

    @property
    def detects(self) -> bool:
        """Whether the model finds boxes (a detector) rather than scoring the whole image."""
        return self.task.model == "detector"

    def open(self, source: ImageInput) -> Image.Image:
        """One image decoded as the model sees it (RGB, EXIF rotation applied; a classifier's JPEGs at
        draft scale); raises ImageError for unusable input. A detector's boxes are in its pixels."""
        draft = None if self.preprocessing is None or self.detects else self.preprocessing.image_size
        if isinstance(source, Image.Image):
            return to_rgb(ImageOps.exif_transpose(source))
        if isinstance(source, (bytes, bytearray, memoryview)):
            return open_image(bytes(source), draft_size=draft)
        if Path(source).is_dir():
            raise ImageError("is a folder, not an image file")
        return open_image(source, draft_size=draft)

    def decode(self, source: ImageInput) -> torch.Tensor:
        """One image → the model's input tensor (C, H, W); raises ImageError for unusable input."""
        return self._transform(self.open(source))

    def detect(self, images: Sequence[ImageInput], batch_size: int = DEFAULT_BATCH_SIZE) -> Detections:
        """A detector's boxes (every one the model keeps, above its low floor, not yet cut at the score
        threshold) for every readable image, one image per forward pass; ``batch_size`` images are
        decoded at a time."""
        if not self.detects:
            raise TypeError(f"a {self.task.name} model scores whole images: use score(), not detect()")
        _check_inputs(images, batch_size)
        found: list[Found] = []
        sizes: list[tuple[int, int]] = []
        indices: list[int] = []
        errors: dict[int, str] = {}
        for tensors in self._decoded(images, batch_size, indices, errors):
            for tensor in tensors:
                found.append(self.backend(tensor))
                sizes.append((int(tensor.shape[-1]), int(tensor.shape[-2])))
        return Detections(found=found, sizes=sizes, indices=indices, errors=errors)

    def _decoded(self, images: Sequence[ImageInput], batch_size: int, indices: list[int], errors: dict[int, str]
                 ) -> Iterator[list[torch.Tensor]]:
        """The readable images, decoded ``batch_size`` at a time (memory stays bounded); each one's index is
        appended to ``indices``, and why an image could not be read to ``errors``."""
        for start in range(0, len(images), batch_size):
            tensors: list[torch.Tensor] = []
            for index in range(start, min(start + batch_size, len(images))):
                try:
                    tensors.append(self.decode(images[index]))
                    indices.append(index)
                except ImageError as exc:
                    errors[index] = str(exc)
            yield tensors

    def score(self, images: Sequence[ImageInput], batch_size: int = DEFAULT_BATCH_SIZE) -> Scores:
        """Probabilities for every readable image; decoded and run ``batch_size`` at a time, so
        memory stays bounded however many images are given."""
        if self.detects:
            raise TypeError("a detection model finds boxes: use detect() or predict(), not score()")
        _check_inputs(images, batch_size)
        rows: list[np.ndarray] = []
        indices: list[int] = []
        errors: dict[int, str] = {}
        for tensors in self._decoded(images, batch_size, indices, errors):
            if tensors:
                rows.append(self.backend(torch.stack(tensors)))
        probabilities = np.concatenate(rows) if rows else np.zeros((0, len(self.classes)), dtype=np.float32)
        return Scores(probabilities=probabilities, indices=indices, errors=errors)

    def predict(
        self, images: Sequence[ImageInput], top_k: int = 5, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> list[dict[str, Any]]:
        """One result per input, in input order: ``{"path", "predictions", "error"}``; ``path`` is None
        for bytes and PIL images, ``error`` is None or why the image failed. ``predictions`` is most
        probable first: classification, ``[{"label", "probability"}]`` (at most ``top_k``); tagging,
        ``[{"label", "probability", "on", "threshold"}]`` for every concept (``top_k`` does not apply);
        detection, ``[{"label", "score", "box": {"x_min", "y_min", "x_max", "y_max"}}]`` for each box
        scoring at least the model's ``score_threshold``, most confident first, in pixels of the image
        (EXIF rotation applied), whose ``width`` and ``height`` the result then also gives (None when
        it could not be read; ``top_k`` does not apply)."""
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a whole number of at least 1; got {top_k!r}")
        if self.detects:
            return self._predict_boxes(images, batch_size)
        scores = self.score(images, batch_size)
        results = [
            {"path": _display_path(source), "predictions": [], "error": scores.errors.get(i)}
            for i, source in enumerate(images)
        ]
        for row, index in zip(scores.probabilities, scores.indices):
            results[index]["predictions"] = self.labelled(row, top_k)
        return results

    def labelled(self, probabilities: np.ndarray, top_k: int = 5) -> list[dict[str, Any]]:
        """One image's row of probabilities as its predictions, in the task's shape (what predict() gives):
        for callers that run the network themselves, such as the platform's micro-batcher."""
        return self.task.predictions(probabilities, self.classes, self.task_state, top_k)

    def _predict_boxes(self, images: Sequence[ImageInput], batch_size: int) -> list[dict[str, Any]]:
        detections = self.detect(images, batch_size)
        results = [
            {"path": _display_path(source), "predictions": [], "error": detections.errors.get(i), "width": None, "height": None}
            for i, source in enumerate(images)
        ]
        for found, (width, height), index in zip(detections.found, detections.sizes, detections.indices):
            results[index]["predictions"] = self.task.predictions(found, self.classes, self.task_state)
            results[index].update(width=width, height=height)
        return results


def _check_inputs(images: Sequence[ImageInput], batch_size: int) -> None:
    if isinstance(images, (str, Path, bytes, Image.Image)):
        raise TypeError("images must be a list of images, not a single image")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1; got {batch_size!r}")
    for source in images:
        if not isinstance(source, (str, Path, bytes, bytearray, memoryview, Image.Image)):
            raise TypeError(f"cannot predict on a {type(source).__name__}: give a file path, the file's bytes or a PIL image")


def _display_path(source: ImageInput) -> str | None:
    return str(source) if isinstance(source, (str, Path)) else None


def measure_throughput(
    predictor: Predictor,
    images: Sequence[ImageInput],
    batch_size: int,
    *,
    rounds: int = 3,
    include_decoding: bool = True,
) -> float:
    """Images per second of ``predictor`` over ``images`` in batches of ``batch_size``: the best of
    ``rounds`` timed passes after one warm-up pass (the best is the least disturbed by other load).
    ``include_decoding=False`` decodes once beforehand and times the network alone."""
    if not images:
        raise ValueError("measure_throughput needs at least one image")
    if include_decoding:
        def one_pass() -> None:
            scores = predictor.detect(images, batch_size) if predictor.detects else predictor.score(images, batch_size)
            if scores.errors:
                raise ImageError(f"{len(scores.errors)} benchmark image(s) could not be read: {scores.errors}")
    elif predictor.detects:  # a detector runs one image at a time (``batch_size`` does not apply)
        tensors = [predictor.decode(source) for source in images]

        def one_pass() -> None:
            for tensor in tensors:
                predictor.backend(tensor)
    else:
        tensors = [predictor.decode(source) for source in images]
        batches = [torch.stack(tensors[i : i + batch_size]) for i in range(0, len(tensors), batch_size)]

        def one_pass() -> None:
            for batch in batches:
                predictor.backend(batch)

    one_pass()
    best = float("inf")
    for _ in range(max(1, rounds)):
        start = time.perf_counter()
        one_pass()
        best = min(best, time.perf_counter() - start)
    return len(images) / best


# Colours told apart at a glance (Sasha Trubetskoy's list of 20 distinct colours), one per concept index.
PALETTE = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),
    (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128), (255, 225, 25),
)


def concept_colour(index: int) -> tuple[int, int, int]:
    """The colour concept ``index`` is drawn in (the same in every picture of a model)."""
    return PALETTE[index % len(PALETTE)]


def draw_detections(image: Image.Image, predictions: list[dict[str, Any]], classes: Sequence[str]) -> Image.Image:
    """A copy of ``image`` (the one the boxes were predicted on: see :meth:`Predictor.open`) with each
    predicted box outlined in its concept's colour and labelled "concept 0.87" on a band of that colour
    (above the box, or inside it at the top edge of the image). Line and text grow with the image, so
    a label stays readable on a large photo; the most confident box is drawn last, on top."""
    from PIL import ImageDraw, ImageFont

    picture = to_rgb(image).copy()
    width, height = picture.size
    draw = ImageDraw.Draw(picture)
    longer = max(width, height)
    line = max(2, round(longer / 300))
    font_size = int(min(48, max(12, longer / 40)))
    font = ImageFont.load_default(size=font_size)
    pad = max(2, font_size // 6)
    index = {name: i for i, name in enumerate(classes)}
    for prediction in sorted(predictions, key=lambda p: p["score"]):
        box = prediction["box"]
        x_min, y_min, x_max, y_max = box["x_min"], box["y_min"], box["x_max"], box["y_max"]
        colour = concept_colour(index.get(prediction["label"], len(index)))
        draw.rectangle((x_min, y_min, x_max, y_max), outline=colour, width=line)
        text = f"{prediction['label']} {prediction['score']:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        band_w, band_h = right - left + 2 * pad, bottom - top + 2 * pad
        x = min(max(0.0, x_min), max(0.0, width - band_w))
        y = y_min - band_h if y_min - band_h >= 0 else max(0.0, y_min)
        draw.rectangle((x, y, x + band_w, y + band_h), fill=colour)
        luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
        draw.text((x + pad - left, y + pad - top), text, fill=(0, 0, 0) if luminance > 140 else (255, 255, 255), font=font)
    return picture

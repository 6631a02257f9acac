"""ONNX export of the best checkpoint, verified against PyTorch before it is kept.

Classification and tagging: the exported graph takes normalised images ``images`` (batch, 3, size,
size), with a dynamic batch axis, and returns ``probabilities`` (batch, classes): the task's output
activation included (softmax for classification, sigmoid for tagging), so that any ONNX runtime gives
the answer directly. Exported with the ``torch.export``-based exporter (``dynamo=True``).

Detection: the graph takes one image ``image`` (3, H, W), RGB in [0, 1], any H and W, and returns
``boxes`` (N, 4: x_min, y_min, x_max, y_max in that image's pixels), ``scores`` (N) and ``labels`` (N,
0-based concept indexes): every box the detector keeps (scores down to its low floor, as PyTorch
gives them); a consumer cuts them at ``visiontrain.score_threshold``. The detector resizes,
normalises and pads inside the graph, as torchvision's does. Faster R-CNN's data-dependent parts (a
proposal count per image, NMS, a variable number of boxes) are exported with the TorchScript-based
exporter (``dynamo=False``, opset 17), which torchvision's detection models are written for
(``torchvision._is_tracing()`` paths); torch 2.14 keeps it, deprecated, behind ``dynamo=False``. One
difference is fixed here: torchvision's traced resize computes the resized size in float32 (its
eager resize, in Python floats), so for some sizes (187 x 269 -> 383 instead of 384 rows) the ONNX
model saw other pixels and found other boxes; :class:`_DetectorGraph` computes the size in float64, as
Python does, so the sizes are equal. The check pairs each box with one of the other runtime's: same
concept, within ``BOX_TOLERANCE`` pixels and ``PARITY_TOLERANCE`` in score, on real images of several
sizes; a box is let go without a partner only where float noise decides a choice the model leaves
open (a score at a cut, a near tie in NMS: :func:`detection_parity`).

The file describes itself in its metadata (``visiontrain.classes``, ``visiontrain.preprocessing``
(null for a detector), ``visiontrain.task`` and ``visiontrain.task_state`` (tagging's thresholds,
detection's score threshold) as JSON; detection also ``visiontrain.score_threshold``) and names the
checkpoint it came from (``visiontrain.checkpoint_sha256``), so a stale export is noticed and redone.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from visiontrain.data.errors import DataError, ImageError
from visiontrain.models.checkpoint import load_checkpoint, resolve_checkpoint_path
from visiontrain.models.preprocessing import Preprocessing
from visiontrain.tasks import get_task, output_activation
from visiontrain.training.features import file_hash

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
PARITY_TOLERANCE = 1e-4  # largest difference in any probability (a detector: any box's score) between ONNX Runtime and PyTorch
BOX_TOLERANCE = 1.0  # a detector: largest difference in any box corner, in pixels
DETECTOR_OPSET = 17
CHECK_IMAGES = 8  # real validation images the export is verified on
META_CLASSES = "visiontrain.classes"
META_PREPROCESSING = "visiontrain.preprocessing"
META_CHECKPOINT = "visiontrain.checkpoint_sha256"
META_TASK = "visiontrain.task"
META_TASK_STATE = "visiontrain.task_state"
META_SCORE_THRESHOLD = "visiontrain.score_threshold"


class ExportError(RuntimeError):
    """The model could not be exported, or the export does not compute what the checkpoint does."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_difference: float  # largest |p_onnx - p_torch| over the check inputs (a detector: |score difference|)
    checked_on: str  # what the check ran on, for the user
    max_box_difference: float | None = None  # a detector: largest box corner difference in pixels
    boxes_compared: int | None = None  # a detector: boxes found by both over the check images
    near_ties: int | None = None  # a detector: NMS near ties each runtime settled the other way (detection_parity)


@dataclass(frozen=True)
class OnnxMetadata:
    """What a visiontrain ONNX file says about itself."""

    classes: list[str]
    preprocessing: Preprocessing | None  # None for a detector
    task: str
    task_state: dict


class _ProbabilityNet(torch.nn.Module):
    def __init__(self, network: torch.nn.Module, activation: str):
        super().__init__()
        self.network = network
        self.activation = output_activation(activation)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.activation(self.network(images))


def export_onnx(model: str | Path, out_path: str | Path | None = None, *, check_images: list[str | Path] | None = None) -> Path:
    """Export a run directory's (or checkpoint file's) model to ONNX; returns the file."""
    return export_model(model, out_path, check_images=check_images).path


def export_model(model: str | Path, out_path: str | Path | None = None, *, check_images: list[str | Path] | None = None) -> ExportResult:
    """Export and verify. ``out_path`` defaults to ``model.onnx`` beside the checkpoint;
    ``check_images`` default to the first validation images of the run. Raises ExportError when
    ONNX Runtime disagrees with PyTorch by more than ``PARITY_TOLERANCE``; nothing is written then."""
    checkpoint = resolve_checkpoint_path(model)
    loaded = load_checkpoint(checkpoint)
    out = Path(out_path) if out_path is not None else checkpoint.parent / ONNX_FILE
    if out.is_dir():
        raise ExportError(f"{out} is a folder: give the .onnx file to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    if get_task(loaded.task).model == "detector":
        return _export_detector(checkpoint, loaded, out, check_images)
    net = _ProbabilityNet(loaded.network, get_task(loaded.task).activation).eval()
    size = loaded.preprocessing.image_size
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        _trace_to_onnx(net, size, tmp)
        _add_metadata(tmp, OnnxMetadata(loaded.classes, loaded.preprocessing, loaded.task, loaded.task_state), file_hash(checkpoint))
        inputs, checked_on = _verification_inputs(checkpoint.parent, loaded.preprocessing, check_images)
        difference = _max_difference(net, tmp, inputs)
        if not difference <= PARITY_TOLERANCE:
            raise ExportError(
                f"ONNX Runtime differs from PyTorch by up to {difference:.2e} in a probability on {checked_on} "
                f"(allowed: {PARITY_TOLERANCE:g}); the export was not kept"
            )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s (max difference %.2e on %s)", out, difference, checked_on)
    return ExportResult(path=out, max_difference=difference, checked_on=checked_on)


def ensure_onnx(model: str | Path) -> Path:
    """``model.onnx`` beside the checkpoint, exported first if missing or made from another checkpoint."""
    checkpoint = resolve_checkpoint_path(model)
    path = checkpoint.parent / ONNX_FILE
    if path.is_file():
        if made_from(path, checkpoint):
            return path
        log.info("%s was made from another checkpoint (or is unreadable); exporting again", path)
    return export_onnx(checkpoint)


def made_from(onnx_path: str | Path, checkpoint: str | Path) -> bool:
    """Whether the ONNX file was exported from this very checkpoint file (its recorded sha256 matches);
    False for a stale, foreign or unreadable file."""
    try:
        return _read_metadata(Path(onnx_path)).get(META_CHECKPOINT) == file_hash(Path(checkpoint))
    except ExportError:
        return False


def read_onnx_metadata(path: str | Path) -> OnnxMetadata:
    """The classes, preprocessing, task and task state stored in a visiontrain ONNX file."""
    meta = _read_metadata(Path(path))
    try:
        preprocessing = json.loads(meta[META_PREPROCESSING])
        return OnnxMetadata(
            classes=list(json.loads(meta[META_CLASSES])),
            preprocessing=None if preprocessing is None else Preprocessing.from_dict(preprocessing),
            task=str(json.loads(meta.get(META_TASK, '"classification"'))),
            task_state=dict(json.loads(meta.get(META_TASK_STATE, "{}"))),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise ExportError(f"{path} is not an ONNX model exported by visiontrain (metadata {exc} missing or unreadable)") from None


def _trace_to_onnx(net: torch.nn.Module, size: int, path: Path) -> None:
    example = torch.randn(2, 3, size, size)  # batch 2: a batch of 1 could be specialised into the graph
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        # verbose=False also silences the exporter's progress lines: the CLI's stdout (JSON) stays clean.
        with torch.inference_mode(False), torch.no_grad():  # torch.export cannot trace inside inference mode
            torch.onnx.export(
                net, (example,), str(path), input_names=["images"], output_names=["probabilities"],
                dynamic_shapes=({0: batch},), external_data=False, dynamo=True, verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; the user needs to know which model failed
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc


def _add_metadata(path: Path, meta: OnnxMetadata, checkpoint_sha256: str) -> None:
    import onnx

    proto = onnx.load(str(path))
    values = {
        META_CLASSES: json.dumps(meta.classes),
        META_PREPROCESSING: json.dumps(None if meta.preprocessing is None else meta.preprocessing.to_dict()),
        META_TASK: json.dumps(meta.task),
        META_TASK_STATE: json.dumps(meta.task_state),
        META_CHECKPOINT: checkpoint_sha256,
    }
    detector = get_task(meta.task).model == "detector"
    if detector:
        values[META_SCORE_THRESHOLD] = json.dumps(float(meta.task_state.get("score_threshold", 0.5)))
    kept = [p for p in proto.metadata_props if p.key not in values]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in values.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = (
        f"visiontrain {meta.task} model: one image (3, H, W), RGB in [0, 1] -> boxes (N, 4) x_min, y_min, x_max, y_max "
        "in its pixels, scores (N), labels (N) 0-based indexes into visiontrain.classes; keep scores >= "
        "visiontrain.score_threshold" if detector else
        f"visiontrain {meta.task} model: normalised images (N, 3, H, W) -> probabilities (N, C)"
    )
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _read_metadata(path: Path) -> dict[str, str]:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ExportError(f"{path} is not a readable ONNX file ({type(exc).__name__})") from None
    return {p.key: p.value for p in proto.metadata_props}


def _check_images(run_dir: Path, images: list[str | Path] | None, decode: Callable[[str | Path], torch.Tensor]
                  ) -> tuple[list[torch.Tensor], str]:
    """The images an export is checked on, decoded: the given ones (one that cannot be read is an error),
    else the run's first validation images (one that cannot be read is left out, with a warning)."""
    from visiontrain.evaluation.evaluate import read_validation_samples

    given = images is not None
    if images is None:
        try:
            images = [s.path for s in read_validation_samples(run_dir)[:CHECK_IMAGES]]
        except DataError:
            images = []
    tensors = []
    for path in images:
        try:
            tensors.append(decode(path))
        except ImageError as exc:
            if given:
                raise ImageError(f"{path}: {exc}") from None
            log.warning("validation image %s left out of the export check: %s", path, exc)
    return tensors, "given images" if given else "validation images"


def _verification_inputs(run_dir: Path, preprocessing: Preprocessing, images: list[str | Path] | None) -> tuple[torch.Tensor, str]:
    """Real images to compare on (given, else the run's first validation images); random inputs
    only when the checkpoint stands alone with no images to hand."""
    from visiontrain.data.images import open_image
    from visiontrain.data.transforms import model_input

    transform = model_input(preprocessing)
    tensors, described = _check_images(run_dir, images, lambda path: transform(open_image(path, draft_size=preprocessing.image_size)))
    if tensors:
        return torch.stack(tensors), f"{len(tensors)} real {described}"
    log.warning("no images beside %s to verify the export on; using random inputs", run_dir)
    generator = torch.Generator().manual_seed(0)
    size = preprocessing.image_size
    return torch.randn(4, 3, size, size, generator=generator), "4 random inputs (no validation images found)"


def _max_difference(net: torch.nn.Module, onnx_path: Path, inputs: torch.Tensor) -> float:
    """Largest probability difference, on the whole batch and on its first image alone (the batch
    axis must really be dynamic)."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"ONNX Runtime cannot load the exported model: {exc}") from None
    worst = 0.0
    for batch in (inputs, inputs[:1]):
        with torch.inference_mode():
            expected = net(batch).numpy()
        got = session.run(None, {"images": batch.numpy()})[0]
        if got.shape != expected.shape:
            raise ExportError(f"the exported model returned shape {got.shape} for input {tuple(batch.shape)}; expected {expected.shape}")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst




# --- detection


class _DetectorGraph(torch.nn.Module):
    """What the exported detector computes: ``Detector([image])`` in eval mode (resize, normalise, pad,
    backbone, proposals, box head, boxes back in the image's pixels), with 0-based labels.

    The one change: the resized size. torchvision's eager resize takes ``min(min_size / shorter,
    max_size / longer)`` in Python (float64) and floors ``side * scale``; its traced resize does the
    division in float32 (and a division by a 0-dim constant exports as float32 even when asked for
    float64), which floors 187 * (384 / 187) to 383. Here the limits are a 1-D float64 tensor divided
    by the sides, so the exported graph and PyTorch compute the same float64 numbers and sizes."""

    def __init__(self, detector: torch.nn.Module):
        super().__init__()
        transform = detector.transform
        if getattr(transform, "fixed_size", None) is not None:
            raise ExportError("a detector with a fixed input size cannot be exported (the export follows min/max sizes)")
        self.detector = detector
        self.min_size = float(transform.min_size[-1])
        self.max_size = float(transform.max_size)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from collections import OrderedDict

        from torch.nn import functional as F
        from torch.onnx import operators
        from torchvision.models.detection.image_list import ImageList

        detector, transform = self.detector, self.detector.transform
        original = (image.shape[-2], image.shape[-1])
        sides = operators.shape_as_tensor(image)[-2:].to(torch.float64)
        limits = torch.tensor([self.min_size, self.max_size], dtype=torch.float64)
        scale = (limits / torch.stack([sides.min(), sides.max()])).min()
        size = torch.floor(sides * scale).to(torch.int64)
        resized = F.interpolate(transform.normalize(image)[None], size=(size[0], size[1]), mode="bilinear",
                                align_corners=False)[0]
        batched = transform.batch_images([resized], size_divisible=transform.size_divisible)
        images = ImageList(batched, [(resized.shape[-2], resized.shape[-1])])
        features = detector.backbone(batched)
        if isinstance(features, torch.Tensor):
            features = OrderedDict([("0", features)])
        proposals, _ = detector.rpn(images, features)
        found, _ = detector.roi_heads(features, proposals, images.image_sizes)
        found = transform.postprocess(found, images.image_sizes, [original])
        return found[0]["boxes"], found[0]["scores"], found[0]["labels"] - 1  # the detector's 0 is background


def _export_detector(checkpoint: Path, loaded, out: Path, check_images: list[str | Path] | None) -> ExportResult:  # type: ignore[no-untyped-def]
    detector = loaded.network.eval()
    graph = _DetectorGraph(detector).eval()
    inputs, checked_on = _detection_check_inputs(checkpoint.parent, check_images)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        _trace_detector(graph, inputs[0], tmp)
        _add_metadata(tmp, OnnxMetadata(loaded.classes, None, loaded.task, loaded.task_state), file_hash(checkpoint))
        box_difference, score_difference, compared, ties = _detection_difference(detector, tmp, inputs)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s (boxes within %.2e px, scores within %.2e, %d boxes, %d near ties, on %s)", out, box_difference,
             score_difference, compared, ties, checked_on)
    return ExportResult(path=out, max_difference=score_difference, checked_on=checked_on,
                        max_box_difference=box_difference, boxes_compared=compared, near_ties=ties)


def _trace_detector(graph: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about every shape it reads and the exporter that it is the TorchScript one;
            # torchvision's detection code is written for that tracer (``torchvision._is_tracing()``).
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch")
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch")  # torch.*, torchvision.*
            torch.onnx.export(
                graph, (example,), str(path), input_names=["image"], output_names=["boxes", "scores", "labels"],
                dynamic_axes={"image": {1: "height", 2: "width"}, "boxes": {0: "detections"}, "scores": {0: "detections"},
                              "labels": {0: "detections"}},
                opset_version=DETECTOR_OPSET, dynamo=False, verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; the user needs to know which model failed
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc


def _detection_check_inputs(run_dir: Path, images: list[str | Path] | None) -> tuple[list[torch.Tensor], str]:
    """Real images (given, else the run's first validation images) as the detector takes them; random
    images of three shapes only when the checkpoint stands alone with no images to hand."""
    from visiontrain.data.images import open_image
    from visiontrain.data.transforms import detection_input

    to_tensor = detection_input()
    tensors, described = _check_images(run_dir, images, lambda path: to_tensor(open_image(path)))
    if tensors:
        return tensors, f"{len(tensors)} real {described}"
    log.warning("no images beside %s to verify the export on; using random inputs", run_dir)
    generator = torch.Generator().manual_seed(0)
    shapes = ((480, 640), (640, 427), (187, 269))
    return [torch.rand(3, h, w, generator=generator) for h, w in shapes], "3 random images (no validation images found)"


def _detection_difference(detector: torch.nn.Module, onnx_path: Path, inputs: list[torch.Tensor]) -> tuple[float, float, int, int]:
    """(largest box corner difference in pixels, largest score difference, boxes compared, near ties) between
    the detector and ONNX Runtime over ``inputs``; raises ExportError when a box of one has no partner in
    the other within the tolerances and :func:`detection_parity` cannot explain why."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"ONNX Runtime cannot load the exported model: {exc}") from None
    keep, nms_iou = int(detector.roi_heads.detections_per_img), float(detector.roi_heads.nms_thresh)
    worst_box = worst_score = 0.0
    compared = ties = 0
    for number, image in enumerate(inputs, start=1):
        with torch.inference_mode():
            found = detector([image])[0]
        expected = {"boxes": found["boxes"].numpy(), "scores": found["scores"].numpy(), "labels": found["labels"].numpy() - 1}
        try:
            boxes, scores, labels = session.run(None, {"image": image.numpy()})
        except Exception as exc:
            raise ExportError(f"ONNX Runtime failed on check image {number} {tuple(image.shape)}: {exc}") from None
        got = {"boxes": boxes, "scores": scores, "labels": labels}
        parity = detection_parity(expected, got, nms_iou=nms_iou, keep=keep)
        if parity.unexplained:  # perhaps near ties in NMS: they show among PyTorch's boxes before NMS
            parity = detection_parity(expected, got, nms_iou=nms_iou, keep=keep, candidates=nms_candidates(detector, image))
        worst_box, worst_score = max(worst_box, parity.max_box_difference), max(worst_score, parity.max_score_difference)
        compared, ties = compared + parity.pairs, ties + parity.ties
        if parity.unexplained:
            side, index, nearest = parity.unexplained[0]
            finder, other = ("PyTorch", "ONNX Runtime") if side == "torch" else ("ONNX Runtime", "PyTorch")
            found_by = expected if side == "torch" else {"boxes": boxes, "scores": scores}
            corners = [round(float(v), 1) for v in found_by["boxes"][index]]
            closest = ("no box of that concept" if nearest is None else
                       f"the nearest differs by {nearest[0]:.2f} px and {nearest[1]:.2e} in score")
            raise ExportError(
                f"on check image {number} {tuple(image.shape[-2:])}, {finder} finds a box (score "
                f"{float(found_by['scores'][index]):.4f}, {corners}) that {other} does not ({closest}; allowed: "
                f"{BOX_TOLERANCE:g} px, {PARITY_TOLERANCE:g}); the export was not kept"
            )
    return worst_box, worst_score, compared, ties


@dataclass(frozen=True)
class DetectionParity:
    max_box_difference: float  # over the pairs, in pixels
    max_score_difference: float  # over the pairs
    pairs: int  # boxes found by both, within the tolerances
    ties: int  # pairs of near-tied boxes of which each side kept the other one (see detection_parity)
    unexplained: list  # (side, index, nearest) of every box without a partner that nothing explains


def nms_candidates(detector: torch.nn.Module, image: torch.Tensor) -> dict[str, np.ndarray]:
    """The detector's boxes for ``image`` before non-maximum suppression (and without its per-image cap),
    in the image's pixels with 0-based labels: NMS at IoU 1.0 suppresses nothing."""
    heads = detector.roi_heads
    saved = heads.nms_thresh, heads.detections_per_img
    heads.nms_thresh, heads.detections_per_img = 1.0, 1_000_000
    try:
        with torch.inference_mode():
            found = detector([image])[0]
    finally:
        heads.nms_thresh, heads.detections_per_img = saved
    return {"boxes": found["boxes"].numpy(), "scores": found["scores"].numpy(), "labels": found["labels"].numpy() - 1}


def detection_parity(expected: dict[str, np.ndarray], got: dict[str, np.ndarray], *, nms_iou: float, keep: int,
                     candidates: dict[str, np.ndarray] | None = None, box_tolerance: float = BOX_TOLERANCE,
                     score_tolerance: float = PARITY_TOLERANCE) -> DetectionParity:
    """Whether two detection results of one image (PyTorch's ``expected``, ONNX Runtime's ``got``) are the
    same boxes: :func:`match_detections`, then what may legitimately be left over, where the two
    runtimes' float noise (about 1e-6 in a score) decides a choice the model leaves open:

    * a box whose score is within ``score_tolerance`` of a cut: the detector's score floor, or the
      lowest score kept when the image has as many boxes as the detector keeps (``keep``);
    * a near tie in non-maximum suppression: a box left over on each side, of one concept, scores
      within ``score_tolerance``, overlapping by at least ``nms_iou`` (so NMS keeps one of the two and
      the noise picks which), and only when PyTorch's own boxes before NMS (``candidates``:
      :func:`nms_candidates`) hold ONNX Runtime's box too, within the tolerances: both are boxes
      PyTorch proposed, not a box that moved. Seen once in the 200 raccoon photos: two candidates
      scoring 0.0680396 and 0.0680398, 53 px apart."""
    from torchvision.ops import box_iou

    from visiontrain.models.detector import MIN_BOX_SCORE

    box, score, pairs, unmatched = match_detections(expected, got, box_tolerance=box_tolerance, score_tolerance=score_tolerance)
    sides = {"torch": expected, "onnx": got}

    def at_a_cut(side: str, index: int) -> bool:
        scores = np.asarray(sides[side]["scores"])
        cuts = [MIN_BOX_SCORE] + ([float(scores.min())] if len(scores) >= keep else [])
        return any(abs(float(scores[index]) - cut) <= score_tolerance for cut in cuts)

    left = [item for item in unmatched if not at_a_cut(item[0], item[1])]
    torch_left = [item for item in left if item[0] == "torch"]
    onnx_left = [item for item in left if item[0] == "onnx"]
    used: set[int] = set()
    ties = 0
    unexplained = []
    for item in torch_left:
        i = item[1]
        partner = None
        for position, (_, j, _) in enumerate(onnx_left):
            if position in used or int(expected["labels"][i]) != int(got["labels"][j]):
                continue
            if abs(float(expected["scores"][i]) - float(got["scores"][j])) > score_tolerance:
                continue
            overlap = float(box_iou(torch.as_tensor(expected["boxes"][i:i + 1]).float(),
                                    torch.as_tensor(got["boxes"][j:j + 1]).float())[0, 0])
            if overlap >= nms_iou and candidates is not None and _among(got, j, candidates, box_tolerance, score_tolerance):
                partner = position
                break
        if partner is None:
            unexplained.append(item)
        else:
            used.add(partner)
            ties += 1
    unexplained += [item for position, item in enumerate(onnx_left) if position not in used]
    return DetectionParity(box, score, pairs, ties, unexplained)


def _among(found: dict[str, np.ndarray], index: int, candidates: dict[str, np.ndarray], box_tolerance: float,
           score_tolerance: float) -> bool:
    """Whether box ``index`` of ``found`` is one of ``candidates`` (same concept, within both tolerances)."""
    same = np.asarray(candidates["labels"]) == int(found["labels"][index])
    if not same.any():
        return False
    corners = np.abs(np.asarray(candidates["boxes"], np.float64) - np.asarray(found["boxes"][index], np.float64)).max(axis=1)
    scores = np.abs(np.asarray(candidates["scores"], np.float64) - float(found["scores"][index]))
    return bool((same & (corners <= box_tolerance) & (scores <= score_tolerance)).any())


def match_detections(expected: dict[str, np.ndarray], got: dict[str, np.ndarray], *, box_tolerance: float = BOX_TOLERANCE,
                     score_tolerance: float = PARITY_TOLERANCE
                     ) -> tuple[float, float, int, list[tuple[str, int, tuple[float, float] | None]]]:
    """Pair the boxes of two detection results of one image (``boxes`` (N, 4), ``scores``, ``labels``):
    pairs of the same label, closest first (in units of the tolerances), each box at most once, a pair
    only within both tolerances. Returns (largest corner difference, largest score difference, pairs,
    unmatched) with unmatched as (``"torch"`` for ``expected`` or ``"onnx"`` for ``got``, index, (corner,
    score) difference to its nearest box of that label, or None)."""
    n, m = len(expected["scores"]), len(got["scores"])
    box = np.zeros((n, m))
    score = np.zeros((n, m))
    if n and m:
        box = np.abs(expected["boxes"][:, None, :].astype(np.float64) - got["boxes"][None, :, :]).max(axis=2)
        score = np.abs(expected["scores"][:, None].astype(np.float64) - got["scores"][None, :])
    same = (np.asarray(expected["labels"])[:, None] == np.asarray(got["labels"])[None, :]) if n and m else np.zeros((n, m), bool)
    cost = np.where(same, np.maximum(box / box_tolerance, score / score_tolerance), np.inf)
    used_e, used_g = set(), set()
    worst_box = worst_score = 0.0
    for flat in np.argsort(cost, axis=None, kind="stable"):
        i, j = divmod(int(flat), m)
        if cost[i, j] > 1.0:
            break
        if i in used_e or j in used_g:
            continue
        used_e.add(i)
        used_g.add(j)
        worst_box, worst_score = max(worst_box, float(box[i, j])), max(worst_score, float(score[i, j]))

    def nearest(row: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> tuple[float, float] | None:
        if not row.any():
            return None
        k = int(np.argmin(np.where(row, boxes, np.inf)))
        return float(boxes[k]), float(scores[k])

    unmatched = [("torch", i, nearest(same[i], box[i], score[i])) for i in range(n) if i not in used_e]
    unmatched += [("onnx", j, nearest(same[:, j], box[:, j], score[:, j])) for j in range(m) if j not in used_g]
    return worst_box, worst_score, len(used_e), unmatched

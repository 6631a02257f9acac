"""ONNX export of the best checkpoint, verified against PyTorch before it is kept.

The exported graph takes normalised images ``images`` (batch, 3, size, size), with a dynamic batch
axis, and returns ``probabilities`` (batch, classes): the task's output activation included (softmax
for classification, sigmoid for tagging), so that any ONNX runtime gives the answer directly. The file
describes itself in its metadata (``visiontrain.classes``, ``visiontrain.preprocessing``,
``visiontrain.task`` and ``visiontrain.task_state`` (tagging's thresholds) as JSON) and names the checkpoint it came from
(``visiontrain.checkpoint_sha256``), so a stale export is noticed and redone.
"""

from __future__ import annotations

import json
import logging
import os
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
PARITY_TOLERANCE = 1e-4  # largest difference in any probability between ONNX Runtime and PyTorch
CHECK_IMAGES = 8  # real validation images the export is verified on
META_CLASSES = "visiontrain.classes"
META_PREPROCESSING = "visiontrain.preprocessing"
META_CHECKPOINT = "visiontrain.checkpoint_sha256"
META_TASK = "visiontrain.task"
META_TASK_STATE = "visiontrain.task_state"


class ExportError(RuntimeError):
    """The model could not be exported, or the export does not compute what the checkpoint does."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_difference: float  # largest |p_onnx - p_torch| over the check inputs
    checked_on: str  # what the check ran on, for the user


@dataclass(frozen=True)
class OnnxMetadata:
    """What a visiontrain ONNX file says about itself."""

    classes: list[str]
    preprocessing: Preprocessing
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
        try:
            if _read_metadata(path).get(META_CHECKPOINT) == file_hash(checkpoint):
                return path
        except ExportError:
            pass  # unreadable or foreign file: replaced below
        log.info("%s was made from another checkpoint; exporting again", path)
    return export_onnx(checkpoint)


def read_onnx_metadata(path: str | Path) -> OnnxMetadata:
    """The classes, preprocessing, task and task state stored in a visiontrain ONNX file."""
    meta = _read_metadata(Path(path))
    try:
        return OnnxMetadata(
            classes=list(json.loads(meta[META_CLASSES])),
            preprocessing=Preprocessing.from_dict(json.loads(meta[META_PREPROCESSING])),
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
        META_PREPROCESSING: json.dumps(meta.preprocessing.to_dict()),
        META_TASK: json.dumps(meta.task),
        META_TASK_STATE: json.dumps(meta.task_state),
        META_CHECKPOINT: checkpoint_sha256,
    }
    kept = [p for p in proto.metadata_props if p.key not in values]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in values.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f"visiontrain {meta.task} model: normalised images (N, 3, H, W) -> probabilities (N, C)"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _read_metadata(path: Path) -> dict[str, str]:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ExportError(f"{path} is not a readable ONNX file ({type(exc).__name__})") from None
    return {p.key: p.value for p in proto.metadata_props}


def _verification_inputs(run_dir: Path, preprocessing: Preprocessing, images: list[str | Path] | None) -> tuple[torch.Tensor, str]:
    """Real images to compare on (given, else the run's first validation images); random inputs
    only when the checkpoint stands alone with no images to hand."""
    from visiontrain.data.images import open_image
    from visiontrain.data.transforms import model_input
    from visiontrain.evaluation.evaluate import read_validation_samples

    if images is None:
        try:
            images = [s.path for s in read_validation_samples(run_dir)[:CHECK_IMAGES]]
        except DataError:
            images = []
        described = "validation images"
    else:
        described = "given images"
    transform = model_input(preprocessing)
    tensors = []
    for path in images:
        try:
            tensors.append(transform(open_image(path, draft_size=preprocessing.image_size)))
        except ImageError as exc:
            if described == "given images":
                raise ImageError(f"{path}: {exc}") from None
            log.warning("validation image %s left out of the export check: %s", path, exc)
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



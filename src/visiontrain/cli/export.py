"""`visiontrain export RUN_DIR [--out FILE]`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from visiontrain.cli.common import console, fail, user_errors


def export(
    run_dir: Path = typer.Argument(..., help="Run directory (or its best.pt checkpoint)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="ONNX file to write (default: model.onnx in the run directory)."),
) -> None:
    """Export the best checkpoint to ONNX (dynamic batch size, probabilities out; a detector: one
    image of any size in, boxes, scores and labels out).

    The export is kept only if ONNX Runtime gives the same probabilities as PyTorch within 1e-4
    (a detector: every box within 1 px and its score within 1e-4) on the run's validation images.
    Exit code: 0 on success, 1 when the check fails, 2 for bad input.
    """
    from visiontrain.export import ExportError, export_model

    with user_errors():
        if out is not None and out.is_dir():
            fail(f"{out} is a folder: give the .onnx file to write")
        try:
            result = export_model(run_dir, out)
        except ExportError as exc:
            fail(str(exc), code=1)
    size_mb = result.path.stat().st_size / 1e6
    console.print(f"Exported [bold]{result.path}[/] ({size_mb:.1f} MB)", highlight=False)
    if result.max_box_difference is not None:
        console.print(
            f"ONNX Runtime matches PyTorch on {result.boxes_compared} boxes: corners within {result.max_box_difference:.1e} px "
            f"(limit 1 px), scores within {result.max_difference:.1e} (limit 1e-4) on {result.checked_on}"
            + (f"; {result.near_ties} near tie(s) in NMS settled the other way" if result.near_ties else ""), highlight=False
        )
        return
    console.print(
        f"ONNX Runtime matches PyTorch within {result.max_difference:.1e} (limit 1e-4) on {result.checked_on}", highlight=False
    )


def register(app: typer.Typer) -> None:
    app.command(context_settings={"help_option_names": ["-h", "--help"]})(export)

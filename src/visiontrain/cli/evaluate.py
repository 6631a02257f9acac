"""`visiontrain evaluate RUN_DIR [DATA_DIR] [--out DIR] [--json]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from visiontrain.cli.common import console, fail, user_errors

SHOWN_MISCLASSIFIED = 10
SHOWN_REJECTED = 20
# A confusion matrix wider than this does not fit a terminal; the PNG shows it instead.
MAX_PRINTED_MATRIX = 12


def evaluate(
    run_dir: Path = typer.Argument(..., help="Run directory (or its best.pt checkpoint)."),
    data: Optional[Path] = typer.Argument(
        None, help="Dataset to evaluate on: ImageFolder (its val/ part if it has train/ and val/) or CSV. Default: the run's validation set."
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write evaluation.json and confusion_matrix.png (default: the run directory)."),
    json_output: bool = typer.Option(False, "--json", help="Print the whole report as JSON."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=1, help="Images per forward pass."),
) -> None:
    """Classification: accuracy, per-class precision/recall/F1, confusion matrix, the misclassified images.
    Tagging: mAP, per-concept precision/recall/F1/AP at the model's thresholds, the errors per concept.
    Detection: mAP (IoU 0.5, 0.5:0.95, 0.75), per-concept AP and precision/recall/F1 at the model's score
    threshold, the images with the most errors (DATA: any layout with boxes, e.g. a boxes CSV or VOC)."""
    from visiontrain.evaluation.evaluate import evaluate_model
    from visiontrain.evaluation.report import REPORT_FILE
    from visiontrain.tasks import get_task

    with user_errors():
        if data is not None and not data.exists():
            fail(f"data not found: {data}")
        report = evaluate_model(run_dir, data, out, batch_size=batch_size)
    if json_output:
        typer.echo(json.dumps(report, indent=2))
        return
    target = out if out is not None else (run_dir if run_dir.is_dir() else run_dir.parent)
    _print_rejected(report)
    if report.get("task") == "tagging":
        _print_tagging_report(report)
    elif report.get("task") == "detection":
        _print_detection_report(report)
    else:
        _print_report(report)
    pictures = " and ".join(str(target / name) for name in get_task(report.get("task", "classification")).pictures)
    console.print(f"Wrote {target / REPORT_FILE} and {pictures}", highlight=False)


def _print_rejected(report: dict[str, Any]) -> None:
    rejected = report.get("rejected", [])
    if rejected:
        console.print(f"[yellow]{len(rejected)} file(s) could not be evaluated:[/]")
        for item in rejected[:SHOWN_REJECTED]:
            console.print(f"  {escape(item['path'])}: {escape(item['reason'])}", highlight=False)
        if len(rejected) > SHOWN_REJECTED:
            console.print(f"  ... and {len(rejected) - SHOWN_REJECTED} more (in the JSON report)")


def _print_tagging_report(report: dict[str, Any]) -> None:
    accuracy = report["accuracy"]
    console.print(
        f"[bold]{escape(report.get('data', 'evaluation'))}[/]: mAP [bold]{report['map']:.4f}[/], loss {report['loss']:.4f}, "
        f"{report['num_images']} images; at 0.5: per-concept accuracy {accuracy['per_concept']:.4f}, "
        f"exact match {accuracy['exact_match']:.4f}; macro F1 at the thresholds {report['macro']['f1']:.4f}",
        highlight=False,
    )
    table = Table(title="Per concept (at each concept's threshold)")
    for column in ("concept", "AP", "precision", "recall", "F1", "threshold", "support", "false +", "false -"):
        table.add_column(column, justify="left" if column == "concept" else "right")
    for row in report["per_concept"]:
        errors = report["errors"][row["concept"]]
        table.add_row(escape(row["concept"]), "-" if row["ap"] is None else f"{row['ap']:.3f}", f"{row['precision']:.3f}",
                      f"{row['recall']:.3f}", f"{row['f1']:.3f}", f"{row['threshold']:.3f}", str(row["support"]),
                      str(len(errors["false_positives"])), str(len(errors["false_negatives"])))
    console.print(table)


def _print_detection_report(report: dict[str, Any]) -> None:
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    console.print(
        f"[bold]{escape(report.get('data', 'evaluation'))}[/]: mAP@0.5 [bold]{report['map50']:.4f}[/], "
        f"mAP@[.5:.95] {report['map']:.4f}, mAP@0.75 {report['map75']:.4f}; {report['num_images']} images, "
        f"{report['num_boxes']} boxes; at score {report['score_threshold']:g} (IoU {report['iou_threshold']:g}): "
        f"macro F1 {number(report['macro']['f1'])}",
        highlight=False,
    )
    table = Table(title=f"Per concept (boxes scoring at least {report['score_threshold']:g})")
    # TP/FP/FN: true positives, false positives, missed boxes (short: the table fits 80 columns).
    for column in ("concept", "AP50", "AP", "prec.", "recall", "F1", "boxes", "TP", "FP", "FN"):
        table.add_column(column, justify="left" if column == "concept" else "right", overflow="fold")
    for row in report["per_class"]:
        table.add_row(escape(row["concept"]), number(row["ap50"]), number(row["ap"]), number(row["precision"]),
                      number(row["recall"]), number(row["f1"]), str(row["support"]), str(row["true_positives"]),
                      str(row["false_positives"]), str(row["false_negatives"]))
    console.print(table)
    by_path = {image["path"]: image for image in report["images"]}
    errors = report["errors"]
    if errors:
        shown = errors[:SHOWN_MISCLASSIFIED]
        table = Table(title=f"Images with the most errors ({len(shown)} of {len(errors)})")
        for column in ("image", "false +", "false -"):
            table.add_column(column, justify="left" if column == "image" else "right", overflow="fold")
        for path in shown:
            image = by_path.get(path, {})
            table.add_row(escape(path), str(image.get("false_positives", "")), str(image.get("false_negatives", "")))
        console.print(table)


def _print_report(report: dict[str, Any]) -> None:
    console.print(
        f"[bold]{escape(report.get('data', 'evaluation'))}[/]: accuracy [bold]{report['accuracy']:.4f}[/], "
        f"loss {report['loss']:.4f}, {report['num_images']} images, "
        f"macro F1 {report['macro']['f1']:.4f}",
        highlight=False,
    )
    per_class = Table(title="Per class")
    for column in ("class", "precision", "recall", "F1", "support"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for row in report["per_class"]:
        per_class.add_row(escape(row["class"]), f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"]))
    console.print(per_class)
    classes = report["classes"]
    if len(classes) <= MAX_PRINTED_MATRIX:
        matrix = Table(title="Confusion matrix (rows: true, columns: predicted)")
        matrix.add_column("")
        for name in classes:
            matrix.add_column(escape(name), justify="right")
        for name, counts in zip(classes, report["confusion_matrix"]):
            matrix.add_row(escape(name), *(str(c) for c in counts))
        console.print(matrix)
    mistakes = report["misclassified"]
    if mistakes:
        table = Table(title=f"Most confident mistakes ({min(len(mistakes), SHOWN_MISCLASSIFIED)} of {len(mistakes)})")
        for column in ("image", "true", "predicted", "probability"):
            table.add_column(column, justify="right" if column == "probability" else "left", overflow="fold")
        for item in mistakes[:SHOWN_MISCLASSIFIED]:
            table.add_row(escape(item["path"]), escape(item["true"]), escape(item["predicted"]), f"{item['probability']:.3f}")
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command(context_settings={"help_option_names": ["-h", "--help"]})(evaluate)

"""Does each default earn its place? Dataset x recipe -> validation accuracy and whole-process time.

    python benchmarks/quality.py --shared ../shared/datasets --work /tmp/quality [--recipes a,b] [--datasets x,y]
                                 [--markdown out.md] [--warm]

Every (dataset, recipe) trains in its own process with a fresh feature cache (``--warm``: one
cache per dataset, for exploring fine-tuning settings without paying for features each time), so
its time is what a person waits for on a new dataset. Datasets: ``benchmarks/datasets.py``.
Recipes are settings over today's defaults (``RECIPES``); ``tutorial`` is ``benchmarks/tutorial_loop.py`` (frozen
Lite0, linear head, fresh augmentation each epoch) for 5 epochs. The accuracy is the kept model's
(best epoch of the best stage); ``head`` is the best head-stage accuracy, so ``fine-tune gain`` is
what fine-tuning added on top of the head it started from.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from datasets import BUILDERS, build  # noqa: E402

# Settings over today's defaults (fine-tuning the last 4 blocks for 5 epochs, one augmented copy, dropout
# 0.2, Adam at 1e-3); "previous defaults" is the head-only recipe before them.
PREVIOUS = {"fine_tune": False, "retrained_layers": 2, "fine_tune_epochs": 3}
RECIPES: dict[str, dict] = {
    "previous defaults": PREVIOUS,
    "defaults": {},
    "no fine-tuning": {"fine_tune": False},
    "label smoothing 0.1": {"label_smoothing": 0.1},
    "dropout 0": {"dropout": 0.0},
    "copies 0": {"augmented_copies": 0},
    "copies 2": {"augmented_copies": 2},
    "learning_rate auto": {"learning_rate": "auto"},
    "head epochs 10": {"epochs": 10},
    "fine-tune: 2 blocks 3 epochs": {"retrained_layers": 2, "fine_tune_epochs": 3},
    "fine-tune: 8 blocks": {"retrained_layers": 8},
    "fine-tune: batch norm train": {"fine_tune_batch_norm": "train"},
    "fine-tune: fresh augmentation": {"fine_tune_fresh_augmentation": True},
    "fine-tune: rate 3e-4 head 3e-3": {"fine_tune_learning_rate": 3e-4, "learning_rate": 3e-3},
    "lite1": {"backbone": "efficientnet_lite1"},
    "lite2": {"backbone": "efficientnet_lite2"},
    "lite1 no fine-tuning": {"backbone": "efficientnet_lite1", "fine_tune": False},
    "lite2 no fine-tuning": {"backbone": "efficientnet_lite2", "fine_tune": False},
    "tutorial": {},
}

TRAIN = """
import json, sys
from visiontrain.engine import train
summary = train(json.loads(sys.argv[1]), sys.argv[2] + "/train", sys.argv[3], validation_data=sys.argv[2] + "/val")
print("SUMMARY " + json.dumps(summary))
"""


def run_recipe(name: str, data: Path, out: Path, cache: Path) -> dict:
    env = {**os.environ, "VISIONTRAIN_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    if name == "tutorial":
        command = [sys.executable, str(HERE / "tutorial_loop.py"), str(data), "--target", "1.01", "--max-epochs", "5"]
    else:
        command = [sys.executable, "-c", TRAIN, json.dumps(RECIPES[name]), str(data), str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        return {"recipe": name, "error": (result.stderr or result.stdout).strip().splitlines()[-1][:200], "seconds": seconds}
    if name == "tutorial":
        line = json.loads(result.stdout.strip().splitlines()[-1])
        return {"recipe": name, "accuracy": line["val_accuracy"], "head": line["val_accuracy"], "seconds": seconds}
    summary = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("SUMMARY "))[8:])
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = lambda stage: max((e["val_accuracy"] for e in epochs if e.get("type") == "epoch" and e["stage"] == stage), default=None)  # noqa: E731
    return {"recipe": name, "accuracy": summary["best_metrics"]["val_accuracy"], "head": best("head"),
            "fine_tune": best("fine_tune"), "kept": summary["best_stage"], "seconds": seconds,
            "timings": summary["timings"], "counts": summary["counts"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "datasets")
    parser.add_argument("--work", type=Path, default=Path("/tmp/visiontrain-quality"))
    parser.add_argument("--datasets", default=",".join(BUILDERS))
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--warm", action="store_true", help="one feature cache per dataset instead of one per run")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    rows = []
    for dataset in args.datasets.split(","):
        data = build(dataset, args.shared, args.work / "data")
        for recipe in args.recipes.split(","):
            cache = args.work / "cache" / dataset if args.warm else args.work / "cache" / f"{dataset}-{len(rows)}"
            if not args.warm:
                shutil.rmtree(cache, ignore_errors=True)
            row = {"dataset": dataset, **run_recipe(recipe, data, args.work / "runs" / f"{dataset}-{len(rows)}", cache)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if not args.warm:
                shutil.rmtree(cache, ignore_errors=True)
    lines = ["| dataset | recipe | val accuracy | head stage | fine-tune gain | kept | time (s) |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['dataset']} | {row['recipe']} | failed: {row['error']} | | | | {row['seconds']:.0f} |")
            continue
        gain = f"{(row['fine_tune'] - row['head']) * 100:+.1f} pt" if row.get("fine_tune") is not None else ""
        lines.append(f"| {row['dataset']} | {row['recipe']} | {row['accuracy']:.1%} | {row['head']:.1%} | {gain} | "
                     f"{row.get('kept', '')} | {row['seconds']:.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()

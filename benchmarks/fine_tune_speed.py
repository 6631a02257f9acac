"""Fine-tuning images/s, before and after: today's code against an earlier revision, side by side.

    python benchmarks/fine_tune_speed.py --data ../shared/datasets/ants_bees --before 50fa579 [--rounds 2]

Both train the same settings (defaults + ``fine_tune``) on DATA/train with DATA/val, each as its own
process with a fresh feature cache (a new dataset), alternating sides each round. The earlier
revision runs from a ``git worktree`` of it. Printed per side: the fine-tuning stage's seconds (its
inputs included), training images per second in the stage (training inputs x epochs / seconds),
the whole run's seconds, and the head's and the fine-tuned model's validation accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from revisions import REPO, worktree  # noqa: E402
TRAIN = """
import json, sys
from visiontrain.engine import train
summary = train(json.loads(sys.argv[1]), sys.argv[2] + "/train", sys.argv[3], validation_data=sys.argv[2] + "/val")
print("SUMMARY " + json.dumps(summary))
"""


def run(source: Path, settings: dict, data: Path, work: Path) -> dict:
    cache, out = work / "cache", work / "run"
    shutil.rmtree(work, ignore_errors=True)
    env = {**os.environ, "VISIONTRAIN_CACHE_DIR": str(cache), "PYTHONPATH": str(source / "src")}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", TRAIN, json.dumps(settings), str(data), str(out)], capture_output=True,
                            text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"training failed in {source}:\n{result.stderr[-2000:]}")
    summary = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("SUMMARY "))[8:])
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = lambda stage: max(e["val_accuracy"] for e in epochs if e.get("type") == "epoch" and e["stage"] == stage)  # noqa: E731
    timings, counts = summary["timings"], summary["counts"]
    stage = timings.get("fine_tune", 0.0)  # today's includes its inputs' preparation (a nested timing)
    inputs = counts.get("fine_tune_training_inputs", counts["train_images"])
    ran = summary["epochs_run"]["fine_tune"]
    return {"stage_s": stage, "images_per_s": inputs * ran / stage, "total_s": seconds, "head": best("head"),
            "fine_tuned": best("fine_tune"), "epochs": ran, "inputs": inputs}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--before", required=True, help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settings", default='{"fine_tune": true}')
    args = parser.parse_args()
    settings = json.loads(args.settings)
    before = worktree(args.before)
    work = Path(tempfile.mkdtemp(prefix="vt-ft-speed-"))
    results: dict[str, list[dict]] = {"before": [], "after": []}
    for round_ in range(args.rounds):
        sides = [("before", before), ("after", REPO)] if round_ % 2 == 0 else [("after", REPO), ("before", before)]
        for name, source in sides:
            results[name].append(run(source, settings, args.data, work / name))
            print(name, json.dumps(results[name][-1]), flush=True)
    median = {name: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for name, rows in results.items()}
    b, a = median["before"], median["after"]
    print(f"| fine-tuning stage | before ({args.before}) | after | ratio |\n|---|---|---|---|")
    print(f"| stage seconds (inputs included) | {b['stage_s']:.1f} | {a['stage_s']:.1f} | {b['stage_s'] / a['stage_s']:.1f}x faster |")
    print(f"| training images/s in the stage | {b['images_per_s']:.1f} | {a['images_per_s']:.1f} | {a['images_per_s'] / b['images_per_s']:.1f}x |")
    print(f"| whole run, seconds | {b['total_s']:.1f} | {a['total_s']:.1f} | {b['total_s'] / a['total_s']:.2f}x |")
    print(f"| val accuracy: head -> fine-tuned | {b['head']:.1%} -> {b['fine_tuned']:.1%} | {a['head']:.1%} -> {a['fine_tuned']:.1%} | |")


if __name__ == "__main__":
    main()

"""Data-parallel training on CPU processes: the same training on one device and on two, side by side.

    python benchmarks/ddp.py [--data ../shared/datasets/ants_bees] [--per-class 40] [--epochs 5] [--fine-tune-epochs 3] [--rounds 2]

Both train the same images (the first ``--per-class`` training and half as many validation images
of each class) with the same effective batch (one device: batch 32; two: 16 per device), head then
fine-tuning, each with a fresh feature cache, so the sharded feature extraction is measured too.
Each training is its own process (imports and first-use costs alike), the order alternating each
round; the median of the rounds is printed. Printed: each stage's seconds, the validation accuracy
of the head and of the kept model, and the two-device time as a ratio of the one-device time. On a 2-core machine expect little speed-up: two
processes share the two cores that one process already uses (torch and ONNX Runtime are threaded).
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

REPO = Path(__file__).resolve().parents[1]
STAGES = ("features", "head", "fine_tune_inputs", "fine_tune", "evaluation", "total")


def subset(source: Path, target: Path, per_class: int) -> Path:
    for part, count in (("train", per_class), ("val", max(1, per_class // 2))):
        for class_dir in sorted(p for p in (source / part).iterdir() if p.is_dir()):
            out = target / part / class_dir.name
            out.mkdir(parents=True, exist_ok=True)
            for image in sorted(class_dir.glob("*.jpg"))[:count]:
                shutil.copy2(image, out / image.name)
    return target


def train(data: Path, work: Path, devices: int, args: argparse.Namespace) -> tuple[dict, float]:
    from visiontrain.training.runner import run_training

    settings = {"devices": devices, "accelerator": "cpu", "batch_size": 32 // devices, "epochs": args.epochs,
                "fine_tune": True, "fine_tune_epochs": args.fine_tune_epochs, "early_stopping": False, "seed": 0}
    started = time.perf_counter()
    summary = run_training(settings, data / "train", work / f"run{devices}", validation_data=data / "val",
                           cache_dir=work / f"cache{devices}")
    return summary, time.perf_counter() - started


def head_accuracy(run_dir: Path) -> float | None:
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    values = [e["val_accuracy"] for e in epochs if e["type"] == "epoch" and e["stage"] == "head"]
    return max(values) if values else None


def one_training(args: argparse.Namespace) -> None:
    """``--one DEVICES``: a single training in this process; its summary and wall time as JSON."""
    summary, wall = train(args.prepared, args.work, args.one, args)
    summary["head_val_accuracy"] = head_accuracy(args.work / f"run{args.one}")
    summary["wall_s"] = wall
    print("SUMMARY " + json.dumps(summary))


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ants_bees")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--prepared", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        one_training(args)
        return
    runs: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="visiontrain-ddp-") as tmp:
        data = subset(args.data, Path(tmp) / "data", args.per_class)
        for round_ in range(args.rounds):
            for devices in ((1, 2) if round_ % 2 == 0 else (2, 1)):
                work = Path(tmp) / f"round{round_}"
                work.mkdir(exist_ok=True)
                command = [sys.executable, __file__, "--one", str(devices), "--prepared", str(data), "--work", str(work),
                           "--epochs", str(args.epochs), "--fine-tune-epochs", str(args.fine_tune_epochs)]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                line = next(l for l in done.stdout.splitlines() if l.startswith("SUMMARY "))
                runs[devices].append(json.loads(line.removeprefix("SUMMARY ")))
                print(f"round {round_ + 1}: {devices} device(s) {runs[devices][-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    one, two = runs[1][0], runs[2][0]
    print(f"\n{one['counts']['train_images']} training / {one['counts']['val_images']} validation images, "
          f"{args.epochs} head + {args.fine_tune_epochs} fine-tuning epochs, effective batch 32, {os.cpu_count()} CPU cores, "
          f"median of {args.rounds} rounds (load average {os.getloadavg()[0]:.1f} at the end)\n")
    print("| | 1 process | 2 processes (gloo) | 2 / 1 |")
    print("|---|---:|---:|---:|")
    for stage in STAGES:
        a = [r["timings"][stage] for r in runs[1] if stage in r["timings"]]
        b = [r["timings"][stage] for r in runs[2] if stage in r["timings"]]
        if a and b:
            print(f"| {stage} s | {median(a):.1f} | {median(b):.1f} | {median(b) / median(a):.2f} |")
    wall_a, wall_b = median([r["wall_s"] for r in runs[1]]), median([r["wall_s"] for r in runs[2]])
    print(f"| run_training wall s (incl. starting the ranks) | {wall_a:.1f} | {wall_b:.1f} | {wall_b / wall_a:.2f} |")
    for label, key in (("head val_accuracy (best epoch)", "head_val_accuracy"),):
        print(f"| {label} | {' / '.join(f'{r[key]:.3f}' for r in runs[1])} | {' / '.join(f'{r[key]:.3f}' for r in runs[2])} | |")
    kept = lambda rs: " / ".join(f"{r['best_metrics']['val_accuracy']:.3f} ({r['best_stage']})" for r in rs)  # noqa: E731
    print(f"| kept model val_accuracy | {kept(runs[1])} | {kept(runs[2])} | |")
    print(f"| features computed per rank | {one['counts']['cache_misses']} | "
          f"{' + '.join(map(str, two['data_parallel']['features_computed_per_rank']))} | |")


if __name__ == "__main__":  # the ranks import this file (multiprocessing's spawn): nothing may run at import
    main()

"""A sweep of 30 trials against one default training, side by side in one process, on the same cached features.

    python benchmarks/sweep.py [--data ../shared/datasets/ants_bees] [--trials 30] [--markdown out.md]

Both train on ``train/`` and are judged on ``val/`` (accuracy on the same validation images). First the
feature cache is filled once for everything either side reads (the originals, the validation images and
the largest number of augmented copies the sweep searches), so neither side is timed on backbone work:

* **default**: ``run_training`` with the default settings (the features from the cache): data checks,
  head training with early stopping, evaluation, checkpoint.
* **sweep**: ``run_sweep`` with ``--trials`` trials on the same features, then its best trial trained
  again as a normal run in ``best/`` (the same cost as one more default training); both its trial time and
  its total (data checks, reading the cache, trials, best run) are reported.

With ``--cold``, also both from an empty feature cache of their own (what a first use costs: the sweep
extracts the largest number of copies it searches, the default one copy).

Targets (the issue): the sweep takes at most twice the time of the default training, and its best is at
least as accurate. The machine may be shared: the times are wall-clock and grow with other load.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ants_bees")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cold", action="store_true", help="Also both from an empty feature cache (what a first use costs).")
    parser.add_argument("--markdown", type=Path, default=None, help="Also write the table as Markdown here.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vt-sweep-bench-"))
    os.environ["VISIONTRAIN_CACHE_DIR"] = str(work / "cache")
    from visiontrain.training.runner import run_training
    from visiontrain.training.sweep import max_copies, run_sweep

    train, val = args.data / "train", args.data / "val"
    # Fill the cache once for both sides (the default's one copy is among the sweep's copies 1..max).
    started = time.perf_counter()
    warm = run_training({"augmented_copies": max_copies(), "epochs": 1, "fine_tune": False}, train, work / "warm",
                        validation_data=val)
    fill = time.perf_counter() - started

    started = time.perf_counter()
    default = run_training(None, train, work / "default", validation_data=val)
    default_s = time.perf_counter() - started

    started = time.perf_counter()
    sweep = run_sweep(train, work / "sweep", trials=args.trials, seed=args.seed, validation_data=val)
    sweep_s = time.perf_counter() - started

    default_acc = default["headline"]["value"]
    best_acc = sweep["best_run"]["headline"]["value"]
    result = {
        "data": str(args.data),
        "train_images": default["counts"]["train_images"],
        "val_images": default["counts"]["val_images"],
        "cache_fill_s": round(fill, 1),
        "cache_fill_misses": warm["counts"]["cache_misses"],
        "default_s": round(default_s, 1),
        "default_cache_misses": default["counts"]["cache_misses"],
        "default_val_accuracy": default_acc,
        "default_epochs": default["epochs_run"]["head"],
        "sweep_total_s": round(sweep_s, 1),
        "sweep_trials_s": sweep["timings"]["trials"],
        "sweep_best_run_s": sweep["timings"].get("best_run"),
        "sweep_cache_misses": sweep["counts"]["cache_misses"],
        "sweep_states": sweep["states"],
        "best_val_accuracy": best_acc,
        "best_settings": sweep["best_settings"],
        "ratio_total": round(sweep_s / default_s, 2),
        "ratio_trials": round(sweep["timings"]["trials"] / default_s, 2),
        "targets": {"sweep_within_2x": sweep_s <= 2 * default_s, "best_at_least_default": best_acc >= default_acc},
    }
    if args.cold:
        # What a person meets first: each side from an empty cache of its own (the sweep extracts more copies).
        started = time.perf_counter()
        cold_default = run_training(None, train, work / "cold-default", validation_data=val, cache_dir=work / "cold-cache-a")
        cold_default_s = time.perf_counter() - started
        started = time.perf_counter()
        cold_sweep = run_sweep(train, work / "cold-sweep", trials=args.trials, seed=args.seed, validation_data=val,
                               cache_dir=work / "cold-cache-b")
        cold_sweep_s = time.perf_counter() - started
        result["cold"] = {"default_s": round(cold_default_s, 1), "default_misses": cold_default["counts"]["cache_misses"],
                          "sweep_s": round(cold_sweep_s, 1), "sweep_misses": cold_sweep["counts"]["cache_misses"],
                          "ratio": round(cold_sweep_s / cold_default_s, 2)}
    print(json.dumps(result, indent=2))
    table = (
        "| | time (s) | val accuracy |\n|---|---:|---:|\n"
        f"| one default training (features cached) | {result['default_s']} | {default_acc:.4f} |\n"
        f"| sweep, {args.trials} trials + best run | {result['sweep_total_s']} (trials {result['sweep_trials_s']:.1f}) | {best_acc:.4f} |\n"
        f"| ratio | {result['ratio_total']}x | |\n"
    )
    print(table)
    if args.markdown:
        args.markdown.write_text(table)


if __name__ == "__main__":
    main()

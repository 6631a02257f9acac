"""Speed targets of the training engine, measured side by side in one run on this machine.

    python benchmarks/run.py --data ../shared/datasets/ants_bees [--markdown results.md]

(a) our default training vs the tutorial loop (benchmarks/tutorial_loop.py) run to the same
    validation accuracy: whole-process seconds, ratio (target: ours <= tutorial), for a new dataset
    on a machine that has trained before, and for a first run on a new machine;
(b) a second training with other head settings reads the feature cache: stage-1 seconds
    (features + head) of the second run vs the first (target: >= 10x lower);
(c) stage-1 images/s, decoding included, vs raw timm forward images/s at the same resolution
    (target: >= 80%);
(d) inference images/s at batch 1 and 32, PyTorch and ONNX Runtime.
Each training runs as its own process with a fresh feature cache, so nothing is shared by accident.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VISIONTRAIN = [sys.executable, "-m", "visiontrain.cli.main"]


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"benchmark step failed: {' '.join(command)}\n{result.stdout}\n{result.stderr}")
    return seconds, result.stdout


def raw_forward_images_per_second(image_size: int, batch: int = 32, repeats: int = 5) -> float:
    """timm's forward pass alone (channels_last, inference mode): the median of ``repeats`` batches."""
    import torch

    from visiontrain.models.backbones import create_backbone

    model = create_backbone("efficientnet_lite0").eval().to(memory_format=torch.channels_last)
    images = torch.randn(batch, 3, image_size, image_size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(images)  # warm-up
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(images)
            rates.append(batch / (time.perf_counter() - start))
    return statistics.median(rates)


def inference_rates(run_dir: Path, images: list[Path]) -> dict[str, float]:
    from visiontrain.predictor import Predictor, measure_throughput

    rates = {}
    for backend in ("torch", "onnx"):
        predictor = Predictor.load(run_dir, backend=backend)
        for batch in (1, 32):
            rates[f"{backend} batch {batch}"] = measure_throughput(predictor, images, batch_size=batch)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="ImageFolder with train/ and val/ (e.g. ants_bees)")
    parser.add_argument("--repeat", type=int, default=3, help="whole-process runs of each side in (a), medians reported")
    parser.add_argument("--markdown", type=Path, help="also write the results as a Markdown table to this file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="visiontrain-bench-"))
    env = {**os.environ, "VISIONTRAIN_CACHE_DIR": str(work / "cache"), "PYTHONUNBUFFERED": "1"}
    rows: list[tuple[str, str, str, str]] = []

    # (a), (a'): whole processes, cold caches, alternated `--repeat` times (medians reported): ours,
    # then the tutorial loop run to the validation accuracy ours reached.
    def pair(label: str, extra: list[str]) -> tuple[dict, str, str, str]:
        """Round 0 is a first run on a new machine (the backbone is exported, 2-3 s); later rounds are a
        new dataset on a machine that has trained before (the exported backbone is copied into their
        fresh feature cache, as it would be found). Medians are over the later rounds."""
        ours_times, tutorial_times, summary, tutorial = [], [], {}, {}
        for round_ in range(args.repeat + 1):
            out, cache = work / f"{label}-{round_}", work / f"cache-{label}-{round_}"
            if round_ > 0:
                for exported in (work / f"cache-{label}-0").rglob("backbone-*.onnx"):
                    target = cache / exported.relative_to(work / f"cache-{label}-0")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(exported, target)
            seconds, _ = timed([*VISIONTRAIN, "train", str(args.data), "--out", str(out), "--quiet", "--cache-dir", str(cache), *extra], env)
            ours_times.append(seconds)
            summary = json.loads((out / "summary.json").read_text())
            target_accuracy = summary["best_metrics"]["val_accuracy"]
            seconds, output = timed([sys.executable, str(HERE / "tutorial_loop.py"), str(args.data), "--target", f"{target_accuracy - 1e-9:.6f}"], env)
            tutorial_times.append(seconds)
            tutorial = json.loads(output.strip().splitlines()[-1])
        ours, theirs = statistics.median(ours_times[1:]), statistics.median(tutorial_times[1:])
        accuracy = summary["best_metrics"]["val_accuracy"]
        return (summary,
                f"ours {ours:.1f} s (val acc {accuracy:.4f}; runs {', '.join(f'{t:.1f}' for t in ours_times[1:])}; "
                f"first run on a new machine {ours_times[0]:.1f} s)",
                f"tutorial {theirs:.1f} s (val acc {tutorial['val_accuracy']:.4f} after {tutorial['epochs']} epoch(s); "
                f"runs {', '.join(f'{t:.1f}' for t in tutorial_times[1:])}; first {tutorial_times[0]:.1f} s)",
                f"{ours / theirs:.2f}x time (target <= 1); first run on a new machine {ours_times[0] / tutorial_times[0]:.2f}x")

    first, *cells = pair("default", [])
    rows.append(("(a) default training vs tutorial loop, whole process, new dataset (cold feature cache)", *cells))
    _, *cells = pair("plain", ["--augmented-copies", "0"])
    rows.append(("(a') augmented_copies=0 vs tutorial loop, same conditions", *cells))
    first_dir = work / "default-1"  # (b) compares with a first run that did not export: the stricter ratio
    first = json.loads((first_dir / "summary.json").read_text())

    # (b) other head settings, same data: the backbone features come from the cache.
    timed([*VISIONTRAIN, "train", str(args.data), "--out", str(work / "second"), "--quiet", "--cache-dir", str(work / "cache-default-1"),
           "--learning-rate", "0.003", "--dropout", "0.4", "--head-layers", "1", "--head-units", "128"], env)
    second = json.loads((work / "second" / "summary.json").read_text())
    stage1 = lambda s: s["timings"]["features"] + s["timings"]["head"]  # noqa: E731
    rows.append(("(b) stage 1 of a second run with other head settings",
                 f"first {stage1(first):.2f} s ({first['counts']['cache_misses']} computed)",
                 f"second {stage1(second):.2f} s ({second['counts']['cache_hits']} from cache)",
                 f"{stage1(first) / stage1(second):.0f}x faster (target >= 10)"))

    # (c) stage-1 throughput, decoding and augmentation included, vs the bare forward pass.
    image_size = int(first["preprocessing"]["image_size"])
    ours_rate = first["counts"]["cache_misses"] / first["timings"]["features"]
    raw_rate = raw_forward_images_per_second(image_size)
    rows.append((f"(c) stage-1 images/s at {image_size} px",
                 f"ours {ours_rate:.1f} img/s (decode + augment + forward)",
                 f"raw timm forward {raw_rate:.1f} img/s",
                 f"{100 * ours_rate / raw_rate:.0f}% (target >= 80%)"))

    # (d) inference throughput of the trained model.
    images = sorted((args.data / "val").rglob("*.jpg"))[:64]
    rates = inference_rates(first_dir, images)
    rows.append(("(d) inference images/s (decode included)",
                 ", ".join(f"{k}: {v:.1f}" for k, v in rates.items() if k.startswith("torch")),
                 ", ".join(f"{k}: {v:.1f}" for k, v in rates.items() if k.startswith("onnx")), ""))

    header = f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), torch threads {__import__('torch').get_num_threads()}"
    lines = [header, "", "| measure | ours / first | baseline / second | ratio |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()

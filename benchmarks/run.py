"""Speed targets of the training engine, measured side by side in one run on this machine.

    python benchmarks/run.py --data ../shared/datasets/ants_bees [--markdown results.md]

(a) our default training vs the tutorial loop (benchmarks/tutorial_loop.py) run to the same
    validation accuracy: whole-process seconds, ratio (target: ours <= tutorial);
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


def raw_forward_images_per_second(image_size: int, batch: int = 32, repeats: int = 4) -> float:
    import torch

    from visiontrain.models.backbones import create_backbone

    model = create_backbone("efficientnet_lite0").eval().to(memory_format=torch.channels_last)
    images = torch.randn(batch, 3, image_size, image_size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(images)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            model(images)
    return batch * repeats / (time.perf_counter() - start)


def inference_rates(run_dir: Path, images: list[Path]) -> dict[str, float]:
    from visiontrain.predict import Predictor, measure_throughput

    rates = {}
    for backend in ("torch", "onnx"):
        predictor = Predictor.load(run_dir, backend=backend)
        for batch in (1, 32):
            rates[f"{backend} batch {batch}"] = measure_throughput(predictor, images, batch_size=batch)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="ImageFolder with train/ and val/ (e.g. ants_bees)")
    parser.add_argument("--markdown", type=Path, help="also write the results as a Markdown table to this file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="visiontrain-bench-"))
    env = {**os.environ, "VISIONTRAIN_CACHE_DIR": str(work / "cache"), "PYTHONUNBUFFERED": "1"}
    rows: list[tuple[str, str, str, str]] = []

    # (a) whole process, cold cache: ours with defaults, then the tutorial loop to the same accuracy.
    ours_seconds, _ = timed([*VISIONTRAIN, "train", str(args.data), "--out", str(work / "first"), "--quiet"], env)
    first = json.loads((work / "first" / "summary.json").read_text())
    ours_accuracy = first["best_metrics"]["val_accuracy"]
    tutorial_seconds, output = timed([sys.executable, str(HERE / "tutorial_loop.py"), str(args.data),
                                      "--target", f"{ours_accuracy - 1e-9:.6f}"], env)
    tutorial = json.loads(output.strip().splitlines()[-1])
    rows.append(("(a) default training vs tutorial loop, whole process",
                 f"ours {ours_seconds:.1f} s (val acc {ours_accuracy:.4f})",
                 f"tutorial {tutorial_seconds:.1f} s (val acc {tutorial['val_accuracy']:.4f} after {tutorial['epochs']} epoch(s))",
                 f"{ours_seconds / tutorial_seconds:.2f}x time (target <= 1)"))

    # (a') the same without augmented copies: one forward pass per image, as in the tutorial.
    plain_seconds, _ = timed([*VISIONTRAIN, "train", str(args.data), "--out", str(work / "plain"), "--quiet",
                              "--augmented-copies", "0", "--cache-dir", str(work / "cache-plain")], env)
    plain = json.loads((work / "plain" / "summary.json").read_text())
    plain_accuracy = plain["best_metrics"]["val_accuracy"]
    tutorial2_seconds, output = timed([sys.executable, str(HERE / "tutorial_loop.py"), str(args.data),
                                       "--target", f"{plain_accuracy - 1e-9:.6f}"], env)
    tutorial2 = json.loads(output.strip().splitlines()[-1])
    rows.append(("(a') augmented_copies=0 vs tutorial loop, whole process",
                 f"ours {plain_seconds:.1f} s (val acc {plain_accuracy:.4f})",
                 f"tutorial {tutorial2_seconds:.1f} s (val acc {tutorial2['val_accuracy']:.4f} after {tutorial2['epochs']} epoch(s))",
                 f"{plain_seconds / tutorial2_seconds:.2f}x time (target <= 1)"))

    # (b) other head settings, same data: the backbone features come from the cache.
    timed([*VISIONTRAIN, "train", str(args.data), "--out", str(work / "second"), "--quiet",
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
    rates = inference_rates(work / "first", images)
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

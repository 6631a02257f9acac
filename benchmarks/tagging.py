"""Multi-label tagging: visiontrain's defaults vs the simplest baseline, side by side on one machine.

    python benchmarks/tagging.py --data ../shared/datasets/coco128_coco/tags.csv [--markdown out.md]

Baseline: a plain frozen-feature linear sigmoid head. The same backbone (EfficientNet-Lite0, ImageNet
weights) turns every image into pooled features once (PyTorch, no cache, no augmentation), then one
linear layer is fitted to convergence on binary cross-entropy (L-BFGS, L2 1e-4): what a careful
user writes in thirty lines. Both are judged on the same validation images (visiontrain's seeded
multi-label split, checked to be identical) by the same mAP (macro AP over concepts with a positive
validation image). Each side runs as its own process with a fresh feature cache; a second
visiontrain run with another head setting shows the cache at work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VISIONTRAIN = [sys.executable, "-m", "visiontrain.cli.main"]


def baseline(data: Path, out: Path) -> None:
    """The baseline's whole job, in this process: features, linear head, validation mAP."""
    import torch

    from visiontrain.data.sources import load_dataset
    from visiontrain.data.transforms import model_input
    from visiontrain.data.images import open_image
    from visiontrain.evaluation.tagging import average_precisions
    from visiontrain.models.backbones import create_backbone
    from visiontrain.models.preprocessing import resolve_preprocessing
    from visiontrain.settings import TrainingSettings
    from visiontrain.tasks import get_task

    torch.manual_seed(0)
    settings = TrainingSettings()
    spec = load_dataset(data, task="tagging")
    task = get_task("tagging")
    train, val, _ = task.split(spec.train, settings.validation_split, settings.seed, spec.classes)
    backbone = create_backbone(settings.backbone).eval()
    preprocessing = resolve_preprocessing(backbone, image_size=None, resize_mode=settings.resize_mode)
    transform = model_input(preprocessing)

    def features(samples):
        rows = []
        with torch.inference_mode():
            for start in range(0, len(samples), 32):
                batch = torch.stack([transform(open_image(s.path)) for s in samples[start : start + 32]])
                rows.append(backbone(batch))
        return torch.cat(rows)

    x_train, x_val = features(train), features(val)
    y_train, y_val = task.targets(train, spec.classes), task.targets(val, spec.classes)
    head = torch.nn.Linear(x_train.shape[1], len(spec.classes))
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(x_train), y_train) + 1e-4 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        probabilities = torch.sigmoid(head(x_val)).double()
    _, mean_ap = average_precisions(probabilities, y_val.long())
    out.write_text(json.dumps({"map": mean_ap, "val": sorted(str(s.path) for s in val)}))


def run(command: list[str], env: dict[str, str]) -> float:
    """Whole-process seconds of one step (the same timer as ``benchmarks/run.py``)."""
    from run import timed  # benchmarks/ is on sys.path when this file runs as a script

    return timed(command, env)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a tagging CSV (path,labels) or a COCO/YOLO/VOC folder")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--baseline-out", type=Path, help=argparse.SUPPRESS)  # internal: run the baseline alone
    args = parser.parse_args()
    if args.baseline_out:
        baseline(args.data, args.baseline_out)
        return

    work = Path(tempfile.mkdtemp(prefix="vt-tagging-bench-"))
    env = {**os.environ, "VISIONTRAIN_CACHE_DIR": str(work / "cache")}
    baseline_file = work / "baseline.json"
    baseline_seconds = run([sys.executable, __file__, "--data", str(args.data), "--baseline-out", str(baseline_file)], env)
    first_seconds = run([*VISIONTRAIN, "train", str(args.data), "--task", "tagging", "--out", str(work / "first"), "--quiet"], env)
    second_seconds = run([*VISIONTRAIN, "train", str(args.data), "--task", "tagging", "--out", str(work / "second"), "--quiet",
                          "--set", "dropout=0.3"], env)
    # A new dataset on a machine that has trained before: no cached features, but the backbone's
    # one-off ONNX export (made once per backbone and image size) is already there.
    trained_before = work / "cache-exports-only"
    for exported in (work / "cache").glob("*/backbone-*.onnx"):
        (trained_before / exported.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(exported, trained_before / exported.parent.name / exported.name)
    warm_seconds = run([*VISIONTRAIN, "train", str(args.data), "--task", "tagging", "--out", str(work / "warm"), "--quiet"],
                       {**env, "VISIONTRAIN_CACHE_DIR": str(trained_before)})

    ours = json.loads((work / "first" / "summary.json").read_text())
    second = json.loads((work / "second" / "summary.json").read_text())
    theirs = json.loads(baseline_file.read_text())
    our_val = sorted(r["path"] for r in json.loads((work / "first" / "val_samples.json").read_text()))
    if our_val != theirs["val"]:
        sys.exit("the baseline and visiontrain were validated on different images; the comparison would mean nothing")
    rows = [
        ("validation mAP", f"{theirs['map']:.3f}", f"{ours['best_metrics']['val_map']:.3f}",
         f"{ours['best_metrics']['val_map'] / max(theirs['map'], 1e-9):.2f}x"),
        ("whole process, seconds: first run on a new machine", f"{baseline_seconds:.1f}", f"{first_seconds:.1f}",
         f"{first_seconds / baseline_seconds:.2f}x"),
        ("whole process, seconds: new dataset, machine trained before", f"{baseline_seconds:.1f}", f"{warm_seconds:.1f}",
         f"{warm_seconds / baseline_seconds:.2f}x"),
        ("second run (dropout 0.3), seconds", "-", f"{second_seconds:.1f}", f"{second_seconds / first_seconds:.2f}x of the first"),
        ("second run: backbone features from cache", "-", f"{second['counts']['cache_hits']} of "
         f"{second['counts']['cache_hits'] + second['counts']['cache_misses']}", ""),
    ]
    lines = [
        f"Tagging on {args.data} ({ours['counts']['train_images']} training, {ours['counts']['val_images']} validation images, "
        f"{len(ours['classes'])} concepts)",
        "",
        "| | plain linear sigmoid head | visiontrain defaults | ratio |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()

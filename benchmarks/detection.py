"""Object detection: visiontrain's defaults vs torchvision's reference recipe, side by side on one machine.

    python benchmarks/detection.py --data ../shared/datasets/raccoon [--budget 900] [--markdown out.md]

Both train on raccoon's train list (160 images) and are judged on its test list (40 images) by the
same mAP@0.5 (torchmetrics, COCO evaluation), on the same EfficientNet-Lite0 ImageNet weights, each
in its own process, with the same budget of training time.

* **visiontrain**: ``visiontrain train train_labels.csv --val test_labels.csv`` with its defaults
  (the command a user runs); its validation is its own per-epoch mAP@0.5 on the test list.
* **reference**: torchvision's detection reference recipe (``references/detection/train.py``:
  ``fasterrcnn`` with a 256-channel FPN, 1024-unit box head, 512 sampled proposals per image,
  2000 proposals kept, images at 800/1333 px, random horizontal flip, SGD momentum 0.9, weight
  decay 1e-4, the 0.02-per-16-images rate scaled to batch 4 (0.005), linear warm-up, the last three
  backbone stages trainable) on the same backbone, trained until the budget is spent, evaluated
  after each epoch (evaluation time not counted in the budget).

Then the visiontrain model's inference speed: images/s predicting the test images one at a time
with PyTorch and with ONNX Runtime (the exported model), in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VISIONTRAIN = [sys.executable, "-m", "visiontrain.cli.main"]


def reference(data: Path, budget: float, out: Path) -> None:
    """torchvision's reference recipe on the same backbone, in this process; writes ``out`` (JSON)."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    from visiontrain.data.sources import load_dataset
    from visiontrain.evaluation.detection import map_metric, map_values
    from visiontrain.models.detector import BodyWithPyramid, TimmBody
    from visiontrain.settings import TrainingSettings
    from visiontrain.tasks import get_task
    from visiontrain.training.detection import DetectionImages, collate_images, detector_target

    torch.manual_seed(0)
    spec = load_dataset(data / "train_labels.csv", validation=data / "test_labels.csv", task="detection")
    task = get_task("detection")
    train = [s for s in spec.train if s.boxes]
    train_targets, val_targets = task.targets(train, spec.classes), task.targets(spec.val, spec.classes)
    body = TimmBody("efficientnet_lite0", pretrained=True, weights_path=None)
    # torchvision's anchors are 8x the level's stride (32 px on ResNet's stride-4 level up to 512 on stride 64);
    # this body's levels are strides 8 to 64, so the same relation gives 64 to 512.
    anchors = AnchorGenerator(sizes=((64,), (128,), (256,), (512,)), aspect_ratios=((0.5, 1.0, 2.0),) * 4)
    model = FasterRCNN(BodyWithPyramid(body, body.channels, out_channels=256), num_classes=len(spec.classes) + 1,
                       rpn_anchor_generator=anchors)
    model.transform.image_mean, model.transform.image_std = [0.5] * 3, [0.5] * 3  # the backbone's normalisation
    body.requires_grad_(False)
    # The reference trains ResNet's layer2-4, the stages that feed the pyramid; here the same: stages 2 onwards.
    for stage in body.body.blocks[2:]:
        stage.requires_grad_(True)
    flips_only = TrainingSettings(horizontal_flip=True, vertical_flip=False, scale=0.0, color=0.0, gaussian_noise=0.0)
    loader = DataLoader(DetectionImages(train, train_targets, flips_only), batch_size=4, shuffle=True, collate_fn=collate_images,
                        generator=torch.Generator().manual_seed(0))
    val_loader = DataLoader(DetectionImages(spec.val, val_targets, None), batch_size=4, collate_fn=collate_images)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.02 * 4 / 16, momentum=0.9, weight_decay=1e-4)
    warmup = min(1000, len(loader) - 1)
    schedule = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.001, total_iters=warmup)
    trained, epochs, step, images_trained = 0.0, [], 0, 0
    while trained < budget:
        model.train()
        body.body.eval()
        started = time.perf_counter()
        for batch in loader:
            losses = model(batch["images"], [detector_target(t) for t in batch["targets"]])
            loss = sum(losses.values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step < warmup:
                schedule.step()
            step += 1
            images_trained += len(batch["images"])
            if trained + time.perf_counter() - started > budget:
                break
        trained += time.perf_counter() - started
        model.eval()
        metric = map_metric()
        with torch.inference_mode():
            for batch in val_loader:
                found = model(batch["images"])
                metric.update([{"boxes": f["boxes"], "scores": f["scores"], "labels": f["labels"] - 1} for f in found],
                              batch["original_targets"])
        epochs.append({"epoch": len(epochs) + 1, "trained_s": round(trained, 1),
                       "val_map50": round(float(map_values(metric.compute())["val_map50"]), 4)})
        print(json.dumps(epochs[-1]), flush=True)
    out.write_text(json.dumps({"epochs": epochs, "train_images_per_s": images_trained / trained,
                               "best_map50": max(e["val_map50"] for e in epochs)}))


def epoch_cost(data: Path, images: int = 48) -> dict[str, float]:
    """Training images/s of one pass with the default detector, from body outputs (what visiontrain does
    after the first pass) against running the frozen body on the decoded images every step (without it)."""
    import torch

    from visiontrain.data.sources import load_dataset
    from visiontrain.settings import load_settings
    from visiontrain.tasks import get_task
    from visiontrain.models.detector import build_detector
    from visiontrain.training.detection import BodyOutputs, DetectionImages, DetectionModule, body_loaders, collate_images

    torch.manual_seed(0)
    settings = load_settings(overrides={"augmented_copies": 0}, task="detection")
    spec = load_dataset(data / "train_labels.csv", validation=data / "test_labels.csv", task="detection")
    task = get_task("detection")
    train = [s for s in spec.train if s.boxes][:images]
    targets = task.targets(train, spec.classes)
    detector = build_detector(settings, len(spec.classes))
    module = DetectionModule(detector, settings, task=task, stage="head", learning_rate=settings.learning_rate)
    optimizer = torch.optim.SGD([p for m in module.trainable for p in m.parameters() if p.requires_grad], lr=0.001, momentum=0.9)
    cpu = torch.device("cpu")
    started = time.perf_counter()
    outputs = BodyOutputs(detector, train, targets, copies=0, settings=settings, device=cpu, spill_dir=Path(tempfile.mkdtemp()))
    body_s = time.perf_counter() - started
    cached, _ = body_loaders(outputs, outputs, settings)
    from torch.utils.data import DataLoader

    decoded = DataLoader(DetectionImages(train, targets, None), batch_size=settings.batch_size, collate_fn=collate_images)
    speeds = {}
    for name, loader in (("body outputs", cached), ("body every step", decoded)):
        detector.train()
        detector.backbone.body.eval()
        started = time.perf_counter()
        for batch in loader:
            losses, _ = module.run(batch, losses=True, detections=False)
            optimizer.zero_grad()
            sum(losses.values()).backward()
            optimizer.step()
        speeds[name] = len(train) / (time.perf_counter() - started)
    speeds["first pass (body once)"] = len(train) / body_s
    return speeds


def ours(data: Path, run_dir: Path) -> dict:
    started = time.perf_counter()
    subprocess.run([*VISIONTRAIN, "train", str(data / "train_labels.csv"), "--val", str(data / "test_labels.csv"),
                    "--out", str(run_dir), "--quiet"], check=True, env={**os.environ, "VISIONTRAIN_CACHE_DIR": str(run_dir / "cache")})
    wall = time.perf_counter() - started
    summary = json.loads((run_dir / "summary.json").read_text())
    head = summary["timings"]["head"]
    epochs = summary["epochs_run"]["head"]
    return {
        "wall_s": wall,
        "summary": summary,
        "best_map50": summary["best_metrics"]["val_map50"],
        "best_map": summary["best_metrics"]["val_map"],
        "best_epoch": summary["best_epoch"],
        "epochs": epochs,
        "features_s": summary["timings"]["features"],
        "body_images_per_s": summary["counts"]["train_variants"] / summary["timings"]["features"],
        "train_images_per_s": epochs * summary["counts"]["train_images"] / head,
    }


def inference(run_dir: Path, images: list[Path]) -> dict[str, float]:
    from visiontrain.predictor import Predictor

    speeds = {}
    for backend in ("torch", "onnx"):
        predictor = Predictor.load(run_dir, device="cpu", backend=backend)
        predictor.predict(images[:2])  # warm-up
        started = time.perf_counter()
        for image in images:
            predictor.predict([image])
        speeds[backend] = len(images) / (time.perf_counter() - started)
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets" / "raccoon")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds of training for the reference")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--epoch-cost-only", action="store_true", help="only the per-epoch cost with and without body outputs")
    parser.add_argument("--reference-only", type=Path, help=argparse.SUPPRESS)  # the reference's own process
    args = parser.parse_args()
    if args.reference_only:
        reference(args.data, args.budget, args.reference_only)
        return
    cost = epoch_cost(args.data)
    cost_line = (f"Training images/s of a pass after the first: {cost['body outputs']:.1f} from the body's kept outputs against "
                 f"{cost['body every step']:.1f} running the frozen body every step ({cost['body outputs'] / cost['body every step']:.2f}x); "
                 f"the body alone, once per image: {cost['first pass (body once)']:.1f} images/s.")
    print(cost_line)
    if args.epoch_cost_only:
        return
    work = Path(tempfile.mkdtemp(prefix="vt-detection-bench-"))
    mine = ours(args.data, work / "run")
    print(f"visiontrain: mAP@0.5 {mine['best_map50']:.3f} (epoch {mine['best_epoch']} of {mine['epochs']}) in {mine['wall_s']:.0f} s")
    from visiontrain import engine

    engine.export_onnx(work / "run")
    images = sorted({s["path"] for s in json.loads((work / "run" / "val_samples.json").read_text())})
    speeds = inference(work / "run", [Path(p) for p in images])
    print(f"inference: PyTorch {speeds['torch']:.1f} images/s, ONNX Runtime {speeds['onnx']:.1f} images/s")
    ref = None
    if not args.skip_reference:
        out = work / "reference.json"
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--data", str(args.data), "--budget", str(args.budget), "--reference-only", str(out)],
                       check=True)
        ref = {**json.loads(out.read_text()), "wall_s": time.perf_counter() - started}
        print(f"reference: mAP@0.5 {ref['best_map50']:.3f} after {args.budget:.0f} s of training ({len(ref['epochs'])} epochs)")
    rows = [
        "| recipe | mAP@0.5 (raccoon test list) | training time | training images/s |",
        "|---|---|---|---|",
        f"| visiontrain defaults | **{mine['best_map50']:.3f}** (mAP {mine['best_map']:.3f}; epoch {mine['best_epoch']} of "
        f"{mine['epochs']}, early stopping) | {mine['wall_s']:.0f} s whole process (body outputs {mine['features_s']:.0f} s) | "
        f"{mine['train_images_per_s']:.1f} (body once: {mine['body_images_per_s']:.1f}) |",
    ]
    if ref:
        per_epoch = ", ".join(f"{e['val_map50']:.2f}" for e in ref["epochs"])
        rows.append(f"| torchvision reference recipe | {ref['best_map50']:.3f} (per epoch: {per_epoch}) | {args.budget:.0f} s of "
                    f"training ({ref['wall_s']:.0f} s with evaluation) | {ref['train_images_per_s']:.2f} |")
        rows.append("")
        rows.append(f"Ratio: mAP@0.5 {mine['best_map50'] / max(ref['best_map50'], 1e-9):.2f}x the reference's, in "
                    f"{mine['wall_s'] / args.budget:.2f}x its training time; training images/s "
                    f"{mine['train_images_per_s'] / ref['train_images_per_s']:.1f}x.")
    rows.append("")
    rows.append(f"Inference (the visiontrain model, one image at a time, {len(images)} test images): PyTorch "
                f"{speeds['torch']:.1f} images/s, ONNX Runtime {speeds['onnx']:.1f} images/s ({speeds['onnx'] / speeds['torch']:.2f}x).")
    rows.append("")
    rows.append(cost_line)
    text = "\n".join(rows)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()

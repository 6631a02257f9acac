"""What a GPU gives: the backbone's speed through our runner against raw timm, whether decoding keeps
up with it, and a full default training. Prints a markdown table (for docs/benchmarks.md).

    python benchmarks/gpu_check.py [--data ../shared/datasets/ants_bees] [--batch 64] [--iterations 50]

Without a CUDA GPU it says so and exits (status 2): there is nothing to measure.

1. **Backbone images/s at batch ``--batch``** (the default backbone, 224 px), timed with CUDA
   synchronised before and after, after a warm-up, ``cudnn.benchmark`` on:
   raw timm (the model as ``timm.create_model`` makes it, float32, input already on the GPU),
   raw timm with mixed precision (autocast bf16, or fp16 without bf16) and channels_last, and our
   feature runner (``backbone_runner.make_runner``: channels_last, inference mode, the batch copied
   from host memory and the features back, as extraction calls it) in float32 and under the same
   autocast. The ratio of our runner with mixed precision to raw timm with mixed precision is checked
   against the 70% target (what our runner adds: the host-to-device copy and the features' copy back).
2. **Extraction with decoding**: ``extract_features`` on every image of ``--data`` (train + val, a
   fresh cache) against the forward-only rate above; and decoding alone (one background thread, as
   extraction prefetches; and a DataLoader with ``--workers`` processes), to show whether decoding is
   the bottleneck.
3. **A full default training** on ``--data`` (train, with val as validation): ``run_training`` with
   the default settings on the GPU, a fresh cache; its stage times and validation accuracy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.70


def images_per_second(step, batch: int, iterations: int, warmup: int = 10) -> float:
    """``step()`` processes one batch; CUDA is synchronised around the timed loop."""
    import torch

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(iterations):
        step()
    torch.cuda.synchronize()
    return batch * iterations / (time.perf_counter() - started)


def backbone_rates(batch: int, iterations: int) -> dict[str, float]:
    import timm
    import torch

    from visiontrain.models.backbones import get_spec
    from visiontrain.models.classifier import build_network
    from visiontrain.settings import TrainingSettings
    from visiontrain.training.backbone_runner import make_runner

    settings = TrainingSettings()
    device = torch.device("cuda", 0)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    host = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    on_gpu = host.to(device)
    rates: dict[str, float] = {}

    raw = timm.create_model(get_spec(settings.backbone).timm_name, pretrained=False, num_classes=0).to(device).eval()

    def raw_fp32() -> None:
        with torch.inference_mode():
            raw(on_gpu)

    rates["raw timm, float32"] = images_per_second(raw_fp32, batch, iterations)
    raw_cl = raw.to(memory_format=torch.channels_last)
    on_gpu_cl = on_gpu.contiguous(memory_format=torch.channels_last)

    def raw_amp() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
            raw_cl(on_gpu_cl)

    rates["raw timm, AMP + channels_last"] = images_per_second(raw_amp, batch, iterations)
    del raw, raw_cl

    backbone = build_network(settings, 2).backbone
    runner = make_runner(backbone, device, image_size=224, export_dir=Path(tempfile.gettempdir()), batch_size=batch)
    rates["our runner, float32"] = images_per_second(lambda: runner(host), batch, iterations)

    def ours_amp() -> None:
        with torch.autocast("cuda", dtype=dtype):
            runner(host)

    rates["our runner, AMP + channels_last"] = images_per_second(ours_amp, batch, iterations)
    rates["_dtype"] = str(dtype).removeprefix("torch.")  # type: ignore[assignment]
    return rates


def _samples(data: Path) -> list:
    from visiontrain.data.sources import load_dataset

    spec = load_dataset(data / "train", validation=data / "val")
    return [*spec.train, *(spec.val or [])]


def extraction_rates(data: Path, workers: int) -> dict[str, float]:
    import torch
    from torch.utils.data import DataLoader, Dataset

    from visiontrain.data.images import open_image
    from visiontrain.data.transforms import model_input
    from visiontrain.models.classifier import build_network
    from visiontrain.models.preprocessing import resolve_preprocessing
    from visiontrain.settings import TrainingSettings
    from visiontrain.training.features import FeatureCache, FeatureSpace, extract_features, prefetch

    settings = TrainingSettings()
    samples = _samples(data)
    network = build_network(settings, 2)
    preprocessing = resolve_preprocessing(network.backbone, image_size=settings.image_size, resize_mode=settings.resize_mode)
    transform = model_input(preprocessing)
    rates: dict[str, float] = {"_images": len(samples)}

    def decode(sample):
        return transform(open_image(sample.path, draft_size=preprocessing.image_size))

    started = time.perf_counter()
    for _ in prefetch(decode, samples, depth=64):
        pass
    rates["decoding alone, one background thread (as extraction)"] = len(samples) / (time.perf_counter() - started)

    class Decoded(Dataset):
        def __len__(self) -> int:
            return len(samples)

        def __getitem__(self, index: int):
            return decode(samples[index])

    started = time.perf_counter()
    ahead = {"prefetch_factor": 4} if workers > 0 else {}
    for _ in DataLoader(Decoded(), batch_size=64, num_workers=workers, **ahead):
        pass
    rates[f"decoding alone, DataLoader with {workers} workers"] = len(samples) / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory(prefix="visiontrain-gpu-cache-") as cache_dir:
        cache = FeatureCache(Path(cache_dir), FeatureSpace.of(settings, preprocessing))
        device = torch.device("cuda", 0)
        torch.cuda.synchronize()
        started = time.perf_counter()
        extracted = extract_features(network, samples, settings=settings, preprocessing=preprocessing, cache=cache, device=device)
        torch.cuda.synchronize()
        rates["extract_features (decode + forward + cache)"] = extracted.misses / (time.perf_counter() - started)
    return rates


def full_training(data: Path) -> dict:
    from visiontrain.training.runner import run_training

    with tempfile.TemporaryDirectory(prefix="visiontrain-gpu-run-") as work:
        started = time.perf_counter()
        summary = run_training(None, data / "train", Path(work) / "run", validation_data=data / "val",
                               cache_dir=Path(work) / "cache")
        summary["wall_s"] = time.perf_counter() - started
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ants_bees")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU on this machine (torch.cuda.is_available() is False): nothing to measure.",
              file=sys.stderr)
        raise SystemExit(2)
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(0)
    print(f"GPU: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}\n", flush=True)

    rates = backbone_rates(args.batch, args.iterations)
    dtype = rates.pop("_dtype")
    print(f"### Backbone images/s, batch {args.batch}, 224 px (AMP: {dtype})\n")
    print("| path | images/s |")
    print("|---|---:|")
    for label, value in rates.items():
        print(f"| {label} | {value:,.0f} |")
    ratio = rates["our runner, AMP + channels_last"] / rates["raw timm, AMP + channels_last"]
    verdict = "meets" if ratio >= TARGET else "BELOW"
    print(f"\nOur runner with AMP + channels_last = {ratio:.0%} of raw timm with AMP + channels_last "
          f"({verdict} the {TARGET:.0%} target); "
          f"{rates['our runner, AMP + channels_last'] / rates['raw timm, float32']:.0%} of raw timm in float32.\n", flush=True)

    extraction = extraction_rates(args.data, args.workers)
    count = int(extraction.pop("_images"))
    forward = rates["our runner, float32"]  # extraction runs the runner as shipped
    print(f"### Extraction with decoding, {count} images of {args.data.name}\n")
    print("| path | images/s |")
    print("|---|---:|")
    print(f"| forward only (our runner, float32, from above) | {forward:,.0f} |")
    for label, value in extraction.items():
        print(f"| {label} | {value:,.0f} |")
    extract = extraction["extract_features (decode + forward + cache)"]
    bound = "decoding is the bottleneck" if extract < 0.5 * forward else "the forward pass keeps up with decoding"
    print(f"\nExtraction runs at {extract / forward:.0%} of the forward-only rate: {bound}.\n", flush=True)

    if args.skip_training:
        return
    summary = full_training(args.data)
    print(f"### Full default training on {args.data.name} ({summary['counts'].get('train_images')} train / "
          f"{summary['counts'].get('val_images')} val images, device {summary.get('device')})\n")
    print("| stage | seconds |")
    print("|---|---:|")
    for stage, seconds in summary["timings"].items():
        print(f"| {stage} | {seconds:.1f} |")
    print(f"| wall (incl. imports already done) | {summary['wall_s']:.1f} |")
    accuracy = summary.get("best_metrics", {}).get("val_accuracy")
    print(f"\nStatus {summary['status']}, kept {summary.get('best_stage')} epoch {summary.get('best_epoch')}, "
          f"val_accuracy {accuracy:.3f}" if accuracy is not None else f"\nStatus {summary['status']}: {summary.get('message')}")


if __name__ == "__main__":
    main()

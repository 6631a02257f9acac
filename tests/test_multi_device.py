"""Data-parallel training (``devices: N``), for real on the CPU: N processes on gloo.

The ranks are started by the run itself (``training/distributed.py``, multiprocessing's spawn): they
import our modules and run only the stages, never the process's command line again (a platform
worker would start copies of itself). Each rank extracts its share of the features, only rank 0
reports and writes artifacts, and a failing rank fails the run with its error instead of a hang.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from visiontrain.training.distributed import Ranks, RankFailed, world_size
from visiontrain.settings import TrainingSettings
from visiontrain.training.trainer import devices_and_strategy



@pytest.mark.parametrize(("devices", "expected"), [("auto", 1), (1, 1), (2, 2), (4, 4)])
def test_one_process_unless_asked(devices, expected):
    # auto is one: Lightning's own auto would take every GPU with the launcher that re-runs the command line.
    assert world_size(TrainingSettings(devices=devices)) == expected


def test_the_trainer_uses_one_device_without_ranks_and_ddp_over_the_ranks_started():
    from lightning.pytorch.strategies import DDPStrategy

    assert devices_and_strategy(None) == (1, "auto")
    assert devices_and_strategy(Ranks()) == (1, "auto")  # a single-process run (sweeps, the range test) stays one
    devices, strategy = devices_and_strategy(Ranks(rank=1, world=2, port=12345), sync_buffers=True)
    assert devices == 2 and isinstance(strategy, DDPStrategy)
    assert strategy.process_group_backend == "gloo"
    # Lightning is told the processes exist: it launches nothing and takes the rank it is given.
    assert strategy.cluster_environment.creates_processes_externally
    assert (strategy.cluster_environment.global_rank(), strategy.cluster_environment.world_size()) == (1, 2)


SCRIPT = '''
import json, os, sys
from pathlib import Path

out = Path(sys.argv[1])
# Top level: what a worker or the CLI does when its module runs (register, claim, prepare data). Each
# process that imports this file appends a line; only a re-run of the command line reaches __main__.
with open(out / "imports.log", "a") as log:
    log.write(f"{__name__} {os.getpid()}\\n")


import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from visiontrain.training.distributed import start_ranks


class Linear(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1, bias=False)
        torch.nn.init.zeros_(self.layer.weight)

    def training_step(self, batch, _index):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(ranks, _payload=None):
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    model = Linear()
    data = DataLoader(TensorDataset(x, y), batch_size=16)
    train, _ = ranks.loaders(data, data, seed=0)
    trainer = L.Trainer(accelerator="cpu", devices=ranks.world, strategy=ranks.strategy(sync_buffers=False), max_epochs=30,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False)
    trainer.fit(model, train)
    weights = model.layer.weight.detach().flatten().tolist()
    (out / f"rank{ranks.rank}.json").write_text(json.dumps({"pid": os.getpid(), "weights": weights}))


def main() -> None:
    with open(out / "main.log", "a") as log:
        log.write(f"main {os.getpid()}\\n")
    with start_ranks(2, on_gpu=False, scratch_root=out, follow=fit, payload=None) as ranks:
        fit(ranks)


if __name__ == "__main__":
    main()
'''


@pytest.mark.slow
def test_ranks_started_by_the_run_train_together_and_never_rerun_the_command_line(tmp_path: Path):
    script = tmp_path / "entry.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    main_pid = int((out / "main.log").read_text().split()[1])
    # Rank 0 is the caller's process, rank 1 another one (gloo on the CPU) ...
    assert ranks[0]["pid"] == main_pid and ranks[1]["pid"] != main_pid
    # ... whose gradients were averaged (same weights on both) and learned the target.
    assert ranks[0]["weights"] == pytest.approx(ranks[1]["weights"], abs=1e-6)
    assert ranks[0]["weights"] == pytest.approx([1.0, -2.0, 0.5, 3.0], abs=0.05)
    # The command line ran once: rank 1 imported the module (not as __main__), it never ran main().
    assert (out / "main.log").read_text().split() == ["main", str(main_pid)]
    imports = [line.split() for line in (out / "imports.log").read_text().splitlines()]
    assert [name for name, _ in imports].count("__main__") == 1
    assert all(name != "__main__" for name, pid in imports if int(pid) != main_pid)
    assert not list(out.glob("ranks-*")), "the ranks' scratch directory is removed"


# --- real runs on ants/bees (40 images: 24 training, 16 validation)


@pytest.fixture(scope="module")
def small_ants_bees(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ants_bees_40")
    for part, count in (("train", 12), ("val", 8)):
        for concept in ("ants", "bees"):
            target = root / part / concept
            target.mkdir(parents=True)
            for image in sorted((datasets_dir / "ants_bees" / part / concept).glob("*.jpg"))[:count]:
                shutil.copy(image, target / image.name)
    return root


def _settings(devices: int, **extra) -> dict:
    # The same effective batch (16 images a step) on one and on two devices: batch_size is per device.
    return {"devices": devices, "accelerator": "cpu", "batch_size": 16 // devices, "epochs": 3, "seed": 0, "fine_tune": False, **extra}


def _train(data: Path, run_dir: Path, cache: Path, settings: dict, **kwargs) -> dict:
    from visiontrain.training.runner import run_training

    return run_training(settings, data / "train", run_dir, validation_data=data / "val", cache_dir=cache, **kwargs)


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# Two devices see the same images per step as one device with twice the batch, but in another order (each
# rank's share of a seeded DistributedSampler permutation instead of one RandomSampler permutation), so the
# two heads differ as two seeds do. On 16 validation images one image is 0.0625 of accuracy: the two may
# differ by at most one image. The validation loss (the same 16 images, averaged over ranks by torchmetrics)
# by at most 0.1 of the ~0.5 both reach.
ACCURACY_TOLERANCE = 1 / 16
LOSS_TOLERANCE = 0.1


@pytest.mark.slow
def test_two_cpu_processes_match_one_and_compute_each_feature_once(small_ants_bees: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    two = _train(small_ants_bees, tmp_path / "two", cache, _settings(2))
    assert two["status"] == "succeeded", two["message"]

    # Sharded extraction: each of the 24 x 2 training rows (original + one augmented copy) and 16
    # validation rows was computed by exactly one rank, each rank its half.
    rows = 24 * 2 + 16
    parallel = two["data_parallel"]
    assert parallel["devices"] == 2 and parallel["backend"] == "gloo"
    assert parallel["batch_size_per_device"] == 8 and parallel["effective_batch_size"] == 16
    assert parallel["features_computed_per_rank"] == [rows // 2, rows // 2]
    assert two["counts"]["cache_misses"] == rows and two["counts"]["cache_hits"] == 0

    # One process on the same cache finds every vector the two ranks wrote: nothing is computed again.
    one = _train(small_ants_bees, tmp_path / "one", cache, _settings(1))
    assert one["status"] == "succeeded"
    assert one["counts"]["cache_misses"] == 0 and one["counts"]["cache_hits"] == rows
    assert "data_parallel" not in one

    for name, tolerance in (("val_accuracy", ACCURACY_TOLERANCE), ("val_loss", LOSS_TOLERANCE)):
        assert abs(two["best_metrics"][name] - one["best_metrics"][name]) <= tolerance + 1e-9, (name, two, one)
    assert two["best_metrics"]["val_accuracy"] >= 0.75  # a real model, not two equally broken ones

    # Only rank 0 reported and wrote: one epoch event per epoch, one summary, one checkpoint, no rank leftovers.
    events = _events(tmp_path / "two")
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2, 3]
    head_start = next(e for e in events if e["type"] == "stage" and e["stage"] == "head" and e["status"] == "started")
    assert (head_start["devices"], head_start["effective_batch_size"]) == (2, 16)
    assert events[-1] == {**events[-1], "type": "status", "status": "succeeded"}
    assert (tmp_path / "two" / "best.pt").is_file() and (tmp_path / "two" / "evaluation.json").is_file()
    assert not list((tmp_path / "two").glob("ranks-*")) and not (tmp_path / "two" / "checkpoints").exists()


@pytest.mark.slow
def test_fine_tuning_on_two_cpu_processes_shares_the_front_outputs(small_ants_bees: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    # learning_rate auto: rank 0 runs the range test on all the features and every rank trains at its rate.
    fine_tune = {"fine_tune": True, "fine_tune_epochs": 2, "retrained_layers": 1, "epochs": 2, "learning_rate": "auto"}
    two = _train(small_ants_bees, tmp_path / "two", cache, _settings(2, **fine_tune))
    assert two["status"] == "succeeded", two["message"]
    assert two["epochs_run"] == {"head": 2, "fine_tune": 2}
    # The front's outputs were kept on the way by each rank for its share and exchanged: nothing decoded again.
    assert two["counts"]["fine_tune_decoded_images"] == 0 and two["counts"]["fine_tune_training_inputs"] == 48
    events = _events(tmp_path / "two")
    assert [e["stage"] for e in events if e["type"] == "epoch"] == ["head", "head", "fine_tune", "fine_tune"]

    one = _train(small_ants_bees, tmp_path / "one", cache, _settings(1, **fine_tune))
    assert one["status"] == "succeeded"
    # The same features, so the same range test and the same rate.
    assert two["learning_rate_found"]["learning_rate"] == one["learning_rate_found"]["learning_rate"]
    assert (tmp_path / "two" / "lr_find.json").is_file()
    assert abs(two["best_metrics"]["val_accuracy"] - one["best_metrics"]["val_accuracy"]) <= ACCURACY_TOLERANCE + 1e-9


@pytest.mark.slow
def test_a_failing_rank_fails_the_run_with_its_error(small_ants_bees: Path, tmp_path: Path):
    """An image of rank 1's share disappears after the data were checked (a network share going away):
    rank 1 fails while extracting; the run fails at once naming rank 1 and the file, and no process is left."""
    import multiprocessing

    data = tmp_path / "data"
    shutil.copytree(small_ants_bees, data)
    run_dir = tmp_path / "run"
    removed: list[str] = []

    def on_event(event: dict) -> None:
        if event["type"] == "stage" and event["stage"] == "data" and event["status"] == "finished":
            train = json.loads((run_dir / "train_samples.json").read_text())
            path = Path(train[1]["path"])  # samples[1::2] is rank 1's share
            path.unlink()
            removed.append(path.name)

    with pytest.raises(RankFailed) as failure:
        _train(data, run_dir, tmp_path / "cache", _settings(2), callback=on_event)
    assert "rank 1 of 2" in str(failure.value) and removed[0] in str(failure.value)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "rank 1 of 2" in summary["message"]
    assert _events(run_dir)[-1]["status"] == "failed"
    assert multiprocessing.active_children() == []
    assert not (run_dir / "best.pt").exists()


@pytest.mark.slow
def test_a_stop_request_stops_every_rank(small_ants_bees: Path, tmp_path: Path):
    """The caller's should_stop (the platform's cancel) is seen by rank 0 and obeyed by both ranks."""
    import multiprocessing

    epochs_done: list[int] = []

    def on_event(event: dict) -> None:
        if event["type"] == "epoch":
            epochs_done.append(event["epoch"])

    summary = _train(small_ants_bees, tmp_path / "run", tmp_path / "cache", _settings(2, epochs=50),
                     callback=on_event, should_stop=lambda: len(epochs_done) >= 1)
    assert summary["status"] == "cancelled"
    assert 1 <= summary["epochs_run"]["head"] < 50
    assert (tmp_path / "run" / "best.pt").is_file()  # the best checkpoint so far is kept
    assert multiprocessing.active_children() == []

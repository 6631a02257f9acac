"""Multi-device training is explicit and safe: one device unless asked, and the ranks run only the fit
function (ddp_spawn), never the process's command line again (a worker would start copies of itself)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from visiontrain.settings import TrainingSettings
from visiontrain.training.trainer import devices_and_strategy

GPU = torch.device("cuda", 0)
CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("devices", "device", "expected"),
    [
        ("auto", GPU, (1, "auto")),  # Lightning's auto would take every GPU with the re-running launcher
        (1, GPU, (1, "auto")),
        (2, GPU, (2, "ddp_spawn")),
        (4, GPU, (4, "ddp_spawn")),
        ("auto", CPU, (1, "auto")),
        (2, CPU, (1, "auto")),  # the CPU trains in one process (settings_check refuses this at creation)
    ],
)
def test_one_device_unless_asked_and_several_only_with_a_launcher_that_runs_the_fit_alone(devices, device, expected):
    assert devices_and_strategy(TrainingSettings(devices=devices), device) == expected


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


class Linear(L.LightningModule):
    def __init__(self, out: str):
        super().__init__()
        self.out = out
        self.layer = torch.nn.Linear(4, 1, bias=False)
        torch.nn.init.zeros_(self.layer.weight)

    def training_step(self, batch, _index):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_train_end(self):
        weights = self.layer.weight.detach().flatten().tolist()
        (Path(self.out) / f"rank{self.global_rank}.json").write_text(json.dumps({"pid": os.getpid(), "weights": weights}))

    def teardown(self, stage):
        # A rank that exits with its gloo group still open can abort in gloo's threads at exit.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def main() -> None:
    with open(out / "main.log", "a") as log:
        log.write(f"main {os.getpid()}\\n")
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    model = Linear(str(out))
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=sys.argv[2], max_epochs=30, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=16))
    (out / "parent.json").write_text(json.dumps({"pid": os.getpid(), "weights": model.layer.weight.detach().flatten().tolist()}))


if __name__ == "__main__":
    main()
'''


@pytest.mark.slow
def test_ddp_spawn_runs_two_cpu_ranks_that_agree_and_never_rerun_the_command_line(tmp_path: Path):
    script = tmp_path / "entry.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([sys.executable, str(script), str(out), "ddp_spawn"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    # Two ranks in two processes other than the parent (gloo on the CPU) ...
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    parent = json.loads((out / "parent.json").read_text())
    assert len({parent["pid"], ranks[0]["pid"], ranks[1]["pid"]}) == 3
    # ... whose gradients were averaged (same weights on both), learned the target, and came back to the parent.
    assert ranks[0]["weights"] == pytest.approx(ranks[1]["weights"], abs=1e-6)
    assert parent["weights"] == pytest.approx(ranks[0]["weights"], abs=1e-6)
    assert parent["weights"] == pytest.approx([1.0, -2.0, 0.5, 3.0], abs=0.05)
    # The command line ran once: the ranks imported the module (not as __main__), they never ran main().
    assert (out / "main.log").read_text().split() == ["main", str(parent["pid"])]
    imports = [line.split() for line in (out / "imports.log").read_text().splitlines()]
    assert [name for name, _ in imports].count("__main__") == 1
    assert all(name != "__main__" for name, pid in imports if int(pid) != parent["pid"])

"""Sweeps on real photos: the backbone runs once per image variant (a second sweep runs it not at all), the
same seed tries the same trials, bad trials are pruned, trials.csv is ranked and complete, best/ is a
normal run that predicts, detection is refused."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from visiontrain.data.errors import DataError
from visiontrain.training import features as features_module
from visiontrain.training.sweep import (
    SEARCH_SPACE,
    Dimension,
    check_space,
    csv_columns,
    max_copies,
    run_sweep,
    space_for,
)

BASE = {"image_size": 96, "epochs": 6}


class BackbonePasses:
    """Counts the images the real backbone runner is given (wraps ``make_runner``, the only way features are computed)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.images = 0
        real = features_module.make_runner

        def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
            runner = real(*args, **kwargs)
            outer = self

            class Counted:
                batch_size = runner.batch_size

                def __call__(self, batch):  # type: ignore[no-untyped-def]
                    outer.images += int(batch.shape[0])
                    return runner(batch)

            return Counted()

        monkeypatch.setattr(features_module, "make_runner", counting)


def read_trials(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_space_names_settings_and_stays_inside_their_bounds() -> None:
    check_space()
    assert {d.name for d in space_for("tagging")} == {d.name for d in SEARCH_SPACE} - {"label_smoothing"}
    with pytest.raises(ValueError, match="dropout value 0.95 is outside"):
        check_space((Dimension("dropout", "float", 0.0, 0.95),))
    with pytest.raises(ValueError, match="not a setting"):
        check_space((Dimension("dropout_rate", "float", 0.0, 0.5),))
    with pytest.raises(ValueError, match="optimizer value 'lion'"):
        check_space((Dimension("optimizer", "choice", choices=("adam", "lion")),))


def test_detection_is_refused_with_the_reason(datasets_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="detection model trains a whole detector.*no such cache"):
        run_sweep(datasets_dir / "raccoon", tmp_path / "s", trials=2, task="detection")
    with pytest.raises(DataError, match="trials must be between 1 and 1000"):
        run_sweep(datasets_dir / "raccoon", tmp_path / "s", trials=0)


@pytest.mark.slow
def test_sweep_extracts_once_prunes_ranks_and_keeps_the_best_as_a_run(ants_bees_small: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from visiontrain import engine

    passes = BackbonePasses(monkeypatch)
    cache = tmp_path / "cache"
    first = run_sweep(ants_bees_small, tmp_path / "one", trials=12, settings=BASE, seed=7, cache_dir=cache)
    train_images, val_images = 24, 12
    # One pass per original, per augmented copy of the largest count searched, per validation image: nothing twice,
    # and the best run (another count of copies, other head) computes nothing.
    assert passes.images == train_images * (1 + max_copies()) + val_images == first["counts"]["cache_misses"]
    assert first["best_run"]["counts"]["cache_misses"] == 0 and first["best_run"]["status"] == "succeeded"

    rows = read_trials(tmp_path / "one" / "trials.csv")
    assert list(rows[0]) == csv_columns("classification") and len(rows) == 12
    assert sorted(int(r["number"]) for r in rows) == list(range(12))
    assert [int(r["rank"]) for r in rows] == list(range(1, 13))
    states = [r["state"] for r in rows]
    assert set(states) <= {"complete", "pruned", "failed"}
    # Complete trials first, best first; pruned after them; a pruned trial stopped before its epochs ran out.
    complete = [float(r["val_accuracy"]) for r in rows if r["state"] == "complete"]
    assert complete == sorted(complete, reverse=True) and states[: len(complete)] == ["complete"] * len(complete)
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert pruned, "the median pruner stopped no trial"
    assert all(int(r["epochs"]) < BASE["epochs"] for r in pruned)
    assert first["states"]["pruned"] == len(pruned)
    # Every searched setting is in each row and inside the space.
    for row in rows:
        for dim in space_for("classification"):
            if dim.name == "head_units" and row["head_layers"] == "0":
                assert row["head_units"] == ""  # asked only for a hidden layer
                continue
            value = row[dim.name]
            if dim.kind == "choice":
                assert value in {str(c) for c in dim.choices}
            else:
                assert dim.low <= float(value) <= dim.high
        assert float(row["seconds"]) > 0 and int(row["epochs"]) >= 1

    # best/ is a normal run trained with the top trial's settings: the same model, so the same accuracy.
    best_dir = tmp_path / "one" / "best"
    top = rows[0]
    stored = yaml.safe_load((best_dir / "settings.yaml").read_text())
    assert stored["learning_rate"] == pytest.approx(float(top["learning_rate"]))
    assert stored["optimizer"] == top["optimizer"] and stored["augmented_copies"] == int(top["augmented_copies"])
    assert stored["epochs"] == BASE["epochs"] and stored["image_size"] == BASE["image_size"]  # the base is kept
    assert first["best_run"]["headline"]["value"] == pytest.approx(float(top["val_accuracy"]))
    photo = sorted((ants_bees_small / "val" / "bees").glob("*.jpg"))[0]
    (prediction,) = engine.predict(best_dir, [photo], top_k=2)
    assert {p["label"] for p in prediction["predictions"]} == {"ants", "bees"}

    # The same seed again: the same trials (values and settings), and not one backbone pass.
    passes.images = 0
    again = run_sweep(ants_bees_small, tmp_path / "two", trials=12, settings=BASE, seed=7, cache_dir=cache)
    assert passes.images == 0 and again["counts"]["cache_misses"] == 0
    rows_again = read_trials(tmp_path / "two" / "trials.csv")
    strip = lambda table: [{k: v for k, v in r.items() if k != "seconds"} for r in table]  # noqa: E731
    assert strip(rows_again) == strip(rows)
    # Another seed tries other settings.
    other = run_sweep(ants_bees_small, tmp_path / "three", trials=3, settings=BASE, seed=8, cache_dir=cache, train_best=False)
    assert passes.images == 0 and "best_run" not in other
    assert read_trials(tmp_path / "three" / "trials.csv")[0]["learning_rate"] not in {r["learning_rate"] for r in rows}


@pytest.mark.slow
def test_a_tagging_sweep_ranks_by_map(ants_bees_small: Path, tmp_path: Path) -> None:
    from visiontrain.data.dataset import DatasetSpec, Sample

    photos = sorted((ants_bees_small / "train").glob("*/*.jpg"))
    spec = DatasetSpec(classes=["ants", "bees"], train=[Sample(p, (p.parent.name,)) for p in photos], task="tagging",
                       source="ants/bees as tags")
    summary = run_sweep(spec, tmp_path / "tags", trials=3, settings=BASE, seed=1)
    rows = read_trials(tmp_path / "tags" / "trials.csv")
    assert summary["monitor"] == "val_map" and list(rows[0]) == csv_columns("tagging") and "label_smoothing" not in rows[0]
    assert len(rows) == 3 and summary["best_run"]["headline"]["name"] == "val_map"
    assert summary["best_run"]["headline"]["value"] == pytest.approx(float(rows[0]["val_map"]))


@pytest.mark.slow
def test_cli_prints_the_top_trials_and_where_the_best_run_is(ants_bees_small: Path, datasets_dir: Path, tmp_path: Path) -> None:
    from visiontrain.cli.main import app

    settings = tmp_path / "base.yaml"
    settings.write_text("image_size: 96\nepochs: 4\n")
    result = CliRunner().invoke(app, ["sweep", str(ants_bees_small / "train"), "--val", str(ants_bees_small / "val"),
                                      "--trials", "4", "--seed", "3", "--settings", str(settings), "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "Top trials by val_accuracy (4 tried" in result.output
    assert "best settings" in result.output and str(tmp_path / "s" / "best") in result.output.replace("\n", "")
    assert (tmp_path / "s" / "best" / "best.pt").is_file()
    refused = CliRunner().invoke(app, ["sweep", str(datasets_dir / "raccoon"), "--task", "detection", "--trials", "2",
                                       "--out", str(tmp_path / "d")])
    assert refused.exit_code == 2 and "no such cache" in refused.output and "Traceback" not in refused.output
    bad = CliRunner().invoke(app, ["sweep", str(ants_bees_small), "--trials", "0", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output

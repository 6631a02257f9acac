"""ONNX export: verified parity with PyTorch on real photos, dynamic batch, metadata, the ONNX backend."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from visiontrain.cli.main import app
from visiontrain.export import ONNX_FILE, export_model, read_onnx_metadata
from visiontrain.models.checkpoint import load_checkpoint
from visiontrain.predictor import Predictor

from model_checkpoints import write_random_head_checkpoint

CLASSES = ["ants", "bees"]


def _save_run(run, seed: int, val_paths) -> None:
    """A real checkpoint: the pretrained lite0 backbone with a seeded random head."""
    write_random_head_checkpoint(run, CLASSES, seed=seed, val_images=list(val_paths))

@pytest.fixture(scope="module")
def photos(ants_bees_small):
    return sorted((ants_bees_small / "val").glob("*/*.jpg"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, photos):
    run = tmp_path_factory.mktemp("export_run")
    _save_run(run, 0, photos)
    return run, export_model(run)


def test_export_is_verified_on_real_validation_images(exported):
    run, result = exported
    assert result.path == run / ONNX_FILE and result.path.is_file()
    assert 0 <= result.max_difference <= 1e-4
    assert result.checked_on == "8 real validation images"
    assert not list(run.glob(".*tmp"))
    meta = read_onnx_metadata(result.path)
    classes, preprocessing = meta.classes, meta.preprocessing
    assert classes == CLASSES and preprocessing == load_checkpoint(run).preprocessing


def test_onnx_model_has_a_dynamic_batch_axis_and_outputs_probabilities(exported):
    _, result = exported
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    for batch in (1, 3, 9):
        out = session.run(None, {"images": np.random.default_rng(batch).normal(size=(batch, 3, 96, 96)).astype(np.float32)})[0]
        assert out.shape == (batch, len(CLASSES))
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_onnx_backend_gives_the_pytorch_probabilities_on_real_photos(exported, photos):
    run, _ = exported
    onnx = Predictor.load(run, backend="onnx")
    torch_scores = Predictor.load(run).score(photos).probabilities
    np.testing.assert_allclose(onnx.score(photos).probabilities, torch_scores, atol=1e-4)
    assert onnx.backend_name == "onnx"
    # The .onnx file alone is enough: classes and preprocessing travel in its metadata.
    standalone = Predictor.load(run / ONNX_FILE, backend="onnx")
    assert standalone.predict(photos[:2]) == onnx.predict(photos[:2])


@pytest.mark.slow  # two more exports (about 10 s each on a CPU)
def test_onnx_backend_exports_again_when_the_checkpoint_changed(tmp_path, photos):
    _save_run(tmp_path, 0, photos[:2])
    first = Predictor.load(tmp_path, backend="onnx").score(photos[:2]).probabilities
    stamp = (tmp_path / ONNX_FILE).stat().st_mtime_ns
    Predictor.load(tmp_path, backend="onnx")  # up to date: not exported again
    assert (tmp_path / ONNX_FILE).stat().st_mtime_ns == stamp
    _save_run(tmp_path, 1, photos[:2])  # a new best checkpoint
    second = Predictor.load(tmp_path, backend="onnx").score(photos[:2]).probabilities
    np.testing.assert_allclose(second, Predictor.load(tmp_path).score(photos[:2]).probabilities, atol=1e-4)
    assert not np.allclose(first, second, atol=1e-3)


@pytest.mark.slow  # one more export
def test_cli_export_refuses_to_keep_a_model_that_disagrees_with_pytorch(exported, tmp_path, monkeypatch):
    import visiontrain.export as export_module

    run, _ = exported
    runner = CliRunner()
    monkeypatch.setattr(export_module, "PARITY_TOLERANCE", -1.0)  # no export can pass this
    out = tmp_path / "model.onnx"
    failed = runner.invoke(app, ["export", str(run), "--out", str(out)])
    assert failed.exit_code == 1, failed.output
    assert "differs from PyTorch" in failed.output and "Traceback" not in failed.output
    assert not out.exists() and not list(tmp_path.iterdir())


def test_cli_export_bad_input_is_one_line_and_exit_code_2(tmp_path):
    missing = CliRunner().invoke(app, ["export", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no checkpoint" in missing.output and "Traceback" not in missing.output
    (tmp_path / "best.pt").write_bytes(b"junk")
    folder = CliRunner().invoke(app, ["export", str(tmp_path), "--out", str(tmp_path)])
    assert folder.exit_code == 2 and "is a folder" in folder.output

"""Shared fixtures: the real datasets beside the repository, small copies of them, an isolated feature cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("VISIONTRAIN_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not (DATASETS / "ants_bees").is_dir():
        pytest.fail(f"the shared datasets are missing at {DATASETS} (set VISIONTRAIN_DATASETS)")
    return DATASETS


def copy_image_folder(source: Path, target: Path, per_class: int) -> Path:
    """Copy the first ``per_class`` images (sorted names) of each class folder: small, real, deterministic."""
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        out = target / class_dir.name
        out.mkdir(parents=True, exist_ok=True)
        images = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        for path in images[:per_class]:
            shutil.copy2(path, out / path.name)
    return target


@pytest.fixture(scope="session")
def ants_bees_small(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ImageFolder with train/{ants,bees} (12 each) and val/{ants,bees} (6 each), real photos."""
    root = tmp_path_factory.mktemp("ants_bees_small")
    copy_image_folder(datasets_dir / "ants_bees" / "train", root / "train", 12)
    copy_image_folder(datasets_dir / "ants_bees" / "val", root / "val", 6)
    return root


@pytest.fixture(autouse=True)
def _isolated_feature_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read or fill the user's real feature cache (one cache per test session)."""
    monkeypatch.setenv("VISIONTRAIN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "feature-cache"))


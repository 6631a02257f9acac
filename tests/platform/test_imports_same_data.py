"""One data path: the same ImageFolder tree or CSV gives the same train, validation and test images
through the CLI (``load_dataset``) and through a platform import (the import route, then the store)."""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import select

from visiontrain.data.sources import load_dataset
from visiontrain.services.platform import Platform
from visiontrain.store.models import Annotation, Concept, Image, ViewImage

from platform_support import create_project

Sides = dict[str, dict[str, tuple[str, ...]]]  # side -> sha256 -> labels


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli_sides(data: Path, task: str) -> Sides:
    spec = load_dataset(data, task=task)
    return {
        side: {sha(s.path): s.labels for s in samples or []}
        for side, samples in (("train", spec.train), ("val", spec.val), ("test", spec.test))
    }


def platform_sides(client: TestClient, platform: Platform, root: Path, task: str) -> Sides:
    project = create_project(client, f"same data {task} {root.name}")
    view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "v", "kind": task, "concepts": []})
    assert view.status_code == 201, view.text
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
    response = client.post(
        f"/api/v1/views/{view.json()['id']}/import", files={"file": ("dataset.zip", buffer.getvalue(), "application/zip")}
    )
    assert response.status_code == 201, response.text
    sides: Sides = {"train": {}, "val": {}, "test": {}}
    with platform.sessions() as session:
        rows = session.execute(
            select(Image.sha256, ViewImage.split, ViewImage.annotated, Image.id)
            .join(ViewImage, ViewImage.image_id == Image.id)
            .where(ViewImage.view_id == view.json()["id"])
        ).all()
        for digest, split, annotated, image_id in rows:
            if not annotated:
                continue  # imported unannotated: the CLI lists these in rejected
            labels = session.scalars(
                select(Concept.name)
                .join(Annotation, Annotation.concept_id == Concept.id)
                .where(Annotation.image_id == image_id, Annotation.view_id == view.json()["id"])
            ).all()
            sides[split or "train"][digest] = tuple(sorted(labels))
    return sides


@pytest.fixture
def photos(datasets_dir: Path) -> dict[str, list[Path]]:
    root = datasets_dir / "ants_bees" / "train"
    return {label: sorted((root / label).glob("*.jpg"))[:6] for label in ("ants", "bees")}


def test_same_image_folder_tree_gives_the_same_sides(
    client: TestClient, platform: Platform, photos: dict[str, list[Path]], datasets_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "tree"
    for label, paths in photos.items():
        for side, chosen in (("train", paths[:3]), ("val", paths[3:5]), ("test", paths[5:])):
            (root / side / label).mkdir(parents=True, exist_ok=True)
            for path in chosen:
                shutil.copy(path, root / side / label / path.name)
    (root / "train" / "bees" / "broken.jpg").write_bytes(photos["bees"][0].read_bytes()[:2000])
    PILImage.new("RGB", (4, 4), "red").save(root / "train" / "ants" / "dot.png")
    loose = sorted((datasets_dir / "ants_bees" / "val" / "ants").glob("*.jpg"))[0]
    shutil.copy(loose, root / "loose.jpg")  # beside the split folders: no label (CLI: rejected; platform: unannotated)

    cli = cli_sides(root, "classification")
    assert [len(cli[side]) for side in ("train", "val", "test")] == [6, 4, 2]
    assert platform_sides(client, platform, root, "classification") == cli


def test_same_csv_gives_the_same_sides_for_classification_and_tagging(
    client: TestClient, platform: Platform, photos: dict[str, list[Path]], tmp_path: Path
) -> None:
    root = tmp_path / "csv"
    (root / "images").mkdir(parents=True)
    everything = photos["ants"] + photos["bees"]
    for path in everything:
        shutil.copy(path, root / "images" / path.name)
    ants, bees = [p.name for p in photos["ants"]], [p.name for p in photos["bees"]]
    rows = [
        "image;label;split",  # semicolons: one delimiter rule for both
        *(f"images/{n};ants;train" for n in ants[:3]),
        *(f"images/{n};bees;" for n in bees[:3]),
        f"images/{ants[3]};ants;val",
        f"images/{bees[3]};bees;validation",
        f"images/{ants[4]};ants;test",
        f"images/{bees[4]};bees;holdout",  # unknown split: refused on both sides
        f"images/{ants[5]};;train",  # no label
        f"images/{bees[5]};bees;train",
        f"images/{bees[5]};ants;train",  # conflicting labels
        "images/missing.jpg;ants;train",
    ]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    cli = cli_sides(root / "labels.csv", "classification")
    assert [len(cli[side]) for side in ("train", "val", "test")] == [6, 2, 1]
    assert platform_sides(client, platform, root, "classification") == cli

    tag_rows = [
        "path,tags,split",
        *(f"images/{n},ants;outdoor,train" for n in ants[:3]),
        *(f"images/{n},bees," for n in bees[:3]),
        f"images/{ants[3]},,val",  # without concept
        f"images/{bees[3]},bees;outdoor,val",
        f"images/{ants[4]},ants,test",
    ]
    (root / "labels.csv").unlink()
    (root / "tags.csv").write_text("\n".join(tag_rows) + "\n")
    cli = cli_sides(root / "tags.csv", "tagging")
    assert cli["val"] == {sha(root / "images" / ants[3]): (), sha(root / "images" / bees[3]): ("bees", "outdoor")}
    # The platform imports the images no row names, unannotated; the CLI never sees them. Annotated ones agree.
    assert platform_sides(client, platform, root, "tagging") == cli

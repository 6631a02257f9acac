"""An annotated archive is imported as a stream: its peak memory does not grow with the archive's bytes (a few kB of bookkeeping per image).

Each import runs in its own process (peak RSS is per process) on generated ImageFolder zips of noisy
JPEGs of about 25 kB each, so that reading the archive, or every image, into memory at once would
show: the large archive holds four times the images (~45 MB) of the small one, and its import may
grow the process by at most twice the small one's growth plus 12 MB. Tar archives go through the API like zips.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

IMPORT = """
import json, resource, sys, tempfile
from pathlib import Path
from visiontrain.config import ServerConfig
from visiontrain.services import auth, imports, projects, views
from visiontrain.services.platform import Platform
archive, data_dir = Path(sys.argv[1]), Path(sys.argv[2])
platform = Platform.open(ServerConfig(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'db.sqlite'}"))
with platform.sessions() as session:
    token, _ = auth.create_token(session, organization="imports", name="imports")
    project = projects.create_project(session, organization_id=token.organization_id, name="imports")
    view = views.create_view(session, project=project, name="kinds", kind="classification")
    session.commit()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = imports.import_annotated(session, blobs=platform.blobs, view=view, source=archive, filename=archive.name)
    session.commit()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("IMPORT " + json.dumps({"images": report.images, "annotated": report.annotated, "growth_kb": peak - before}))
"""


def _archive(path: Path, count: int) -> Path:
    rng = np.random.default_rng(count)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # stored: the zip is as large as its images
        for index in range(count):
            pixels = rng.integers(0, 256, size=(144, 144, 3), dtype=np.uint8)
            buffer = path.with_suffix(".jpg")
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
            archive.write(buffer, f"train/{('ants', 'bees', 'wasps')[index % 3]}/img_{index:05d}.jpg")
    return path


def _import(archive: Path, data_dir: Path) -> dict:  # type: ignore[type-arg]
    result = subprocess.run([sys.executable, "-c", IMPORT, str(archive), str(data_dir)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(next(line for line in result.stdout.splitlines() if line.startswith("IMPORT "))[7:])


def test_an_import_four_times_larger_does_not_take_four_times_the_memory(tmp_path: Path) -> None:
    small_zip, large_zip = _archive(tmp_path / "small.zip", 400), _archive(tmp_path / "large.zip", 1600)
    assert large_zip.stat().st_size > 36 * 1024 * 1024  # a whole-archive read would be seen
    small = _import(small_zip, tmp_path / "small")
    large = _import(large_zip, tmp_path / "large")
    assert (small["images"], small["annotated"]) == (400, 400)
    assert (large["images"], large["annotated"]) == (1600, 1600)
    bound_kb = 2 * small["growth_kb"] + 12 * 1024
    assert large["growth_kb"] <= bound_kb, (small, large)


def test_a_tar_imports_through_the_api_like_a_zip(client, ant_and_bee_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An ImageFolder .tar.gz into a view, and a plain .tar of images into a project: the same images as the zip gives."""
    import tarfile

    from platform_support import create_project

    project = create_project(client)
    view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "kinds", "kind": "classification"}).json()
    archive = tmp_path / "insects.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for label, paths in ant_and_bee_files.items():
            for path in paths[:3]:
                tar.add(path, arcname=f"train/{label}/{path.name}")
    response = client.post(f"/api/v1/views/{view['id']}/import", files={"file": (archive.name, archive.read_bytes(), "application/gzip")})
    assert response.status_code == 201, response.text
    assert (response.json()["images"], response.json()["annotated"], sorted(response.json()["concepts_created"])) == (6, 6, ["ants", "bees"])
    plain = tmp_path / "more.tar"
    with tarfile.open(plain, "w") as tar:
        for path in ant_and_bee_files["bees"][3:6]:
            tar.add(path, arcname=path.name)
    response = client.post(f"/api/v1/projects/{project['id']}/images/archive", files={"file": (plain.name, plain.read_bytes(), "application/x-tar")})
    assert response.status_code == 201, response.text
    assert response.json()["created"] == 3
    assert sorted(i["original_name"] for i in response.json()["images"]) == sorted(p.name for p in ant_and_bee_files["bees"][3:6])

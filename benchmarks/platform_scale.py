"""The platform with many images, before and after: listing, filters, counts, the split, snapshots, imports.

    python benchmarks/platform_scale.py --before ed6b241 [--rows 100000] [--postgres URL] [--imports 1000,10000]

Each side (an earlier revision from a ``git worktree`` of it, and today's working tree) runs in its own
process on a fresh database: SQLite, and PostgreSQL when ``--postgres`` names a server (a throw-away
database is created and dropped on it; ``scripts/ci-postgres.sh`` starts one). The rows are generated
straight through the store with bulk inserts: ROWS images; a classification view with 10 concepts
(90% annotated, 2% fixed to the held-out test side, the rest unannotated); a tagging view with 5
concepts (every image annotated, 0 to 3 tags: none is "without concept"). Then each operation is
timed through the real service functions (listings also through the HTTP API, with a TestClient),
the fastest of ``--repeat`` runs, each in its own session rolled back afterwards (nothing timed changes
what the next run sees). ``--imports`` times the import of generated ImageFolder and COCO archives
of tiny JPEGs (zip, and tar where the revision reads tar) in a subprocess each, with its peak RSS.
``--explain`` prints the query plans of the listing's queries.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any, Callable

from revisions import REPO, worktree  # noqa: E402
CLASSES = [f"class_{i:02d}" for i in range(10)]
TAGS = ["cat", "dog", "car", "tree", "person"]
PAGE = 50


# --- generating rows


def _bulk(session: Any, table: Any, rows: list[dict[str, Any]], chunk: int = 5000) -> None:
    from sqlalchemy import insert

    for start in range(0, len(rows), chunk):
        session.execute(insert(table), rows[start:start + chunk])


def generate(platform: Any, rows: int) -> dict[str, Any]:
    """ROWS images with a classification and a tagging view, bulk-inserted (ids returned for the timings)."""
    from sqlalchemy import select

    from visiontrain.services import auth, models, projects, views
    from visiontrain.store.base import utcnow
    from visiontrain.store.models import Annotation, Concept, Image, ViewImage

    rng = random.Random(0)
    with platform.sessions() as session:
        token, _ = auth.create_token(session, organization="scale", name="scale")
        project = projects.create_project(session, organization_id=token.organization_id, name="scale")
        classification = views.create_view(session, project=project, name="kinds", kind="classification", concepts=CLASSES)
        tagging = views.create_view(session, project=project, name="tags", kind="tagging", concepts=TAGS)
        model = models.create_model(session, view=classification, name="kinds", concepts=CLASSES)
        tag_model = models.create_model(session, view=tagging, name="tags", concepts=TAGS)
        session.commit()
        now = utcnow()
        _bulk(session, Image.__table__, [
            {"project_id": project.id, "sha256": f"{i:064x}", "blob_key": f"images/{i % 256:02x}/{i:064x}.jpg",
             "original_name": f"photo_{i:06d}.jpg", "content_type": "image/jpeg", "size_bytes": 20_000 + i % 5000,
             "width": 640, "height": 480, "created_at": now}
            for i in range(rows)
        ])
        image_ids = list(session.scalars(select(Image.id).where(Image.project_id == project.id).order_by(Image.id)))
        class_ids = {c.name: c.id for c in session.scalars(select(Concept).where(Concept.view_id == classification.id))}
        tag_ids = {c.name: c.id for c in session.scalars(select(Concept).where(Concept.view_id == tagging.id))}
        view_images, annotations = [], []
        later = []  # annotated after the first split: what the split's extension places
        for index, image_id in enumerate(image_ids):
            annotated = index % 10 != 9
            fixed = "test" if index % 50 == 7 else None
            view_images.append({"view_id": classification.id, "image_id": image_id, "annotated": annotated, "split": fixed,
                                "assigned_split": None, "updated_at": now})
            if annotated:
                annotations.append({"view_id": classification.id, "image_id": image_id,
                                    "concept_id": class_ids[CLASSES[rng.randrange(len(CLASSES))]], "created_at": now})
            else:
                later.append(image_id)
            view_images.append({"view_id": tagging.id, "image_id": image_id, "annotated": True, "split": None,
                                "assigned_split": None, "updated_at": now})
            for tag in rng.sample(TAGS, rng.randrange(4)):
                annotations.append({"view_id": tagging.id, "image_id": image_id, "concept_id": tag_ids[tag], "created_at": now})
        _bulk(session, ViewImage.__table__, view_images)
        _bulk(session, Annotation.__table__, annotations)
        session.commit()
    if platform.engine.dialect.name == "postgresql":
        # What autovacuum does after such a change: without statistics the planner guesses 14 rows a table.
        with platform.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
    return {"organization_id": token.organization_id, "project_id": project.id, "view_id": classification.id,
            "tag_view_id": tagging.id, "model_id": model.id, "tag_model_id": tag_model.id, "later": later,
            "concept_id": class_ids[CLASSES[3]], "annotations": len(annotations), "images": rows}


# --- timing


def timed(platform: Any, repeat: int, action: Callable[[Any], Any]) -> float:
    """The fastest of ``repeat`` runs of ``action(session)``, each rolled back: the run least disturbed by
    other work on the machine (one run when it takes more than 2 s: its noise is small beside it)."""
    seconds: list[float] = []
    for _ in range(repeat):
        if seconds and seconds[0] > 2.0:
            break
        session = platform.sessions()
        try:
            start = time.perf_counter()
            action(session)
            seconds.append(time.perf_counter() - start)
        finally:
            session.rollback()
            session.close()
    return min(seconds)


def measure(url: str, rows: int, repeat: int, explain: bool) -> dict[str, float]:
    from fastapi.testclient import TestClient

    from visiontrain.api.app import create_app
    from visiontrain.config import ServerConfig
    from visiontrain.services import auth, images, splits, versions, views
    from visiontrain.services.models import get_model
    from visiontrain.services.platform import Platform
    from visiontrain.settings import TrainingSettings
    from visiontrain.store.base import Split
    from visiontrain.store.models import Project, View, ViewImage

    data_dir = Path(tempfile.mkdtemp(prefix="vt-scale-"))
    platform = Platform.open(ServerConfig(data_dir=data_dir, database_url=url))
    start = time.perf_counter()
    ids = generate(platform, rows)
    print(f"  generated {rows} images, {ids['annotations']} annotations in {time.perf_counter() - start:.1f} s",
          file=sys.stderr, flush=True)
    results: dict[str, float] = {}

    def project(session):  # type: ignore[no-untyped-def]
        return session.get(Project, ids["project_id"])

    def view(session, key="view_id"):  # type: ignore[no-untyped-def]
        return session.get(View, ids[key])

    def listing(**filters: Any) -> Callable[[Any], Any]:
        def run(session):  # type: ignore[no-untyped-def]
            view_key = filters.pop("view", None)
            items, total = images.list_images(session, project=project(session), view=view(session, view_key) if view_key else None,
                                              **filters)
            filters["view"] = view_key
            return items, total
        return run

    deep = rows - PAGE
    cases = {
        "list page 1": listing(),
        "list deep page": listing(offset=deep),
        "list by concept, page 1": listing(view="view_id", concept_id=ids["concept_id"]),
        "list by concept, deep page": listing(view="view_id", concept_id=ids["concept_id"], offset=rows // 10 - PAGE),
        "list fixed to test side": listing(view="view_id", split=Split.test),
        "list unannotated": listing(view="view_id", unannotated=True),
        "list annotated, deep page": listing(view="view_id", unannotated=False, offset=deep * 9 // 10 - PAGE),
        "count per concept (classification)": lambda s: views.list_concepts(s, view=view(s)),
        "count per concept (tagging)": lambda s: views.list_concepts(s, view=view(s, "tag_view_id")),
        "view counts": lambda s: views.view_counts(s, view=view(s)),
        "split summary (GET /split)": lambda s: splits.split_state(s, view=view(s), persist=False).summary(view(s)),
        "image sides, one page": lambda s: splits.sides(s, view=view(s), image_ids=ids["later"][:PAGE]),
        "version snapshot (classification)": lambda s: versions.create_version(
            s, model=get_model(s, organization_id=ids["organization_id"], model_id=ids["model_id"]), settings=TrainingSettings()),
        "version snapshot (tagging)": lambda s: versions.create_version(
            s, model=get_model(s, organization_id=ids["organization_id"], model_id=ids["tag_model_id"]), settings=TrainingSettings()),
    }
    for name, action in cases.items():
        results[name] = timed(platform, repeat, action)
        print(f"  {name}: {results[name] * 1000:.1f} ms", file=sys.stderr, flush=True)

    # The split's extension: a stored split, then images annotated since, placed without moving the others.
    with platform.sessions() as session:
        splits.split_state(session, view=view(session), persist=True)
        session.commit()
        from sqlalchemy import update

        session.execute(update(ViewImage).where(ViewImage.view_id == ids["view_id"], ViewImage.image_id.in_(ids["later"][:5000]))
                        .values(annotated=True))
        session.commit()
    results["split extension (5,000 new images)"] = timed(
        platform, repeat, lambda s: splits.split_state(s, view=view(s), persist=True))
    print(f"  split extension: {results['split extension (5,000 new images)'] * 1000:.1f} ms", file=sys.stderr, flush=True)

    # Deleting an image asks whether its bytes are still used (another image, a version's snapshot) and
    # unlinks its snapshot rows: with a version of 90,000 samples stored.
    with platform.sessions() as session:
        versions.create_version(session, model=get_model(session, organization_id=ids["organization_id"], model_id=ids["model_id"]),
                                settings=TrainingSettings())
        session.commit()
    victim = ids["later"][-1]
    results["delete one image (a 90k-image version stored)"] = timed(
        platform, repeat, lambda s: images.delete_image(s, image=images.get_image(s, project=project(s), image_id=victim)))
    print(f"  delete one image: {results['delete one image (a 90k-image version stored)'] * 1000:.1f} ms", file=sys.stderr, flush=True)

    with platform.sessions() as session:
        _, secret = auth.create_token(session, organization="scale", name="http")
        session.commit()
    app = create_app(platform=platform, web=False)
    base = f"/api/v1/projects/{ids['project_id']}/images"
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as client:
        http = {
            "HTTP list page 1": f"{base}?limit={PAGE}",
            "HTTP list deep page": f"{base}?limit={PAGE}&offset={deep}",
            "HTTP list page 1 with view": f"{base}?limit={PAGE}&view_id={ids['view_id']}",
            "HTTP list by concept with view": f"{base}?limit={PAGE}&view_id={ids['view_id']}&concept_id={ids['concept_id']}",
            "HTTP concepts with counts": f"/api/v1/views/{ids['view_id']}/concepts",
        }
        for name, path in http.items():
            seconds = []
            for _ in range(repeat):
                begin = time.perf_counter()
                response = client.get(path)
                seconds.append(time.perf_counter() - begin)
                assert response.status_code == 200, response.text
            results[name] = min(seconds)
            print(f"  {name}: {results[name] * 1000:.1f} ms", file=sys.stderr, flush=True)
    if explain:
        explain_listing(platform, ids, deep)
    platform.close()
    return results


def explain_listing(platform: Any, ids: dict[str, Any], deep: int) -> None:
    """The plans of the listing's queries as the database runs them (stderr)."""
    from sqlalchemy import event

    from visiontrain.services import images, views
    from visiontrain.store.models import Project, View

    captured: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and not statement.startswith("EXPLAIN"):
            captured.append((statement, parameters))

    event.listen(platform.engine, "before_cursor_execute", capture)
    with platform.sessions() as session:
        project, view = session.get(Project, ids["project_id"]), session.get(View, ids["view_id"])
        captured.clear()
        images.list_images(session, project=project, offset=deep)
        images.list_images(session, project=project, view=view, concept_id=ids["concept_id"])
        views.list_concepts(session, view=view)
        queries = list(captured)
    event.remove(platform.engine, "before_cursor_execute", capture)
    prefix = "EXPLAIN QUERY PLAN " if platform.engine.dialect.name == "sqlite" else "EXPLAIN "
    with platform.engine.connect() as connection:
        for statement, parameters in queries:
            print("---", " ".join(statement.split())[:300], file=sys.stderr)
            for row in connection.exec_driver_sql(prefix + statement, parameters):
                print("   ", " | ".join(str(v) for v in row), file=sys.stderr)


# --- imports


def tiny_jpeg(index: int) -> bytes:
    """A distinct 24x24 JPEG (its own colour pattern), a few hundred bytes."""
    from PIL import Image

    rng = random.Random(index)
    picture = Image.new("RGB", (24, 24), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    picture.putpixel((index % 24, (index // 24) % 24), (255 - index % 256, index % 256, (index // 576) % 256))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_archive(path: Path, count: int, layout: str) -> Path:
    """An ImageFolder (``train/<class>/``) or COCO (``annotations.json`` + ``images/``) archive of ``count`` JPEGs,
    as a zip or a tar (by ``path``'s suffix)."""
    entries: list[tuple[str, bytes]] = []
    if layout == "imagefolder":
        entries = [(f"train/{CLASSES[i % 3]}/img_{i:06d}.jpg", tiny_jpeg(i)) for i in range(count)]
    else:
        coco: dict[str, Any] = {"images": [], "annotations": [], "categories": [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES[:3])]}
        for i in range(count):
            name = f"img_{i:06d}.jpg"
            entries.append((f"images/{name}", tiny_jpeg(i)))
            coco["images"].append({"id": i + 1, "file_name": name, "width": 24, "height": 24})
            coco["annotations"].append({"id": i + 1, "image_id": i + 1, "category_id": i % 3 + 1, "bbox": [2, 2, 10, 10],
                                        "area": 100, "iscrowd": 0})
        entries.append(("annotations.json", json.dumps(coco).encode()))
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    else:
        with tarfile.open(path, "w") as archive:
            for name, data in entries:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


IMPORT = """
import json, resource, sys, time, tempfile
from pathlib import Path
from visiontrain.config import ServerConfig
from visiontrain.services import auth, imports, projects, views
from visiontrain.services.platform import Platform
archive, kind, url = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
platform = Platform.open(ServerConfig(data_dir=Path(tempfile.mkdtemp(prefix="vt-import-")), database_url=url))
with platform.sessions() as session:
    token, _ = auth.create_token(session, organization="imports", name="imports")
    project = projects.create_project(session, organization_id=token.organization_id, name="imports")
    view = views.create_view(session, project=project, name="v", kind=kind)
    session.commit()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    report = imports.import_annotated(session, blobs=platform.blobs, view=view, source=archive, filename=archive.name)
    session.commit()
    seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("IMPORT " + json.dumps({"seconds": seconds, "images": report.images, "annotated": report.annotated,
                              "rss_start_mb": before / 1024, "rss_growth_mb": (peak - before) / 1024}))
"""


def measure_import(source: Path, archive: Path, kind: str, url: str) -> dict[str, Any] | None:
    """Time and peak RSS growth of one import in its own process (None: this revision cannot read it)."""
    env = {**os.environ, "PYTHONPATH": str(source / "src")}
    result = subprocess.run([sys.executable, "-c", IMPORT, str(archive), kind, url], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        print(f"  import of {archive.name} failed in {source}: {result.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(next(line for line in result.stdout.splitlines() if line.startswith("IMPORT "))[7:])


# --- both sides


def database(kind: str, server: str | None, work: Path, side: str) -> tuple[str, Callable[[], None]]:
    """A fresh database URL on ``kind`` and how to drop it."""
    if kind == "sqlite":
        return f"sqlite:///{work / f'{side}-{uuid.uuid4().hex[:8]}.db'}", lambda: None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from visiontrain.store.db import normalize_url

    url = make_url(normalize_url(server or ""))
    name = f"vt_scale_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def run_side(source: Path, url: str, rows: int, repeat: int, explain: bool) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(source / "src")}
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", url, "--rows", str(rows), "--repeat", str(repeat)]
    result = subprocess.run(command + (["--explain"] if explain else []), stdout=subprocess.PIPE, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"the measurement failed in {source}")
    return json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])


def table(title: str, before_name: str, before: dict[str, float], after: dict[str, float]) -> None:
    print(f"\n{title}\n\n| operation | before ({before_name}) | after | before / after |\n|---|---:|---:|---:|")
    for name in after:
        b, a = before.get(name), after[name]
        if b is None:
            print(f"| {name} | - | {a * 1000:.1f} ms | |")
        else:
            print(f"| {name} | {b * 1000:.1f} ms | {a * 1000:.1f} ms | {b / a:.1f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="git revision to compare with (default: today's code alone)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", help="a PostgreSQL server URL: measure there too")
    parser.add_argument("--imports", default="", help="archive sizes to import, e.g. 1000,10000 (none by default)")
    parser.add_argument("--import-archives", default="imagefolder.zip,imagefolder.tar,coco.zip,coco.tar",
                        help="which archives --imports makes: LAYOUT.SUFFIX, comma-separated")
    parser.add_argument("--skip-queries", action="store_true", help="only the imports")
    parser.add_argument("--explain", action="store_true", help="print the listing's query plans (stderr)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one side, in this process
    args = parser.parse_args()
    if args.measure:
        print("RESULT " + json.dumps(measure(args.measure, args.rows, args.repeat, args.explain)))
        return
    sides = [("after", REPO)] + ([("before", worktree(args.before))] if args.before else [])
    work = Path(tempfile.mkdtemp(prefix="vt-scale-bench-"))
    backends = ["sqlite"] + (["postgres"] if args.postgres else [])
    if not args.skip_queries:
        for backend in backends:
            found: dict[str, dict[str, float]] = {}
            for side, source in reversed(sides):
                url, drop = database(backend, args.postgres, work, side)
                print(f"{backend}, {side} ({source}):", file=sys.stderr, flush=True)
                try:
                    found[side] = run_side(source, url, args.rows, args.repeat, args.explain)
                finally:
                    drop()
            table(f"{backend}, {args.rows:,} images", args.before or "-", found.get("before", {}), found["after"])
    sizes = [int(s) for s in args.imports.split(",") if s]
    if sizes:
        print(f"\nimports (sqlite)\n\n| archive | side | seconds | images/s | peak RSS growth |\n|---|---|---:|---:|---:|")
        for size in sizes:
            for layout, suffix in (item.split(".") for item in args.import_archives.split(",") if item):
                suffix = "." + suffix
                kind = "classification" if layout == "imagefolder" else "detection"
                archive = make_archive(work / f"{layout}-{size}{suffix}", size, layout)
                for side, source in reversed(sides):
                    url, drop = database("sqlite", None, work, side)
                    found_import = measure_import(source, archive, kind, url)
                    drop()
                    if found_import is None:
                        print(f"| {layout} {suffix} {size:,} | {side} | - | - | cannot read it |")
                    else:
                        print(f"| {layout} {suffix} {size:,} | {side} | {found_import['seconds']:.1f} | "
                              f"{found_import['images'] / found_import['seconds']:.0f} | {found_import['rss_growth_mb']:.1f} MB |",
                              flush=True)
                archive.unlink()


if __name__ == "__main__":
    main()

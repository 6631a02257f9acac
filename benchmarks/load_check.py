"""Load check: concurrent uploads and predictions against a real server on localhost.

    .venv/bin/python benchmarks/load_check.py [--duration 20] [--concurrency 8] [--shared ../shared]

Starts `visiontrain serve` (API + one worker) on 127.0.0.1 at a free port with a fresh data
directory (or --database-url), trains a tiny model on real ants/bees photos through the API, then for
--duration seconds runs --concurrency clients that upload images (unique ones and deliberate
duplicates) and ask for predictions. Reports throughput, latency and errors, and checks that nothing
was lost: the images in the project must equal the distinct images uploaded. Exit code 1 on any
error or loss (the target is none).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
TINY = {"epochs": 2, "augmented_copies": 0, "image_size": 96, "batch_size": 8, "early_stopping": False}


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"upload": [], "predict": []})
    errors: list[str] = field(default_factory=list)
    uploaded_hashes: set[str] = field(default_factory=set)
    duplicate_uploads: int = 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int, database_url: str | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VISIONTRAIN_DATA_DIR": str(data_dir)}
    if database_url:
        env["VISIONTRAIN_DATABASE_URL"] = database_url
    log = open(data_dir / "server.log", "wb")
    command = [sys.executable, "-m", "visiontrain.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def make_token(data_dir: Path, database_url: str | None) -> str:
    from visiontrain.config import ServerConfig
    from visiontrain.services import auth
    from visiontrain.services.platform import Platform

    platform = Platform.open(ServerConfig(data_dir=data_dir, database_url=database_url or ""))
    with platform.sessions() as session:
        _, secret = auth.create_token(session, organization="load-check", name="load check")
        session.commit()
    platform.close()
    return secret


def wait_healthy(base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server did not answer /health within {timeout:.0f} s")


def prepare(client: httpx.Client, photos: dict[str, list[Path]]) -> tuple[int, int]:
    """A project with a trained tiny model; returns (project id, version id)."""
    project = client.post("/api/v1/projects", json={"name": f"load check {time.time():.0f}"}).raise_for_status().json()
    view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "species", "kind": "classification", "concepts": list(photos)}).raise_for_status().json()
    items = []
    for label, paths in photos.items():
        uploaded = client.post(f"/api/v1/projects/{project['id']}/images", files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths])
        items += [{"image_id": i["id"], "concept": label} for i in uploaded.raise_for_status().json()["images"]]
    client.post(f"/api/v1/views/{view['id']}/annotations/batch", json={"items": items}).raise_for_status()
    model = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "species"}).raise_for_status().json()
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).raise_for_status().json()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = client.get(f"/api/v1/versions/{version['id']}").raise_for_status().json()
        if state["status"] == "succeeded":
            return project["id"], version["id"]
        if state["status"] in ("failed", "cancelled"):
            raise SystemExit(f"training the load-check model {state['status']}: {state['error']}")
        time.sleep(1)
    raise SystemExit("training the load-check model took longer than 10 minutes")


def unique_variant(data: bytes, rng: random.Random) -> bytes:
    """The same photo with a few random bytes after the JPEG end marker: decodes the same, hashes differently."""
    return data + rng.randbytes(16)


async def uploader(client: httpx.AsyncClient, project_id: int, photos: list[bytes], tally: Tally, stop: float, seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop:
        data = rng.choice(photos)
        duplicate = rng.random() < 0.2
        if not duplicate:
            data = unique_variant(data, rng)
        start = time.perf_counter()
        try:
            response = await client.post(f"/api/v1/projects/{project_id}/images", files=[("files", ("load.jpg", data, "image/jpeg"))])
            if response.status_code != 201:
                tally.errors.append(f"upload: HTTP {response.status_code} {response.text[:200]}")
                continue
        except httpx.HTTPError as exc:
            tally.errors.append(f"upload: {type(exc).__name__}: {exc}")
            continue
        tally.latencies["upload"].append(time.perf_counter() - start)
        tally.uploaded_hashes.add(hashlib.sha256(data).hexdigest())
        tally.duplicate_uploads += duplicate


async def predictor(client: httpx.AsyncClient, version_id: int, photos: list[bytes], tally: Tally, stop: float, seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop:
        start = time.perf_counter()
        try:
            response = await client.post(f"/api/v1/versions/{version_id}/predict", files=[("files", ("probe.jpg", rng.choice(photos), "image/jpeg"))])
            if response.status_code != 200 or not response.json()[0]["predictions"]:
                tally.errors.append(f"predict: HTTP {response.status_code} {response.text[:200]}")
                continue
        except httpx.HTTPError as exc:
            tally.errors.append(f"predict: {type(exc).__name__}: {exc}")
            continue
        tally.latencies["predict"].append(time.perf_counter() - start)


async def load(base: str, token: str, project_id: int, version_id: int, photos: list[bytes], duration: float, concurrency: int) -> Tally:
    tally = Tally()
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=limits) as client:
        stop = time.monotonic() + duration
        tasks = []
        for index in range(concurrency):
            if index % 2 == 0:
                tasks.append(uploader(client, project_id, photos, tally, stop, seed=index))
            else:
                tasks.append(predictor(client, version_id, photos, tally, stop, seed=index))
        await asyncio.gather(*tasks)
    return tally


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) >= 2 else (values[0] if values else float("nan"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients, half uploading, half predicting (default 8)")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="the shared folder with datasets/ants_bees")
    parser.add_argument("--database-url", default=None, help="database for the server (default: SQLite in a temporary data directory)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    args = parser.parse_args()

    root = args.shared / "datasets" / "ants_bees" / "train"
    if not root.is_dir():
        raise SystemExit(f"no ants_bees photos at {root}: pass --shared")
    photos = {label: sorted((root / label).glob("*.jpg"))[:8] for label in ("ants", "bees")}
    payloads = [p.read_bytes() for paths in photos.values() for p in paths]

    with tempfile.TemporaryDirectory(prefix="visiontrain-load-") as tmp:
        data_dir = Path(tmp)
        token = make_token(data_dir, args.database_url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(data_dir, port, args.database_url)
        try:
            wait_healthy(base)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
                print("training a tiny model through the API ...", flush=True)
                project_id, version_id = prepare(client, photos)
                warm = time.perf_counter()  # the first prediction loads the model: timed apart from the load
                client.post(f"/api/v1/versions/{version_id}/predict", files=[("files", ("warm.jpg", payloads[0], "image/jpeg"))]).raise_for_status()
                first_prediction = time.perf_counter() - warm
                before = client.get(f"/api/v1/projects/{project_id}/images").json()["total"]
                initial_hashes = {i["sha256"] for i in client.get(f"/api/v1/projects/{project_id}/images", params={"limit": 1000}).json()["items"]}
                print(f"load: {args.concurrency} clients for {args.duration:.0f} s ...", flush=True)
                started = time.perf_counter()
                tally = asyncio.run(load(base, token, project_id, version_id, payloads, args.duration, args.concurrency))
                elapsed = time.perf_counter() - started
                stored = client.get(f"/api/v1/projects/{project_id}/images").json()["total"]
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
        expected = len(initial_hashes | tally.uploaded_hashes)
        report = {
            "duration_s": round(elapsed, 1),
            "concurrency": args.concurrency,
            "uploads": len(tally.latencies["upload"]),
            "duplicate_uploads": tally.duplicate_uploads,
            "predictions": len(tally.latencies["predict"]),
            "uploads_per_s": round(len(tally.latencies["upload"]) / elapsed, 1),
            "predictions_per_s": round(len(tally.latencies["predict"]) / elapsed, 1),
            "upload_p50_ms": round(1000 * percentile(tally.latencies["upload"], 50), 1),
            "upload_p95_ms": round(1000 * percentile(tally.latencies["upload"], 95), 1),
            "predict_p50_ms": round(1000 * percentile(tally.latencies["predict"], 50), 1),
            "predict_p95_ms": round(1000 * percentile(tally.latencies["predict"], 95), 1),
            "first_prediction_ms": round(1000 * first_prediction, 1),
            "errors": len(tally.errors),
            "images_before": before,
            "images_expected": expected,
            "images_stored": stored,
            "lost": expected - stored,
        }
    for key, value in report.items():
        print(f"{key:>20}: {value}")
    for error in tally.errors[:10]:
        print("  error:", error)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    ok = not tally.errors and report["lost"] == 0
    print("OK: no errors, nothing lost" if ok else "FAILED: errors or lost images")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

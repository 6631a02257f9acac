"""Load check: concurrent uploads and predictions against a real server on localhost, and serving throughput.

    .venv/bin/python benchmarks/load_check.py [--duration 15] [--concurrency 8] [--image-size 224] [--shared ../shared]

Starts `visiontrain serve` (API + one worker) on 127.0.0.1 at a free port with a fresh data
directory (or --database-url), trains a tiny model on real ants/bees photos through the API, then:

1. **mixed** (as before): for --duration seconds --concurrency clients, half uploading images (unique
   ones and deliberate duplicates), half asking for predictions; checks that nothing was lost (the images
   in the project must equal the distinct images uploaded).
2. **serving**, side by side: the same trained version served by an API process (uvicorn, no worker) in
   each mode of ``--modes``: ``today`` (PyTorch, one model call per request: the path before
   micro-batching) and ``batched`` (the default: ONNX Runtime, concurrent requests micro-batched). For
   --duration seconds --concurrency clients each post one image per request; then, for half as long,
   --many-clients (2) clients post --many (32) images per request. Reports predictions/s and p50/p95 latency.
3. **in-process**, measured just before and just after each mode (the ceiling is their mean): the same model's ONNX file run by a Predictor in this
   process, batches of 32 (decoding included, as the server must decode too), on the same photos: the
   ceiling the serving ratio is taken against (target: at least 80% with 8 clients posting one image each).

Exit code 1 on any error or lost image (the target is none); missing the ratio is reported, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx

REPO = Path(__file__).resolve().parents[1]
TINY = {"epochs": 2, "augmented_copies": 0, "batch_size": 8, "early_stopping": False}  # + --image-size
MODES = {
    "today": {"backend": "torch", "batching": False},  # PyTorch, each request runs the network itself
    "batched": {"backend": "auto", "batching": True},  # the default: ONNX Runtime on the CPU, micro-batched
}
TARGET_RATIO = 0.8
IN_PROCESS_BATCH = 32
BATCH_STATS_LINE = "load-check batch stats: "


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"upload": [], "predict": []})
    errors: list[str] = field(default_factory=list)
    uploaded_hashes: set[str] = field(default_factory=set)
    duplicate_uploads: int = 0
    client_cpu_s: float = 0.0  # the load generator's CPU time (it shares the server's cores)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int, database_url: str | None, mode: str | None = None) -> subprocess.Popen[bytes]:
    """``visiontrain serve`` (API + one worker); with ``mode``, an API process alone serving predictions that way."""
    env = {**os.environ, "VISIONTRAIN_DATA_DIR": str(data_dir)}
    if database_url:
        env["VISIONTRAIN_DATABASE_URL"] = database_url
    log = open(data_dir / f"server-{mode or 'serve'}.log", "wb")
    if mode is None:
        command = [sys.executable, "-m", "visiontrain.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    else:
        command = [sys.executable, __file__, "--serve-api", mode, "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def serve_api(mode: str, port: int) -> None:
    """The API as `visiontrain serve --workers 0` runs it (uvicorn, same log level), its predictions served in ``mode``."""
    import uvicorn

    from visiontrain.api.app import create_app
    from visiontrain.config import ServerConfig
    from visiontrain.services.platform import Platform
    from visiontrain.services.predictions import PredictorCache

    platform = Platform.open(ServerConfig.from_env())
    app = create_app(platform=platform, web=False)
    app.state.predictors = PredictorCache(platform.config.predictor_cache_size, device=platform.config.predict_device,
                                          **MODES[mode])
    # Uvicorn stops gracefully on SIGTERM, then raises the signal again: exit through ``finally`` instead of dying there.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="info")
    finally:
        for served in app.state.predictors._items.values():  # what the batcher did, for the report
            if served.batcher is not None:
                print(BATCH_STATS_LINE + json.dumps(dataclasses.asdict(served.batcher.stats)), flush=True)
        platform.close()


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


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


def prepare(client: httpx.Client, photos: dict[str, list[Path]], image_size: int) -> tuple[int, int]:
    """A project with a trained tiny model; returns (project id, version id)."""
    project = client.post("/api/v1/projects", json={"name": f"load check {time.time():.0f}"}).raise_for_status().json()
    view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "species", "kind": "classification", "concepts": list(photos)}).raise_for_status().json()
    items = []
    for label, paths in photos.items():
        uploaded = client.post(f"/api/v1/projects/{project['id']}/images", files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths])
        items += [{"image_id": i["id"], "concept": label} for i in uploaded.raise_for_status().json()["images"]]
    client.post(f"/api/v1/views/{view['id']}/annotations/batch", json={"items": items}).raise_for_status()
    model = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "species"}).raise_for_status().json()
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": {**TINY, "image_size": image_size}}).raise_for_status().json()
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


async def predictor(client: httpx.AsyncClient, version_id: int, photos: list[bytes], tally: Tally, stop: float, seed: int,
                    per_request: int = 1) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop:
        files = [("files", (f"probe{i}.jpg", rng.choice(photos), "image/jpeg")) for i in range(per_request)]
        start = time.perf_counter()
        try:
            response = await client.post(f"/api/v1/versions/{version_id}/predict", files=files)
            if response.status_code != 200 or len(response.json()) != per_request or not response.json()[0]["predictions"]:
                tally.errors.append(f"predict: HTTP {response.status_code} {response.text[:200]}")
                continue
        except httpx.HTTPError as exc:
            tally.errors.append(f"predict: {type(exc).__name__}: {exc}")
            continue
        tally.latencies["predict"].append(time.perf_counter() - start)


async def load(base: str, token: str, project_id: int, version_id: int, photos: list[bytes], duration: float, concurrency: int) -> Tally:
    """Half the clients upload, half predict (the mixed check)."""
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


def multipart_body(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A predict request's multipart body and its Content-Type, built once: the load generator shares the
    server's cores here, so each request costs it as little as possible (on a real deployment the clients
    are other machines)."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n"
        for name, data in files
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def fast_predictor(session: aiohttp.ClientSession, url: str, bodies: list[tuple[bytes, str]], tally: Tally,
                         stop: float, seed: int, per_request: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop:
        body, content_type = rng.choice(bodies)
        start = time.perf_counter()
        try:
            async with session.post(url, data=body, headers={"Content-Type": content_type}) as response:
                status, payload = response.status, await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            tally.errors.append(f"predict: {type(exc).__name__}: {exc}")
            continue
        elapsed = time.perf_counter() - start
        results = json.loads(payload) if status == 200 else None
        if not results or len(results) != per_request or not results[0]["predictions"]:
            tally.errors.append(f"predict: HTTP {status} {payload[:200]!r}")
            continue
        tally.latencies["predict"].append(elapsed)


async def predict_load(base: str, token: str, version_id: int, photos: list[bytes], duration: float, concurrency: int,
                       per_request: int) -> Tally:
    """Every client predicts, ``per_request`` images per request, until ``duration`` has passed (each client's
    last request is let finish: the figures divide by the time actually taken). The clients' CPU time goes
    in ``tally.client_cpu_s``."""
    tally = Tally()
    rng = random.Random(per_request)
    if per_request == 1:
        bodies = [multipart_body([("probe.jpg", photo)]) for photo in photos]
    else:
        bodies = [multipart_body([(f"probe{i}.jpg", rng.choice(photos)) for i in range(per_request)]) for _ in range(8)]
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    cpu = time.process_time()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        url = f"{base}/api/v1/versions/{version_id}/predict"
        stop = time.monotonic() + duration
        await asyncio.gather(*(fast_predictor(session, url, bodies, tally, stop, seed=100 + i, per_request=per_request)
                               for i in range(concurrency)))
    tally.client_cpu_s = time.process_time() - cpu
    return tally


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) >= 2 else (values[0] if values else float("nan"))


def serving_figures(tally: Tally, elapsed: float, per_request: int) -> dict[str, float | int]:
    latencies = tally.latencies["predict"]
    return {
        "requests": len(latencies),
        "predictions_per_s": round(len(latencies) * per_request / elapsed, 1),
        "p50_ms": round(1000 * percentile(latencies, 50), 1),
        "p95_ms": round(1000 * percentile(latencies, 95), 1),
        "errors": len(tally.errors),
        "client_cpu_share": round(tally.client_cpu_s / elapsed, 2),  # of one core
    }


def serve_mode(mode: str, data_dir: Path, database_url: str | None, token: str, version_id: int, photos: list[bytes],
               args: argparse.Namespace, errors: list[str]) -> dict[str, object]:
    """One API process serving the version in ``mode``: one image per request, then --many per request."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(data_dir, port, database_url, mode)
    try:
        wait_healthy(base)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300) as client:
            warm = time.perf_counter()  # the first prediction loads the model (and, without an ONNX file, exports it)
            client.post(f"/api/v1/versions/{version_id}/predict", files=[("files", ("warm.jpg", photos[0], "image/jpeg"))]).raise_for_status()
            first_prediction = time.perf_counter() - warm
        print(f"{mode}: {args.concurrency} clients, 1 image per request, {args.duration:.0f} s ...", flush=True)
        started = time.perf_counter()
        single = asyncio.run(predict_load(base, token, version_id, photos, args.duration, args.concurrency, 1))
        single_figures = serving_figures(single, time.perf_counter() - started, 1)
        print(f"{mode}: {args.many_clients} clients, {args.many} images per request, {args.duration / 2:.0f} s ...", flush=True)
        started = time.perf_counter()
        many = asyncio.run(predict_load(base, token, version_id, photos, args.duration / 2, args.many_clients, args.many))
        many_figures = serving_figures(many, time.perf_counter() - started, args.many)
    finally:
        stop_server(server)
    errors += [f"{mode}: {e}" for e in single.errors + many.errors]
    log = (data_dir / f"server-{mode}.log").read_text(errors="replace").splitlines()
    stats = [json.loads(line.split(BATCH_STATS_LINE, 1)[1]) for line in log if BATCH_STATS_LINE in line]
    return {"first_prediction_ms": round(1000 * first_prediction, 1), "one_image": single_figures,
            f"{args.many}_images": many_figures, "batcher": stats[0] if stats else None}


def in_process(data_dir: Path, database_url: str | None, version_id: int, photos: list[bytes]) -> dict[str, float]:
    """The version's model run in this process on the same photos, batches of 32, decoding included."""
    from visiontrain.config import ServerConfig
    from visiontrain.predictor import Predictor, measure_throughput
    from visiontrain.services.platform import Platform
    from visiontrain.services.predictions import onnx_key

    platform = Platform.open(ServerConfig(data_dir=data_dir, database_url=database_url or ""))
    try:
        with platform.sessions() as session:
            from visiontrain.store.models import ModelVersion

            checkpoint = next(a.blob_key for a in session.get(ModelVersion, version_id).artifacts if a.kind == "checkpoint")
        images = photos * 4  # 64 images: two batches of 32
        onnx = Predictor.load(platform.blobs.local_path(onnx_key(version_id)), backend="onnx", device="cpu")
        pytorch = Predictor.load(platform.blobs.local_path(checkpoint), backend="torch", device="cpu")
        return {
            "onnx_batch32_per_s": round(measure_throughput(onnx, images, IN_PROCESS_BATCH), 1),
            "onnx_batch32_network_only_per_s": round(measure_throughput(onnx, images, IN_PROCESS_BATCH, include_decoding=False), 1),
            "onnx_batch1_per_s": round(measure_throughput(onnx, photos, 1), 1),
            "torch_batch32_per_s": round(measure_throughput(pytorch, images, IN_PROCESS_BATCH), 1),
        }
    finally:
        platform.close()


def print_serving(serving: dict[str, dict], many: int, concurrency: int, many_clients: int) -> None:  # type: ignore[type-arg]
    modes = list(serving)
    rows = [
        (f"predictions/s ({concurrency} clients, 1 image each)", lambda m: serving[m]["one_image"]["predictions_per_s"]),
        ("p50 / p95 latency, ms", lambda m: f"{serving[m]['one_image']['p50_ms']} / {serving[m]['one_image']['p95_ms']}"),
        (f"in-process ONNX batch {IN_PROCESS_BATCH}, before / after, /s",
         lambda m: " / ".join(str(v) for v in serving[m]["in_process_before_after"])),
        (f"ratio to their mean (target {TARGET_RATIO:.0%})", lambda m: f"{serving[m]['ratio']:.0%}"),
        ("load generator CPU, share of one core", lambda m: serving[m]["one_image"]["client_cpu_share"]),
        (f"predictions/s ({many_clients} clients, {many} images each)", lambda m: serving[m][f"{many}_images"]["predictions_per_s"]),
        (f"p50 / p95 latency of {many} images, ms",
         lambda m: f"{serving[m][f'{many}_images']['p50_ms']} / {serving[m][f'{many}_images']['p95_ms']}"),
        (f"ratio to in-process network alone, batch {IN_PROCESS_BATCH}",
         lambda m: f"{serving[m]['one_image']['predictions_per_s'] / serving[m]['in_process']['onnx_batch32_network_only_per_s']:.0%}"),
        ("images per model call (both phases)",
         lambda m: "1" if not serving[m]["batcher"] else
         f"{serving[m]['batcher']['images'] / serving[m]['batcher']['model_calls']:.1f} (largest {serving[m]['batcher']['largest_batch']})"),
        ("first prediction (model load), ms", lambda m: serving[m]["first_prediction_ms"]),
        ("errors", lambda m: serving[m]["one_image"]["errors"] + serving[m][f"{many}_images"]["errors"]),
    ]
    width = max(len(label) for label, _ in rows)
    print()
    print(" " * width + " | " + " | ".join(f"{m + ' (' + ('PyTorch, 1 call/request' if m == 'today' else 'ONNX, micro-batched') + ')':>32}" for m in modes))
    for label, value in rows:
        print(f"{label:>{width}} | " + " | ".join(f"{str(value(m)):>32}" for m in modes))
    for mode in modes:
        ceiling = serving[mode]["in_process"]
        print(f"in-process around {mode} (mean of before and after), same model and photos, decoding included: ONNX Runtime batch {IN_PROCESS_BATCH} "
              f"{ceiling['onnx_batch32_per_s']}/s (network alone {ceiling['onnx_batch32_network_only_per_s']}/s), batch 1 "
              f"{ceiling['onnx_batch1_per_s']}/s; PyTorch batch "
              f"{IN_PROCESS_BATCH} {ceiling['torch_batch32_per_s']}/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of each load phase (default 15)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--image-size", type=int, default=224, help="the trained model's input size (default 224, the default setting)")
    parser.add_argument("--many", type=int, default=32, help="images per request in the many-images phase (default 32)")
    parser.add_argument("--many-clients", type=int, default=2, help="concurrent clients in the many-images phase (default 2)")
    parser.add_argument("--modes", default="today,batched", help="serving modes side by side: today, batched (default both)")
    parser.add_argument("--skip-mixed", action="store_true", help="leave out the mixed upload + predict check")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="the shared folder with datasets/ants_bees")
    parser.add_argument("--database-url", default=None, help="database for the server (default: SQLite in a temporary data directory)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    parser.add_argument("--serve-api", choices=sorted(MODES), help=argparse.SUPPRESS)  # the script's own server process
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_api:
        serve_api(args.serve_api, args.port)
        return 0
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := [m for m in modes if m not in MODES]:
        raise SystemExit(f"unknown serving mode(s) {', '.join(unknown)}: choose from {', '.join(MODES)}")

    root = args.shared / "datasets" / "ants_bees" / "train"
    if not root.is_dir():
        raise SystemExit(f"no ants_bees photos at {root}: pass --shared")
    photos = {label: sorted((root / label).glob("*.jpg"))[:8] for label in ("ants", "bees")}
    payloads = [p.read_bytes() for paths in photos.values() for p in paths]

    report: dict[str, object] = {"concurrency": args.concurrency, "image_size": args.image_size}
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="visiontrain-load-") as tmp:
        data_dir = Path(tmp)
        token = make_token(data_dir, args.database_url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(data_dir, port, args.database_url)
        try:
            wait_healthy(base)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300) as client:
                print(f"training a tiny model ({args.image_size} px) through the API ...", flush=True)
                project_id, version_id = prepare(client, photos, args.image_size)
                if not args.skip_mixed:
                    warm = time.perf_counter()  # the first prediction loads the model: timed apart from the load
                    client.post(f"/api/v1/versions/{version_id}/predict", files=[("files", ("warm.jpg", payloads[0], "image/jpeg"))]).raise_for_status()
                    first_prediction = time.perf_counter() - warm
                    before = client.get(f"/api/v1/projects/{project_id}/images").json()["total"]
                    initial_hashes = {i["sha256"] for i in client.get(f"/api/v1/projects/{project_id}/images", params={"limit": 1000}).json()["items"]}
                    print(f"mixed: {args.concurrency} clients (half uploading) for {args.duration:.0f} s ...", flush=True)
                    started = time.perf_counter()
                    tally = asyncio.run(load(base, token, project_id, version_id, payloads, args.duration, args.concurrency))
                    elapsed = time.perf_counter() - started
                    stored = client.get(f"/api/v1/projects/{project_id}/images").json()["total"]
        finally:
            stop_server(server)  # the serving phases run an API process alone: no worker polling beside it
        if not args.skip_mixed:
            expected = len(initial_hashes | tally.uploaded_hashes)
            report["mixed"] = {
                "duration_s": round(elapsed, 1),
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
            errors += tally.errors
            print("mixed (uploads + predictions, served the default way):")
            for key, value in report["mixed"].items():  # type: ignore[union-attr]
                print(f"{key:>20}: {value}")
        serving = {}
        for mode in modes:
            # The ceiling is measured right before and right after each mode: on a shared machine the load drifts.
            print("in-process throughput of the same model ...", flush=True)
            before_mode = in_process(data_dir, args.database_url, version_id, payloads)
            figures = serve_mode(mode, data_dir, args.database_url, token, version_id, payloads, args, errors)
            after_mode = in_process(data_dir, args.database_url, version_id, payloads)
            # The ceiling is the mean of the two: on a shared machine one measurement alone swings by 20%.
            ceiling = {key: round((before_mode[key] + after_mode[key]) / 2, 1) for key in before_mode}
            figures["in_process"] = ceiling
            figures["in_process_before_after"] = [before_mode["onnx_batch32_per_s"], after_mode["onnx_batch32_per_s"]]
            figures["ratio"] = figures["one_image"]["predictions_per_s"] / ceiling["onnx_batch32_per_s"]  # type: ignore[index]
            serving[mode] = figures
        report["serving"] = serving
    print_serving(serving, args.many, args.concurrency, args.many_clients)
    for error in errors[:10]:
        print("  error:", error)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    lost = report.get("mixed", {}).get("lost", 0)  # type: ignore[union-attr]
    ok = not errors and lost == 0
    if "batched" in serving:
        ratio = serving["batched"]["ratio"]
        print(f"serving ratio {ratio:.0%} of in-process batch {IN_PROCESS_BATCH}: target {TARGET_RATIO:.0%} "
              + ("met" if ratio >= TARGET_RATIO else "NOT met"))
    print("OK: no errors, nothing lost" if ok else "FAILED: errors or lost images")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

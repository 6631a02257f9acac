"""Blob store throughput: a local directory against a real S3 server (SeaweedFS on localhost), on real photos.

    .venv/bin/python benchmarks/blob_store.py [--images 200] [--artifact-mb 64] [--shared ../shared]

Uses $VISIONTRAIN_TEST_S3_URL with the AWS_* variables when set, else starts a throw-away SeaweedFS
with scripts/ci-seaweedfs.sh (stopped at the end). For each store: --images ants/bees photos written
(put_bytes), read (get_bytes), read as files through local_path twice (the S3 store's first pass fills
its read cache, the second hits it), listed (keys); then one --artifact-mb file uploaded (put_file:
multipart on S3) and read back through open() in 1 MiB chunks. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from visiontrain.blobs import BlobStore, open_blob_store  # noqa: E402


def _s3_server(state: Path) -> str:
    if os.environ.get("VISIONTRAIN_TEST_S3_URL"):
        return os.environ["VISIONTRAIN_TEST_S3_URL"]
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "ci-seaweedfs.sh")],
        env={**os.environ, "VISIONTRAIN_S3_STATE_FILE": str(state)}, capture_output=True, text=True, check=True,
    ).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    os.environ.update({k: v for k, v in values.items() if k.startswith("AWS_")})
    return values["VISIONTRAIN_TEST_S3_URL"]


def _timed(action) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(store: BlobStore, photos: list[tuple[str, bytes]], artifact: Path) -> dict[str, float]:
    total_mb = sum(len(data) for _, data in photos) / 1e6
    rows: dict[str, float] = {}
    rows["put_bytes (images/s)"] = len(photos) / _timed(lambda: [store.put_bytes(k, d) for k, d in photos])
    rows["get_bytes (images/s)"] = len(photos) / _timed(lambda: [store.get_bytes(k) for k, _ in photos])
    rows["local_path, first (images/s)"] = len(photos) / _timed(lambda: [store.local_path(k).stat() for k, _ in photos])
    rows["local_path, again (images/s)"] = len(photos) / _timed(lambda: [store.local_path(k).stat() for k, _ in photos])
    rows["keys (keys/s)"] = len(photos) / _timed(lambda: list(store.keys("images")))
    size_mb = artifact.stat().st_size / 1e6
    rows["put_file artifact (MB/s)"] = size_mb / _timed(lambda: store.put_file("versions/1/best.pt", artifact))

    def stream() -> None:
        with store.open("versions/1/best.pt") as body:
            while body.read(1024 * 1024):
                pass

    rows["open + read artifact (MB/s)"] = size_mb / _timed(stream)
    rows["images (MB)"] = total_mb
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--artifact-mb", type=int, default=64)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = parser.parse_args()
    files = sorted((args.shared / "datasets" / "ants_bees").rglob("*.jpg"))[: args.images]
    photos = [(f"images/{i % 256:02x}/{i}-{f.name}", f.read_bytes()) for i, f in enumerate(files)]
    with tempfile.TemporaryDirectory(prefix="blob-bench-") as work:
        root = Path(work)
        artifact = root / "best.pt"
        artifact.write_bytes(os.urandom(args.artifact_mb * 1024 * 1024))
        state = root / "s3-state"
        try:
            s3_url = f"{_s3_server(state)}/bench-{uuid.uuid4().hex[:8]}"
            results = {
                "local directory": measure(open_blob_store(str(root / "blobs")), photos, artifact),
                "S3 (SeaweedFS, localhost)": measure(open_blob_store(s3_url, cache_dir=root / "cache"), photos, artifact),
            }
            open_blob_store(s3_url, cache_dir=root / "cache").delete_prefix("images/")
        finally:
            if state.is_file() and state.read_text().strip():
                subprocess.run(["bash", str(REPO / "scripts" / "ci-seaweedfs.sh"), "stop", state.read_text().strip()],
                               capture_output=True)
    names = list(results)
    print(f"{len(photos)} ants/bees photos, one {args.artifact_mb} MiB artifact\n")
    print("| measure | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for row in results[names[0]]:
        print(f"| {row} | " + " | ".join(f"{results[n][row]:,.1f}" for n in names) + " |")


if __name__ == "__main__":
    main()

"""Hostile-input check: every probe of issue 7 against a real server on localhost.

    .venv/bin/python benchmarks/hostile_check.py [--junk-mb 500] [--timeout 30]

Starts the API (uvicorn, 127.0.0.1, a free port, a fresh data directory), makes a token, a project and a
view, then sends what a hostile or careless client would: PostScript (also named .jpg) to every upload
route, a small PNG claiming 10000x10000 pixels, --junk-mb MB of junk streamed as an image, NaN and
Infinity in JSON bodies, ids / offsets / cursors beyond 64 bits, NUL in names and queries, very long file
and folder names, an oversized body, and 300 guessed tokens. Prints probes tried / refused cleanly (a
4xx with a JSON message) / 5xx / hung (no answer within --timeout) / accepted, and checks that nothing
was stored for them (no image rows, no image bytes, only the seed project). Exit code 1 on any 5xx,
hang, acceptance or stored reject.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import httpx

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{ } loop\n%%EOF\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1) * 64)) + chunk(b"IEND", b"")


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junk-mb", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="visiontrain-hostile-")) / "data"
    from visiontrain.config import ServerConfig
    from visiontrain.services import auth
    from visiontrain.services.platform import Platform

    config = ServerConfig(data_dir=data_dir, max_upload_mb=max(512, args.junk_mb + 8))
    platform = Platform.open(config)
    with platform.sessions() as session:
        _, token = auth.create_token(session, organization="acme", name="hostile check")
        session.commit()
    platform.close()
    port = free_port()
    env = {**os.environ, **config.to_env()}
    log = open(data_dir / "server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "visiontrain.api.app:create_app", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    tally: Counter[str] = Counter()
    bad: list[str] = []
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=args.timeout)
        project = client.post("/api/v1/projects", json={"name": "seed"}).json()
        view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "v", "kind": "classification", "concepts": ["a"]}).json()
        images = f"/api/v1/projects/{project['id']}/images"
        json_headers = {"Content-Type": "application/json"}
        huge = str(2**64)

        def junk_stream():  # type: ignore[no-untyped-def]
            head = b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"junk.jpg\"\r\n\r\n"
            yield head
            block = os.urandom(1024 * 1024)
            for _ in range(args.junk_mb):
                yield block
            yield b"\r\n--b--\r\n"

        probes: list[tuple[str, dict]] = [
            ("EPS upload", {"method": "POST", "url": images, "files": [("files", ("a.eps", EPS, "image/jpeg"))]}),
            ("EPS named .jpg", {"method": "POST", "url": images, "files": [("files", ("a.jpg", EPS, "image/jpeg"))]}),
            ("EPS in image zip", {"method": "POST", "url": f"{images}/archive", "files": {"file": ("a.zip", zip_of({"a.jpg": EPS}), "application/zip")}}),
            ("EPS in import", {"method": "POST", "url": f"/api/v1/views/{view['id']}/import", "files": {"file": ("a.zip", zip_of({"a/x.jpg": EPS, "b/y.jpg": EPS}), "application/zip")}}),
            ("10000x10000 PNG header", {"method": "POST", "url": images, "files": [("files", ("big.png", png_header_only(10000, 10000), "image/png"))]}),
            (f"{args.junk_mb} MB junk streamed", {"method": "POST", "url": images, "content": junk_stream(), "headers": {"Content-Type": "multipart/form-data; boundary=b"}}),
            ("5000-char file name", {"method": "POST", "url": images, "files": [("files", ("a" * 5000 + ".png", png_header_only(8, 8), "image/png"))]}),
            ("250-char class folder", {"method": "POST", "url": f"/api/v1/views/{view['id']}/import", "files": {"file": ("s.zip", zip_of({"c" * 250 + "/x.png": png_header_only(8, 8), "b/y.png": png_header_only(9, 9)}), "application/zip")}}),
            ("NUL file name", {"method": "POST", "url": images, "content": b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a\x00.png\"\r\n\r\n" + png_header_only(8, 8) + b"\r\n--b--\r\n", "headers": {"Content-Type": "multipart/form-data; boundary=b"}}),
        ]
        for constant in ("NaN", "Infinity", "-Infinity", "1e999"):
            probes.append((f"{constant} project name", {"method": "POST", "url": "/api/v1/projects", "content": f'{{"name": {constant}}}', "headers": json_headers}))
            probes.append((f"{constant} suggested settings", {"method": "POST", "url": f"/api/v1/views/{view['id']}/suggested-settings", "content": f'{{"settings": {{"dropout": {constant}}}}}', "headers": json_headers}))
            probes.append((f"{constant} in a box", {"method": "PUT", "url": f"/api/v1/views/{view['id']}/annotations/1", "content": f'{{"boxes": [{{"concept": "a", "x_min": {constant}, "y_min": 0, "x_max": 1, "y_max": 1}}]}}', "headers": json_headers}))
        for path in (f"/api/v1/projects/{huge}", f"{images}/{huge}", f"/api/v1/views/{huge}", f"/api/v1/models/{huge}", f"/api/v1/versions/{huge}", f"/api/v1/versions/{huge}/metrics"):
            probes.append((f"big id GET {path}", {"method": "GET", "url": path}))
        probes.append(("big offset", {"method": "GET", "url": images, "params": {"offset": huge}}))
        probes.append(("big after_id", {"method": "GET", "url": "/api/v1/versions/1/metrics", "params": {"after_id": huge}}))
        probes.append(("big id in split body", {"method": "PUT", "url": f"/api/v1/views/{view['id']}/split", "content": f'{{"image_ids": [{huge}], "split": "val"}}', "headers": json_headers}))
        probes.append(("5000-digit id in batch", {"method": "POST", "url": f"/api/v1/views/{view['id']}/annotations/batch", "content": '{"items": [{"image_id": ' + "9" * 5000 + ', "concept": "a"}]}', "headers": json_headers}))
        probes.append(("deeply nested body", {"method": "POST", "url": "/api/v1/projects", "content": "[" * 100_000 + "]" * 100_000, "headers": json_headers}))
        for what, url, body in (
            ("NUL project name", "/api/v1/projects", {"name": "a\x00"}),
            ("NUL view name", f"/api/v1/projects/{project['id']}/views", {"name": "v\x00", "kind": "classification"}),
            ("NUL concept", f"/api/v1/views/{view['id']}/concepts", {"name": "\x00"}),
            ("NUL model name", f"/api/v1/views/{view['id']}/models", {"name": "m\x00"}),
            ("NUL token name", "/api/v1/tokens", {"name": "t\x00"}),
        ):
            probes.append((what, {"method": "POST", "url": url, "json": body}))
        probes.append(("NUL in query", {"method": "GET", "url": "/api/v1/versions/1/metrics", "params": {"kind": "epoch\x00"}}))

        for name, request in probes:
            tally["tried"] += 1
            try:
                response = client.request(**request)
            except httpx.TimeoutException:
                tally["hung"] += 1
                bad.append(f"{name}: no answer within {args.timeout:.0f} s")
                continue
            except httpx.HTTPError as exc:
                tally["connection errors"] += 1
                bad.append(f"{name}: {type(exc).__name__}")
                continue
            if response.status_code >= 500:
                tally["5xx"] += 1
                bad.append(f"{name}: {response.status_code} {response.text[:120]}")
            elif response.status_code >= 400 and isinstance(response.json().get("detail"), str | list):
                tally["refused cleanly"] += 1
                print(f"  {response.status_code}  {name}: {str(response.json()['detail'])[:110]}")
            else:
                tally["accepted"] += 1
                bad.append(f"{name}: accepted ({response.status_code})")

        # A body announced as 1 TB (raw socket: an HTTP client will not lie about Content-Length).
        tally["tried"] += 1
        with socket.create_connection(("127.0.0.1", port), timeout=args.timeout) as raw:
            raw.sendall(
                f"POST {images} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000000000\r\n\r\n".encode()
            )
            received = b""
            try:
                while not (b"\r\n\r\n" in received and received.endswith(b"}")):
                    chunk = raw.recv(4096)
                    if not chunk:
                        break
                    received += chunk
            except TimeoutError:
                pass
            answer = received.decode("latin-1")
        status_line = answer.split("\r\n", 1)[0]
        if " 413 " in status_line and "upload limit" in answer:
            tally["refused cleanly"] += 1
            print(f"  413  1 TB Content-Length: {answer.rsplit(chr(10), 1)[-1][:110]}")
        else:
            tally["hung" if not answer else "5xx" if " 5" in status_line else "accepted"] += 1
            bad.append(f"1 TB Content-Length: {status_line or 'no answer'}")

        # Nothing stored for the rejects.
        stored_images = client.get(images).json()["total"]
        projects = [p["name"] for p in client.get("/api/v1/projects").json()]
        blob_files = [p for p in (data_dir / "blobs" / "images").rglob("*") if p.is_file()] if (data_dir / "blobs" / "images").exists() else []
        if stored_images or blob_files or projects != ["seed"]:
            bad.append(f"stored for rejects: {stored_images} images, {len(blob_files)} image blobs, projects {projects}")
        # 300 guessed tokens: answered 401, then 429 with Retry-After once the address is throttled.
        guesses = Counter()
        anonymous = httpx.Client(base_url=base, timeout=args.timeout)
        started = time.perf_counter()
        for i in range(300):
            guesses[anonymous.get("/api/v1/me", headers={"Authorization": f"Bearer vt_guess{i}"}).status_code] += 1
        elapsed = time.perf_counter() - started
        tally["tried"] += 300
        tally["refused cleanly"] += guesses[401] + guesses[429]
        tally["5xx"] += sum(n for code, n in guesses.items() if code >= 500)
        print(f"  token guessing: {dict(guesses)} in {elapsed:.2f} s")

        headers = client.get("/health").headers
        for header in ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy"):
            if header not in headers:
                bad.append(f"missing header {header}")
        print(
            f"probes tried {tally['tried']}, refused cleanly {tally['refused cleanly']}, 5xx {tally['5xx']}, "
            f"hung {tally['hung']}, accepted {tally['accepted']}, connection errors {tally['connection errors']}; "
            f"stored for rejects: {stored_images} images, {len(blob_files)} image blobs"
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    for line in bad:
        print("FAIL", line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

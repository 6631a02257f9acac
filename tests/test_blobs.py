"""Byte stores on both back ends: a local directory and a real S3 server (SeaweedFS), with real photos."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from visiontrain.blobs import BlobNotFound, LocalBlobStore, ReadCache, S3BlobStore, open_blob_store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photos(datasets_dir: Path) -> list[bytes]:
    """Five real JPEG photos' bytes (sorted names: deterministic)."""
    return [p.read_bytes() for p in sorted((datasets_dir / "ants_bees" / "train" / "ants").glob("*.jpg"))[:5]]


def _key(data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    return f"images/{digest[:2]}/{digest}.jpg"


def test_bytes_round_trip_through_every_way_of_reading(blob_store, photos, tmp_path) -> None:
    key = _key(photos[0])
    assert not blob_store.exists(key)
    blob_store.put_bytes(key, photos[0])
    assert blob_store.exists(key)
    assert blob_store.get_bytes(key) == photos[0]
    assert blob_store.size(key) == len(photos[0])
    assert blob_store.local_path(key).read_bytes() == photos[0]
    assert blob_store.local_file(key, tmp_path / "scratch").read_bytes() == photos[0]
    stream = blob_store.open(key)
    try:
        assert stream.read() == photos[0]
    finally:
        stream.close()
    assert list(blob_store.keys("images")) == [key]
    blob_store.delete(key)
    assert not blob_store.exists(key)
    for read in (blob_store.get_bytes, blob_store.size, blob_store.local_path, blob_store.open):
        with pytest.raises(BlobNotFound):
            read(key)
    blob_store.delete(key)  # deleting what is gone is no error


@pytest.mark.parametrize("key", ["../outside", "/etc/passwd", "a/../../b", "a\\b", "", "a//b", "a/./b", "a/.tmp-x"])
def test_keys_that_could_escape_the_root_are_refused_alike(blob_store, key) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        blob_store.put_bytes(key, b"x")
    with pytest.raises(ValueError, match="invalid blob key"):
        blob_store.get_bytes(key)


def test_delete_prefix_removes_only_that_folders_matching_names(blob_store) -> None:
    for key in ("thumbs/ab/abc-64.jpg", "thumbs/ab/abc-128.jpg", "thumbs/ab/abd-64.jpg", "thumbs/ab/abc-64/deeper.jpg"):
        blob_store.put_bytes(key, b"t")
    assert blob_store.delete_prefix("thumbs/ab/abc-") == 2
    assert sorted(blob_store.keys("thumbs")) == ["thumbs/ab/abc-64/deeper.jpg", "thumbs/ab/abd-64.jpg"]
    assert blob_store.delete_prefix("thumbs/zz/none-") == 0


def test_a_large_file_round_trips_and_leaves_nothing_partial(blob_store, tmp_path) -> None:
    # 9 MiB: above boto3's multipart threshold (8 MiB), so S3 takes it in parts.
    source = tmp_path / "best.pt"
    source.write_bytes(os.urandom(9 * 1024 * 1024))
    blob_store.put_file("versions/7/best.pt", source)
    assert blob_store.size("versions/7/best.pt") == source.stat().st_size
    assert hashlib.sha256(blob_store.local_path("versions/7/best.pt").read_bytes()).digest() == hashlib.sha256(
        source.read_bytes()
    ).digest()
    assert blob_store.remove_partial_writes() == 0
    assert blob_store.exists("versions/7/best.pt")


def test_rewriting_a_key_refreshes_the_cached_copy(blob_store, photos, tmp_path) -> None:
    blob_store.put_bytes("exports/view.zip", photos[0])
    assert blob_store.local_path("exports/view.zip").read_bytes() == photos[0]
    blob_store.put_bytes("exports/view.zip", photos[1])
    assert blob_store.local_path("exports/view.zip").read_bytes() == photos[1]
    source = tmp_path / "again.jpg"
    source.write_bytes(photos[2])
    blob_store.put_file("exports/view.zip", source)
    assert blob_store.local_path("exports/view.zip").read_bytes() == photos[2]


def test_the_local_store_serves_its_own_files(tmp_path, photos) -> None:
    store = open_blob_store((tmp_path / "blobs").as_uri(), cache_dir=tmp_path / "cache")
    assert isinstance(store, LocalBlobStore)
    store.put_bytes(_key(photos[0]), photos[0])
    assert store.local_path(_key(photos[0])).is_relative_to(tmp_path / "blobs")
    (tmp_path / "blobs" / "images" / ".tmp-left-by-a-crash").write_bytes(b"half")
    assert store.remove_partial_writes() == 1
    assert store.exists(_key(photos[0])) and not (tmp_path / "cache").exists()


# -- S3 only ------------------------------------------------------------------------------------------


@pytest.fixture
def s3_store(s3_blob_url: str, tmp_path: Path) -> S3BlobStore:
    store = open_blob_store(s3_blob_url, cache_dir=tmp_path / "blob-cache")
    assert isinstance(store, S3BlobStore)
    return store


def test_listing_and_deleting_follow_every_page(s3_store, photos) -> None:
    s3_store.page_size = 2  # the server answers 2 keys per page: five keys take three pages
    s3_store.delete_batch = 2
    keys = [_key(data) for data in photos]
    for key, data in zip(keys, photos):
        s3_store.put_bytes(key, data)
    s3_store.put_bytes("thumbnails/aa/x-64.jpg", b"t")
    assert sorted(s3_store.keys("images")) == sorted(keys)
    for key in keys:
        s3_store.local_path(key)
    assert s3_store.delete_prefix("images/" + keys[0].split("/")[1] + "/") == sum(
        k.split("/")[1] == keys[0].split("/")[1] for k in keys
    )
    removed = 0
    for folder in {k.split("/")[1] for k in keys}:
        removed += s3_store.delete_prefix(f"images/{folder}/")
    assert list(s3_store.keys("images")) == []
    assert not any(s3_store.cache.path(k.split("/")).exists() for k in keys)  # cached copies went with them
    assert list(s3_store.keys("thumbnails")) == ["thumbnails/aa/x-64.jpg"]


def test_interrupted_multipart_uploads_are_aborted_and_stored_keys_kept(s3_store, s3_blob_url, photos) -> None:
    s3_store.put_bytes("images/aa/kept.jpg", photos[0])
    client = s3_store._client  # the store's own boto3 client: start an upload and never finish it, as a crash would
    bucket, prefix = s3_blob_url.removeprefix("s3://").split("/", 1)
    client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}/versions/1/best.pt")
    client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}-elsewhere/versions/1/best.pt")  # not ours
    assert s3_store.remove_partial_writes() == 0  # just started: maybe another machine's upload in progress
    s3_store.partial_upload_grace_seconds = 0
    assert s3_store.remove_partial_writes() == 1
    left = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    assert [u["Key"] for u in left] == [f"{prefix}-elsewhere/versions/1/best.pt"]
    assert s3_store.get_bytes("images/aa/kept.jpg") == photos[0]
    client.abort_multipart_upload(Bucket=bucket, Key=left[0]["Key"], UploadId=left[0]["UploadId"])


def test_the_read_cache_stays_under_its_cap_evicting_the_least_recently_used(s3_blob_url, tmp_path, photos) -> None:
    sizes = sorted(len(p) for p in photos)
    cap = sizes[-1] + sizes[-2] + sizes[-3]  # room for about three of the five photos
    store = open_blob_store(s3_blob_url, cache_dir=tmp_path / "cache", cache_max_bytes=cap)
    keys = [_key(data) for data in photos]
    for key, data in zip(keys, photos):
        store.put_bytes(key, data)
    store.local_path(keys[0])
    store.local_path(keys[1])
    os.utime(store.cache.path(keys[0].split("/")), (1, 1))  # used long ago
    store.local_path(keys[1])  # a hit: keys[1] is recent again
    for key in keys[2:]:
        path = store.local_path(key)
        assert path.read_bytes() == photos[keys.index(key)]
        assert store.cache.total_bytes() <= cap
    cached = [k for k in keys if store.cache.path(k.split("/")).exists()]
    assert keys[0] not in cached  # the least recently used went first
    assert keys[-1] in cached  # the one just read is there
    assert store.local_path(keys[0]).read_bytes() == photos[0]  # an evicted copy is fetched again


def test_scratch_copies_outlive_the_read_cache_and_come_from_it(s3_blob_url, tmp_path, photos) -> None:
    # A run's images: more bytes than the read cache holds, all needed until the run ends.
    cap = max(len(p) for p in photos) * 2
    store = open_blob_store(s3_blob_url, cache_dir=tmp_path / "cache", cache_max_bytes=cap)
    keys = [_key(data) for data in photos]
    for key, data in zip(keys, photos):
        store.put_bytes(key, data)
    files = [store.local_file(key, tmp_path / "run") for key in keys]
    assert [f.read_bytes() for f in files] == photos  # every one whole, though the cache evicted most
    assert store.cache.total_bytes() <= cap
    last = store.cache.path(keys[-1].split("/"))
    assert last.exists() and os.path.samefile(last, files[-1])  # the scratch file is the cache's copy, linked
    again = store.local_file(keys[-1], tmp_path / "run2")  # a second run: the same cached copy, not a download
    assert again.read_bytes() == photos[-1] and os.stat(again).st_ino == os.stat(files[-1]).st_ino


def test_two_processes_filling_one_cache_both_read_whole_files(s3_blob_url, tmp_path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    store = open_blob_store(s3_blob_url, cache_dir=tmp_path / "cache")
    store.put_bytes("versions/3/model.onnx", data)
    script = (
        "import sys; from visiontrain.blobs import open_blob_store\n"
        "store = open_blob_store(sys.argv[1], cache_dir=sys.argv[2])\n"
        "for _ in range(5):\n"
        "    for _attempt in range(50):\n"
        "        try:\n"  # the other reader may discard the copy before this one opens it, as eviction would
        "            data = store.local_path('versions/3/model.onnx').read_bytes()\n"
        "            break\n"
        "        except FileNotFoundError:\n"
        "            continue\n"
        "    else:\n"
        "        raise SystemExit('the copy vanished 50 times in a row')\n"
        "    print(__import__('hashlib').sha256(data).hexdigest())\n"
        "    store.cache.discard(['versions', '3', 'model.onnx'])\n"  # fetch again: the two race each time
    )
    readers = [
        subprocess.Popen([sys.executable, "-c", script, s3_blob_url, str(tmp_path / "cache")], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    digests = [reader.communicate()[0].split() for reader in readers]
    assert [reader.returncode for reader in readers] == [0, 0]
    assert digests == [[hashlib.sha256(data).hexdigest()] * 5] * 2
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


def test_one_cache_directory_keeps_each_stores_copies_apart(s3_server_url, tmp_path) -> None:
    first = open_blob_store(f"{s3_server_url}/{uuid.uuid4().hex[:8]}", cache_dir=tmp_path / "cache")
    second = open_blob_store(f"{s3_server_url}/{uuid.uuid4().hex[:8]}", cache_dir=tmp_path / "cache")
    first.put_bytes("a/b.txt", b"first")
    second.put_bytes("a/b.txt", b"second")
    assert first.local_path("a/b.txt").read_bytes() == b"first"
    assert second.local_path("a/b.txt").read_bytes() == b"second"


def test_a_missing_bucket_is_named_and_created_only_when_asked(s3_server_url, tmp_path) -> None:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    bucket = f"vt-missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeError, match=rf"bucket '{bucket}' does not exist at {endpoint}.*VISIONTRAIN_BLOB_CREATE_BUCKET"):
        open_blob_store(f"s3://{bucket}/p", cache_dir=tmp_path)
    store = open_blob_store(f"s3://{bucket}/p", cache_dir=tmp_path, create_bucket=True)
    store.put_bytes("a/b.txt", b"x")
    assert open_blob_store(f"s3://{bucket}/p", cache_dir=tmp_path).get_bytes("a/b.txt") == b"x"
    store._client.delete_object(Bucket=bucket, Key="p/a/b.txt")
    store._client.delete_bucket(Bucket=bucket)


def test_wrong_credentials_and_an_unreachable_endpoint_are_clear_errors(s3_server_url, tmp_path, monkeypatch) -> None:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(RuntimeError, match=rf"{endpoint} refused the credentials.*AWS_SECRET_ACCESS_KEY"):
        open_blob_store(s3_server_url, cache_dir=tmp_path)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    with pytest.raises(RuntimeError, match=rf"cannot reach the object store at {closed}"):
        open_blob_store(s3_server_url, cache_dir=tmp_path)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", "names no bucket"),
        ("s3://Not_A_Bucket/x", "invalid S3 bucket name 'Not_A_Bucket'"),
        ("s3://bucket/a/../b", "invalid blob key"),
        ("s3://bucket/p?endpoint=x", "write s3://bucket/prefix"),
        ("s4://bucket/prefix", "s3://bucket/prefix"),
    ],
)
def test_bad_blob_urls_say_what_to_write(url, message) -> None:
    with pytest.raises(ValueError, match=message.replace("?", r"\?").replace(".", r"\.")):
        open_blob_store(url)


def test_a_cache_cap_must_be_positive(tmp_path) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        ReadCache(tmp_path, 0)


def test_the_server_configuration_opens_an_s3_store_with_its_cache(s3_blob_url, tmp_path, monkeypatch) -> None:
    from visiontrain.config import ServerConfig
    from visiontrain.services.platform import Platform

    monkeypatch.setenv("VISIONTRAIN_BLOB_URL", s3_blob_url)
    monkeypatch.setenv("VISIONTRAIN_BLOB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("VISIONTRAIN_BLOB_CACHE_GB", "0.5")
    config = ServerConfig.from_env(data_dir=tmp_path / "data")
    assert ServerConfig(**{k.removeprefix("VISIONTRAIN_").lower(): v for k, v in config.to_env().items()}) == config
    platform = Platform.open(config)
    try:
        assert isinstance(platform.blobs, S3BlobStore) and platform.blobs.url == s3_blob_url
        assert platform.blobs.cache.max_bytes == 500_000_000
        platform.blobs.put_bytes("a/b.txt", b"x")
        assert platform.blobs.local_path("a/b.txt").is_relative_to(tmp_path / "cache")
    finally:
        platform.close()
    assert ServerConfig(data_dir=tmp_path / "data").blob_cache_dir == (tmp_path / "data" / "blob-cache").resolve()
    bucket = f"vt-config-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("VISIONTRAIN_BLOB_URL", f"s3://{bucket}/p")
    with pytest.raises(RuntimeError, match=f"bucket '{bucket}' does not exist"):
        Platform.open(ServerConfig.from_env(data_dir=tmp_path / "data"))
    monkeypatch.setenv("VISIONTRAIN_BLOB_CREATE_BUCKET", "1")
    created = Platform.open(ServerConfig.from_env(data_dir=tmp_path / "data"))
    try:
        assert list(created.blobs.keys("images")) == []
        created.blobs._client.delete_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    finally:
        created.close()


def test_the_cli_names_a_missing_bucket_without_a_traceback(s3_server_url, tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from visiontrain.cli.main import app as cli

    monkeypatch.setenv("VISIONTRAIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VISIONTRAIN_BLOB_URL", "s3://vt-nobody-made-this/p")
    result = CliRunner().invoke(cli, ["worker"])
    assert result.exit_code == 2
    assert "cannot open the byte storage s3://vt-nobody-made-this/p: bucket 'vt-nobody-made-this' does not exist" in " ".join(
        result.output.split()
    )
    assert "Traceback" not in result.output


def test_missing_credentials_are_named(s3_server_url, tmp_path, monkeypatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to find here
    with pytest.raises(RuntimeError, match=r"no usable credentials for the object store at http://127\.0\.0\.1:\d+: set AWS_ACCESS_KEY_ID"):
        open_blob_store(s3_server_url, cache_dir=tmp_path)

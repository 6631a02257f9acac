"""Byte storage behind one small interface: images, thumbnails, checkpoints, exports, evaluation pictures.

Chosen by URL (:func:`open_blob_store`):

- ``file:///path`` (or a plain path): a local directory, the embedded default;
- ``s3://bucket/prefix``: any S3-compatible object store through boto3. The endpoint, credentials and
  region come from the usual variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``/``AWS_DEFAULT_REGION``, or boto3's other sources: profiles,
  instance roles). The bucket must exist unless the store is opened with ``create_bucket=True``; the
  store checks at opening that the endpoint answers, the credentials are accepted and the bucket
  is there, and says which of them is wrong.

Keys are relative, ``/``-separated paths such as ``images/ab/<sha256>.jpg``, checked the same way
by every store (:func:`check_key`). Workers on different machines share nothing but the database and
this store: whatever a process needs as a file (:meth:`BlobStore.local_path`) is a copy in a bounded
read cache on its own machine (:class:`ReadCache`), never a path on a shared disk.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import uuid
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import unquote, urlparse


class BlobNotFound(KeyError):
    """No bytes are stored under this key."""


class BlobStoreError(RuntimeError):
    """The object store could not be reached, refused the credentials, lacks the bucket or failed a request;
    the message names the endpoint and the bucket."""


class BlobStore(Protocol):
    url: str

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def put_file(self, key: str, source: Path) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def open(self, key: str) -> IO[bytes]:
        """The key's bytes as a file object to read in chunks (close it); for large blobs served as they are."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def local_path(self, key: str) -> Path:
        """A readable file with the key's bytes: the file itself for a local store, otherwise a copy in this
        machine's bounded read cache (read it soon: a full cache evicts its least recently used files)."""
        ...

    def local_file(self, key: str, scratch: Path) -> Path:
        """A readable file with the key's bytes that lasts as long as ``scratch`` (a directory the caller
        owns and removes): the file itself for a local store, otherwise a copy in ``scratch`` (a hard link to
        the machine's read cache when both are on one filesystem). For many files needed at once (a training
        run's images, an export), which a bounded cache alone cannot promise to keep."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key in ``prefix``'s folder whose name starts with the rest of it; returns how many."""
        ...

    def keys(self, folder: str) -> Iterator[str]:
        """Every key under ``folder`` (a top-level folder such as ``images``), in no order."""
        ...

    def remove_partial_writes(self) -> int:
        """Delete what writes interrupted by a crash left (never a stored key); returns how many."""
        ...


# Writes go to a temporary file with this prefix in the target's folder, then are renamed.
_PARTIAL_PREFIX = ".tmp-"
_READ_CHUNK = 1024 * 1024


def check_key(key: str) -> list[str]:
    """The key's ``/``-separated parts; a ValueError for anything that could leave the store's root."""
    parts = key.split("/") if isinstance(key, str) else []
    if (
        not parts
        or not key
        or key.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or "\\" in key
        or "\x00" in key
        or parts[-1].startswith(_PARTIAL_PREFIX)
    ):
        raise ValueError(f"invalid blob key {key!r}")
    return parts


def _write_atomically(target: Path, write: Callable[[IO[bytes]], Any]) -> int:
    """``write`` into a temporary file beside ``target``, then rename it over: readers see all or nothing.
    Returns the size written (measured before the rename: another process may delete ``target`` at once)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_PARTIAL_PREFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            size = os.fstat(out.fileno()).st_size
        os.replace(tmp, target)
        return size
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalBlobStore:
    """A directory on this machine; writes are atomic (temporary file, then rename)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        _write_atomically(self._path(key), lambda out: out.write(data))

    def put_file(self, key: str, source: Path) -> None:
        target = self._path(key)

        def copy(out: IO[bytes]) -> None:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, out, _READ_CHUNK)

        _write_atomically(target, copy)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def open(self, key: str) -> IO[bytes]:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(key)
        return path

    def local_file(self, key: str, scratch: Path) -> Path:
        return self.local_path(key)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        folder, _, start = prefix.rpartition("/")
        directory = self._path(folder) if folder else self.root
        if not directory.is_dir():
            return 0
        doomed = [
            p for p in directory.iterdir()
            if p.is_file() and p.name.startswith(start) and not p.name.startswith(_PARTIAL_PREFIX)
        ]
        for path in doomed:
            path.unlink(missing_ok=True)
        return len(doomed)

    def keys(self, folder: str) -> Iterator[str]:
        directory = self._path(folder)
        if not directory.is_dir():
            return
        for path in directory.rglob("*"):
            if path.is_file() and not path.name.startswith(_PARTIAL_PREFIX):
                yield path.relative_to(self.root).as_posix()

    def remove_partial_writes(self) -> int:
        removed = 0
        for path in self.root.rglob(_PARTIAL_PREFIX + "*"):
            if path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("visiontrain", appauthor=False)) / "blob-cache"


DEFAULT_CACHE_BYTES = 10 * 1024**3


class ReadCache:
    """Copies of remote blobs on this machine, bounded in size, shared by every process that uses ``root``.

    A copy is written to a temporary file and renamed into place, so a reader never sees half a file and
    two processes fetching the same key at once both end with a whole one. Every hit touches the file's
    modification time; when a process's running total passes ``max_bytes`` it scans the directory
    (which counts what other processes added too) and deletes the least recently used files down to 90%
    of it. The copy just fetched is the most recent, so only a cache smaller than what one caller uses
    at once can lose a file before it is read (callers needing many files use ``local_file``).
    """

    def __init__(self, root: Path, max_bytes: int = DEFAULT_CACHE_BYTES):
        if max_bytes <= 0:
            raise ValueError(f"the blob cache's size cap must be positive, not {max_bytes}")
        self.root = Path(root).expanduser().resolve()
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._estimated_bytes: int | None = None  # this process's running total since its last scan

    def path(self, parts: list[str]) -> Path:
        return self.root.joinpath(*parts)

    def get(self, parts: list[str]) -> Path | None:
        """The cached copy (its use recorded), or None."""
        path = self.path(parts)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def fill(self, parts: list[str], download: Callable[[IO[bytes]], Any]) -> Path:
        """Write a copy with ``download`` (atomically), then keep the cache under its cap."""
        path = self.path(parts)
        self._added(_write_atomically(path, download))
        return path

    def discard(self, parts: list[str]) -> None:
        self.path(parts).unlink(missing_ok=True)

    def _added(self, size: int) -> None:
        with self._lock:
            if self._estimated_bytes is None:
                self._estimated_bytes = self._scan_total()
            else:
                self._estimated_bytes += size
            if self._estimated_bytes > self.max_bytes:
                self._estimated_bytes = self.evict(self.max_bytes * 9 // 10)

    def _files(self) -> list[tuple[float, int, Path]]:
        entries = []
        stale_partial = time.time() - 3600  # another process's download in progress is younger than this
        for path in self.root.rglob("*"):
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            if not path.is_file():
                continue
            if path.name.startswith(_PARTIAL_PREFIX):
                if info.st_mtime < stale_partial:
                    path.unlink(missing_ok=True)
                continue
            entries.append((info.st_mtime, info.st_size, path))
        return entries

    def _scan_total(self) -> int:
        return sum(size for _, size, _ in self._files())

    def evict(self, target_bytes: int) -> int:
        """Delete least recently used copies until the cache holds at most ``target_bytes``; returns what is left."""
        entries = sorted(self._files(), key=lambda entry: entry[0])
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= target_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
        return total

    def total_bytes(self) -> int:
        return self._scan_total()


# Bucket names as S3 accepts them (the rules every S3-compatible server follows).
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}
_CREDENTIAL_CODES = {
    "403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
    "AuthorizationHeaderMalformed",
}


class S3BlobStore:
    """Objects in an S3-compatible bucket under a prefix, through boto3; ``local_path`` reads through a
    :class:`ReadCache` on this machine.

    Uploads of files use boto3's managed transfer (multipart above 8 MiB, parts in parallel), so an
    interrupted one leaves an incomplete multipart upload behind, not an object: ``remove_partial_writes``
    aborts those under the prefix. Writing a key drops this machine's cached copy of it; keys are
    content-addressed or written once per version in practice, so other machines' copies stay right.
    """

    page_size = 1000  # keys per listing request (S3's largest)
    # Workers on other machines may be uploading right now: only older incomplete uploads are a crash's leftovers.
    partial_upload_grace_seconds = 6 * 3600.0
    delete_batch = 1000  # keys per DeleteObjects request (S3's limit)

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        cache_dir: str | Path | None = None,
        cache_max_bytes: int = DEFAULT_CACHE_BYTES,
        create_bucket: bool = False,
        client: Any = None,
    ):
        if not _BUCKET_NAME.match(bucket) or ".." in bucket:
            raise ValueError(
                f"invalid S3 bucket name {bucket!r}: 3 to 63 lower-case letters, digits, dots and hyphens"
            )
        prefix = prefix.strip("/")
        if prefix:
            check_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self._client = client if client is not None else self._make_client()
        self.endpoint = self._client.meta.endpoint_url
        self._where = f"bucket {bucket!r} at {self.endpoint}"
        # One cache directory may serve several stores (endpoints, buckets, prefixes): each gets its own folder.
        namespace = hashlib.sha256(f"{self.endpoint}\n{self.url}".encode()).hexdigest()[:16]
        self.cache = ReadCache(Path(cache_dir or default_cache_dir()) / namespace, cache_max_bytes)
        self._check_bucket(create_bucket)

    @staticmethod
    def _make_client() -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=10,
            read_timeout=60,
            retries={"max_attempts": 4, "mode": "standard"},
            # Path-style addressing: S3-compatible servers (SeaweedFS, MinIO, Ceph) rarely have bucket DNS names.
            s3={"addressing_style": "path"},
        )
        try:
            return boto3.session.Session().client("s3", config=config)
        except Exception as exc:  # a malformed AWS_ENDPOINT_URL or profile, say
            raise ValueError(f"cannot set up the S3 client: {exc}") from None

    # -- errors -------------------------------------------------------------------------------------

    @contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        """botocore's exceptions as the messages a deployer can act on; a missing key as BlobNotFound."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )
        from boto3.exceptions import S3UploadFailedError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if key is not None and (code in _NOT_FOUND_CODES or status == 404) and code != "NoSuchBucket":
                raise BlobNotFound(key) from None
            raise self._client_error(action, code, status, error.get("Message", "")) from None
        except S3UploadFailedError as exc:
            if "NoSuchBucket" in str(exc):
                raise BlobStoreError(self._missing_bucket()) from None
            raise BlobStoreError(f"object store {self._where}: {action} failed: {exc}") from None
        except (NoCredentialsError, PartialCredentialsError):
            raise BlobStoreError(
                f"no usable credentials for the object store at {self.endpoint}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or an AWS profile)"
            ) from None
        except EndpointConnectionError:
            raise BlobStoreError(
                f"cannot reach the object store at {self.endpoint} (bucket {self.bucket!r}): is it running, "
                "and is AWS_ENDPOINT_URL right?"
            ) from None
        except BotoCoreError as exc:
            raise BlobStoreError(f"object store {self._where}: {action} failed: {exc}") from None

    def _client_error(self, action: str, code: str, status: Any, message: str) -> BlobStoreError:
        if code == "NoSuchBucket":
            return BlobStoreError(self._missing_bucket())
        if code in _CREDENTIAL_CODES or status == 403:
            return BlobStoreError(
                f"the object store at {self.endpoint} refused the credentials for bucket {self.bucket!r} "
                f"({code or status}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and the bucket's permissions"
            )
        detail = f"{code}: {message}" if message else code or str(status)
        return BlobStoreError(f"object store {self._where}: {action} failed ({detail})")

    def _missing_bucket(self) -> str:
        return (
            f"bucket {self.bucket!r} does not exist at {self.endpoint}: create it, or let visiontrain create it "
            "(VISIONTRAIN_BLOB_CREATE_BUCKET=1)"
        )

    def _check_bucket(self, create: bool) -> None:
        from botocore.exceptions import ClientError

        with self._errors("checking the bucket"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if status != 404 and code not in ("404", "NoSuchBucket", "NotFound"):
                    raise
            if not create:
                raise BlobStoreError(self._missing_bucket())
            try:
                self._client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:  # another process created it first
                if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    # -- keys ---------------------------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, object_key: str) -> str:
        return object_key[len(self.prefix) + 1 :] if self.prefix else object_key

    # -- the protocol -------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> None:
        object_key = self._object_key(key)
        with self._errors(f"writing {key!r}"):
            self._client.put_object(Bucket=self.bucket, Key=object_key, Body=data)
        self.cache.discard(check_key(key))

    def put_file(self, key: str, source: Path) -> None:
        object_key = self._object_key(key)
        with self._errors(f"uploading {key!r}"):
            self._client.upload_file(str(source), self.bucket, object_key)
        self.cache.discard(check_key(key))

    def get_bytes(self, key: str) -> bytes:
        object_key = self._object_key(key)
        with self._errors(f"reading {key!r}", key):
            return self._client.get_object(Bucket=self.bucket, Key=object_key)["Body"].read()

    def open(self, key: str) -> IO[bytes]:
        object_key = self._object_key(key)
        with self._errors(f"reading {key!r}", key):
            return self._client.get_object(Bucket=self.bucket, Key=object_key)["Body"]

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except BlobNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        object_key = self._object_key(key)
        with self._errors(f"looking up {key!r}", key):
            return int(self._client.head_object(Bucket=self.bucket, Key=object_key)["ContentLength"])

    def _download(self, key: str) -> Callable[[IO[bytes]], None]:
        object_key = self._object_key(key)

        def download(out: IO[bytes]) -> None:
            with self._errors(f"reading {key!r}", key):
                self._client.download_fileobj(self.bucket, object_key, out)

        return download

    def local_path(self, key: str) -> Path:
        parts = check_key(key)
        cached = self.cache.get(parts)
        if cached is not None:
            return cached
        return self.cache.fill(parts, self._download(key))

    def local_file(self, key: str, scratch: Path) -> Path:
        target = Path(scratch).joinpath(*check_key(key))
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            # A hard link to the read cache's copy: a later run on this machine downloads nothing, and the
            # cache evicting its entry (unlinking it) leaves the scratch file whole.
            cached = self.local_path(key)
            link = target.with_name(f"{_PARTIAL_PREFIX}{uuid.uuid4().hex}")
            try:
                os.link(cached, link)
            except FileNotFoundError:  # evicted between the two calls: fetch it again
                continue
            except OSError:  # the scratch is on another filesystem (or links are refused): a copy of its own
                break
            os.replace(link, target)
            return target
        _write_atomically(target, self._download(key))
        return target

    def delete(self, key: str) -> None:
        object_key = self._object_key(key)
        with self._errors(f"deleting {key!r}"):
            self._client.delete_object(Bucket=self.bucket, Key=object_key)
        self.cache.discard(check_key(key))

    def _delete_objects(self, object_keys: list[str]) -> None:
        for start in range(0, len(object_keys), self.delete_batch):
            batch = object_keys[start : start + self.delete_batch]
            with self._errors("deleting objects"):
                response = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
            failed = response.get("Errors") or []
            if failed:
                first = failed[0]
                raise BlobStoreError(
                    f"object store {self._where}: could not delete {len(failed)} object(s), "
                    f"first {first.get('Key')!r} ({first.get('Code')}: {first.get('Message')})"
                )
            for object_key in batch:
                self.cache.discard(self._relative(object_key).split("/"))

    def delete_prefix(self, prefix: str) -> int:
        folder, _, start = prefix.rpartition("/")
        listing_prefix = (self._object_key(folder) + "/" if folder else (f"{self.prefix}/" if self.prefix else "")) + start
        doomed: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors(f"listing {prefix!r}"):
            # The delimiter keeps it to the folder itself, as the local store does.
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=listing_prefix, Delimiter="/", PaginationConfig={"PageSize": self.page_size}
            ):
                doomed.extend(item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/"))
        self._delete_objects(doomed)
        return len(doomed)

    def keys(self, folder: str) -> Iterator[str]:
        listing_prefix = self._object_key(folder) + "/"
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors(f"listing {folder!r}"):
            pages = paginator.paginate(
                Bucket=self.bucket, Prefix=listing_prefix, PaginationConfig={"PageSize": self.page_size}
            )
            for page in pages:
                for item in page.get("Contents", []):
                    # Some servers (SeaweedFS) list an emptied folder as a "name/" marker: not a key.
                    if not item["Key"].endswith("/"):
                        yield self._relative(item["Key"])

    def remove_partial_writes(self) -> int:
        """Abort the incomplete multipart uploads under the prefix started over ``partial_upload_grace_seconds`` ago."""
        listing_prefix = f"{self.prefix}/" if self.prefix else ""
        paginator = self._client.get_paginator("list_multipart_uploads")
        uploads: list[tuple[str, str]] = []
        started_before = time.time() - self.partial_upload_grace_seconds
        with self._errors("listing incomplete uploads"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=listing_prefix):
                uploads.extend(
                    (u["Key"], u["UploadId"]) for u in page.get("Uploads", []) if u["Initiated"].timestamp() < started_before
                )
        for object_key, upload_id in uploads:
            with self._errors("aborting an incomplete upload"):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id)
        return len(uploads)


def open_blob_store(
    url: str,
    *,
    cache_dir: str | Path | None = None,
    cache_max_bytes: int = DEFAULT_CACHE_BYTES,
    create_bucket: bool = False,
) -> BlobStore:
    """The store for ``url``: ``file:///dir`` or a plain directory path, or ``s3://bucket/prefix``.

    ``cache_dir`` and ``cache_max_bytes`` bound the read cache of a remote store (default: the user's cache
    directory, 10 GiB); ``create_bucket`` creates a missing bucket instead of refusing to start.
    """
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path) if parsed.scheme == "file" else url
        if not path:
            raise ValueError(f"blob URL {url!r} names no directory")
        return LocalBlobStore(path)
    if parsed.scheme == "s3":
        if parsed.query or parsed.fragment or parsed.username or parsed.port:
            raise ValueError(
                f"blob URL {url!r}: write s3://bucket/prefix (the endpoint and credentials come from "
                "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            )
        if not parsed.netloc:
            raise ValueError(f"blob URL {url!r} names no bucket: write s3://bucket/prefix")
        return S3BlobStore(
            parsed.netloc, unquote(parsed.path), cache_dir=cache_dir, cache_max_bytes=cache_max_bytes,
            create_bucket=create_bucket,
        )
    raise ValueError(
        f"unsupported blob storage URL scheme {parsed.scheme!r} in {url!r}: use file:///path/to/dir (or a plain "
        "path) or s3://bucket/prefix"
    )

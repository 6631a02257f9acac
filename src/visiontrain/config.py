"""Server configuration: where the platform keeps its database and bytes, and how it runs.

Separate from :class:`visiontrain.settings.TrainingSettings` (what one training run does). Values come
from arguments, then ``VISIONTRAIN_*`` environment variables, then defaults:

- ``VISIONTRAIN_DATA_DIR``: the data directory (default: the user data directory, created on first start)
- ``VISIONTRAIN_DATABASE_URL``: SQLAlchemy URL (default: ``sqlite:///<data dir>/visiontrain.db``;
  PostgreSQL as ``postgresql+psycopg://user:pass@host:port/db``)
- ``VISIONTRAIN_BLOB_URL``: where bytes live (default: ``file://<data dir>/blobs``); ``s3://bucket/prefix``
  for an S3-compatible object store, whose endpoint, credentials and region come from the usual AWS
  variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``)
- ``VISIONTRAIN_BLOB_CREATE_BUCKET``: create the object store's bucket when it is missing (default: refuse
  to start, naming the bucket and endpoint)
- ``VISIONTRAIN_BLOB_CACHE_DIR`` / ``VISIONTRAIN_BLOB_CACHE_GB``: this machine's read cache of an object
  store's bytes (checkpoints to predict with, files served) and its size cap, least recently used files
  evicted first (default: ``<data dir>/blob-cache``, 10 GB); unused with a ``file://`` store
- ``VISIONTRAIN_HEARTBEAT_SECONDS`` / ``VISIONTRAIN_STALE_AFTER_SECONDS``: worker liveness
- ``VISIONTRAIN_MAX_UPLOAD_MB``: largest single upload (an archive included)
- ``VISIONTRAIN_MAX_IMAGE_PIXELS``: largest image accepted (width x height, from its header, before decoding)
- ``VISIONTRAIN_PREDICT_DEVICE``: where the API process runs predictions (default ``cpu``: the GPU is the worker's)
- ``VISIONTRAIN_AUTH_FAILURE_LIMIT`` / ``VISIONTRAIN_AUTH_FAILURE_WINDOW_SECONDS``: failed token attempts
  allowed from one client address per window before it is answered 429
- ``VISIONTRAIN_FEATURE_CACHE_GB``: size cap of a worker's local feature cache (default 20 GB)

The data directory is made private (mode 700) and an SQLite database file in it 600.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

ENV_PREFIX = "VISIONTRAIN_"


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("visiontrain", appauthor=False))


class ServerConfig(BaseModel):
    """Where data lives and how the server and workers behave; immutable once built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Field(default_factory=default_data_dir, description="Directory for the database, bytes and runs.")
    database_url: str = Field("", description="SQLAlchemy database URL (empty: SQLite in the data directory).")
    blob_url: str = Field(
        "", description="Byte storage URL: file:///dir or s3://bucket/prefix (empty: file://<data_dir>/blobs)."
    )
    blob_create_bucket: bool = Field(False, description="Create the object store's bucket if it is missing.")
    blob_cache_dir: Path | None = Field(
        None, description="This machine's read cache of an object store's bytes (empty: <data_dir>/blob-cache)."
    )
    blob_cache_gb: float = Field(
        10.0, gt=0, description="Size cap of the blob read cache, in GB (least recently used files evicted first)."
    )
    heartbeat_seconds: float = Field(5.0, gt=0, description="How often a worker reports that it is alive.")
    stale_after_seconds: float = Field(
        60.0, gt=0, description="A running version whose worker is silent this long is marked failed."
    )
    poll_seconds: float = Field(1.0, gt=0, description="How often an idle worker looks for queued versions.")
    max_upload_mb: int = Field(
        512, ge=1, description="Largest accepted upload, in MB: one file, or one request of several files or an archive."
    )
    predictor_cache_size: int = Field(4, ge=1, description="Trained versions kept loaded for prediction.")
    max_image_pixels: int = Field(
        50_000_000,
        ge=1,
        le=1_000_000_000,
        description="Largest image accepted, width x height (read from the header before any pixel is decoded).",
    )
    predict_device: str = Field(
        "cpu",
        min_length=1,
        description="Device for predictions made by the API process (cpu, cuda, cuda:1, ...); the default leaves "
        "the GPU to the worker that trains.",
    )
    auth_failure_limit: int = Field(
        20, ge=1, description="Failed token attempts allowed from one client address per window (then 429)."
    )
    auth_failure_window_seconds: float = Field(
        60.0, gt=0, description="The window of auth_failure_limit, in seconds; also the longest Retry-After."
    )
    feature_cache_gb: float = Field(
        20.0, gt=0, description="Size cap of a worker's local feature cache, in GB (least recently used features are "
        "evicted beyond it)."
    )

    @model_validator(mode="after")
    def _fill_defaults(self) -> "ServerConfig":
        data_dir = Path(self.data_dir).expanduser().resolve()
        object.__setattr__(self, "data_dir", data_dir)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{data_dir / 'visiontrain.db'}")
        if not self.blob_url:
            object.__setattr__(self, "blob_url", (data_dir / "blobs").as_uri())
        cache_dir = Path(self.blob_cache_dir).expanduser().resolve() if self.blob_cache_dir else data_dir / "blob-cache"
        object.__setattr__(self, "blob_cache_dir", cache_dir)
        return self

    @property
    def runs_dir(self) -> Path:
        """Working directories of training runs (scratch: artifacts are copied to blob storage)."""
        return self.data_dir / "runs"

    @property
    def blob_cache_max_bytes(self) -> int:
        return int(self.blob_cache_gb * 1e9)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, **overrides: Any) -> "ServerConfig":
        """Arguments (ignored when None) > VISIONTRAIN_* environment variables > defaults."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = os.environ.get(ENV_PREFIX + name.upper())
            if raw not in (None, ""):
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The VISIONTRAIN_* variables that rebuild this configuration in another process (a worker)."""
        return {ENV_PREFIX + name.upper(): str(value) for name, value in self.model_dump().items()}

    @property
    def tmp_dir(self) -> Path:
        """Uploads being processed (swept at start-up: what a killed process left)."""
        return self.data_dir / "tmp"

    def prepare(self) -> "ServerConfig":
        """Create the data directory (first start), private to its owner (700); returns self."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self.data_dir.chmod(0o700)
        except PermissionError:  # a directory owned by someone else: leave it as its owner set it
            pass
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(mode=0o700, exist_ok=True)
        return self

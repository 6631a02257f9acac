"""The dependency bounds in pyproject.toml admit only versions that have what the code relies on."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _lower_bound(name: str) -> Version:
    requirements = [Requirement(r) for r in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]]
    (requirement,) = [r for r in requirements if r.name == name]
    bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
    assert bounds, f"{name} has no lower bound"
    return max(bounds)


def test_fastapi_bound_admits_only_versions_that_enforce_the_body_limit_and_have_sse():
    """Before 0.165 FastAPI(**extra) swallowed max_body_size without a word (every body accepted) and
    0.115..0.134 had no fastapi.sse: `fastapi>=0.115` installed either and the server started anyway."""
    import fastapi
    from fastapi.sse import EventSourceResponse  # noqa: F401  (the events route imports it)

    assert _lower_bound("fastapi") >= Version("0.165")
    assert Version(fastapi.__version__) >= _lower_bound("fastapi")
    parameters = inspect.signature(fastapi.FastAPI).parameters
    assert "max_body_size" in parameters  # a real parameter, not one more key in **extra
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def test_the_app_really_refuses_a_body_over_the_limit():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI(max_body_size=1024)

    @app.post("/echo")
    async def echo(body: dict) -> dict:  # type: ignore[type-arg]
        return body

    with TestClient(app) as client:
        assert client.post("/echo", json={"a": "x" * 100}).status_code == 200
        assert client.post("/echo", json={"a": "x" * 4000}).status_code == 413

"""Schemathesis against a live server (issue 7, item 9): cases generated from our own OpenAPI schema, valid
and invalid, on every operation: no server error, no status the schema does not declare, every response
body as the schema says.

The server is a real ``uvicorn`` process on 127.0.0.1 (the studio's route included), with a few examples
per operation so that the test stays quick; the database holds one project, view and image so that
some generated ids exist.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from visiontrain.config import ServerConfig  # noqa: E402
from visiontrain.services.platform import Platform  # noqa: E402

from platform_support import make_token  # noqa: E402

EXAMPLES = 5  # per operation and mode: enough to find what the issue found, quick on two cores
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data = tmp_path_factory.mktemp("schemathesis") / "data"
    config = ServerConfig(data_dir=data)
    platform = Platform.open(config)
    token = make_token(platform)
    platform.close()
    port = _free_port()
    env = {
        **os.environ,
        **config.to_env(),
        # Generated cases include wrong tokens on purpose: do not let them lock the test out.
        "VISIONTRAIN_AUTH_FAILURE_LIMIT": "1000000",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "visiontrain.api.app:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # until it answers (bounded: a server that never starts fails below)
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}")
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {token}"}
        project = httpx.post(f"{base}/api/v1/projects", json={"name": "seed"}, headers=headers).json()
        httpx.post(
            f"{base}/api/v1/projects/{project['id']}/views",
            json={"name": "seed", "kind": "classification", "concepts": ["a", "b"]},
            headers=headers,
        )
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_generated_requests_get_declared_answers(live_server: tuple[str, str]) -> None:
    """Valid and invalid cases for every operation (schemathesis' own pytest plugin does not load with
    this pytest, so its strategies are driven by Hypothesis here); every failure is collected, then reported."""
    base, token = live_server
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = 0
    calls = {"count": 0}
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
            def run(case) -> None:  # type: ignore[no-untyped-def]
                calls["count"] += 1
                case.call_and_validate(base_url=base, headers=headers, checks=CHECKS, timeout=30)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to make invalid (no parameters, no body)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported below
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {str(exc)[:600]}")
    assert operations >= 40
    assert calls["count"] >= operations * EXAMPLES, calls  # really ran: about EXAMPLES per operation and mode
    assert not failures, "\n\n".join(failures)


def test_the_three_strict_operations_say_what_they_accept(live_server: tuple[str, str]) -> None:
    base, _ = live_server
    spec = httpx.get(f"{base}/openapi.json").json()
    components = spec["components"]["schemas"]
    annotation = components["AnnotationSet"]
    assert annotation["minProperties"] == annotation["maxProperties"] == 1
    item = components["AnnotationItem"]
    assert item["maxProperties"] == 2 and 9.2e18 < item["properties"]["image_id"]["maximum"] <= 2**63  # 64-bit ids
    split = components["SplitSet"]["properties"]["image_ids"]
    assert split["uniqueItems"] is True and split["items"]["minimum"] == 1
    box = components["BoxModel"]["properties"]
    assert box["x_min"]["minimum"] == 0
    # Every authenticated operation declares its error answers with a body model.
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path == "/health":
                continue
            assert {"401", "422", "429"} <= set(operation["responses"]), (method, path)
            assert "$ref" in operation["responses"]["401"]["content"]["application/json"]["schema"]


def test_the_suggested_settings_body_is_declared(live_server: tuple[str, str]) -> None:
    base, _ = live_server
    spec = httpx.get(f"{base}/openapi.json").json()
    operation = spec["paths"]["/api/v1/views/{view_id}/suggested-settings"]["post"]
    assert {"401", "404", "422"} <= set(operation["responses"])

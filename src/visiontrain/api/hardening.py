"""What every request passes before a router sees it, and what every response carries.

- **Security headers** on every response: Content-Security-Policy (the studio's bundle, its stylesheet,
  thumbnails and object-URL previews; nothing from elsewhere, no framing), X-Frame-Options,
  X-Content-Type-Options, Referrer-Policy. A response that sets its own CSP (``/docs``) keeps it.
- **Request bodies beyond the upload limit** are refused from their Content-Length before a byte is
  read, or as soon as the bytes streamed in pass it, with a message naming the limit (FastAPI's own
  ``max_body_size`` answers a bare "Content Too Large", so it is not used).
- **JSON bodies** are parsed once here: NaN/Infinity (not JSON, though Python's parser takes them),
  NUL characters and integers beyond 64 bits are a 422 naming the field, instead of a 500 from the
  response encoder or the database.
- **Query strings** with NUL characters are a 422 naming the parameter.
- **Failed token attempts** are counted per client address (:class:`AuthThrottle`): past the limit the
  address is answered 429 with Retry-After until the window has passed.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_INT64 = 2**63 - 1
MIN_INT64 = -(2**63)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class _NonFinite:
    """What NaN, Infinity and -Infinity parse to, so that the walk below can name where they were."""

    def __init__(self, text: str):
        self.text = text


def _problem(value: Any, loc: list[str | int]) -> tuple[list[str | int], str] | None:
    """The first unusable value in a parsed JSON document: its location and what is wrong."""
    stack: list[tuple[Any, list[str | int]]] = [(value, loc)]
    while stack:  # iterative: a deeply nested body must not exhaust the interpreter's stack
        item, where = stack.pop()
        if isinstance(item, _NonFinite):
            return where, f"{item.text} is not a number JSON allows; send a finite number"
        if isinstance(item, str):
            if "\x00" in item:
                return where, "must not contain NUL characters (\\u0000)"
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not MIN_INT64 <= item <= MAX_INT64:
                return where, f"integer {str(item)[:30]}{'...' if len(str(item)) > 30 else ''} is beyond 64 bits"
        elif isinstance(item, float):
            if not math.isfinite(item):  # 1e999 parses as inf
                return where, "number is too large (not finite); send a finite number"
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if "\x00" in key:
                    return [*where, key], "field names must not contain NUL characters (\\u0000)"
                stack.append((child, [*where, key]))
        elif isinstance(item, list):
            for index in range(len(item) - 1, -1, -1):
                stack.append((item[index], [*where, index]))
    return None


def json_problem(body: bytes) -> tuple[list[str | int], str] | None:
    """Where a JSON body holds what no route accepts (None also when it is not valid JSON: FastAPI says so)."""
    try:
        parsed = json.loads(body, parse_constant=_NonFinite)
    except json.JSONDecodeError:
        return None
    except ValueError:  # Python refuses integers of more than 4300 digits
        return ["body"], "a number in the body has too many digits (integers must fit in 64 bits)"
    except RecursionError:
        return ["body"], "the body is nested too deeply"
    return _problem(parsed, ["body"])


def _validation_error(loc: list[str | int], message: str) -> bytes:
    return json.dumps({"detail": [{"loc": loc, "msg": message, "type": "value_error"}]}).encode()


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` inside a route once the body passes the limit: answered by the app's
    handlers as a 413 naming the limit (and no more of the body is read)."""

    def __init__(self, limit_mb: int):
        super().__init__(413, too_large_message(limit_mb))


def too_large_message(limit_mb: int, length: int | None = None) -> str:
    size = f"the request body is {length / 1024 / 1024:.0f} MB, " if length is not None else "the request body is "
    return (
        f"{size}over the {limit_mb} MB upload limit (the server's VISIONTRAIN_MAX_UPLOAD_MB): "
        "send smaller files or fewer at once"
    )


class HardeningMiddleware:
    """Pure ASGI (no response buffering): security headers, body-size pre-check, JSON and query checks."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, limit_mb: int):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limit_mb = limit_mb

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        length = _content_length(scope)
        if length is not None and length > self.max_body_bytes:
            detail = too_large_message(self.limit_mb, length)
            await _respond(send_with_headers, 413, json.dumps({"detail": detail}).encode())
            return
        received = 0
        outer_receive = receive

        async def limited() -> Message:
            nonlocal received
            message = await outer_receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.limit_mb)
            return message

        receive = limited

        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if "\x00" in name or "\x00" in value:
                    body = _validation_error(["query", name.replace("\x00", "")], "must not contain NUL characters")
                    await _respond(send_with_headers, 422, body)
                    return

        if scope["method"] in ("POST", "PUT", "PATCH", "DELETE") and _is_json(scope):
            chunks = []
            while True:
                try:
                    message = await receive()
                except BodyTooLarge as exc:
                    await _respond(send_with_headers, 413, json.dumps({"detail": exc.detail}).encode())
                    return
                if message["type"] != "http.request":
                    return  # the client went away
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            problem = json_problem(body)
            if problem is not None:
                await _respond(send_with_headers, 422, _validation_error(*problem))
                return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_with_headers)
            return

        await self.app(scope, receive, send_with_headers)


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AuthThrottle:
    """Failed token attempts per client address in a sliding window; thread-safe, bounded in memory."""

    MAX_ADDRESSES = 10_000

    def __init__(self, *, limit: int, window_seconds: float, clock: Any = time.monotonic):
        self.limit = limit
        self.window = window_seconds
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.get(address)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            self._failures.pop(address, None)
        return failures

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it may now."""
        with self._lock:
            now = self._clock()
            failures = self._recent(address, now)
            if len(failures) < self.limit:
                return None
            return max(1, math.ceil(failures[-self.limit] + self.window - now))

    def failed(self, address: str) -> None:
        with self._lock:
            now = self._clock()
            if address not in self._failures and len(self._failures) >= self.MAX_ADDRESSES:
                for old in list(self._iter_addresses())[: self.MAX_ADDRESSES // 10]:
                    self._failures.pop(old, None)
            self._failures.setdefault(address, deque(maxlen=self.limit * 2)).append(now)

    def _iter_addresses(self) -> Iterator[str]:
        return iter(self._failures)

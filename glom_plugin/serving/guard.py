"""The service's front door (ASGI middleware): API keys, request body size, per-request time limit.

It sits in front of every BentoML route, so a caller without a key, an oversized body or a request
that runs too long is answered before (or instead of) the model: 401, 413 and 504, each with a JSON
``{"error": ...}`` that says which ``serving.*`` setting decided it. Keys come from the environment
(``serving.api_keys_env``, comma-separated), never from the config file, so they are not logged with
the resolved config; no key set = no auth (a local or already-authenticated deployment). BentoML's own
probes (``/readyz``, ``/livez``, ``/healthz``, ``/metrics``) stay open for orchestrators.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from glom_plugin.config import ServingConfig

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/readyz", "/livez", "/healthz", "/metrics"})
# Read-only routes a browser, curl or an orchestrator may GET; BentoML routes are POST, so a GET there is
# answered as the same POST with an empty JSON body.
READ_ONLY_PATHS = frozenset({"/health", "/model_info"})


def api_keys_from_env(limits: ServingConfig) -> frozenset[str]:
    raw = os.environ.get(limits.api_keys_env, "")
    return frozenset(key.strip() for key in raw.split(",") if key.strip())


class RequestGuard:
    """``RequestGuard(app, api_keys=..., max_body_bytes=..., timeout_s=...)`` — see the module docstring."""

    def __init__(self, app: ASGIApp, api_keys: frozenset[str], max_body_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.api_keys = tuple(k.encode() for k in api_keys)
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if self.api_keys and not self._authorized(headers):
            await _reply(send, 401, "missing or unknown API key: send 'Authorization: Bearer <key>' or 'X-API-Key'",
                         [(b"www-authenticate", b'Bearer realm="glom"')])
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _reply(send, 413, f"request body of {int(declared):,} bytes is over serving.max_body_bytes="
                                    f"{self.max_body_bytes:,}")
            return
        body, more = await _read_body(receive, self.max_body_bytes)
        if scope.get("method") == "GET" and scope.get("path") in READ_ONLY_PATHS:
            scope, body = _as_empty_post(scope), b"{}"
        if more:
            await _reply(send, 413, f"request body is over serving.max_body_bytes={self.max_body_bytes:,}")
            return
        started = False

        async def replay() -> Message:
            nonlocal body
            if body is not None:
                chunk, body = body, None
                return {"type": "http.request", "body": chunk, "more_body": False}
            return await receive()

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            # a timeout scope on this task, not wait_for's new task per request (one task creation and
            # switch saved on every call)
            async with asyncio.timeout(self.timeout_s):
                await self.app(scope, replay, tracked_send)
        except TimeoutError:
            if not started:
                await _reply(send, 504, f"the request took longer than serving.request_timeout_s={self.timeout_s:g}")

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-key")
        auth = headers.get(b"authorization", b"")
        if given is None and auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        if not given:
            return False
        # every key compared, in constant time: the answer's timing says nothing about a key's prefix
        return any([hmac.compare_digest(given, key) for key in self.api_keys])


def _as_empty_post(scope: Scope) -> Scope:
    kept = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in (b"content-type", b"content-length")]
    headers = [*kept, (b"content-type", b"application/json"), (b"content-length", b"2")]
    return {**scope, "method": "POST", "headers": headers}


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, bool]:
    """(body, over the limit?) read up to ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(parts), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, True
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts), False


async def _reply(send: Send, status: int, error: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": payload})

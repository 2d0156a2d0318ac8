"""The service's front door (serving/guard.py) in front of a small ASGI app, driven by a real HTTP
client in-process: 401 without a key, 413 over the body limit, 504 past the time limit; probes open."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from glom_plugin.config import ServingConfig
from glom_plugin.serving.guard import RequestGuard, api_keys_from_env


async def echo_app(scope, receive, send) -> None:
    """Answers with the length of the body it received; /slow sleeps first."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await asyncio.sleep(1.0)
    payload = json.dumps({"received": len(body)}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})


def call(guard: RequestGuard, path: str, body: bytes = b"{}", headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://test") as client:
            return await client.post(path, content=body, headers=headers or {})

    return asyncio.run(go())


def test_api_keys_body_limit_and_time_limit() -> None:
    guard = RequestGuard(echo_app, api_keys=frozenset({"k-one", "k-two"}), max_body_bytes=2048, timeout_s=0.2)
    assert call(guard, "/expand").status_code == 401
    wrong = call(guard, "/expand", headers={"Authorization": "Bearer k-three"})
    assert wrong.status_code == 401 and "API key" in wrong.json()["error"]
    assert call(guard, "/expand", headers={"Authorization": "Bearer k-two"}).json() == {"received": 2}
    assert call(guard, "/expand", b"x" * 2048, headers={"X-API-Key": "k-one"}).json() == {"received": 2048}
    big = call(guard, "/expand", b"x" * 2049, headers={"X-API-Key": "k-one"})
    assert big.status_code == 413 and "serving.max_body_bytes" in big.json()["error"]
    slow = call(guard, "/slow", headers={"X-API-Key": "k-one"})
    assert slow.status_code == 504 and "serving.request_timeout_s" in slow.json()["error"]
    assert call(guard, "/readyz").status_code == 200  # probes stay open


def test_no_keys_means_no_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = ServingConfig()
    monkeypatch.delenv(limits.api_keys_env, raising=False)
    assert api_keys_from_env(limits) == frozenset()
    monkeypatch.setenv(limits.api_keys_env, " a , b,, ")
    assert api_keys_from_env(limits) == frozenset({"a", "b"})
    open_guard = RequestGuard(echo_app, api_keys=frozenset(), max_body_bytes=1024, timeout_s=5)
    assert call(open_guard, "/expand").status_code == 200

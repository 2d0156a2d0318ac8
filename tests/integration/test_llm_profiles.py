"""LLM profiles against a real OpenAI-protocol HTTP server on 127.0.0.1 (tests/support/openai_server.py):
retries on scripted 429/5xx/timeouts/malformed bodies, resume after the server dies mid-run and after the
client is killed mid-run, clear errors, and dry-run numbers. Requests are counted server-side."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.text.llm_builder import LLMProfileBuilder
from glom_plugin.text.llm_cache import ProfileCache
from glom_plugin.text.llm_client import (
    LLMError,
    LLMRequestError,
    LLMResponseError,
    LLMUnreachableError,
    resolve_api_key,
)
from glom_plugin.text.profile_inputs import item_inputs
from glom_plugin.text.profiles import build_profiles, dry_run_profiles
from tests.support.openai_server import ChatServer, answer_for, prompt_hash

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
N_ITEMS, N_USERS = 12, 6


def _tables(n_items: int = N_ITEMS, n_users: int = N_USERS) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for u in range(n_users):
        for j in range(4):
            i = (u * 3 + j) % n_items
            rows.append(
                {
                    "user_id": f"user{u}",
                    "item_id": f"item{i:02d}",
                    "rating": 5.0 - (u + j) % 3,
                    "rating_norm": (4.0 - (u + j) % 3) / 4,
                    "text": f"Review by user {u} of item {i}: {'great' if j % 2 else 'fine'} value",
                    "timestamp_ms": 1_600_000_000_000 + 1000 * (u * 10 + j),
                    "helpful_votes": j,
                }
            )
    items = pd.DataFrame(
        {
            "item_id": [f"item{i:02d}" for i in range(n_items)],
            "title": [f"Gadget {i}" for i in range(n_items)],
            "main_category": ["Electronics"] * n_items,
            "categories": [["Audio" if i % 2 else "Cameras"] for i in range(n_items)],
            "description": [f"A device number {i} with long battery life." for i in range(n_items)],
        }
    )
    return pd.DataFrame(rows), items


def _cfg(base_url: str, **extra: object) -> GlomConfig:
    overrides = {
        "profiles.builder": "llm",
        "profiles.domain": "electronics",
        "profiles.llm_base_url": base_url,
        "profiles.llm_model": "loopback-model",
        "profiles.llm_backoff_base_s": 0.01,
        "profiles.llm_timeout_s": 2.0,
        "profiles.llm_max_retries": 4,
        "profiles.llm_concurrency": 2,
        "profiles.max_items_per_user": 3,
    }
    overrides.update(extra)
    return GlomConfig().with_overrides(**overrides)


def _spawn_server(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.Popen, str]:
    port_file = tmp_path / f"{name}.port"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.openai_server", "--port-file", str(port_file), *args],
        cwd=REPO_ROOT,
        env=env,
    )
    deadline = time.time() + 20
    while not port_file.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"loopback server {name} did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text()}/v1"


def _log(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    return [tuple(line.split("\t")) for line in path.read_text().splitlines()]  # type: ignore[misc]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_items_first_then_users_embed_them_and_rerun_costs_nothing(tmp_path: Path) -> None:
    interactions, items = _tables()
    with ChatServer() as server:
        cfg = _cfg(server.base_url)
        tables = build_profiles(interactions, items, cfg, tmp_path)
        assert server.counts["ok"] == N_ITEMS + N_USERS
        assert set(tables.item_profiles["builder"]) == {"llm:loopback-model"}
        builder = LLMProfileBuilder(cfg, tmp_path)
        requests = builder.item_requests(item_inputs(interactions, items, cfg.profiles))
        by_id = tables.item_profiles.set_index("item_id")["profile"]
        for item_id, request in requests.items():  # P_v is the model's answer to M_v
            assert by_id[item_id] == answer_for(request.prompt)
        # Items first: the first N_ITEMS prompts the server saw are item prompts; user prompts embed P_v.
        user_prompts = server.prompts[N_ITEMS:]
        assert all(p.startswith("Purchased Items [") for p in user_prompts)
        assert all("Item profile: Profile " in p for p in user_prompts)
        assert any(by_id["item00"] in p for p in user_prompts)
        assert tables.user_profiles["template_id"].iloc[0] == builder.user_template_id
        again = build_profiles(interactions, items, cfg, tmp_path)
        assert server.total_requests == N_ITEMS + N_USERS  # everything came from the cache
        pd.testing.assert_frame_equal(again.user_profiles, tables.user_profiles)
        other_model = build_profiles(
            interactions, items, cfg.with_overrides(**{"profiles.llm_model": "m2"}), tmp_path
        )
        assert server.total_requests == 2 * (N_ITEMS + N_USERS)  # the model is part of the key
        assert set(other_model.user_profiles["builder"]) == {"llm:m2"}


def test_client_retries_429_5xx_timeouts_and_malformed_answers(tmp_path: Path) -> None:
    interactions, items = _tables()
    script = ["429", "500", "timeout", "malformed", "wrong_shape", "503"]
    with ChatServer(script=script, timeout_sleep_s=1.5) as server:
        cfg = _cfg(server.base_url, **{"profiles.llm_timeout_s": 0.5, "profiles.llm_concurrency": 4})
        tables = build_profiles(interactions, items, cfg, tmp_path)
        assert server.counts["ok"] == N_ITEMS + N_USERS
        deadline = time.time() + 5
        # The timed-out request is recorded once its sleep ends ("-client-gone": the client had hung up).
        while server.counts["timeout-client-gone"] + server.counts["timeout"] == 0 and time.time() < deadline:
            time.sleep(0.05)
        assert server.counts["timeout-client-gone"] + server.counts["timeout"] == 1, server.counts
        for behaviour in ("429", "500", "malformed", "wrong_shape", "503"):
            assert server.counts[behaviour] == 1, (behaviour, server.counts)
    assert (tables.item_profiles["profile"].str.startswith("Profile ")).all()
    assert len(ProfileCache(tmp_path / "llm_profiles")) == N_ITEMS + N_USERS


def test_server_killed_mid_run_then_resume_requests_only_the_missing(tmp_path: Path) -> None:
    interactions, items = _tables()
    log1, log2 = tmp_path / "run1.log", tmp_path / "run2.log"
    proc, url = _spawn_server(tmp_path, "dying", "--die-after", "5", "--log", str(log1))
    try:
        with pytest.raises(LLMError, match="127.0.0.1"):
            build_profiles(interactions, items, _cfg(url), tmp_path)
        assert proc.wait(timeout=10) == 17  # the server really died mid-run
    finally:
        if proc.poll() is None:
            proc.kill()
    cfg = _cfg(url)
    item_requests = LLMProfileBuilder(cfg, tmp_path).item_requests(
        item_inputs(interactions, items, cfg.profiles)
    )
    hash_to_key = {prompt_hash(r.prompt): r.key for r in item_requests.values()}
    answered = {h for outcome, h in _log(log1) if outcome == "ok"}
    cache = ProfileCache(tmp_path / "llm_profiles")
    cached = {h for h, key in hash_to_key.items() if key in cache}
    assert 5 <= len(answered) < N_ITEMS
    assert cached == answered  # every profile the server finished is on disk, nothing else
    shard = next((tmp_path / "llm_profiles").glob("shard-*.jsonl"))
    with shard.open("ab") as handle:  # and a torn last line (a crash mid-write) does not poison the cache
        handle.write(b'{"key": "deadbeef", "profile": "half')

    proc, url = _spawn_server(tmp_path, "healthy", "--log", str(log2))
    try:
        tables = build_profiles(interactions, items, _cfg(url), tmp_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    second = [h for outcome, h in _log(log2) if outcome == "ok"]
    second_items = {h for h in second if h in hash_to_key}
    assert second_items == set(hash_to_key) - cached  # only the missing item profiles were requested
    assert len(second) == len(second_items) + N_USERS and len(set(second)) == len(second)
    assert len(tables.item_profiles) == N_ITEMS and len(tables.user_profiles) == N_USERS
    assert ProfileCache(tmp_path / "llm_profiles").torn_lines == 1


CHILD = """
import sys, pandas as pd
from pathlib import Path
from glom_plugin.config import GlomConfig
from glom_plugin.text.profiles import build_profiles
tmp = Path(sys.argv[1])
cfg = GlomConfig().with_overrides(**{"profiles.builder": "llm", "profiles.llm_base_url": sys.argv[2],
    "profiles.llm_model": "loopback-model", "profiles.llm_concurrency": 1, "profiles.domain": "electronics",
    "profiles.max_items_per_user": 3})
build_profiles(pd.read_parquet(tmp / "i.parquet"), pd.read_parquet(tmp / "m.parquet"), cfg, tmp)
"""


def _complete_lines(directory: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in directory.glob("shard-*.jsonl"))


def test_client_killed_mid_run_leaves_a_readable_cache_and_resumes(tmp_path: Path) -> None:
    interactions, items = _tables()
    interactions.to_parquet(tmp_path / "i.parquet")
    items.to_parquet(tmp_path / "m.parquet")
    cache_dir = tmp_path / "llm_profiles"
    with ChatServer(latency_s=0.1) as server:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), server.base_url], env=env, cwd=REPO_ROOT
        )
        try:
            deadline = time.time() + 60
            while _complete_lines(cache_dir) < 4 and time.time() < deadline and child.poll() is None:
                time.sleep(0.01)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
        survived = ProfileCache(cache_dir)
        assert 4 <= len(survived) < N_ITEMS + N_USERS
        assert survived.torn_lines <= 1
        before = server.counts["ok"]
        tables = build_profiles(interactions, items, _cfg(server.base_url), tmp_path)
        assert server.counts["ok"] - before == N_ITEMS + N_USERS - len(survived)
        assert len(tables.user_profiles) == N_USERS


def test_unreachable_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    interactions, items = _tables(2, 1)
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    started = time.perf_counter()
    with pytest.raises(LLMUnreachableError, match=rf"{url} is unreachable.*profiles.llm_base_url"):
        build_profiles(interactions, items, _cfg(url, **{"profiles.llm_max_retries": 8}), tmp_path)
    assert time.perf_counter() - started < 10  # refused connections fail fast, not after full backoff


def test_wrong_shape_and_refused_requests_are_clear_errors(tmp_path: Path) -> None:
    interactions, items = _tables(2, 1)
    with ChatServer(always="malformed") as server:
        cfg = _cfg(server.base_url, **{"profiles.llm_concurrency": 1, "profiles.llm_max_retries": 2})
        with pytest.raises(LLMResponseError, match="wrong shape.*gave up after 3 attempts"):
            build_profiles(interactions, items, cfg, tmp_path / "a")
        assert server.total_requests == 3
    with ChatServer(always="wrong_shape") as server:
        with pytest.raises(LLMResponseError, match=r"no choices\[0\].message.content"):
            build_profiles(
                interactions, items, _cfg(server.base_url, **{"profiles.llm_max_retries": 1}), tmp_path / "b"
            )
    with ChatServer(script=["401"]) as server:
        cfg = _cfg(server.base_url, **{"profiles.llm_concurrency": 1})
        with pytest.raises(LLMRequestError, match="HTTP 401"):
            build_profiles(interactions, items, cfg, tmp_path / "c")
        assert server.total_requests == 1  # a refused request is not retried
    remote = GlomConfig().with_overrides(
        **{
            "profiles.llm_base_url": "https://llm.example.invalid/v1",
            "profiles.llm_api_key_env": "GLOM_TEST_UNSET_KEY",
        }
    )
    with pytest.raises(LLMRequestError, match="GLOM_TEST_UNSET_KEY"):
        resolve_api_key(remote.profiles)


def test_dry_run_spends_nothing_and_reports_the_cache(tmp_path: Path) -> None:
    interactions, items = _tables()
    with ChatServer() as server:
        cfg = _cfg(
            server.base_url,
            **{"profiles.llm_price_prompt_per_1k": 0.5, "profiles.llm_price_completion_per_1k": 1.5},
        )
        report = dry_run_profiles(interactions, items, cfg, tmp_path)
        assert server.total_requests == 0
        assert (report.item_prompts, report.user_prompts, report.to_request) == (
            N_ITEMS,
            N_USERS,
            N_ITEMS + N_USERS,
        )
        assert report.est_cost_usd == pytest.approx(
            report.est_prompt_tokens * 0.5 / 1000 + report.est_completion_tokens * 1.5 / 1000
        )
        build_profiles(interactions, items, cfg, tmp_path)
        after = dry_run_profiles(interactions, items, cfg, tmp_path)
        assert (after.cached_item_prompts, after.cached_user_prompts, after.to_request) == (
            N_ITEMS,
            N_USERS,
            0,
        )
        assert after.est_prompt_tokens == 0 and after.est_cost_usd == 0.0
        assert server.total_requests == N_ITEMS + N_USERS

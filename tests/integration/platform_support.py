"""Real services for the platform tests (redis-server, bentoml serve) on 127.0.0.1, and the small
synthetic run directory they read. Every process started here is stopped by its pid on exit."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from glom_plugin.data.schema import POLARITY_SCHEMA
from glom_plugin.layout import RunLayout
from glom_plugin.storage import write_parquet

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; yields its "127.0.0.1:PORT" connection string."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (ci/test.sh installs it with apt-get)")
    import redis

    port = free_port()
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {port} did not start") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)


@contextmanager
def bentoml_serve(service: str, env: dict[str, str], cwd: Path = REPO_ROOT, timeout: float = 90.0) -> Iterator[str]:
    """``bentoml serve SERVICE`` on a free loopback port; yields the base URL once /readyz answers 200."""
    import httpx

    port = free_port()
    log_path = Path(env.get("GLOM_TEST_LOG_DIR", "/tmp")) / f"bentoml-serve-{port}.log"
    # the service refuses to start without a salt (issue 14): tests serve with their own
    full_env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", "MLFLOW_DISABLE_TELEMETRY": "true",
                "GLOM_ID_SALT": os.environ.get("GLOM_ID_SALT", "integration-test-salt"), **env}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "bentoml"), "serve", service, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"bentoml serve not ready after {timeout}s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.3)
        yield url
    finally:
        # SIGTERM to the serve process stops its workers (FACTS.md); the group kill is the fallback.
        _stop(proc, timeout=20)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def write_run_inputs(layout: RunLayout, n_users: int = 60, n_items: int = 25, dim: int = 8, seed: int = 0) -> dict:
    """The files the graph and profiles stages write, in their schemas, from a seeded generator."""
    rng = np.random.default_rng(seed)
    users = [f"user{u:04d}" for u in range(n_users)]
    items = [f"item{i:03d}" for i in range(n_items)]
    pairs = [(u, it) for u in users for it in rng.choice(items, 5, replace=False)]
    edges = pd.DataFrame(pairs, columns=["user_id", "item_id"])
    edges["rating_norm"] = rng.random(len(edges))
    edges["sentiment"] = rng.random(len(edges))
    edges["polarity"] = 0.5 * edges["rating_norm"] + 0.5 * edges["sentiment"]
    edges["liked"] = edges["polarity"] >= 0.5
    edges["polarity_source"] = "rating+sentiment"
    write_parquet(edges, layout.polarity_edges, schema=POLARITY_SCHEMA)
    stamp = pd.Timestamp("2026-11-20 12:00", tz="UTC")
    embeddings = {}
    for key, ids, path in (
        ("user_id", users, layout.user_profile_embeddings),
        ("item_id", items, layout.item_profile_embeddings),
    ):
        emb = rng.normal(size=(len(ids), dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        embeddings[key] = emb
        table = pa.table(
            {
                key: ids,
                "embedding": pa.array(list(emb), type=pa.list_(pa.float32())),
                "model": ["all-MiniLM-L6-v2"] * len(ids),
                "text_hash": [f"h{i}" for i in range(len(ids))],
                "event_timestamp": pa.array([stamp] * len(ids), type=pa.timestamp("us", tz="UTC")),
            }
        )
        write_parquet(table, path)
    return {"users": users, "items": items, "edges": edges, "embeddings": embeddings}


def copy_feature_repo(target: Path) -> Path:
    """The checked-in feature repo, without any local registry/online-store state."""
    shutil.copytree(REPO_ROOT / "feature_repo", target, ignore=shutil.ignore_patterns("data", "__pycache__", "*.db"))
    return target

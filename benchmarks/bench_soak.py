"""Soak test of the service under load and faults (issue 14): a bounded run of concurrent clients on
loopback, valid and invalid requests mixed, one model reload in the middle; every answer is checked.

    nice -n 5 .venv/bin/python benchmarks/bench_soak.py                  # 600 s, 32 clients
    .venv/bin/python benchmarks/bench_soak.py --seconds 30 --out /tmp/soak.md   # a quick look

A real ``bentoml serve`` (127.0.0.1 only) serves a clustered 20k-user model from a local model
directory behind API keys and a small body limit. Valid requests (campaigns of 20 seeds from one
cluster, k=50, mean/max/probabilistic) must answer 200 with exactly the lookalikes the in-process
engine gives for the same model (computed before the run); invalid ones (no key, wrong key, empty or
unknown seeds, too few known seeds, k=0, an unknown aggregation, an extra field, broken JSON, a body
over the limit) must answer their 4xx. Half-way through, ``/reload`` swaps the model in every worker
(the same model re-read from disk: answers must not change across it). Counted: requests, 5xx, wrong
answers (a valid request not answered right, an invalid one not answered 4xx, a transport error),
p50 / p99 of valid requests. Results: ``benchmarks/results/soak.md`` and ``soak.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glom_plugin.config import GlomConfig  # noqa: E402
from glom_plugin.models.artifact import TrainedModel  # noqa: E402
from glom_plugin.serving.engine import ExpansionEngine  # noqa: E402
from glom_plugin.serving.schemas import ExpandRequest  # noqa: E402

KEY = "soak-key"
BODY_LIMIT = 64 << 10


def clustered_model(n: int, dim: int, clusters: int, seed: int) -> tuple[TrainedModel, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, clusters, n)
    centres = rng.normal(size=(clusters, dim))
    emb = (centres[labels] + 0.7 * rng.normal(size=(n, dim))).astype(np.float32)
    ids = np.array([f"{i:020x}" for i in range(n)])  # hashed-id shaped, as served ids are
    return TrainedModel(model_name="soak", user_ids=ids, user_embeddings=emb), labels


def valid_requests(model: TrainedModel, labels: np.ndarray, count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        members = np.flatnonzero(labels == i % (labels.max() + 1))
        seeds = model.user_ids[rng.choice(members, 20, replace=False)].tolist()
        out.append({"seed_ids": seeds, "k": 50, "aggregation": ("mean", "max", "probabilistic")[i % 3]})
    return out


def invalid_requests(valid: dict) -> list[tuple[str, dict, bytes, int]]:
    """(name, headers, body, expected status) for each kind of bad request."""
    auth = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
    body = lambda d: json.dumps(d).encode()  # noqa: E731
    return [
        ("no key", {"content-type": "application/json"}, body(valid), 401),
        ("wrong key", {**auth, "Authorization": "Bearer nope"}, body(valid), 401),
        ("empty seeds", auth, body({**valid, "seed_ids": []}), 400),
        ("unknown seeds", auth, body({**valid, "seed_ids": ["f" * 20] * 12}), 400),
        ("too few known seeds", auth, body({**valid, "seed_ids": valid["seed_ids"][:3]}), 400),
        ("k=0", auth, body({**valid, "k": 0}), 400),
        ("bad aggregation", auth, body({**valid, "aggregation": "median"}), 400),
        ("extra field", auth, body({**valid, "user": "x"}), 400),
        ("broken json", auth, body(valid)[:-7], 400),
        ("body over limit", auth, body({**valid, "campaign": "x" * (BODY_LIMIT + 10)}), 413),
    ]


async def soak(url: str, seconds: float, clients: int, valid: list[dict], expected: list[list[str]],
               reload_times: int) -> dict:
    import httpx

    auth = {"Authorization": f"Bearer {KEY}"}
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    wrong: Counter[str] = Counter()
    bad_answered_4xx = 0
    stop_at = time.monotonic() + seconds
    reload_done = asyncio.Event()
    reloads: list[dict] = []
    mismatches: list[dict] = []

    async def client(worker: int, http: httpx.AsyncClient) -> None:
        nonlocal bad_answered_4xx
        rng = random.Random(worker)
        while time.monotonic() < stop_at:
            if rng.random() < 0.25:
                name, headers, body, status = rng.choice(invalid_requests(valid[rng.randrange(len(valid))]))
                try:
                    response = await http.post("/expand", content=body, headers=headers)
                except httpx.HTTPError as err:
                    wrong[f"transport error: {type(err).__name__}"] += 1
                    continue
                statuses[response.status_code] += 1
                if response.status_code == status:
                    bad_answered_4xx += 1
                else:
                    wrong[f"{name}: {response.status_code} instead of {status}"] += 1
                continue
            i = rng.randrange(len(valid))
            started = time.perf_counter()
            try:
                response = await http.post("/expand", json=valid[i], headers=auth)
            except httpx.HTTPError as err:
                wrong[f"transport error: {type(err).__name__}"] += 1
                continue
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] += 1
            if response.status_code != 200:
                wrong[f"valid request: {response.status_code}"] += 1
            elif (got := [r["user_id"] for r in response.json()["lookalikes"]]) != expected[i]:
                wrong["valid request: other lookalikes"] += 1
                if len(mismatches) < 5:
                    first = next((j for j, (a, b) in enumerate(zip(got, expected[i], strict=False)) if a != b), min(len(got), len(expected[i])))
                    scores = [r["score"] for r in response.json()["lookalikes"]]
                    mismatches.append({"campaign": i, "first_difference_at_rank": first + 1, "n": len(got),
                                       "same_set": set(got) == set(expected[i]),
                                       "scores_near": scores[max(first - 1, 0): first + 2]})

    async def reloader(http: httpx.AsyncClient) -> None:
        await asyncio.sleep(seconds / 2)
        for _ in range(reload_times):  # a reload reaches one worker; send one per worker and then some
            started = time.perf_counter()
            response = await http.post("/reload", json={}, headers=auth, timeout=300)
            reloads.append({"status": response.status_code, "seconds": round(time.perf_counter() - started, 2)})
        reload_done.set()

    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        await asyncio.gather(reloader(http), *(client(w, http) for w in range(clients)))
    ms = np.asarray(latencies) * 1000
    return {
        "requests": int(sum(statuses.values()) + sum(v for k, v in wrong.items() if k.startswith("transport"))),
        "errors_5xx": int(sum(n for s, n in statuses.items() if s >= 500)),
        "wrong_answers": int(sum(wrong.values())),
        "wrong_by_kind": dict(wrong),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "bad_requests_answered_4xx": bad_answered_4xx,
        "valid_requests": len(latencies),
        "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
        "reloads": reloads,
        "mismatch_examples": mismatches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--campaigns", type=int, default=300)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "soak.md"))
    args = parser.parse_args()
    if args.seconds > 900:
        parser.error("the soak is bounded: --seconds at most 900")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GLOM_ID_SALT", "soak-salt")
    import yaml

    from benchmarks.bench_serving import machine
    from tests.integration.platform_support import bentoml_serve

    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    host = machine()
    cfg = GlomConfig().with_overrides(**{"serving.max_body_bytes": BODY_LIMIT, "expand.min_seeds": 10})
    model, labels = clustered_model(args.users, args.dim, 12, seed=3)
    valid = valid_requests(model, labels, args.campaigns, seed=4)
    engine = ExpansionEngine(model, cfg)
    expected = [[r.user_id for r in engine.expand(ExpandRequest(**v)).lookalikes] for v in valid]
    workers = os.cpu_count() if cfg.serving.workers == "cpu_count" else int(cfg.serving.workers)
    with tempfile.TemporaryDirectory(prefix="glom-soak-") as tmp:
        work = Path(tmp)
        model.save(work / "model")
        (work / "serving.yaml").write_text(yaml.safe_dump(cfg.model_dump()))
        env = {"GLOM_MODEL_URI": str(work / "model"), "GLOM_CONFIG": str(work / "serving.yaml"),
               "GLOM_TEST_LOG_DIR": str(work), "GLOM_API_KEYS": f"{KEY},second-key"}
        with bentoml_serve("glom_plugin.serving.service:LookalikeService", env, timeout=300) as url:
            print(f"serving on {url}; soaking {args.seconds:g}s with {args.clients} clients", flush=True)
            t0 = time.perf_counter()
            figures = asyncio.run(soak(url, args.seconds, args.clients, valid, expected, reload_times=2 * workers))
            figures["seconds"] = round(time.perf_counter() - t0, 1)
    result = {"seconds": figures.pop("seconds"), **figures, "command": " ".join(
        ["nice -n 5", ".venv/bin/python", "benchmarks/bench_soak.py", *sys.argv[1:]]),
        "machine": host, "date": started, "users": args.users, "dim": args.dim, "clients": args.clients,
        "workers": workers}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.write_text(render(result))
    print(render(result))


def render(r: dict) -> str:
    wrong = "; ".join(f"{k}: {v}" for k, v in r["wrong_by_kind"].items()) or "none"
    reloads = ", ".join(f"{x['status']} in {x['seconds']}s" for x in r["reloads"]) or "none"
    return f"""# Service soak (issue 14)

Command: `{r['command']}` · machine: {r['machine']} · date: {r['date']}

`bentoml serve` on 127.0.0.1 ({r['workers']} workers), {r['users']:,} users × {r['dim']} dims, API keys on,
body limit {BODY_LIMIT // 1024} KiB, expand.min_seeds=10; {r['clients']} concurrent clients, 25% invalid requests of
10 kinds, `/reload` sent {len(r['reloads'])}× half-way (answers: {reloads}).

| seconds | requests | valid | bad requests answered 4xx | 5xx | wrong answers | p50 ms | p99 ms |
|---:|---:|---:|---:|---:|---:|---:|---:|
| {r['seconds']} | {r['requests']:,} | {r['valid_requests']:,} | {r['bad_requests_answered_4xx']:,} | {r['errors_5xx']} | {r['wrong_answers']} | {r['p50_ms']} | {r['p99_ms']} |

Status codes: {r['statuses']}. Wrong answers by kind: {wrong}.
A valid request is right only if its lookalikes equal, in order, the in-process engine's for the same
model; an invalid one only if it gets its own 4xx (401 / 400 / 413).
"""


if __name__ == "__main__":
    main()

"""Serving numbers: faiss index build time and memory, ANN recall against exact top-k, batch throughput
(campaigns/s) at 10k / 100k / 1M users, and online latency p50/p99 at 1 / 8 / 32 concurrent clients
against a real `bentoml serve` on 127.0.0.1.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_serving.py            # writes benchmarks/results/serving.md
    .venv/bin/python benchmarks/bench_serving.py --sizes 10000 --requests 40   # quick look

Embeddings are synthetic but clustered (``--clusters`` Gaussian communities, like the planted communities
of the generated dataset), float32, ``--dim`` wide; each campaign's seeds come from one community, as an
advertiser's seed list would. Every answer is computed by the code the service runs
(``ExpansionEngine.expand`` / ``expand_many`` -> ``expand_audience`` over the faiss index); the exact
reference scores every user with the same aggregation (GLoM §3.7 retrieval by embedding similarity).
Request loops are bounded (``--requests`` per concurrency level) and only touch loopback.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glom_plugin.config import GlomConfig  # noqa: E402
from glom_plugin.expand.aggregation import l2_normalize  # noqa: E402
from glom_plugin.expand.index import build_index, choose_kind  # noqa: E402
from glom_plugin.models.artifact import TrainedModel  # noqa: E402
from glom_plugin.serving.engine import ExpansionEngine  # noqa: E402
from glom_plugin.serving.schemas import ExpandRequest  # noqa: E402

HNSW_MAX_USERS = 100_000


def clustered_embeddings(n: int, dim: int, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    labels = rng.integers(0, clusters, n)
    emb = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 200_000):  # bounded temporaries at 1M users
        stop = min(n, start + 200_000)
        emb[start:stop] = centres[labels[start:stop]] + 0.8 * rng.normal(size=(stop - start, dim)).astype(np.float32)
    return emb, labels


def campaign_rows(labels: np.ndarray, count: int, seeds: int, seed: int) -> list[np.ndarray]:
    """Seed rows of ``count`` campaigns, each drawn from one community (as an advertiser's list would be)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        members = np.flatnonzero(labels == rng.integers(0, labels.max() + 1))
        out.append(rng.choice(members, size=min(seeds, len(members)), replace=False))
    return out


def campaigns_for(labels: np.ndarray, user_ids: np.ndarray, count: int, seeds: int, k: int, seed: int) -> list[ExpandRequest]:
    return [
        ExpandRequest(seed_ids=user_ids[rows].tolist(), k=k, campaign=f"c{c}")
        for c, rows in enumerate(campaign_rows(labels, count, seeds, seed))
    ]


def exact_top_k(normalized: np.ndarray, index_of: dict[str, int], request: ExpandRequest) -> set[str]:
    """Exact sim(u, S) with mean aggregation (cosine to the seed centroid) over every non-seed user."""
    rows = np.array([index_of[s] for s in request.seed_ids])
    centroid = l2_normalize(normalized[rows].mean(axis=0, keepdims=True))[0]
    scores = normalized @ centroid
    scores[rows] = -np.inf
    top = np.argpartition(-scores, request.k)[: request.k]
    return set(top.tolist())


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def bench_size(n: int, args: argparse.Namespace, cfg: GlomConfig) -> list[dict]:
    emb, labels = clustered_embeddings(n, args.dim, args.clusters, seed=n)
    user_ids = np.array([f"u{i:07d}" for i in range(n)])
    model = TrainedModel(model_name="bench", user_ids=user_ids, user_embeddings=emb)
    normalized = l2_normalize(emb)
    index_of = model.user_index()
    requests = campaigns_for(labels, user_ids, args.campaigns, args.seeds, args.k, seed=1)
    truth = [exact_top_k(normalized, index_of, r) for r in requests]
    kinds = [choose_kind(n)]
    if n >= 100_000 and "ivf" not in kinds:
        kinds.append("ivf")
    rows = []
    for kind in kinds:
        if kind == "hnsw" and n > args.hnsw_max_users:
            rows.append({"n": n, "kind": kind, "skipped": f"HNSW build not run above {args.hnsw_max_users:,} users here (see note)"})
            continue
        gc.collect()
        before = rss_mb()
        start = time.perf_counter()
        index = build_index(emb, kind=kind, seed=0)
        build_s = time.perf_counter() - start
        index_mb = rss_mb() - before
        engine = ExpansionEngine(model, cfg, uri="bench", index=index)
        engine.expand(requests[0])  # warm-up
        start = time.perf_counter()
        answers = engine.expand_many(requests)
        batch_s = time.perf_counter() - start
        recalls = []
        for answer, expected in zip(answers, truth, strict=True):
            got = {index_of[r.user_id] for r in answer.lookalikes}
            recalls.append(len(got & expected) / len(expected))
        rows.append(
            {
                "n": n,
                "kind": kind,
                "build_s": build_s,
                "index_mb": index_mb,
                "recall": float(np.mean(recalls)),
                "recall_min": float(np.min(recalls)),
                "campaigns_per_s": len(requests) / batch_s,
                "ms_per_campaign": 1000 * batch_s / len(requests),
            }
        )
        print(f"  {n:>9,} {kind:5s} build {build_s:7.2f}s  +{index_mb:7.1f} MB  recall@{args.k} {rows[-1]['recall']:.4f}"
              f"  {rows[-1]['campaigns_per_s']:8.1f} campaigns/s", flush=True)
        del engine, index
    # The exact numpy path of expand_audience (no index) for comparison, where it applies.
    if n <= 500_000:
        from glom_plugin.expand.expander import expand_audience

        start = time.perf_counter()
        for r in requests[: min(16, len(requests))]:
            expand_audience(model, r.seed_ids, cfg.expand, k=r.k)
        exact_s = (time.perf_counter() - start) / min(16, len(requests))
        rows.append({"n": n, "kind": "exact (no index)", "campaigns_per_s": 1 / exact_s, "ms_per_campaign": 1000 * exact_s, "recall": 1.0})
    return rows


def http_bench(args: argparse.Namespace, workdir: Path) -> dict:
    """Online latency at 1 / 8 / 32 concurrent clients and batch throughput through `bentoml serve`."""
    import httpx
    import yaml

    from tests.integration.platform_support import bentoml_serve

    n = args.http_users
    emb, labels = clustered_embeddings(n, args.dim, args.clusters, seed=n)
    user_ids = np.array([f"u{i:07d}" for i in range(n)])
    TrainedModel(model_name="bench", user_ids=user_ids, user_embeddings=emb).save(workdir / "model")
    cfg = GlomConfig().with_overrides(**{"serving.index_kind": args.http_index_kind})
    (workdir / "serving.yaml").write_text(yaml.safe_dump(cfg.model_dump()))
    env = {"GLOM_MODEL_URI": str(workdir / "model"), "GLOM_CONFIG": str(workdir / "serving.yaml"), "GLOM_TEST_LOG_DIR": str(workdir)}
    requests = campaigns_for(labels, user_ids, 256, args.seeds, args.k, seed=2)
    bodies = [r.model_dump(exclude_none=True) for r in requests]
    out: dict = {"n": n, "latency": [], "batch": []}
    start = time.perf_counter()
    with bentoml_serve("glom_plugin.serving.service:LookalikeService", env, timeout=600) as url:
        out["startup_s"] = time.perf_counter() - start
        info = httpx.post(f"{url}/model_info", timeout=60).json()
        out["index_kind"] = info["index_kind"]
        with httpx.Client(base_url=url, timeout=120) as warm:
            for body in bodies[:5]:
                warm.post("/expand", json=body).raise_for_status()
        for clients in (1, 8, 32):
            total = min(args.requests, 10 * clients * 4) if clients > 1 else args.requests
            total = max(total, clients)
            latencies: list[float] = []
            errors = 0

            def worker(worker_id: int, clients: int = clients, total: int = total) -> tuple[list[float], int]:
                mine, bad = [], 0
                with httpx.Client(base_url=url, timeout=120) as client:
                    for i in range(worker_id, total, clients):
                        t0 = time.perf_counter()
                        response = client.post("/expand", json=bodies[i % len(bodies)])
                        mine.append(time.perf_counter() - t0)
                        bad += response.status_code != 200
                return mine, bad

            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=clients) as pool:
                for mine, bad in pool.map(worker, range(clients)):
                    latencies.extend(mine)
                    errors += bad
            wall = time.perf_counter() - t0
            ms = np.array(latencies) * 1000
            out["latency"].append(
                {"clients": clients, "requests": len(ms), "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
                 "rps": len(ms) / wall, "errors": errors}
            )
            print(f"  http {clients:>2} clients: p50 {out['latency'][-1]['p50']:.1f} ms  p99 {out['latency'][-1]['p99']:.1f} ms"
                  f"  {out['latency'][-1]['rps']:.1f} req/s  errors {errors}", flush=True)
        for size in (16, 64):
            calls = max(1, args.batch_calls)
            t0 = time.perf_counter()
            for c in range(calls):
                chunk = bodies[(c * size) % len(bodies) :][:size]
                response = httpx.post(f"{url}/expand_batch", json={"campaigns": chunk}, timeout=300)
                response.raise_for_status()
                assert len(response.json()) == len(chunk)
            wall = time.perf_counter() - t0
            out["batch"].append({"campaigns_per_call": size, "calls": calls, "campaigns_per_s": calls * size / wall})
            print(f"  http batch {size} campaigns/call: {calls * size / wall:.1f} campaigns/s", flush=True)
    return out


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()}-core {cpu}, {mem:.0f} GiB, no GPU; load average at start {os.getloadavg()[0]:.1f}"


def write_report(path: Path, args: argparse.Namespace, index_rows: list[dict], http: dict | None, started: str, host: str) -> None:
    lines = [
        "# Serving benchmark (BentoML service, faiss index)",
        "",
        f"- command: `{' '.join(['OMP_NUM_THREADS=' + os.environ.get('OMP_NUM_THREADS', '(unset)'), '.venv/bin/python', *sys.argv])}`",
        f"- date: {started}",
        f"- machine: {host} (shared with other jobs while measuring; numbers are upper bounds on latency)",
        f"- data: synthetic clustered user embeddings, {args.dim}-dim float32, {args.clusters} communities; campaigns of "
        f"{args.seeds} seeds from one community, k = {args.k}, mean aggregation (default)",
        f"- python {platform.python_version()}, faiss-cpu, OMP threads {os.environ.get('OMP_NUM_THREADS', 'unset')}",
        "",
        "## Index build, memory, recall and in-process batch throughput",
        "",
        "`build_index` (glom_plugin/expand/index.py) then `ExpansionEngine.expand_many` — the function the",
        "`expand_batch` API runs — over the campaigns; recall = |ANN top-k ∩ exact top-k| / k against scoring every user.",
        "Memory = process RSS growth while building (the index's own copy of the vectors plus graph/lists).",
        "",
        "| users | index | build s | index MB | recall@k (mean / min) | campaigns/s | ms/campaign |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in index_rows:
        if "skipped" in r:
            lines.append(f"| {r['n']:,} | {r['kind']} | — | — | {r['skipped']} | — | — |")
            continue
        build = f"{r['build_s']:.2f}" if "build_s" in r else "—"
        mem = f"{r['index_mb']:.0f}" if "index_mb" in r else "—"
        recall = f"{r['recall']:.4f} / {r['recall_min']:.3f}" if "recall_min" in r else "1 (by definition)"
        lines.append(f"| {r['n']:,} | {r['kind']} | {build} | {mem} | {recall} | {r['campaigns_per_s']:.1f} | {r['ms_per_campaign']:.1f} |")
    if http:
        lines += [
            "",
            f"## Over HTTP: `bentoml serve` on 127.0.0.1, {http['n']:,} users, index {http['index_kind']}",
            "",
            f"Start-up to /readyz (imports, model load, index build): {http['startup_s']:.1f} s. Each online request: "
            f"`/expand` with {args.seeds} seeds, k = {args.k}; clients are threads with their own keep-alive connection.",
            "",
            "| concurrent clients | requests | p50 ms | p99 ms | requests/s | errors |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in http["latency"]:
            lines.append(f"| {r['clients']} | {r['requests']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['rps']:.1f} | {r['errors']} |")
        lines += ["", "| `/expand_batch` campaigns per call | calls | campaigns/s |", "|---:|---:|---:|"]
        for r in http["batch"]:
            lines.append(f"| {r['campaigns_per_call']} | {r['calls']} | {r['campaigns_per_s']:.1f} |")
    lines += ["", "## Notes", ""] + [f"- {note}" for note in args.notes]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--campaigns", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--hnsw-max-users", type=int, default=HNSW_MAX_USERS)
    parser.add_argument("--http-users", type=int, default=10_000)
    parser.add_argument("--http-index-kind", default="auto")
    parser.add_argument("--requests", type=int, default=200, help="online requests per concurrency level (bounded)")
    parser.add_argument("--batch-calls", type=int, default=4)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serving.md"))
    parser.add_argument("--note", action="append", default=[], dest="notes")
    args = parser.parse_args()
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    started = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip() or datetime.now(UTC).isoformat()
    host = machine()
    print(f"machine: {host}", flush=True)
    cfg = GlomConfig()
    index_rows: list[dict] = []
    for n in (int(s) for s in args.sizes.split(",") if s):
        print(f"{n:,} users", flush=True)
        index_rows.extend(bench_size(n, args, cfg))
        gc.collect()
    http = None
    if not args.skip_http:
        with tempfile.TemporaryDirectory(prefix="glom-bench-serving-") as tmp:
            http = http_bench(args, Path(tmp))
    write_report(Path(args.out), args, index_rows, http, started, host)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

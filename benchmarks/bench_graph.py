"""Time and peak memory of the graph stage's parts: sentiment (VADER), polarity (§3.3), similarity
(§3.4 Eq. 1, memory backend) and the DGL knowledge-graph build (§3.1), on generated data shaped like
review logs (power-law user activity and item popularity, ~70% of reviews with text).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_graph.py --sizes 100000 1000000 \
        --out benchmarks/results/graph.md

Peak memory is the peak resident set size above the step's starting RSS, sampled every 10 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import psutil

from glom_plugin.config import GlomConfig
from glom_plugin.graph.build import build_lookalike_data
from glom_plugin.graph.knowledge_graph import build_knowledge_graph, knowledge_graph_triples
from glom_plugin.graph.polarity import polarity_from_sentiment, score_review_sentiment

POSITIVE = ["great", "excellent", "love", "perfect", "wonderful", "happy with", "recommend", "works well"]
NEGATIVE = ["terrible", "broken", "awful", "disappointed", "waste", "poor", "returned", "stopped working"]
NEUTRAL = ["the", "item", "arrived", "box", "size", "color", "price", "after", "a week", "for my son"]


def generate_interactions(n: int, seed: int = 0) -> pd.DataFrame:
    """~n distinct (user, item) interactions; Zipf(0.8) item popularity over n/10 items, Pareto(1.5) user
    activity over n/8 users (Amazon-review-like ratios: ~8 reviews per user, a heavy head of items)."""
    rng = np.random.default_rng(seed)
    n_users, n_items = max(10, n // 8), max(10, n // 10)
    activity = rng.pareto(1.5, n_users) + 1.0
    item_weight = 1.0 / np.arange(1, n_items + 1) ** 0.8
    users = rng.choice(n_users, size=int(n * 1.15), p=activity / activity.sum())
    items = rng.choice(n_items, size=len(users), p=item_weight / item_weight.sum())
    pairs = pd.DataFrame({"u": users, "i": items}).drop_duplicates().head(n)
    stars = rng.choice([1, 2, 3, 4, 5], size=len(pairs), p=[0.08, 0.06, 0.1, 0.2, 0.56])
    has_text = rng.random(len(pairs)) < 0.7
    texts = np.empty(len(pairs), dtype=object)
    for k in np.flatnonzero(has_text):
        mood = POSITIVE if stars[k] >= 4 else NEGATIVE if stars[k] <= 2 else POSITIVE + NEGATIVE
        words = list(rng.choice(NEUTRAL, size=6)) + list(rng.choice(mood, size=2))
        rng.shuffle(words)
        texts[k] = " ".join(words)
    return pd.DataFrame(
        {
            "user_id": np.char.add("u", pairs["u"].to_numpy().astype(str)).astype(object),
            "item_id": np.char.add("i", pairs["i"].to_numpy().astype(str)).astype(object),
            "rating": stars.astype(float),
            "rating_norm": (stars - 1) / 4.0,
            "review_title": None,
            "text": texts,
        }
    )


def generate_items(interactions: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = interactions["item_id"].unique()
    cats = [f"cat{k}" for k in range(40)]
    return pd.DataFrame(
        {
            "item_id": ids,
            "main_category": rng.choice(["Books", "Movies", "Electronics"], size=len(ids)),
            "categories": [list(rng.choice(cats, size=2, replace=False)) for _ in ids],
        }
    )


class PeakRSS:
    """Peak RSS above the starting RSS while the block runs (sampled by a thread)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval, self.process = interval, psutil.Process()

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def peak_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def measure(name: str, fn: Callable[[], Any], rows: list[dict[str, Any]], size: int) -> Any:
    process = psutil.Process()
    with PeakRSS() as rss:
        cpu_start = sum(process.cpu_times()[:2])
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        cpu = sum(process.cpu_times()[:2]) - cpu_start
    rows.append(
        {
            "interactions": size,
            "step": name,
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2),
            "peak_mib": round(rss.peak_mib, 1),
        }
    )
    print(f"{size:>9} {name:<22} {seconds:8.2f}s wall {cpu:8.2f}s cpu  +{rss.peak_mib:8.1f} MiB", flush=True)
    return result


def run(size: int, cfg: GlomConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    interactions = generate_interactions(size)
    items = generate_items(interactions)
    measure("import dgl", lambda: __import__("glom_plugin.dgl_compat"), rows, size)
    scored = measure("sentiment (vader)", lambda: score_review_sentiment(interactions, cfg), rows, size)
    polarity = measure("polarity", lambda: polarity_from_sentiment(scored, cfg), rows, size)
    data = measure("similarity + indexing", lambda: build_lookalike_data(polarity, items, cfg), rows, size)
    graph = measure("knowledge graph (DGL)", lambda: build_knowledge_graph(data, cfg.graph), rows, size)
    measure("triples", lambda: knowledge_graph_triples(data, cfg.graph), rows, size)
    return {
        "interactions": len(interactions),
        "users": data.n_users,
        "items": data.n_items,
        "similar_pairs": len(data.similarity),
        "corating_work": float((np.bincount(data.edges["item_idx"]).astype(float) ** 2).sum()),
        "kg_edges": int(graph.num_edges()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/graph.md"))
    args = parser.parse_args()
    cfg = GlomConfig()
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    shapes = [run(size, cfg, rows) for size in args.sizes]
    load_after = os.getloadavg()[0]

    machine = (
        f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, no GPU used"
    )
    date = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip()
    table = pd.DataFrame(rows)
    lines = [
        "# Graph stage: sentiment, polarity, similarity, knowledge graph",
        "",
        f"Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_graph.py --sizes {' '.join(map(str, args.sizes))}`",
        f"Machine: {machine}. Date: {date}. 1-min load average {load_before:.1f} before, {load_after:.1f} after "
        "(other jobs share the machine: wall times above 1 x core count mean contention).",
        f"Config: similarity min_corated={cfg.similarity.min_corated}, t_sim={cfg.similarity.t_sim}, "
        f"top_k={cfg.similarity.top_k}, block_size={cfg.similarity.block_size}, "
        f"block_pairs_budget={cfg.similarity.block_pairs_budget}; polarity alpha={cfg.polarity.alpha}, VADER.",
        "Data: generated power-law review log (n/8 users with Pareto(1.5) activity, n/10 items with Zipf(0.8) "
        "popularity, 70% with text). Similarity work grows with Σ_items degree² (all co-rating pairs).",
        "wall = elapsed seconds; cpu = user+system CPU seconds of this process (less sensitive to other jobs on "
        "the machine); peak_mib = peak RSS above the step's starting RSS (10 ms sampling).",
        "",
        "| interactions | users | items | Σ item degree² | similar pairs | KG edges (all relations, both directions) |",
        "|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {s['interactions']:,} | {s['users']:,} | {s['items']:,} | {s['corating_work']:.3g} | "
            f"{s['similar_pairs']:,} | {s['kg_edges']:,} |"
            for s in shapes
        ],
        "",
        "| interactions | step | wall s | cpu s | peak MiB |",
        "|---:|---|---:|---:|---:|",
        *[
            f"| {r['interactions']:,} | {r['step']} | {r['seconds']} | {r['cpu_seconds']} | {r['peak_mib']} |"
            for r in rows
        ],
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(table.to_string(index=False))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

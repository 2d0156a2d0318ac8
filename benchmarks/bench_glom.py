"""PM and GLM seconds per epoch and peak memory on synthetic power-law graphs of a few sizes.

Each size runs in a fresh subprocess so its peak memory (ru_maxrss; torch.cuda.max_memory_allocated on
CUDA) is its own. Prints one JSON line per size; ``--markdown`` also prints a table.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_glom.py --sizes 2000,10000 --device cpu
    .venv/bin/python benchmarks/bench_glom.py --sizes 10000,100000 --device cuda   # backend auto = torch
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp


def power_law_data(n_users: int, seed: int = 0, items_per_user: float = 10.0, similar_per_user: float = 2.0):
    """Users with Zipf-distributed activity buying Zipf-popular items; random similarity pairs."""
    from glom_plugin.graph.dataset import LookalikeData

    rng = np.random.default_rng(seed)
    n_items = max(n_users // 4, 50)
    activity = rng.zipf(2.0, n_users).clip(1, 200).astype(float)
    activity = np.maximum(1, np.round(activity * items_per_user / activity.mean())).astype(int)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity /= popularity.sum()
    users = np.repeat(np.arange(n_users), activity)
    items = rng.choice(n_items, size=len(users), p=popularity)
    pairs = np.unique(users * n_items + items)
    users, items = pairs // n_items, pairs % n_items
    rating = rng.uniform(0, 1, len(users))
    edges = pd.DataFrame(
        {
            "user_idx": users,
            "item_idx": items,
            "rating_norm": rating,
            "sentiment": rating,
            "polarity": rating,
            "liked": rating >= 0.5,
        }
    )
    n_sim = int(similar_per_user * n_users / 2)
    a, b = rng.integers(0, n_users, n_sim), rng.integers(0, n_users, n_sim)
    keep = a != b
    sim = np.unique(np.sort(np.stack([a[keep], b[keep]], 1), 1), axis=0)
    similarity = pd.DataFrame({"user_a": sim[:, 0], "user_b": sim[:, 1], "similarity": 0.8})
    return LookalikeData(
        user_ids=np.array([f"u{i}" for i in range(n_users)]),
        item_ids=np.array([f"i{i}" for i in range(n_items)]),
        edges=edges,
        similarity=similarity,
        item_categories=sp.csr_matrix((n_items, 0)),
    )


def run_one(args: argparse.Namespace) -> dict:
    import torch

    from glom_plugin.config import GlomConfig
    from glom_plugin.models.glm import resolve_backend
    from glom_plugin.models.kg import build_knowledge_triples
    from glom_plugin.models.training import fit_glm, fit_pm

    torch.set_num_threads(args.threads)
    data = power_law_data(args.one)
    profiles = args.profiles
    if profiles:
        rng = np.random.default_rng(1)
        data = data.with_profiles(
            rng.normal(size=(data.n_users, 384)).astype(np.float32),
            rng.normal(size=(data.n_items, 384)).astype(np.float32),
        )
    cfg = GlomConfig(device=args.device).with_overrides(
        **{
            "pm.dim": args.dim,
            "pm.epochs": args.epochs,
            "glm.epochs": args.epochs,
            "pm.val_fraction": 0.0,
            "glm.val_fraction": 0.0,
            "glm.aggregator": args.aggregator,
            "glm.backend": args.backend,
            "pm.batch_size": args.pm_batch,
            "glm.batch_size": args.glm_batch,
            "pm.use_profiles": profiles,
        }
    )
    triples = build_knowledge_triples(data, cfg.graph)
    start = time.perf_counter()
    pm = fit_pm(data, cfg, seed=0, triples=triples, progress=False)
    pm_total = time.perf_counter() - start
    if args.device == "cuda":
        pm_peak = torch.cuda.max_memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    glm = fit_glm(data, cfg, seed=0, pm=pm, progress=False)
    glm_total = time.perf_counter() - start
    out = {
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_interactions": len(data.edges),
        "kg_triples": len(triples),
        "dim": args.dim,
        "profiles": profiles,
        "aggregator": args.aggregator,
        "device": args.device,
        "glm_backend": resolve_backend(args.backend, args.device),
        "pm_batch": args.pm_batch,
        "glm_batch": args.glm_batch,
        "pm_s_per_epoch": round(float(np.mean(pm.history.epoch_seconds)), 3),
        "glm_s_per_epoch": round(float(np.mean(glm.history.epoch_seconds)), 3),
        "pm_total_s": round(pm_total, 2),
        "glm_total_s": round(glm_total, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": args.threads,
    }
    if args.device == "cuda":
        out["pm_cuda_peak_mb"] = round(pm_peak, 1)
        out["glm_cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out["gpu"] = torch.cuda.get_device_name()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,10000", help="comma-separated user counts")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--aggregator", default="attn1", choices=["mean", "attn1", "attn2"])
    parser.add_argument("--backend", default="auto", choices=["auto", "dgl", "torch"])
    parser.add_argument("--pm-batch", type=int, default=1024)
    parser.add_argument("--glm-batch", type=int, default=2048)
    parser.add_argument("--profiles", action="store_true", help="add random 384-d profile embeddings")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args)))
        return
    rows = []
    passthrough = [a for a in sys.argv[1:] if not a.startswith("--sizes") and a != "--markdown"]
    passthrough = [a for i, a in enumerate(passthrough) if not (i > 0 and passthrough[i - 1] == "--sizes")]
    for size in [int(s) for s in args.sizes.split(",")]:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            str(size),
            *[a for a in passthrough if a != str(args.sizes)],
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(json.dumps({"n_users": size, "error": proc.stderr.strip().splitlines()[-1:]}), flush=True)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.markdown and rows:
        print(
            f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}"
        )
        cols = [
            "n_users",
            "n_items",
            "n_interactions",
            "kg_triples",
            "dim",
            "device",
            "glm_backend",
            "pm_s_per_epoch",
            "glm_s_per_epoch",
            "peak_rss_mb",
        ]
        if args.device == "cuda":
            cols += ["pm_cuda_peak_mb", "glm_cuda_peak_mb"]
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for row in rows:
            print("| " + " | ".join(str(row.get(c, "")) for c in cols) + " |")


if __name__ == "__main__":
    main()

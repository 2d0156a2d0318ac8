"""Fit time, scoring time and peak memory of the GLoM paper's comparison systems (§4.2: LR, GraphSAGE,
LightGCN, Pinterest, MetaHeac) with their default configs, on a planted-community graph
(tests/support/planted.py), plus their PR-AUC on that graph's campaigns as a sanity check.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_baselines.py --users 5000 \
        --out benchmarks/results/baselines.md

Each model runs in its own fresh process (so one model's allocations do not hide another's); peak
memory is the peak resident set size above the RSS just before ``fit``, sampled every 10 ms, covering
fit and the scoring of all campaigns. One torch thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("DGLBACKEND", "pytorch")
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

MODELS = ["lr", "graphsage", "lightgcn", "pinterest", "metaheac"]


class PeakRss:
    """Samples this process's RSS every 10 ms; ``peak_above_start`` in bytes."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.start = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def peak_above_start(self) -> int:
        return self.peak - self.start


def run_one(name: str, users: int, items: int, communities: int, campaigns: int, seed: int) -> dict:
    import numpy as np
    import torch
    from sklearn.metrics import average_precision_score

    from glom_plugin.config import GlomConfig
    from glom_plugin.models.registry import create_model
    from tests.support.planted import make_campaigns, make_planted_data, training_view

    torch.set_num_threads(1)
    data = make_planted_data(n_users=users, n_communities=communities, n_items=items, seed=seed)
    tasks = make_campaigns(data, n_campaigns=campaigns, seed=seed + 1)
    train = training_view(data, tasks)
    model = create_model(name, GlomConfig(device="cpu"), seed=seed)
    # Import costs are not fit costs: DGL, and torch._dynamo (which the first optimizer pulls in, ~90 MiB).
    import glom_plugin.dgl_compat  # noqa: F401

    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])

    with PeakRss() as memory:
        start, cpu_start = time.perf_counter(), time.process_time()
        model.fit(train)
        fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        start = time.perf_counter()
        scores = [model.score_campaign(campaign) for campaign, _ in tasks]
        score_s = time.perf_counter() - start
    pr_auc = float(
        np.mean([average_precision_score(labels, s) for (_, labels), s in zip(tasks, scores, strict=True)])
    )
    positive_rate = float(np.mean([labels.mean() for _, labels in tasks]))
    return {
        "model": name,
        "users": data.n_users,
        "items": data.n_items,
        "edges": len(train.edges),
        "campaigns": len(tasks),
        "fit_s": fit_s,
        "fit_cpu_s": fit_cpu_s,
        "score_s_per_campaign": score_s / len(tasks),
        "peak_rss_mib": memory.peak_above_start / 2**20,
        "pr_auc": pr_auc,
        "positive_rate": positive_rate,
    }


def machine() -> str:
    import psutil

    try:
        gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        gpu = ""
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), {memory:.0f} GiB, " + (
        gpu or "no GPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--communities", type=int, default=10)
    parser.add_argument("--campaigns", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process: one model, JSON out
    args = parser.parse_args()

    if args.one:
        print(
            json.dumps(run_one(args.one, args.users, args.items, args.communities, args.campaigns, args.seed))
        )
        return

    rows = []
    for name in args.models:
        command = [sys.executable, __file__, "--one", name] + [
            f"--{k}={v}"
            for k, v in [
                ("users", args.users),
                ("items", args.items),
                ("communities", args.communities),
                ("campaigns", args.campaigns),
                ("seed", args.seed),
            ]
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr[-4000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{name}: fit {rows[-1]['fit_s']:.1f} s, peak +{rows[-1]['peak_rss_mib']:.0f} MiB", flush=True)

    first = rows[0]
    lines = [
        "# GLoM §4.2 baselines: fit time and peak memory",
        "",
        f"Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_baselines.py --users {args.users} "
        f"--items {args.items} --communities {args.communities} --campaigns {args.campaigns}`",
        f"Machine: {machine()}; torch threads = 1; load average at the end "
        f"{os.getloadavg()[0]:.1f} (the machine is shared: wall times are upper bounds).",
        f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"Planted-community graph: {first['users']} users, {first['items']} items, {first['edges']} training edges, "
        f"{args.communities} communities; {first['campaigns']} campaigns (half of an item's purchasers as seeds, "
        f"the rest hidden among 10x non-purchasers). Default configs (`GlomConfig().baselines`), CPU.",
        "Peak memory = peak RSS above the RSS just before `fit`, over fit + scoring all campaigns. "
        "Fit CPU = process time of the fit (one thread, so close to the wall time on an idle machine).",
        "",
        "| model | fit wall (s) | fit CPU (s) | score (ms / campaign) | peak RSS (MiB) | PR-AUC | positive rate |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['fit_s']:.1f} | {r['fit_cpu_s']:.1f} | {1000 * r['score_s_per_campaign']:.0f} | {r['peak_rss_mib']:.0f} | "
            f"{r['pr_auc']:.3f} | {r['positive_rate']:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        from glom_plugin.storage import write_text

        write_text(text, args.out)


if __name__ == "__main__":
    main()

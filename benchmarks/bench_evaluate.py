"""The evaluation harness on a real dataset: per-model fit / score seconds and peak memory as the
harness itself measures them (``glom_plugin.evaluate.resources``), the harness's own overhead (per-run
leak-free data rebuild, campaign sampling, metrics) and the resulting Table-2-style table.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_evaluate.py \
        --source ../shared/data/movielens-latest-small --format movielens --runs 2 --tasks 20 \
        --models random,similarity-cosine-prob,graph-constraint,lr --out benchmarks/results/evaluate.md

Ingest and graph stages run first into a scratch run directory (not timed here: see ingest.md/graph.md).
Profiles are off (``pm.use_profiles=false``), so the rebuild per run is polarity + similarity only.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("DGLBACKEND", "pytorch")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--format", default="movielens")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--models", default="random,similarity-cosine-prob,graph-constraint,lr")
    parser.add_argument("--set", action="append", default=[], help="extra config override key=value")
    parser.add_argument("--out", type=Path, default=None, help="write a Markdown result file here")
    args = parser.parse_args()

    from glom_plugin.config import GlomConfig, parse_override
    from glom_plugin.evaluate.report import markdown_table
    from glom_plugin.evaluate.runner import run_evaluation
    from glom_plugin.evaluate.training_data import EvaluationTables, build_training_data
    from glom_plugin.layout import RunLayout
    from glom_plugin.stages.graph import run_graph_stage
    from glom_plugin.stages.ingest import run_ingest

    scratch = Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    overrides = {
        "run_dir": str(scratch / "run"),
        "data.source_format": args.format,
        "data.source_path": args.source,
        "pm.use_profiles": False,
        "evaluate.max_tasks": args.tasks,
        **dict(parse_override(text) for text in args.set),
    }
    cfg = GlomConfig().with_overrides(**overrides)
    layout = RunLayout.at(cfg.run_dir)
    run_ingest(cfg, layout, echo=lambda *_: None)
    run_graph_stage(cfg, layout)

    # The harness's own per-run cost: rebuilding leak-free training data from the full tables.
    tables = EvaluationTables.load(layout)
    start = time.perf_counter()
    build_training_data(tables, cfg, layout)
    rebuild_s = time.perf_counter() - start

    models = [m for m in args.models.split(",") if m]
    start = time.perf_counter()
    result = run_evaluation(cfg, layout, models, runs=args.runs)
    total_s = time.perf_counter() - start
    summary = result.summary()
    model_s = sum(
        summary[m]["seconds"]["mean"] * summary[m]["runs_ok"] for m in models if summary[m]["runs_ok"]
    )
    lines = [
        "# Evaluation harness",
        "",
        f"- command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_evaluate.py {' '.join(sys.argv[1:])}`",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU(s), {platform.python_version()}; "
        f"load average at the end {os.getloadavg()[0]:.1f} (shared machine)",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- data: {args.format} ({len(tables.polarity):,} polarity edges, {len(tables.user_ids):,} users, "
        f"{len(tables.item_ids):,} items); {len(result.tasks)} tasks, {args.runs} runs",
        f"- leak-free training-data rebuild (polarity + Eq. 1 similarity, no profiles): {rebuild_s:.2f} s per run",
        f"- whole evaluation: {total_s:.1f} s, of which model fit + score {model_s:.1f} s; the rest is the "
        "harness (rebuilds, sampling, metrics, progress)",
        "",
        markdown_table(result),
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()

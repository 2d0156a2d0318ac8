"""The record of a two-protocol study (``bench_fusion.py``, ``bench_hybrid_settings.py``): per-run mean
PR-AUC of each row under the sampled and the realistic protocol, summarised and written as
``benchmarks/results/<stem>.json`` and ``.md`` with command, machine and date.

Why a module of its own: both studies score many rows on the evaluation's own campaigns and differ only in
what a row is, so the summary, the provenance and the table are one piece of code. ``study_parser`` /
``study_config`` are the command line every study on a prepared run directory shares (``bench_diagnosis``
too): which run directory, which name, how many runs and tasks, which overrides.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from glom_plugin.config import GlomConfig, load_config

PROTOCOLS: tuple[str, ...] = ("sampled", "all")
RESULTS = Path("benchmarks/results")

PerRun = dict[str, dict[str, list[float]]]  # protocol -> row -> per-run mean PR-AUC


def study_parser(description: str, runs: int = 5) -> argparse.ArgumentParser:
    """--run-dir (prepared), --name (of the result files), --runs, --tasks, --set key=value (repeatable)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    return parser


def study_config(args: argparse.Namespace) -> GlomConfig:
    """The configuration a study runs with: the defaults, the run directory, ``--tasks``, then ``--set``."""
    return load_config(None, [f"run_dir={args.run_dir}", f"evaluate.max_tasks={args.tasks}", *args.sets])


def summarise(per_run: PerRun) -> dict[str, dict[str, dict[str, float]]]:
    """protocol -> row -> {pr_auc (mean over runs), pr_auc_std, runs}."""
    return {
        mode: {row: {"pr_auc": float(sum(v) / len(v)), "pr_auc_std": float(_std(v)), "runs": len(v)} for row, v in rows.items()}
        for mode, rows in per_run.items()
    }


def _std(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5


def provenance(script: str, started: float) -> dict[str, object]:
    """command (as typed, quoted), machine (with the load at the end: a loaded machine is slower, not less
    accurate), date, wall seconds since ``started`` (``time.perf_counter()``)."""
    return {
        "command": shlex.join([".venv/bin/python", f"benchmarks/{script}", *sys.argv[1:]]),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, no GPU; load at end {os.getloadavg()[0]:.1f}",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def pr_auc_cells(summary: dict, row: str) -> list[str]:
    """"mean ± std" of ``row`` under each protocol, in ``PROTOCOLS`` order."""
    return [f"{summary[m][row]['pr_auc']:.3f} ± {summary[m][row]['pr_auc_std']:.3f}" for m in PROTOCOLS]


def write_study(stem: str, record: dict, title: str, notes: list[str], columns: list[str], rows: list[list[str]]) -> Path:
    """``<stem>.json`` (the record) and ``<stem>.md``: title, provenance, ``notes`` as bullets, the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"# {title}",
        "",
        f"- command: `{record['command']}`",
        f"- machine: {record['machine']}",
        f"- date: {record['date']}; wall {record['wall_s']} s; {record['runs']} runs x {record['tasks']} tasks",
        *(f"- {note}" for note in notes),
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if "PR-AUC" in c else "---" for c in columns) + "|",
        *("| " + " | ".join(cells) + " |" for cells in rows),
    ]
    markdown = RESULTS / f"{stem}.md"
    markdown.write_text("\n".join(lines) + "\n")
    return markdown

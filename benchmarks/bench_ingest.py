"""Ingestion benchmark: wall time and peak RSS of `run_ingest` on each shared dataset, and of
generate + ingest of the synthetic Amazon-2023 default at several sizes.

Each case runs in its own subprocess so peak RSS (ru_maxrss) is that case's alone.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ingest.py                 # datasets + 100k + 1M
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ingest.py --sizes 100000 1000000 10000000
    .venv/bin/python benchmarks/bench_ingest.py --out benchmarks/results/ingest.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = {
    "amazon2014": "amazon-digital-music-2014",
    "mal": "anime-mal",
    "movielens": "movielens-latest-small",
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_one(case: str, data_dir: Path) -> dict:
    """Runs inside the child process."""
    from glom_plugin.config import GlomConfig
    from glom_plugin.layout import RunLayout
    from glom_plugin.stages.ingest import run_ingest

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        layout = RunLayout.at(tmp)
        result: dict = {"case": case}
        if case.startswith("synthetic-"):
            from glom_plugin.data.synthetic import generate_amazon2023

            n = int(case.split("-", 1)[1])
            start = time.perf_counter()
            dataset = generate_amazon2023(layout.raw_dir, n, seed=7)
            result["generate_s"] = round(time.perf_counter() - start, 2)
            result["raw_mb"] = round((dataset.reviews_path.stat().st_size + dataset.meta_path.stat().st_size) / 2**20, 1)
            result["rss_after_generate_mb"] = round(_peak_rss_mb(), 1)
            cfg = GlomConfig().with_overrides(**{"data.source_format": "synthetic", "data.synthetic_reviews": n,
                                                 "data.synthetic_seed": 7})
        else:
            cfg = GlomConfig().with_overrides(**{"data.source_format": case,
                                                 "data.source_path": str(data_dir / DATASETS[case])})
        start = time.perf_counter()
        report = run_ingest(cfg, layout, echo=lambda _: None)
        result["ingest_s"] = round(time.perf_counter() - start, 2)
        result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        result.update(rows_read=report.rows_read, n_interactions=report.n_interactions, n_users=report.n_users,
                      n_items=report.n_items, rows_per_s=round(report.rows_read / max(result["ingest_s"], 1e-9)),
                      interactions_mb=round(layout.interactions.stat().st_size / 2**20, 1))
        return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--data-dir", default=os.environ.get("GLOM_DATA_DIR", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--out", default=None, help="write a markdown results table here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, Path(args.data_dir))))
        return
    cases = list(args.datasets) + [f"synthetic-{n}" for n in args.sizes]
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOM_ID_SALT=os.environ.get("GLOM_ID_SALT", "bench-salt"))
    rows = []
    for case in cases:
        proc = subprocess.run([sys.executable, __file__, "--one", case, "--data-dir", args.data_dir],
                              capture_output=True, text=True, env=env, cwd=REPO)
        if proc.returncode != 0:
            raise SystemExit(f"{case} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        write_markdown(rows, Path(args.out), " ".join(sys.argv))


def write_markdown(rows: list[dict], out: Path, command: str) -> None:
    cpu = f"{os.cpu_count()}-core CPU"
    try:
        import psutil

        cpu += f", {psutil.virtual_memory().total / 2**30:.0f} GiB"
    except ImportError:
        pass
    lines = [
        "# Ingestion benchmark",
        "",
        f"- command: `{command}`",
        f"- machine: {cpu}, no GPU, {platform.python_implementation()} {platform.python_version()} (shared with other jobs)",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        "| case | rows read | generate s | ingest s | rows/s (ingest) | peak RSS MB | raw gz MB | interactions MB | users | items |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['rows_read']:,} | {r.get('generate_s', '')} | {r['ingest_s']} | {r['rows_per_s']:,} | "
            f"{r['peak_rss_mb']} | {r.get('raw_mb', '')} | {r['interactions_mb']} | {r['n_users']:,} | {r['n_items']:,} |"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""Time and peak memory of `glom prepare` (ingest -> GX validate -> polarity -> similarity -> GX gate -> KG)
on each shared dataset and on generated data, one fresh process per case, as a user runs it.

    .venv/bin/python benchmarks/bench_prepare.py --datasets digital-music movielens mal \
        --synthetic 100000 1000000 --out benchmarks/results/prepare.md

Peak memory is the process's maximum RSS as GNU time reports it (``%M``); per-stage seconds come from the
run directory's ``stage_seconds.json`` that `glom prepare` writes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GLOM_DATA_DIR", REPO.parent / "shared" / "data"))
DATASETS = {
    "digital-music": ("amazon2014", DATA / "amazon-digital-music-2014" / "reviews_Digital_Music_5.json.gz"),
    "movielens": ("movielens", DATA / "movielens-latest-small"),
    "mal": ("mal", DATA / "anime-mal"),
}


def run_case(name: str, overrides: list[str], scratch: Path) -> dict:
    run_dir = scratch / name
    command = ["/usr/bin/time", "-f", "%e %M", str(REPO / ".venv/bin/glom"), "prepare", "--run-dir", str(run_dir)]
    for override in overrides:
        command += ["--set", override]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=scratch)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: glom prepare failed\n{proc.stderr[-3000:]}")
    elapsed, max_kb = proc.stderr.strip().splitlines()[-1].split()
    stages = json.loads((run_dir / "stage_seconds.json").read_text())["seconds"]
    report = json.loads((run_dir / "graph" / "graph_report.json").read_text())
    ingest = json.loads((run_dir / "ingest" / "ingest_report.json").read_text())
    return {
        "case": name,
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(int(max_kb) / 1024, 1),
        "stages": stages,
        "interactions": ingest.get("n_interactions"),
        "users": ingest.get("n_users"),
        "items": ingest.get("n_items"),
        "similar_pairs": report.get("edges", {}).get("similar") if isinstance(report.get("edges"), dict) else None,
        "elapsed_time_s": float(elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--synthetic", nargs="*", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    rows = []
    try:
        for name in args.datasets:
            fmt, path = DATASETS[name]
            rows.append(run_case(name, [f"data.source_format={fmt}", f"data.source_path={path}"], scratch))
            print(json.dumps(rows[-1]), flush=True)
        for size in args.synthetic:
            rows.append(
                run_case(f"synthetic-{size}", ["data.source_format=synthetic", f"data.synthetic_reviews={size}"], scratch)
            )
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    lines = [
        "# `glom prepare`: time and peak memory",
        "",
        f"- command: `.venv/bin/python benchmarks/bench_prepare.py --datasets {' '.join(args.datasets)} "
        f"--synthetic {' '.join(map(str, args.synthetic))}`",
        f"- machine: {os.cpu_count()} CPU cores, {platform.machine()}, no GPU; Python {platform.python_version()}",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}",
        "- peak RSS: GNU time's maximum resident set of the whole `glom prepare` process (imports included).",
        "  Synthetic cases include generating the raw Amazon-2023 files inside the ingest stage.",
        "",
        "| case | interactions kept | users | items | ingest s | validate s | graph s | total wall s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        stages = row["stages"]
        lines.append(
            f"| {row['case']} | {row['interactions']:,} | {row['users']:,} | {row['items']:,} | "
            f"{stages.get('ingest', float('nan')):.1f} | {stages.get('validate', float('nan')):.1f} | "
            f"{stages.get('graph', float('nan')):.1f} | {row['wall_s']:.1f} | {row['peak_rss_mb']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

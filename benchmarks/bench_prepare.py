"""Time and peak memory of `glom prepare` (ingest -> GX validate -> graph), per stage and per sub-stage,
on shared datasets and on generated data, one fresh `glom prepare` process per case, as a user runs it.

    .venv/bin/python benchmarks/bench_prepare.py --datasets digital-music movielens mal \\
        --synthetic 100000 1000000 --out benchmarks/results/prepare.md
    .venv/bin/python benchmarks/bench_prepare.py --datasets --synthetic 10000000 \\
        --raw 10000000=/tmp/raw10m --out benchmarks/results/prepare_10m.md --json benchmarks/results/prepare_10m.json

Figures, and where each comes from:
- wall / peak RSS of the whole process: GNU time (``%e``, ``%M``: the maximum resident set, imports included);
- seconds per stage: ``stage_seconds.json`` of the run directory;
- seconds and peak RSS per sub-stage: the stages' own meter (``glom_plugin/stages/meter.py``: the kernel's
  high-water mark, reset when a sub-stage starts), read from ``ingest_report.json``,
  ``validation/ingest/validation_report.json`` and ``graph_report.json`` (``profile``). A sub-stage's peak is
  the process's resident set while it ran, so it includes what earlier stages left allocated;
- load: the 1-minute load average sampled every 10 s during the case (other work on the same cores shows here).

``--raw SIZE=DIR`` reads an already generated synthetic dataset (``glom generate --out DIR --reviews SIZE``)
instead of generating it inside the ingest stage; the record says so. Without it, generation is part of
ingest, as in `glom prepare` on a fresh run directory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from glom_plugin.storage import write_json, write_text

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GLOM_DATA_DIR", REPO.parent / "shared" / "data"))
DATASETS = {
    "digital-music": ("amazon2014", DATA / "amazon-digital-music-2014" / "reviews_Digital_Music_5.json.gz"),
    "movielens": ("movielens", DATA / "movielens-latest-small"),
    "mal": ("mal", DATA / "anime-mal"),
}
# Where each stage's sub-stage profile is written, relative to the run directory.
PROFILES = {
    "ingest": Path("ingest") / "ingest_report.json",
    "validate": Path("validation") / "ingest" / "validation_report.json",
    "graph": Path("graph") / "graph_report.json",
}


class LoadSampler:
    """The 1-minute load average every ``period`` seconds while a case runs."""

    def __init__(self, period: float = 10.0) -> None:
        self.period, self.samples = period, [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        return {"mean": round(sum(self.samples) / len(self.samples), 2), "max": round(max(self.samples), 2)}


def stage_figures(run_dir: Path, seconds: dict[str, float]) -> dict[str, dict[str, float]]:
    """{"ingest": {"s", "peak_mb"}, "ingest/read": {...}, ...}: each stage, then its sub-stages."""
    out: dict[str, dict[str, float]] = {}
    for stage, relative in PROFILES.items():
        path = run_dir / relative
        profile: dict[str, dict[str, float]] = json.loads(path.read_text()).get("profile", {}) if path.is_file() else {}
        peak = max((figures["peak_mb"] for figures in profile.values()), default=float("nan"))
        out[stage] = {"s": seconds.get(stage, float("nan")), "peak_mb": peak}
        for name, figures in profile.items():
            out[f"{stage}/{name}"] = {"s": figures["s"], "peak_mb": figures["peak_mb"]}
    return out


def run_case(name: str, overrides: list[str], scratch: Path, raw: Path | None) -> dict[str, Any]:
    run_dir = scratch / name
    run_dir.mkdir(parents=True)
    if raw is not None:
        (run_dir / "raw").symlink_to(raw.resolve(), target_is_directory=True)
    command = ["/usr/bin/time", "-f", "%e %M", str(REPO / ".venv/bin/glom"), "prepare", "--run-dir", str(run_dir)]
    for override in overrides:
        command += ["--set", override]
    started = time.perf_counter()
    with LoadSampler() as load:
        proc = subprocess.run(command, capture_output=True, text=True, cwd=scratch)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: glom prepare failed\n{proc.stderr[-3000:]}")
    _, max_kb = proc.stderr.strip().splitlines()[-1].split()
    seconds = json.loads((run_dir / "stage_seconds.json").read_text())["seconds"]
    report = json.loads((run_dir / "graph" / "graph_report.json").read_text())
    ingest = json.loads((run_dir / "ingest" / "ingest_report.json").read_text())
    return {
        "case": name,
        "reviews": ingest.get("rows_read"),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(int(max_kb) / 1024, 1),
        "stages": stage_figures(run_dir, seconds),
        "interactions": ingest.get("n_interactions"),
        "users": ingest.get("n_users"),
        "items": ingest.get("n_items"),
        "similar_pairs": report.get("edges", {}).get("similar"),
        "sentiment_texts": report.get("sentiment_texts"),
        "raw_pregenerated": raw is not None,
        "load_avg_1min": load.summary(),
    }


def render(rows: list[dict[str, Any]], command: str, machine: str, date: str) -> str:
    lines = [
        "# `glom prepare`: time and peak memory, per stage and sub-stage",
        "",
        f"- command: `{command}`",
        f"- machine: {machine}",
        f"- date: {date}",
        "- wall and peak RSS: GNU time over the whole `glom prepare` process (imports included); stage and",
        "  sub-stage figures from the stages' meter (peak = the process's resident set while the part ran).",
        "- load: 1-minute load average sampled every 10 s during the case; above 2 means other work shared",
        "  the 2 cores, so wall times are upper bounds.",
        "",
        "| case | reviews read | interactions kept | users | items | ingest s | validate s | graph s | total wall s "
        "| peak RSS MB | load mean / max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        stages = row["stages"]
        lines.append(
            f"| {row['case']}{' (raw pre-generated)' if row['raw_pregenerated'] else ''} | {row['reviews']:,} | "
            f"{row['interactions']:,} | {row['users']:,} | {row['items']:,} | {stages['ingest']['s']:.1f} | "
            f"{stages['validate']['s']:.1f} | {stages['graph']['s']:.1f} | {row['wall_s']:.1f} | "
            f"{row['peak_rss_mb']:.0f} | {row['load_avg_1min']['mean']:.1f} / {row['load_avg_1min']['max']:.1f} |"
        )
    for row in rows:
        lines += ["", f"## {row['case']}: sub-stages", "", "| stage / part | s | peak RSS MB |", "|---|---:|---:|"]
        lines += [f"| {name} | {fig['s']:.1f} | {fig['peak_mb']:.0f} |" for name, fig in row["stages"].items()]
        if row.get("sentiment_texts"):
            texts = row["sentiment_texts"]
            lines += ["", f"Sentiment: {texts['texts']:,} review texts, {texts['distinct_texts_scored']:,} distinct "
                          f"ones scored by VADER on {texts['workers']} worker processes."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--synthetic", nargs="*", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--raw", nargs="*", default=[], help="SIZE=DIR: a pre-generated synthetic dataset")
    parser.add_argument("--out", type=Path, default=None, help="Markdown record")
    parser.add_argument("--json", type=Path, default=None, help="JSON record (one object per case; one case: the object)")
    args = parser.parse_args()
    raw_dirs = {int(size): Path(path) for size, path in (item.split("=", 1) for item in args.raw)}

    scratch = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    rows = []
    try:
        for name in args.datasets:
            fmt, path = DATASETS[name]
            rows.append(run_case(name, [f"data.source_format={fmt}", f"data.source_path={path}"], scratch, None))
            print(json.dumps(rows[-1]), flush=True)
        for size in args.synthetic:
            overrides = ["data.source_format=synthetic", f"data.synthetic_reviews={size}"]
            rows.append(run_case(f"synthetic-{size}", overrides, scratch, raw_dirs.get(size)))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    command = (
        f".venv/bin/python benchmarks/bench_prepare.py --datasets {' '.join(args.datasets)} "
        f"--synthetic {' '.join(map(str, args.synthetic))}"
        + (f" --raw {' '.join(args.raw)}" if args.raw else "")
    ).replace("  ", " ")
    machine = f"{os.cpu_count()} CPU cores, {platform.machine()}, no GPU; Python {platform.python_version()}"
    date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = render(rows, command, machine, date)
    print(text)
    if args.out:
        write_text(text, args.out)
    if args.json:
        records = [{**row, "command": command, "date": date, "machine": machine} for row in rows]
        write_json(records[0] if len(records) == 1 else records, args.json)


if __name__ == "__main__":
    main()

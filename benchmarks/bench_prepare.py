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


TREE_SAMPLE_S = 0.5


def tree_rss_kb(pid: int) -> int:
    """Resident set of ``pid`` and all its descendants, in kB (0 for processes already gone)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


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
    command = ["/usr/bin/time", "-f", "%e %M %U %S", str(REPO / ".venv/bin/glom"), "prepare", "--run-dir", str(run_dir)]
    for override in overrides:
        command += ["--set", override]
    started = time.perf_counter()
    with LoadSampler() as load, tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True, cwd=scratch)
        tree_peak_kb = 0
        while proc.poll() is None:
            tree_peak_kb = max(tree_peak_kb, tree_rss_kb(proc.pid))
            time.sleep(TREE_SAMPLE_S)
        err.seek(0)
        stderr = err.read()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: glom prepare failed\n{stderr[-3000:]}")
    _, max_kb, user_s, system_s = stderr.strip().splitlines()[-1].split()
    seconds = json.loads((run_dir / "stage_seconds.json").read_text())["seconds"]
    report = json.loads((run_dir / "graph" / "graph_report.json").read_text())
    ingest = json.loads((run_dir / "ingest" / "ingest_report.json").read_text())
    return {
        "case": name,
        "reviews": ingest.get("rows_read"),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(int(max_kb) / 1024, 1),
        # Sum over glom prepare and its worker processes, sampled every TREE_SAMPLE_S (may miss a short peak).
        "tree_peak_rss_mb": round(tree_peak_kb / 1024, 1),
        # CPU seconds of glom prepare and its worker processes: less sensitive than wall to other work.
        "cpu_s": round(float(user_s) + float(system_s), 1),
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
        "- wall, CPU and peak RSS: GNU time over the whole `glom prepare` process (imports included; CPU includes",
        "  its worker processes; GNU time's peak RSS is the largest single process, the main one); the peak of",
        "  the sum over all its processes is sampled every 0.5 s from /proc. Stage and sub-stage figures come",
        "  from the stages' meter (main process; peak = its resident set while the part ran).",
        "- load: 1-minute load average sampled every 10 s during the case; above 2 means other work shared",
        "  the 2 cores, so wall times are upper bounds.",
        "",
        "| case | reviews read | interactions kept | users | items | ingest s | validate s | graph s | total wall s "
        "| CPU s | peak RSS MB (main / all processes) | load mean / max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        stages = row["stages"]
        lines.append(
            f"| {row['case']}{' (raw pre-generated)' if row['raw_pregenerated'] else ''} | {row['reviews']:,} | "
            f"{row['interactions']:,} | {row['users']:,} | {row['items']:,} | {stages['ingest']['s']:.1f} | "
            f"{stages['validate']['s']:.1f} | {stages['graph']['s']:.1f} | {row['wall_s']:.1f} | {row['cpu_s']:.0f} | "
            f"{row['peak_rss_mb']:.0f} / {row['tree_peak_rss_mb']:.0f} | {row['load_avg_1min']['mean']:.1f} / {row['load_avg_1min']['max']:.1f} |"
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

"""Training time of PM + GLM (issue 13, "training in minutes") on a prepared run directory.

Trains PM then GLM with the default config (only ``--set`` overrides change it) on the graph and
profile embeddings a ``glom prepare`` + ``glom profiles`` run wrote, the way ``glom train`` does
(``load_training_data``, the graph stage's triples, ``fit_pm``, ``fit_glm``), without writing a model,
so the prepared run directory is only read. Records wall time, peak RSS and seconds per epoch:

    .venv/bin/python benchmarks/bench_train.py --run-dir runs/quality/mal --record after
    .venv/bin/python benchmarks/bench_train.py --run-dir runs/quality/mal --profile --set pm.epochs=2 ...

``--record NAME`` writes ``benchmarks/results/train_<dataset>.json`` (the ``after`` record's fields at the
top, else the latest's; every record under ``records``) and ``train_<dataset>.md``; ``--profile`` prints where the time goes
(cProfile, cumulative) instead of recording.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
HEADLINE = "idle"  # the default config on the otherwise idle 2-core machine: the condition issue 13 names


def machine() -> str:
    load = os.getloadavg()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} CPU cores, {mem_gb:.0f} GiB RAM, {platform.machine()}, no GPU used; "
        f"load average at start {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f} (above {os.cpu_count()}: other work shared the cores)"
    )


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def train(run_dir: Path, overrides: list[str]) -> dict:
    """PM then GLM as the training stages run them; returns the measured record."""
    import numpy as np

    from glom_plugin.config import load_config
    from glom_plugin.layout import RunLayout
    from glom_plugin.models.training import fit_glm, fit_pm
    from glom_plugin.stages.train import load_training_data, training_triples

    cfg = load_config(None, overrides, run_dir=str(run_dir))
    layout = RunLayout.at(run_dir)
    started = time.perf_counter()
    data = load_training_data(cfg, layout)
    triples = training_triples(cfg, layout, data)
    loaded = time.perf_counter()
    pm = fit_pm(data, cfg, seed=cfg.seed, triples=triples, progress=False)
    pm_done = time.perf_counter()
    glm = fit_glm(data, cfg, seed=cfg.seed, pm=pm, progress=False)
    done = time.perf_counter()

    def history(result) -> dict:
        h = result.history
        return {
            "epochs": len(h.epoch_seconds),
            "best_epoch": h.best_epoch,
            "best_val_mrr": h.best_val_mrr,
            "stopped_early": h.stopped_early,
            "selection": h.selection,
            "epoch_seconds": h.epoch_seconds,
        }

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall_s": round(done - started, 1),
        # CPU seconds of the whole process (import included): what the wall would be on an idle core at one
        # torch thread, since the shared machine's other jobs stretch the wall, not the CPU time
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "model": "pm + glm (" + ("glom-seedset" if cfg.glm.objective == "seedset" else cfg.glm.aggregator) + ")",
        "seconds_per_epoch": {
            "pm": round(float(np.mean(pm.history.epoch_seconds)), 3),
            "glm": round(float(np.mean(glm.history.epoch_seconds)), 3),
        },
        "pm_batch_size": pm.history.batch_size,
        "phase_wall_s": {
            "load": round(loaded - started, 1),
            "pm": round(pm_done - loaded, 1),
            "glm": round(done - pm_done, 1),
        },
        "graph": {
            "n_users": data.n_users,
            "n_items": data.n_items,
            "interactions": len(data.edges),
            "triples": len(triples),
        },
        "pm": history(pm),
        "glm": history(glm),
        "settings": {"pm": cfg.pm.model_dump(), "glm": cfg.glm.model_dump(), "overrides": overrides},
        "torch_threads": __import__("torch").get_num_threads(),
    }


def write_record(name: str, dataset: str, record: dict) -> tuple[Path, Path]:
    from glom_plugin.storage import write_json

    json_path, md_path = RESULTS / f"train_{dataset}.json", RESULTS / f"train_{dataset}.md"
    previous = json.loads(json_path.read_text()) if json_path.is_file() else {}
    records = dict(previous.get("records", {}))
    records[name] = record
    # the top-level fields (the shape issue 13 names) are the default-config record once there is one
    headline = HEADLINE if HEADLINE in records else name
    write_json({**records[headline], "record": headline, "records": records}, json_path)
    lines = [
        f"# Training time: PM + GLM on {dataset} (issue 13, \"training in minutes\")",
        "",
        "Script: `benchmarks/bench_train.py` (the training stages' path: run-directory data, the graph",
        "stage's triples, `fit_pm`, `fit_glm`; no model written). Default config unless the command says",
        "otherwise. `seconds_per_epoch` is the mean training time of an epoch (validation excluded);",
        "`wall_s` is everything, data loading and per-epoch validation included. Wall and s/epoch stretch",
        "with the shared machine's load (each record's machine line); `CPU s` is the process's CPU time",
        "(imports included, every thread; at one torch thread about the wall the same run takes on one idle",
        "core). The top-level fields of the JSON are the `idle` record: the default config, torch at its",
        "default threads, nothing else running.",
        "",
        "| record | date | commit | wall s | CPU s | peak RSS MB | PM batch | PM s/epoch | GLM s/epoch |"
        " PM epochs (best) | GLM epochs (best) | PM wall s | GLM wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in records.items():
        lines.append(
            f"| {key} | {r['date']} | {r['commit']} | {r['wall_s']} | {r.get('cpu_s', '—')} | {r['peak_rss_mb']} | "
            f"{r.get('pm_batch_size') or r.get('settings', {}).get('pm', {}).get('batch_size', '—')} | "
            f"{r['seconds_per_epoch']['pm']} | {r['seconds_per_epoch']['glm']} | "
            f"{r['pm']['epochs']} ({r['pm']['best_epoch']}) | {r['glm']['epochs']} ({r['glm']['best_epoch']}) | "
            f"{r['phase_wall_s']['pm']} | {r['phase_wall_s']['glm']} |"
        )
    lines.append("")
    for key, r in records.items():
        lines += [
            f"## {key}",
            "",
            f"- command: `{r['command']}`",
            f"- machine: {r['machine']}",
            f"- date: {r['date']}; torch threads: {r['torch_threads']}",
            f"- graph: {r['graph']}",
            f"- validation: PM best MRR {r['pm']['best_val_mrr']}, GLM best {r['glm']['selection']} MRR "
            f"{r['glm']['best_val_mrr']}",
        ]
        if r.get("note"):
            lines.append(f"- note: {r['note']}")
        lines.append("")
    from glom_plugin.storage import atomic_path

    with atomic_path(md_path) as tmp:
        Path(tmp).write_text("\n".join(lines))
    return json_path, md_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/quality/mal"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    parser.add_argument("--record", help="record name (e.g. before, after): writes the results files")
    parser.add_argument("--note", default="", help="a line kept with the record")
    parser.add_argument("--profile", action="store_true", help="print the cProfile top functions, record nothing")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--import-json", type=Path, help="record the JSON this script printed in an earlier run")
    args = parser.parse_args()
    for path in ("graph/triples.parquet", "graph/user_index.parquet"):
        if not (args.run_dir / path).is_file():
            sys.exit(f"{args.run_dir / path} not found: prepare the run directory first (benchmarks/quality.sh)")
    command = "OMP_NUM_THREADS={} {}".format(
        os.environ.get("OMP_NUM_THREADS", ""), shlex.join([".venv/bin/python", *sys.argv])
    )
    machine_line, date = machine(), datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if args.profile:
        profiler = cProfile.Profile()
        record = profiler.runcall(train, args.run_dir, args.overrides)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())
        print(json.dumps({k: record[k] for k in ("wall_s", "seconds_per_epoch", "phase_wall_s")}))
        return
    if args.import_json:
        text = args.import_json.read_text()
        record = json.loads(text[text.index("{") : text.rindex("}") + 1])
        record["note"] = args.note or record.get("note", "")
    else:
        record = train(args.run_dir, args.overrides)
        record.update(command=command, machine=machine_line, date=date, commit=git_commit(), note=args.note)
    print(json.dumps({k: v for k, v in record.items() if k != "settings"}, indent=1))
    if args.record:
        for path in write_record(args.record, args.run_dir.name, record):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()

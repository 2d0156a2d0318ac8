"""Every model family through the one face (issue 12), on a prepared real run directory: the seconds to
train it (``run_model_stage``, default config), to save and to load it, the size on disk, and the
latency of ``ExpansionEngine.expand`` per campaign — what one ``/expand`` request runs in the service
(embedding models through the ANN index, per-campaign models fitting the campaign at request time) —
against the service's own limit (``serving.request_timeout_s``).

    .venv/bin/python benchmarks/bench_model_face.py --run-dir runs/quality/digital-music
        # writes benchmarks/results/model_face.{md,json}

Campaigns: ``--campaigns`` seed lists of ``--seeds`` buyers of the most-bought items, k = 100.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glom_plugin.config import load_config  # noqa: E402
from glom_plugin.layout import RunLayout  # noqa: E402
from glom_plugin.models.saved import load_model, save_model  # noqa: E402
from glom_plugin.serving.engine import ExpansionEngine  # noqa: E402
from glom_plugin.serving.schemas import ExpandRequest  # noqa: E402
from glom_plugin.stages.train import run_model_stage  # noqa: E402

FAMILIES = [
    "glom-hybrid", "glom-seedset", "pm", "lr", "graphsage", "lightgcn", "pinterest", "metaheac",
    "similarity-jaccard-max", "similarity-cosine-prob", "segments", "graph-constraint", "cosine-centroid",
    "popularity",
]


def campaigns(model, n: int, seeds: int) -> list[list[str]]:
    data = model.data
    counts = np.bincount(data.edges["item_idx"], minlength=data.n_items)
    out = []
    for item in np.argsort(-counts)[:n]:
        buyers = np.unique(data.edges.loc[data.edges["item_idx"] == item, "user_idx"].to_numpy())
        out.append([str(u) for u in data.user_ids[buyers[:seeds]]])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--models", default=",".join(FAMILIES))
    parser.add_argument("--campaigns", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "model_face.md"))
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override for this invocation (recorded with its rows), e.g. baselines.metaheac.meta_epochs=2")
    parser.add_argument("--keep", action="store_true",
                        help="add to the rows already in the JSON record (models measured there are not redone)")
    args = parser.parse_args()

    run_dir = Path(args.run_dir)
    cfg = load_config(None, args.overrides, **{"run_dir": str(run_dir), "expand.min_seeds": 1})
    out = Path(args.out)
    previous = json.loads(out.with_suffix(".json").read_text()) if args.keep and out.with_suffix(".json").exists() else {}
    layout = RunLayout.at(run_dir)
    work = Path(tempfile.mkdtemp(prefix="model-face-"))
    scratch = RunLayout.at(work)  # models are written here, not into the measured run directory
    shutil.copytree(layout.root / "graph", scratch.root / "graph")
    for name in ("ingest", "profiles", "cache"):
        if (layout.root / name).exists():
            shutil.copytree(layout.root / name, scratch.root / name)
    rows: dict[str, dict] = dict(previous.get("models", {}))
    commands = list(previous.get("commands", []))
    command = "python benchmarks/bench_model_face.py " + shlex.join(sys.argv[1:])
    users = previous.get("users")
    load_before = os.getloadavg()
    for name in [m.strip() for m in args.models.split(",") if m.strip() and m.strip() not in rows]:
        start = time.perf_counter()
        trained = run_model_stage(cfg.with_overrides(run_dir=str(work)), scratch, name)
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        directory = save_model(trained.model, work / "saved" / name)
        save_s = time.perf_counter() - start
        start = time.perf_counter()
        model = load_model(directory)
        load_s = time.perf_counter() - start
        engine = ExpansionEngine(model, cfg)
        latencies = []
        for seeds in campaigns(model, args.campaigns, args.seeds):
            request = ExpandRequest(seed_ids=seeds, k=args.k)
            start = time.perf_counter()
            engine.expand(request)
            latencies.append(1000 * (time.perf_counter() - start))
        size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
        rows[name] = {
            "family": type(model).__name__, "kind": model.kind, "train_s": round(train_s, 2),
            "save_s": round(save_s, 3), "load_s": round(load_s, 3), "artifact_mb": round(size / 2**20, 2),
            "expand_p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "expand_p99_ms": round(float(np.percentile(latencies, 99)), 2),
            "within_timeout": bool(max(latencies) < 1000 * cfg.serving.request_timeout_s),
            "overrides": args.overrides, "load_average": os.getloadavg()[0],
        }
        print(name, rows[name], flush=True)
        users = model.n_users
        write_record(out, run_dir, users, args, cfg, rows, commands + [command], load_before)
    shutil.rmtree(work, ignore_errors=True)
    record = write_record(out, run_dir, users, args, cfg, rows,
                          commands + [command], load_before)
    write_markdown(out, record, cfg)
    print(out)


def write_record(out: Path, run_dir: Path, users: int, args: argparse.Namespace, cfg, rows: dict, commands: list[str],
                 load_before: tuple[float, float, float]) -> dict:
    record = {
        "run_dir": str(run_dir), "users": users, "campaigns": args.campaigns, "seeds": args.seeds, "k": args.k,
        "request_timeout_s": cfg.serving.request_timeout_s, "models": rows, "commands": commands,
        "command": " && ".join(commands),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    return record


def _load(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "—"


def write_markdown(out: Path, record: dict, cfg) -> None:
    run_dir, rows, args_like = record["run_dir"], record["models"], record
    load_before = record["load_average"]["before"]
    lines = [
        "# Every model family through the one face (issue 12)",
        "",
        f"Command: `{record['command']}`  ",
        f"Machine: {record['machine']}; date {record['date']}; load average before/after "
        f"{load_before[0]:.1f}/{record['load_average']['after'][0]:.1f} (2 cores shared with other work this session)  ",
        f"Run: `{run_dir}` ({record['users']} users); {args_like['campaigns']} campaigns of {args_like['seeds']} seeds, "
        f"k = {args_like['k']}; "
        f"default config. Expand = `ExpansionEngine.expand` per campaign (the service's request path); "
        f"limit `serving.request_timeout_s` = {cfg.serving.request_timeout_s:g} s.",
        "",
        "Overrides are per row (default config where empty); the load average is the 1-minute one after each row.",
        "",
        "| model | family | kind | train s | save s | load s | artifact MB | expand p50 ms | expand p99 ms | within limit | overrides | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['family']} | {r['kind']} | {r['train_s']} | {r['save_s']} | {r['load_s']} | "
                     f"{r['artifact_mb']} | {r['expand_p50_ms']} | {r['expand_p99_ms']} | {'yes' if r['within_timeout'] else 'NO'} | "
                     f"{' '.join(r.get('overrides', [])) or '—'} | {_load(r.get('load_average'))} |")
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

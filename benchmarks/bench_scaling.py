"""Scaling curves (issue 13): prepare, train (PM + GLM) and batch expansion against data size, both
backends where there are two, wall seconds and peak memory, with the fitted exponent of each curve.

    .venv/bin/python benchmarks/bench_scaling.py --sizes 10000 100000 1000000 \\
        --out benchmarks/results/scaling.md --json benchmarks/results/scaling.json

Cases, one fresh process each (``--case``, run by the orchestrator), as a user runs them:
- ``prepare``: ``glom prepare`` (ingest -> validate -> graph) on generated Amazon-2023 reviews (``glom
  generate``, done once per size before the cases and not timed), ``--set backend=local`` and ``spark``;
- ``train``: PM then GLM with the default config except ``pm.epochs`` / ``glm.epochs`` (``--epochs``) on
  the local backend's prepared run; seconds per epoch from the models' own history;
- ``batch``: ``glom expand-batch`` of ``--campaigns`` campaigns (20 seeds, k = 100) over a model artifact of
  N users × 64 dims (random unit-free embeddings: the cost depends on the shape, not the values), both backends.

Figures: wall = the case process's seconds; peak memory = the largest sum of resident sets over the case's
process tree (Spark's JVM and its Python workers are children of the case process), sampled every 0.2 s;
load = the 1-minute load average sampled every 5 s (other engineers' work on the same 2 cores shows here).
Exponent b of each curve: least squares of log(y) = a + b·log(size).
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
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ENV = {
    "DGLBACKEND": "pytorch", "MLFLOW_DISABLE_TELEMETRY": "true", "BENTOML_DO_NOT_TRACK": "True",
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "SPARK_LOCAL_IP": "127.0.0.1",
}
SEEDS_PER_CAMPAIGN = 20
BATCH_K = 100
BATCH_DIM = 64


class TreeSampler:
    """Peak summed RSS of a process and its descendants, and the load average, while it runs."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.peak_mb = 0.0
        self.load: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        last_load = time.monotonic()
        while not self._stop.wait(0.2):
            try:
                procs = [self.process, *self.process.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            self.peak_mb = max(self.peak_mb, total / 2**20)
            if time.monotonic() - last_load >= 5.0:
                self.load.append(os.getloadavg()[0])
                last_load = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.load.append(os.getloadavg()[0])


def run_case(args: list[str], timeout_s: float, log: Path | None = None) -> dict[str, Any]:
    """One case in a fresh process: its wall seconds, peak tree RSS, load, and the JSON it prints last.
    ``log``: where the case's stderr is kept, so a failure's cause (a Spark job's Java stack) can be read."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **ENV}, cwd=REPO)
    sampler = TreeSampler(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        sampler.stop()
        return {"ok": False, "why": f"stopped after the {timeout_s:.0f} s limit", "wall_s": round(time.perf_counter() - started, 1),
                "peak_mb": round(sampler.peak_mb, 1), "load": _load(sampler.load)}
    sampler.stop()
    record: dict[str, Any] = {"ok": proc.returncode == 0, "wall_s": round(time.perf_counter() - started, 1),
                              "peak_mb": round(sampler.peak_mb, 1), "load": _load(sampler.load)}
    if log is not None:
        log.write_text(err)
        record["log"] = str(log)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode == 0 and lines:
        record.update(json.loads(lines[-1]))
    else:
        record["why"] = _failure(err or out)
    return record


def _failure(text: str) -> list[str]:
    """The lines that name a failure's cause: the first exception or error line, and the last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ["no output"]
    causes = [line for line in lines if "Error" in line or "Exception" in line]
    return list(dict.fromkeys([*causes[:1], lines[-1]]))


def _load(samples: list[float]) -> dict[str, float]:
    return {"mean": round(float(np.mean(samples)), 2), "max": round(float(np.max(samples)), 2)}


# ----------------------------------------------------------------------------------------- the cases


def case_prepare(raw: Path, run_dir: Path, backend: str) -> dict[str, Any]:
    from glom_plugin import pipeline
    from glom_plugin.config import load_config

    cfg = load_config(overrides=[f"run_dir={run_dir}", f"backend={backend}", "data.source_format=amazon2023",
                                 f"data.source_path={raw / 'reviews.jsonl.gz'}"])
    log = pipeline.prepare(cfg)
    report = json.loads((run_dir / "ingest" / "ingest_report.json").read_text())
    graph = json.loads((run_dir / "graph" / "graph_report.json").read_text())
    return {"stages": log.seconds, "reviews": report["rows_read"], "users": report["n_users"],
            "items": report["n_items"], "edges": graph.get("edges", {}), "graph_seconds": graph.get("seconds", {})}


def case_train(run_dir: Path, epochs: int) -> dict[str, Any]:
    import inspect

    from glom_plugin import pipeline
    from glom_plugin.config import load_config

    cfg = load_config(overrides=[f"run_dir={run_dir}", f"pm.epochs={epochs}", f"glm.epochs={epochs}"])
    kwargs = {"model_name": "glom-seedset"} if "model_name" in inspect.signature(pipeline.train).parameters else {}
    started = time.perf_counter()
    trained = pipeline.train(cfg, register=False, **kwargs)
    wall = time.perf_counter() - started
    per_epoch = {}
    for stage in ("pm", "glm"):
        history = trained.metrics.get(stage) or {}
        seconds = history.get("epoch_seconds") or []
        per_epoch[stage] = {"epochs": len(seconds), "s_per_epoch": round(float(np.mean(seconds)), 2) if seconds else None}
    summary = trained.summary()  # TrainedModel or stages.train.TrainedRun: both say what was trained
    return {"model": summary.get("model_name"), "train_s": round(wall, 1), "per_epoch": per_epoch,
            "users": int(summary.get("n_users") or summary.get("users") or 0)}


def case_batch(users: int, campaigns: int, backend: str, work: Path) -> dict[str, Any]:
    from glom_plugin.config import load_config
    from glom_plugin.layout import RunLayout
    from glom_plugin.stages.backends import stage_backend

    layout = RunLayout.at(work / f"batch-{users}")
    campaigns_path = work / f"batch-{users}" / "campaigns.jsonl"
    cfg = load_config(overrides=[f"run_dir={layout.root}", f"backend={backend}"])
    started = time.perf_counter()
    summary = stage_backend("expand_batch", backend)(cfg, layout, campaigns_path, work / f"batch-{users}" / f"{backend}.parquet")
    return {"score_s": round(time.perf_counter() - started, 1), "scored": summary.scored, "lookalikes": summary.lookalikes}


def make_batch_inputs(users: int, campaigns: int, work: Path) -> None:
    """A model artifact of ``users`` random 64-dim users and a campaign file (once per size)."""
    from glom_plugin.data.hashing import hash_user_id
    from glom_plugin.layout import RunLayout
    from glom_plugin.models.artifact import TrainedModel

    layout = RunLayout.at(work / f"batch-{users}")
    path = layout.root / "campaigns.jsonl"
    if path.is_file():
        return
    rng = np.random.default_rng(users)
    ids = np.array([hash_user_id(f"user-{i}", "bench-scaling") for i in range(users)])
    TrainedModel("random-64", ids, rng.standard_normal((users, BATCH_DIM)).astype(np.float32)).save(layout.glm_dir)
    with path.open("w") as out:
        for c in range(campaigns):
            seeds = ids[rng.choice(users, SEEDS_PER_CAMPAIGN, replace=False)].tolist()
            out.write(json.dumps({"campaign": f"c{c}", "seed_ids": seeds, "k": BATCH_K}) + "\n")


# ------------------------------------------------------------------------------------- fit and record


def exponent(sizes: list[float], values: list[float]) -> float | None:
    """b of log(value) = a + b·log(size), least squares; None with fewer than two points."""
    points = [(s, v) for s, v in zip(sizes, values, strict=True) if v and v > 0]
    if len(points) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return round(float(np.polyfit(x, y, 1)[0]), 3)


def curves(cases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """(kind, backend) -> sizes, wall, peak and their exponents, from the successful cases."""
    out: dict[str, dict[str, Any]] = {}
    for case in cases:
        if not case.get("ok"):
            continue
        key = f"{case['kind']}:{case['backend']}"
        curve = out.setdefault(key, {"sizes": [], "wall_s": [], "peak_mb": []})
        curve["sizes"].append(case["size"])
        curve["wall_s"].append(case["wall_s"])
        curve["peak_mb"].append(case["peak_mb"])
    for curve in out.values():
        order = np.argsort(curve["sizes"])
        for name in ("sizes", "wall_s", "peak_mb"):
            curve[name] = [curve[name][i] for i in order]
        curve["wall_exponent"] = exponent(curve["sizes"], curve["wall_s"])
        curve["peak_exponent"] = exponent(curve["sizes"], curve["peak_mb"])
        # What one more unit costs between the two largest sizes: the fixed costs (imports, Spark start-up,
        # per-job overhead) that flatten the exponent at small sizes cancel out of it.
        if len(curve["sizes"]) >= 2:
            (s0, s1), (w0, w1), (m0, m1) = curve["sizes"][-2:], curve["wall_s"][-2:], curve["peak_mb"][-2:]
            curve["marginal_ms_per_1k"] = round(1e6 * (w1 - w0) / (s1 - s0), 2)
            curve["marginal_mb_per_1k"] = round(1e3 * (m1 - m0) / (s1 - s0), 3)
    return out


def plot(fitted: dict[str, dict[str, Any]], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for kind in sorted({key.split(":")[0] for key in fitted}):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for key, curve in sorted(fitted.items()):
            if not key.startswith(kind + ":"):
                continue
            backend = key.split(":")[1]
            for ax, metric, label in ((axes[0], "wall_s", "wall seconds"), (axes[1], "peak_mb", "peak MB (process tree)")):
                b = curve["wall_exponent" if metric == "wall_s" else "peak_exponent"]
                ax.loglog(curve["sizes"], curve[metric], marker="o",
                          label=f"{backend} (exponent {b:.2f})" if b is not None else backend)
                ax.set_xlabel("users" if kind == "batch" else "generated reviews")
                ax.set_ylabel(label)
                ax.grid(True, which="both", alpha=0.3)
        for ax in axes:
            ax.legend()
        fig.suptitle(f"{kind}: wall and peak memory vs size (log-log; 2 cores)")
        fig.tight_layout()
        path = out_dir / f"scaling_{kind}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path))
    return written


def write_markdown(record: dict[str, Any], path: Path) -> None:
    lines = [
        "# Scaling curves (issue 13)", "",
        f"Command: `{record['command']}`  ",
        f"Machine: {record['machine']}  ",
        f"Date: {record['date']}  ",
        "The load average of each case is in its row: Spark's own JVM and Python workers put it at 2-3 on these "
        "2 cores; above that, other work shared them (a load of 4 means each process got about half a core).", "",
        "Wall = the case process's seconds (imports and Spark start-up included); peak = the largest summed "
        "resident set of the case's process tree (Spark's JVM and Python workers included). Exponent = slope of "
        "the log-log least-squares line.", "",
        "| case | backend | size | wall s | peak MB | load mean / max | details |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for case in sorted(record["cases"], key=lambda c: (c["kind"], c["backend"], c["size"])):
        detail = case.get("why") if not case.get("ok") else _detail(case)
        load = case.get("load", {})
        lines.append(f"| {case['kind']} | {case['backend']} | {case['size']:,} | {case['wall_s']} | {case['peak_mb']} | "
                     f"{load.get('mean')} / {load.get('max')} | {detail} |")
    lines += ["", "## Fitted exponents", "",
              "Marginal = the cost of 1,000 more reviews (users, for batch) between the two largest sizes, where "
              "the fixed start-up and per-job costs that flatten the exponents at small sizes cancel out.", "",
              "| curve | sizes | wall exponent | peak exponent | marginal wall ms / 1k | marginal peak MB / 1k |",
              "|---|---|---:|---:|---:|---:|"]
    for key, curve in sorted(record["curves"].items()):
        lines.append(f"| {key} | {', '.join(f'{s:,}' for s in curve['sizes'])} | {curve['wall_exponent']} | "
                     f"{curve['peak_exponent']} | {curve.get('marginal_ms_per_1k')} | {curve.get('marginal_mb_per_1k')} |")
    lines += ["", "Plots: " + ", ".join(f"`{p}`" for p in record["plots"]), ""]
    if record.get("notes"):
        lines += ["## Notes", "", *[f"- {note}" for note in record["notes"]], ""]
    path.write_text("\n".join(lines))


def _detail(case: dict[str, Any]) -> str:
    if case["kind"] == "prepare":
        stages = ", ".join(f"{k} {v:.0f} s" for k, v in case.get("stages", {}).items())
        return f"{case.get('users', 0):,} users, {case.get('items', 0):,} items; {stages}"
    if case["kind"] == "train":
        pe = case.get("per_epoch", {})
        return (f"{case.get('model')}: {case.get('users', 0):,} users; PM {pe.get('pm', {}).get('s_per_epoch')} s/epoch, "
                f"GLM {pe.get('glm', {}).get('s_per_epoch')} s/epoch ({pe.get('glm', {}).get('epochs')} epochs)")
    return f"{case.get('scored')} campaigns scored in {case.get('score_s')} s, {case.get('lookalikes'):,} lookalikes"


def orchestrate(args: argparse.Namespace) -> None:
    from glom_plugin.data.synthetic import generate_amazon2023
    from glom_plugin.storage import write_json

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cases: list[dict[str, Any]] = []
    if Path(args.json).is_file() and args.resume:
        cases = json.loads(Path(args.json).read_text())["cases"]
    for extra in args.merge or []:  # cases another run of this script recorded (its --json)
        merged = json.loads(Path(extra).read_text())["cases"]
        keys = {(c["kind"], c["backend"], c["size"]) for c in merged}
        cases = [c for c in cases if (c["kind"], c["backend"], c["size"]) not in keys] + merged
    done = {(c["kind"], c["backend"], c["size"]) for c in cases if c.get("ok")}

    def record(kind: str, backend: str, size: int, case_args: list[str], limit: float) -> dict[str, Any]:
        if (kind, backend, size) in done:
            return next(c for c in cases if (c["kind"], c["backend"], c["size"]) == (kind, backend, size))
        print(f"==> {kind} {backend} {size:,}", flush=True)
        case = {"kind": kind, "backend": backend, "size": size,
                **run_case(case_args, limit, log=work / f"{kind}-{backend}-{size}.stderr.log")}
        print(f"    {json.dumps(case)}", flush=True)
        cases[:] = [c for c in cases if (c["kind"], c["backend"], c["size"]) != (kind, backend, size)] + [case]
        save()
        return case

    def save() -> None:
        fitted = curves(cases)
        plots = plot(fitted, Path(args.out).parent)
        rec = {"command": " ".join(["python", "benchmarks/bench_scaling.py", *sys.argv[1:]]),
               "machine": f"{platform.node()}: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
                          f"{_memory_gb()} GB RAM, Python {platform.python_version()}",
               "date": datetime.now(UTC).isoformat(timespec="seconds"), "cases": cases, "curves": fitted,
               "plots": plots, "notes": args.note or []}
        write_json(rec, Path(args.json))
        write_markdown(rec, Path(args.out))

    for size in args.sizes:
        raw = work / f"raw-{size}"
        if not (raw / "reviews.jsonl.gz").is_file():
            generate_amazon2023(raw, size, seed=7)
        for backend in args.backends:
            if size > args.max_spark_prepare and backend == "spark":
                continue
            run_dir = work / f"prepare-{backend}-{size}"
            record("prepare", backend, size, ["--case", "prepare", "--raw", str(raw), "--run-dir", str(run_dir),
                                              "--backend", backend], args.limit)
        if size <= args.max_train:
            record("train", "local", size, ["--case", "train", "--run-dir", str(work / f"prepare-local-{size}"),
                                             "--epochs", str(args.epochs)], args.limit)
    for users in args.batch_users:
        if any(("batch", backend, users) not in done for backend in args.backends):  # inputs only for a case to run
            make_batch_inputs(users, args.campaigns, work)
        for backend in args.backends:
            record("batch", backend, users, ["--case", "batch", "--users", str(users), "--campaigns", str(args.campaigns),
                                             "--backend", backend, "--work", str(work)], args.limit)
    save()


def _memory_gb() -> int:
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=["prepare", "train", "batch"])
    parser.add_argument("--raw")
    parser.add_argument("--run-dir")
    parser.add_argument("--backend", default="local")
    parser.add_argument("--users", type=int)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch-users", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--backends", nargs="*", default=["local", "spark"])
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-train", type=int, default=10_000_000, help="largest size the train case runs at")
    parser.add_argument("--max-spark-prepare", type=int, default=10_000_000)
    parser.add_argument("--limit", type=float, default=1800.0, help="seconds before a case is stopped")
    parser.add_argument("--work", default="/tmp/glom-scaling")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "scaling.md"))
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "scaling.json"))
    parser.add_argument("--resume", action="store_true", help="keep the successful cases of an earlier --json")
    parser.add_argument("--note", action="append", help="a line for the record's notes")
    parser.add_argument("--merge", action="append", help="the --json of another run whose cases to include")
    args = parser.parse_args()
    if args.case == "prepare":
        result = case_prepare(Path(args.raw), Path(args.run_dir), args.backend)
    elif args.case == "train":
        result = case_train(Path(args.run_dir), args.epochs)
    elif args.case == "batch":
        result = case_batch(args.users, args.campaigns, args.backend, Path(args.work))
    else:
        orchestrate(args)
        return
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()

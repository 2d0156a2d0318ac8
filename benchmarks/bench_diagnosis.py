"""Why do PM / GLoM embeddings rank worse than raw co-purchase vectors? One measured row per hypothesis.

    python benchmarks/bench_diagnosis.py --run-dir runs/quality/digital-music --name digital-music \
        [--runs 5] [--tasks 30] [--set key=value ...] [--only LABEL ...]

Each hypothesis is a set of config overrides applied to one model (PM for the PM-side hypotheses, the
seed-set GLoM for the GLM-side ones); every row runs the full protocol (``evaluate_protocols``: the
paper's sampled candidates and the realistic all-users one, from the same fits, ``--runs`` runs x
``--tasks`` tasks, leak-free as ``glom evaluate``). The reference rows (cosine-centroid, LR) are scored on
the same campaigns. Writes ``benchmarks/results/diagnosis_<name>.md`` and ``.json`` (command, machine,
date), rewritten after every hypothesis so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from study_record import study_config, study_parser

from glom_plugin.evaluate.runner import evaluate_protocols
from glom_plugin.layout import RunLayout

# (label, model, overrides, what it tests)
HYPOTHESES: list[tuple[str, str, dict, str]] = [
    ("references", "cosine-centroid,lr", {}, "the rows to beat"),
    ("pm baseline", "pm", {}, "PM as configured"),
    ("pm dim 128", "pm", {"pm.dim": 128}, "embedding size"),
    ("pm dim 256", "pm", {"pm.dim": 256}, "embedding size"),
    ("pm epochs x2", "pm", {"pm.epochs": "x2"}, "training length (early stopping on link MRR)"),
    ("pm no early stop", "pm", {"pm.val_fraction": 0.0}, "early-stopping signal: none, all epochs kept"),
    ("pm L1 norm", "pm", {"pm.norm": 1}, "TransE norm"),
    ("pm 4 negatives", "pm", {"pm.negatives": 4}, "negatives per positive"),
    ("pm no unit ball", "pm", {"pm.unit_ball": False}, "the unit-ball constraint off"),
    ("pm not centred", "pm", {"expand.center": False}, "centring before cosine"),
    ("pm no profiles", "pm", {"pm.use_profiles": False}, "profiles on/off"),
    ("pm 30-word profiles", "pm", {"profiles.profile_words": 30}, "which profile text: the first 30 words"),
    ("pm 200-word profiles", "pm", {"profiles.profile_words": 200}, "which profile text: up to 200 words"),
    ("pm t_sim 0.3", "pm", {"similarity.t_sim": 0.3}, "similarity-edge density (more edges)"),
    ("pm t_sim 0.8", "pm", {"similarity.t_sim": 0.8}, "similarity-edge density (fewer edges)"),
    ("pm top-k 5", "pm", {"similarity.top_k": 5}, "similarity-edge density (top-k, fewer edges)"),
    ("pm top-k 50", "pm", {"similarity.top_k": 50}, "similarity-edge density (top-k, more edges)"),
    ("pm no similarity", "pm", {"graph.use_similarity_edges": False}, "similarity edges off"),
    ("seedset baseline", "glom-seedset", {}, "GLoM with the seed-set objective"),
    ("seedset 1 layer", "glom-seedset", {"glm.layers": 1}, "number of GLM layers"),
    ("seedset 3 layers", "glom-seedset", {"glm.layers": 3}, "number of GLM layers"),
    ("seedset not centred", "glom-seedset", {"expand.center": False}, "centring"),
    ("seedset tau 0.05", "glom-seedset", {"glm.seedset_temperature": 0.05}, "InfoNCE temperature"),
    ("seedset tau 0.2", "glom-seedset", {"glm.seedset_temperature": 0.2}, "InfoNCE temperature"),
]


def _overrides(cfg, raw: dict) -> dict:
    out = {}
    for key, value in raw.items():
        if value == "x2":
            section, field = key.split(".")
            value = 2 * getattr(getattr(cfg, section), field)
        out[key] = value
    return out


def _earlier(out: Path, name: str, args: argparse.Namespace) -> dict:
    """An earlier record, checked to come from the same run directory and settings: its rows are then the
    same fits this run would make (every fit is seeded, so a rerun repeats them)."""
    earlier = json.loads((out / f"diagnosis_{name}.json").read_text())
    for flag, value in (("--run-dir", args.run_dir), *(("--set", s) for s in args.sets if "tracking." not in s)):
        if f"{flag} {value}" not in earlier["command"]:
            raise SystemExit(f"diagnosis_{name}.json was not run with {flag} {value}: its rows are other fits")
    return earlier


def _reused_rows(out: Path, name: str, args: argparse.Namespace) -> list[dict]:
    """The reference and baseline rows of an earlier record: a Δ is only meaningful against the same fits."""
    kept = [r for r in _earlier(out, name, args)["rows"]
            if r["hypothesis"] == "references" or r["hypothesis"].endswith("baseline")]
    return [{**r, "from": f"diagnosis_{name}.json"} for r in kept]


class SharedTrainingData:
    """``evaluate_protocols``' data builder, memoised across hypotheses: a row that changes only the model
    (pm.*, glm.*, expand.*) gets the same split's polarity, similarity graph and profile embeddings the
    baseline got, instead of rebuilding them (a third of a MAL row). The key is the split's held-out pairs
    and every config section the build reads, so a row that changes one of those (t_sim, top-k, profile
    text) builds its own."""

    SECTIONS = ("data", "polarity", "similarity", "graph", "profiles", "embedding")

    def __init__(self) -> None:
        self._built: dict[tuple, object] = {}

    def __call__(self, train, cfg, layout):
        import pandas as pd

        from glom_plugin.evaluate.training_data import build_training_data

        pairs = train.polarity[["user_id", "item_id"]]
        split = (len(pairs), int(pd.util.hash_pandas_object(pairs, index=False).sum()))
        key = (split, json.dumps({name: getattr(cfg, name).model_dump() for name in self.SECTIONS}, sort_keys=True))
        if key not in self._built:
            self._built[key] = build_training_data(train, cfg, layout)
        return self._built[key]


def _cell(summary: dict, model: str) -> dict:
    row = summary[model]
    return {"pr_auc": row["pr_auc"]["mean"], "pr_auc_std": row["pr_auc"]["std"], "runs_ok": row["runs_ok"]}


def main() -> None:
    parser = study_parser(__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="run only these hypothesis labels")
    parser.add_argument(
        "--reuse-from",
        action="append",
        default=[],
        help="copy the references and baseline rows of diagnosis_<NAME>.json (same run directory and --set, so "
        "the same fits) instead of refitting them; their rows say where they come from",
    )
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows diagnosis_<--name>.json already has (same settings) and run the rest")
    args = parser.parse_args()
    base = study_config(args)
    layout = RunLayout.at(base.run_dir)
    out = Path("benchmarks/results")
    command = "python benchmarks/bench_diagnosis.py " + " ".join(sys.argv[1:])
    commands = [command]
    rows: list[dict] = []
    if args.resume and (out / f"diagnosis_{args.name}.json").exists():
        earlier = _earlier(out, args.name, args)
        rows, commands = earlier["rows"], [*earlier.get("commands", [earlier["command"]]), command]
    rows += [row for name in args.reuse_from for row in _reused_rows(out, name, args)
             if not any(r["hypothesis"] == row["hypothesis"] and r["model"] == row["model"] for r in rows)]
    shared = SharedTrainingData()
    for label, models, raw, tests in HYPOTHESES:
        if (args.only and label not in args.only) or any(r["hypothesis"] == label for r in rows):
            continue
        cfg = base.with_overrides(**_overrides(base, raw)) if raw else base
        start = time.perf_counter()
        names = models.split(",")
        results = evaluate_protocols(cfg, layout, names, ["sampled", "all"], runs=args.runs, data_builder=shared)
        seconds = time.perf_counter() - start
        for name in names:
            rows.append(
                {
                    "hypothesis": label,
                    "tests": tests,
                    "model": name,
                    "overrides": _overrides(base, raw),
                    "sampled": _cell(results["sampled"].summary(), name),
                    "all": _cell(results["all"].summary(), name),
                    "seconds": seconds,
                }
            )
        _write(out, args.name, rows, commands, args)
        print(f"[diagnosis] {label}: {seconds:.0f} s", flush=True)


def _write(out: Path, name: str, rows: list[dict], commands: list[str], args: argparse.Namespace) -> None:
    meta = {
        "command": commands[-1],
        "commands": commands,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, no GPU",
        "runs": args.runs,
        "tasks": args.tasks,
    }
    base = {r["model"]: r for r in rows if r["hypothesis"].endswith("baseline")}
    lines = [
        f"# Diagnosis: {name}",
        "",
        *(f"- command: `{c}`" + (" (resumed by the next)" if i < len(commands) - 1 else "") for i, c in enumerate(commands)),
        f"- machine: {meta['machine']}; date: {meta['date']}",
        f"- {args.runs} runs x {args.tasks} tasks per row, both protocols from the same fits; PR-AUC mean ± std "
        "over runs; Δ = against the same model's baseline row.",
        "",
        "| hypothesis | tests | model | PR-AUC sampled | Δ | PR-AUC all | Δ |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        ref = base.get(r["model"])
        cells = []
        for protocol in ("sampled", "all"):
            cell = r[protocol]
            cells.append(f"{cell['pr_auc']:.3f} ± {cell['pr_auc_std']:.3f}")
            delta = cell["pr_auc"] - ref[protocol]["pr_auc"] if ref and ref is not r else None
            cells.append(f"{delta:+.3f}" if delta is not None else "")
        label = r["hypothesis"] + (f" (from {r['from']})" if "from" in r else "")
        lines.append(f"| {label} | {r['tests']} | {r['model']} | " + " | ".join(cells) + " |")
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"diagnosis_{name}.md", out / f"diagnosis_{name}.json"
    for path, text in ((md, "\n".join(lines) + "\n"), (js, json.dumps({**meta, "rows": rows}, indent=2) + "\n")):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)


if __name__ == "__main__":
    main()

"""Which ``hybrid.*`` settings should glom-hybrid default to? One GLoM fit per run, many heads (issue 11 §4).

    python benchmarks/bench_hybrid_settings.py --run-dir runs/quality/movielens --name movielens \
        [--runs 2] [--tasks 30] [--grid '[{"embedding_weight": 0.5}, {"evidence_weight": 3.0}]'] \
        [--lr-c 1.0 --lr-c 4.0] [--set key=value ...]

On the evaluation's own splits and campaigns (``ProtocolTasks``, both protocols, leak-free as
``glom evaluate``), each run fits glom-hybrid once (PM + GLM, the expensive part) and then scores every
campaign with one per-campaign head per grid entry (each entry: ``hybrid.*`` overrides on top of the
configured ones), beside per-campaign LR at each ``--lr-c`` and cosine-centroid on the same campaigns. The
heads only differ in their classifier, so the grid costs one GLoM fit per run. Writes
``benchmarks/results/hybrid_settings_<name>.md`` and ``.json`` (command, machine, date).
"""

from __future__ import annotations

import json
import time

import numpy as np
from sklearn.metrics import average_precision_score
from study_record import pr_auc_cells, provenance, study_config, study_parser, summarise, write_study

from glom_plugin.evaluate.runner import ProtocolTasks
from glom_plugin.layout import RunLayout
from glom_plugin.models.registry import create_model


def _label(entry: dict) -> str:
    return "glom-hybrid " + (", ".join(f"{k}={v}" for k, v in entry.items()) or "(configured)")


def main() -> None:
    parser = study_parser(__doc__.splitlines()[0], runs=2)
    parser.add_argument("--grid", default='[{}]', help="JSON list of hybrid.* override dicts (keys without 'hybrid.')")
    parser.add_argument("--lr-c", dest="lr_cs", type=float, action="append", default=[])
    args = parser.parse_args()
    grid: list[dict] = json.loads(args.grid)
    lr_cs = args.lr_cs or [None]
    cfg = study_config(args)
    layout = RunLayout.at(cfg.run_dir)
    protocol = ProtocolTasks.load(cfg, layout)
    per_run: dict[str, dict[str, list[float]]] = {}
    started = time.perf_counter()
    for run in range(args.runs):
        inputs = protocol.run_inputs(cfg, layout, run)
        seed = cfg.seed + run
        hybrid = create_model("glom-hybrid", cfg, seed=seed).fit(inputs.data)
        lr = create_model("lr", cfg, seed=seed).fit(inputs.data)
        cosine = create_model("cosine-centroid", cfg, seed=seed).fit(inputs.data)
        configured_hybrid, configured_lr = hybrid.settings, lr.settings
        for mode in ("sampled", "all"):
            samples, _ = protocol.samples_for(inputs, cfg, run, mode)
            tasks = [t for t in (s.campaign() for s in samples) if t.labels.sum() > 0]

            def mean_ap(model, tasks=tasks) -> float:
                return float(np.mean([average_precision_score(t.labels, model.score_campaign(t.campaign)) for t in tasks]))

            scores = {"cosine-centroid": mean_ap(cosine)}
            for c in lr_cs:
                lr.settings = configured_lr if c is None else configured_lr.model_copy(update={"C": c})
                scores["lr" if c is None else f"lr C={c}"] = mean_ap(lr)
            for entry in grid:
                hybrid.settings = configured_hybrid.model_copy(update=entry)
                scores[_label(entry)] = mean_ap(hybrid)
            hybrid.settings, lr.settings = configured_hybrid, configured_lr
            for label, value in scores.items():
                per_run.setdefault(mode, {}).setdefault(label, []).append(value)
        print(f"[hybrid-settings] {args.name} run {run} done ({time.perf_counter() - started:.0f} s)", flush=True)
    summary = summarise(per_run)
    record = {"dataset": args.name, "protocols": summary, "grid": grid, "runs": args.runs, "tasks": args.tasks,
              **provenance("bench_hybrid_settings.py", started)}
    written = write_study(
        f"hybrid_settings_{args.name}", record, f"glom-hybrid settings: {args.name} (issue 11 §4)",
        ["one GLoM fit per run, every head on the same campaigns (bench_hybrid_settings.py docstring)"],
        ["head", "sampled PR-AUC", "all PR-AUC"],
        [[label, *pr_auc_cells(summary, label)] for label in summary["sampled"]],
    )
    print(f"wrote {written}", flush=True)


if __name__ == "__main__":
    main()

"""Does fusing per-campaign LR, GLoM similarity and raw co-purchase cosine beat each alone? (issue 11 §4)

    python benchmarks/bench_fusion.py --run-dir runs/quality/digital-music --name digital-music \
        [--runs 5] [--tasks 30] [--set key=value ...]

A study, not a registry model: on the evaluation's own splits and campaigns (``ProtocolTasks``, both
protocols, leak-free as ``glom evaluate``), each run fits ``glom-hybrid`` once (its GLoM embeddings are the
``sim`` signal: cosine of the centred, unit-norm h^L to the seeds' mean, what ``glom-seedset`` retrieval
ranks by), ``lr`` and ``cosine-centroid``, and scores every campaign with each. Fusions add the signals
after standardising each by its mean and std over a label-blind reference sample of the population
(up to 2,048 users drawn from every non-seed user; the classifiers' scores as logits), so a fused
score does not depend on who else is a candidate and serves the same way. Labels are used for the
PR-AUC only. Writes ``benchmarks/results/fusion_<name>.md`` and ``.json`` (command, machine, date).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from sklearn.metrics import average_precision_score
from study_record import pr_auc_cells, provenance, study_config, study_parser, summarise, write_study

from glom_plugin.evaluate.runner import ProtocolTasks
from glom_plugin.layout import RunLayout
from glom_plugin.models.registry import create_model

REFERENCE_USERS = 2048
# name -> (signals added, what it asks)
FUSIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "glom-hybrid": (("hybrid",), "the registry's best GLoM variant alone"),
    "lr": (("lr",), "per-campaign LR alone (best non-GLoM on MovieLens / MAL)"),
    "cosine-centroid": (("cos",), "raw co-purchase cosine alone"),
    "glom sim": (("sim",), "GLoM similarity alone (glom-hybrid's embeddings)"),
    "lr + cos (no GLoM)": (("lr", "cos"), "the fusion without any GLoM signal"),
    "hybrid + sim": (("hybrid", "sim"), "classifier + GLoM similarity"),
    "lr + sim + cos": (("lr", "sim", "cos"), "three rankers, LR as the classifier"),
    "hybrid + sim + cos": (("hybrid", "sim", "cos"), "three rankers, the hybrid as the classifier"),
}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def signals(models: tuple, campaign, users: np.ndarray, centroid: np.ndarray) -> dict[str, np.ndarray]:
    """Every signal of ``users`` for this campaign (the classifiers fit on its seeds vs non-seeds)."""
    hybrid, lr, cos, units = models
    scored = dataclasses.replace(campaign, candidates=users)
    return {
        "hybrid": _logit(hybrid.score_campaign(scored)),
        "lr": _logit(lr.score_campaign(scored)),
        "cos": np.asarray(cos.score_campaign(scored), dtype=np.float64),
        "sim": units[users] @ centroid,
    }


def main() -> None:
    args = study_parser(__doc__.splitlines()[0]).parse_args()
    cfg = study_config(args)
    layout = RunLayout.at(cfg.run_dir)
    protocol = ProtocolTasks.load(cfg, layout)
    # protocol -> fusion -> per-run mean AP
    per_run: dict[str, dict[str, list[float]]] = {}
    started = time.perf_counter()
    for run in range(args.runs):
        inputs = protocol.run_inputs(cfg, layout, run)
        data = inputs.data
        seed = cfg.seed + run
        hybrid = create_model("glom-hybrid", cfg, seed=seed)
        hybrid.fit(data)
        lr = create_model("lr", cfg, seed=seed)
        lr.fit(data)
        cos = create_model("cosine-centroid", cfg, seed=seed)
        cos.fit(data)
        units = hybrid.embedding_features
        for mode in ("sampled", "all"):
            samples, _ = protocol.samples_for(inputs, cfg, run, mode)
            aps: dict[str, list[float]] = {name: [] for name in FUSIONS}
            for sample in samples:
                item = sample.campaign()
                campaign, labels = item.campaign, item.labels
                if labels.sum() == 0:
                    continue
                rng = np.random.default_rng([seed, run, len(campaign.seeds), int(campaign.seeds[0])])
                pool = np.setdiff1d(np.arange(data.n_users), campaign.seeds)  # every non-seed user
                reference = rng.choice(pool, size=min(REFERENCE_USERS, len(pool)), replace=False)
                centroid = units[campaign.seeds].mean(axis=0)

                models = (hybrid, lr, cos, units)
                candidate = signals(models, campaign, campaign.candidates, centroid)
                ref = signals(models, campaign, reference, centroid)
                z = {k: (v - ref[k].mean()) / (ref[k].std() or 1.0) for k, v in candidate.items()}
                for name, (parts, _) in FUSIONS.items():
                    aps[name].append(average_precision_score(labels, sum(z[p] for p in parts)))
            for name, values in aps.items():
                per_run.setdefault(mode, {}).setdefault(name, []).append(float(np.mean(values)))
        print(f"[fusion] {args.name} run {run} done ({time.perf_counter() - started:.0f} s)", flush=True)
    summary = summarise(per_run)
    record = {
        "dataset": args.name,
        "protocols": summary,
        "fusions": {name: {"signals": list(parts), "question": q} for name, (parts, q) in FUSIONS.items()},
        "runs": args.runs,
        "tasks": args.tasks,
        **provenance("bench_fusion.py", started),
    }
    written = write_study(
        f"fusion_{args.name}", record, f"Fusion study: {args.name} (issue 11 §4)",
        ["method: benchmarks/bench_fusion.py docstring (signals standardised on a label-blind reference sample)"],
        ["fusion", "signals", "sampled PR-AUC", "all PR-AUC", "question"],
        [[name, " + ".join(parts), *pr_auc_cells(summary, name), question] for name, (parts, question) in FUSIONS.items()],
    )
    print(f"wrote {written}", flush=True)


if __name__ == "__main__":
    main()

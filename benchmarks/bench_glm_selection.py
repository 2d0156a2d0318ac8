"""What Eq. 9 training does to lookalike quality, epoch by epoch, on a prepared real-data run directory.

Why this exists: GLM's loss (Eq. 9) is user->item link prediction, while expansion ranks *users* by
similarity to seeds. This script measures both along the same training trajectory, so the choice of
``glm.select_on`` rests on numbers. On the evaluation's run-0 split (held-out purchases removed, exactly
as ``glom evaluate`` builds it) it fits PM once, then, for k = 0..K, GLM trained k epochs under
link-prediction selection (k = 0: PM's embeddings propagated through the untrained layers). Per k:

- link MRR: held-out user-item pairs ranked among 50 sampled items (the selection ``link`` uses);
- lookalike MRR: each held-out user ranked among 50 non-buyers by similarity to the item's other buyers,
  on the training graph (the selection ``lookalike`` uses, models/lookalike_validation.py);
- PR-AUC on the evaluation's campaigns, around the user mean (``expand.center``) and with raw cosine.

    .venv/bin/python benchmarks/bench_glm_selection.py --run-dir runs/quality/movielens --name movielens \\
        --set pm.epochs=10 --set pm.batch_size=4096

Writes benchmarks/results/glm_selection_<name>.md (command, machine, date) and prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score


def campaign_pr_auc(embeddings: np.ndarray, campaigns, center: bool, aggregation: str) -> float:
    from glom_plugin.expand.aggregation import aggregate_similarity, retrieval_vectors

    vectors = retrieval_vectors(embeddings, center)
    scores = [
        average_precision_score(c.labels, aggregate_similarity(vectors[c.campaign.candidates], vectors[c.campaign.seeds], aggregation))
        for c in campaigns
    ]
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, help="a run directory `glom prepare` (and profiles) filled")
    parser.add_argument("--name", required=True, help="dataset name for the results file")
    parser.add_argument("--epochs", type=int, default=5, help="K: the longest GLM training measured")
    parser.add_argument("--aggregators", default="mean,attn1")
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--set", action="append", default=[], help="config override key=value")
    args = parser.parse_args()

    from glom_plugin.config import load_config
    from glom_plugin.evaluate.runner import ProtocolTasks
    from glom_plugin.layout import RunLayout
    from glom_plugin.models.glm import build_message_graph, resolve_backend
    from glom_plugin.models.lookalike_validation import LookalikeValidation
    from glom_plugin.models.training import fit_glm, fit_pm, held_out_split

    run_dir = Path(args.run_dir)
    cfg = load_config(run_dir / "config.resolved.json", overrides=[f"evaluate.max_tasks={args.tasks}", *args.set])
    cfg = cfg.with_overrides(**{"device": "cpu"})
    layout = RunLayout.at(run_dir)
    run0 = ProtocolTasks.load(cfg, layout).run_inputs(cfg, layout, run=0)
    data = run0.data
    campaigns = [s.campaign() for s in run0.samples]
    aggregation = cfg.expand.aggregation

    started = time.perf_counter()
    pm = fit_pm(data, cfg, seed=cfg.seed, progress=False)
    pm_users = pm.node_embeddings[: data.n_users]
    lines = [
        f"# GLM epochs vs lookalike quality: {args.name}",
        "",
        f"- command: `{' '.join(shlex.quote(a) for a in [sys.executable.split('/')[-1], *sys.argv])}`",
        f"- machine: {os.cpu_count()} CPU cores, {platform.machine()}, torch threads {torch.get_num_threads()}, no GPU",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}",
        f"- data: run-0 split of `glom evaluate` ({len(campaigns)} campaigns, {data.n_users} users, "
        f"{len(data.edges)} training edges); aggregation {aggregation}; PM {cfg.pm.epochs} epochs, "
        f"GLM batch {cfg.glm.batch_size}, lr {cfg.glm.lr}",
        "",
        f"PM alone: PR-AUC {campaign_pr_auc(pm_users, campaigns, True, aggregation):.3f} around the user mean, "
        f"{campaign_pr_auc(pm_users, campaigns, False, aggregation):.3f} with raw cosine.",
        "",
    ]

    full = pm.triples
    train, val_users, val_items = held_out_split(full, cfg.pm.val_fraction, cfg.seed)
    lookalike = LookalikeValidation.build(
        val_users, val_items, train, full, np.random.default_rng(cfg.seed), aggregation, cfg.expand.center
    )
    backend = resolve_backend(cfg.glm.backend, "cpu")
    train_graph = build_message_graph(train, backend, "cpu")
    for aggregator in args.aggregators.split(","):
        lines += [
            f"## GLoM-{aggregator}",
            "",
            "| epochs trained | epoch kept (link selection) | link MRR | lookalike MRR | PR-AUC (centred) | PR-AUC (raw cosine) |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for k in range(args.epochs + 1):
            glm_cfg = cfg.with_overrides(
                **{"glm.aggregator": aggregator, "glm.epochs": k, "glm.select_on": "link", "glm.patience": k + 1}
            )
            result = fit_glm(data, glm_cfg, seed=cfg.seed, pm=pm, progress=False)
            with torch.no_grad():
                h_train, _ = result.model(train_graph)
            users = result.node_embeddings[: data.n_users]
            history = result.history
            look = lookalike.score(h_train[: data.n_users].numpy())["mrr"] if lookalike is not None else float("nan")
            lines.append(
                f"| {k} | {history.best_epoch if k else '-'} | {history.best_val_mrr:.3f} | {look:.3f} | "
                f"{campaign_pr_auc(users, campaigns, True, aggregation):.3f} | "
                f"{campaign_pr_auc(users, campaigns, False, aggregation):.3f} |"
            )
            print(lines[-1], flush=True)
        lines.append("")
    lines.append(f"Total wall time {time.perf_counter() - started:.0f} s.")
    text = "\n".join(lines) + "\n"
    out = Path(__file__).parent / "results" / f"glm_selection_{args.name}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

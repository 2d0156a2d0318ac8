"""``glom expand``: the run's trained model + a seed file -> ranked lookalikes on disk.

Any trained model answers, through its own ``expand`` (``models/base.py``): the one ``glom train`` saved
under ``models/<train.model>`` (or ``--model NAME``); a run trained before saved models existed uses
``models/glm``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from glom_plugin.config import GlomConfig
from glom_plugin.expand.expander import ExpansionResult, check_min_seeds, read_seed_file, resolve_seeds
from glom_plugin.layout import RunLayout


def run_expand_stage(
    cfg: GlomConfig, layout: RunLayout, seeds_file: Path, out_path: Path, model_name: str | None = None
) -> ExpansionResult:
    """Lookalikes at ``out_path`` (.csv or .parquet, written atomically) and a summary JSON beside it
    (``<out>.summary.json``)."""
    from glom_plugin.models.saved import load_model, trained_model_dir
    from glom_plugin.storage import atomic_path, write_json, write_parquet

    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"{out_path}: output must end in .csv or .parquet")
    model = load_model(trained_model_dir(cfg, layout, model_name))
    seeds = read_seed_file(seeds_file)
    warning = check_min_seeds(len(resolve_seeds(model, seeds)[1]), cfg.expand)
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    result = model.expand(seeds, config=cfg.expand)
    table = result.lookalikes
    if out_path.suffix.lower() == ".parquet":
        write_parquet(table, out_path)
    else:
        with atomic_path(out_path) as tmp:
            table.to_csv(tmp, index=False)
    write_json(result.summary(), out_path.with_name(out_path.name + ".summary.json"))
    return result

"""Seeds -> lookalikes (GLoM §3.7): rank users by sim(u, S) over their embeddings, keep those above the
similarity threshold T and/or the top k, never return a seed.

sim(u, S) aggregates cosine similarities over the seeds (``glom_plugin.expand.aggregation``): ``max``
(Yahoo Eq. 3), ``mean`` (similarity to the seed centroid) or ``probabilistic`` (Yahoo Eq. 4).

Up to ``EXACT_MAX_USERS`` users every user is scored exactly. Above that, candidates come from the ANN
index (``glom_plugin.expand.index``: the seed centroid's and each seed's nearest neighbours) and are
re-scored exactly, so the scores are exact and only the candidate set is approximate.

Seed ids the model does not know are reported (``unknown_seeds``), not fatal; when none is known the
call fails with a clear error.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from glom_plugin.config import ExpandConfig, GlomConfig
from glom_plugin.expand.aggregation import aggregate_similarity, l2_normalize
from glom_plugin.expand.calibration import seed_calibrated_threshold
from glom_plugin.expand.index import UserIndex, build_index, search
from glom_plugin.layout import RunLayout
from glom_plugin.models.artifact import TrainedModel

EXACT_MAX_USERS = 500_000
# ANN candidates per request: this many times the number of lookalikes asked for.
CANDIDATE_FACTOR = 4
EXPLAIN_SEEDS = 3
EXPLAIN_ITEMS = 5


@dataclass
class ExpansionResult:
    """``lookalikes``: columns user_id, score, rank (1 = most alike), best first; with ``explain``, also
    nearest_seeds (list of seed ids), nearest_seed_scores (list of cosines) and shared_items (list, when
    item interactions were given)."""

    lookalikes: pd.DataFrame
    seeds_used: list[str]
    unknown_seeds: list[str]
    aggregation: str
    threshold: float | None
    k: int | None
    candidate_source: str  # "exact" or the ANN index kind
    model_name: str = ""
    stats: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "model_name": self.model_name,
            "n_seeds_given": len(self.seeds_used) + len(self.unknown_seeds),
            "n_seeds_used": len(self.seeds_used),
            "unknown_seeds": self.unknown_seeds,
            "n_lookalikes": int(len(self.lookalikes)),
            "aggregation": self.aggregation,
            "threshold": self.threshold,
            "k": self.k,
            "candidate_source": self.candidate_source,
            **self.stats,
        }


def resolve_seeds(model: TrainedModel, seed_ids: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """(row indices of known seeds, known seed ids, unknown seed ids); duplicates are counted once."""
    index = model.user_index()
    known_rows: list[int] = []
    known: list[str] = []
    unknown: list[str] = []
    for sid in dict.fromkeys(str(s) for s in seed_ids):
        row = index.get(sid)
        if row is None:
            unknown.append(sid)
        else:
            known_rows.append(row)
            known.append(sid)
    if not known:
        raise ValueError(
            f"none of the {len(unknown)} seed ids is known to model {model.model_name!r} "
            f"({model.n_users} users); seeds must be hashed user ids of the training data, e.g. {unknown[:3]}"
        )
    return np.asarray(known_rows, dtype=np.int64), known, unknown


def expand_audience(
    model: TrainedModel,
    seed_ids: list[str],
    cfg: ExpandConfig,
    k: int | None = None,
    explain: bool = False,
    index: UserIndex | None = None,
    interactions: pd.DataFrame | None = None,
) -> ExpansionResult:
    """Rank non-seed users by sim(u, S); keep score >= T and the top ``k`` (``cfg.top_k`` when k is None;
    k=0 with a threshold means "every user above T"). T is ``cfg.threshold`` when set, else calibrated on
    the held-out seeds when ``cfg.seed_recall`` is set (``expand/calibration.py``), else there is none.

    ``index``: a prebuilt ANN index over ``model.user_embeddings`` (built on demand for large models).
    ``interactions``: optional user_id/item_id table; with ``explain`` it adds each lookalike's items
    shared with its nearest seeds.
    """
    if len(seed_ids) == 0:
        raise ValueError("the seed list is empty")
    top_k = cfg.top_k if k is None else int(k)
    if top_k < 0:
        raise ValueError(f"k must be >= 0, got {top_k}")
    if top_k == 0 and cfg.threshold is None and cfg.seed_recall is None:
        raise ValueError("k=0 means 'no top-k cut' and needs expand.threshold or expand.seed_recall to be set")
    seed_rows, seeds_used, unknown = resolve_seeds(model, seed_ids)
    embeddings = model.user_embeddings
    seed_vectors = embeddings[seed_rows]

    if index is None and model.n_users <= EXACT_MAX_USERS:
        candidates = np.arange(model.n_users)
        source = "exact"
    else:
        index = index or build_index(embeddings)
        wanted = (top_k or model.n_users) + len(seed_rows)
        candidates = _ann_candidates(index, seed_vectors, CANDIDATE_FACTOR * wanted)
        source = index.kind
    candidates = candidates[~np.isin(candidates, seed_rows)]  # seeds are never lookalikes
    scores = aggregate_similarity(embeddings[candidates], seed_vectors, cfg.aggregation)

    threshold = cfg.threshold
    if threshold is None and cfg.seed_recall is not None:
        # T from the seed list itself: the score that a seed_recall share of held-out seeds reach
        threshold = seed_calibrated_threshold(
            seed_rows,
            lambda rest, held: aggregate_similarity(embeddings[held], embeddings[rest], cfg.aggregation),
            cfg.seed_recall,
        )
    keep = np.ones(len(candidates), dtype=bool) if threshold is None else scores >= threshold
    candidates, scores = candidates[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    if top_k:
        order = order[:top_k]
    rows, scores = candidates[order], scores[order]
    lookalikes = pd.DataFrame(
        {
            "user_id": model.user_ids[rows],
            "score": scores.astype(np.float32),
            "rank": np.arange(1, len(rows) + 1),
        }
    )
    if explain:
        lookalikes = _explain(lookalikes, rows, model, seed_rows, interactions)
    return ExpansionResult(
        lookalikes=lookalikes,
        seeds_used=seeds_used,
        unknown_seeds=unknown,
        aggregation=cfg.aggregation,
        threshold=threshold,
        k=top_k or None,
        candidate_source=source,
        model_name=model.model_name,
    )


def _ann_candidates(index: UserIndex, seed_vectors: np.ndarray, budget: int) -> np.ndarray:
    """Union of the centroid's nearest users and each seed's nearest users (the share of the budget)."""
    centroid = l2_normalize(l2_normalize(seed_vectors).mean(axis=0, keepdims=True))
    _, near_centroid = search(index, centroid, budget)
    per_seed = max(budget // max(len(seed_vectors), 1), 10)
    _, near_seeds = search(index, seed_vectors, per_seed)
    found = np.concatenate([near_centroid.ravel(), near_seeds.ravel()])
    return np.unique(found[found >= 0])


def _explain(
    lookalikes: pd.DataFrame,
    rows: np.ndarray,
    model: TrainedModel,
    seed_rows: np.ndarray,
    interactions: pd.DataFrame | None,
) -> pd.DataFrame:
    """Why each lookalike was chosen: its most similar seeds (cosine) and, given interactions, the items
    it shares with them."""
    out = lookalikes.copy()
    if len(rows) == 0:
        out["nearest_seeds"] = pd.Series(dtype=object)
        out["nearest_seed_scores"] = pd.Series(dtype=object)
        return out
    sims = l2_normalize(model.user_embeddings[rows]) @ l2_normalize(model.user_embeddings[seed_rows]).T
    n = min(EXPLAIN_SEEDS, len(seed_rows))
    nearest = np.argsort(-sims, axis=1)[:, :n]
    seed_ids = model.user_ids[seed_rows]
    out["nearest_seeds"] = [seed_ids[row].tolist() for row in nearest]
    out["nearest_seed_scores"] = [np.round(sims[i, row], 4).tolist() for i, row in enumerate(nearest)]
    if interactions is not None:
        items_of = interactions.groupby("user_id")["item_id"].agg(lambda s: set(s.astype(str)))
        shared = []
        for user, seeds in zip(out["user_id"], out["nearest_seeds"], strict=True):
            mine = items_of.get(user, set())
            theirs = set().union(*(items_of.get(s, set()) for s in seeds))
            shared.append(sorted(mine & theirs)[:EXPLAIN_ITEMS])
        out["shared_items"] = shared
    return out


# --- stage -----------------------------------------------------------------------------------------------


def read_seed_file(path: str | Path) -> list[str]:
    """Seeds: one hashed id per line, or a CSV whose header has a ``user_id`` column.

    Blank lines are skipped; anything else malformed is an error naming the file, line and field.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"seed file {path} does not exist")
    lines = path.read_text().splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise ValueError(f"{path}: the seed file is empty")
    seeds: list[str] = []
    if path.suffix.lower() == ".csv" or "," in first:
        reader = csv.DictReader(lines)
        if reader.fieldnames is None or "user_id" not in reader.fieldnames:
            raise ValueError(f"{path}, line 1: CSV header {reader.fieldnames} has no 'user_id' column")
        for number, row in enumerate(reader, start=2):
            value = (row.get("user_id") or "").strip()
            if not value:
                raise ValueError(f"{path}, line {number}, field user_id: empty seed id")
            seeds.append(value)
    else:
        for number, line in enumerate(lines, start=1):
            value = line.strip()
            if not value:
                continue
            if any(ch.isspace() for ch in value):
                raise ValueError(f"{path}, line {number}, field user_id: {value!r} contains whitespace")
            seeds.append(value)
    if not seeds:
        raise ValueError(f"{path}: no seed ids found")
    return seeds


def run_expand_stage(cfg: GlomConfig, layout: RunLayout, seeds_file: Path, out_path: Path) -> ExpansionResult:
    """``glom expand``: the trained GLoM model (models/glm) + a seed file -> ranked lookalikes at ``out_path``
    (.csv or .parquet, written atomically) and a summary JSON beside it (``<out>.summary.json``)."""
    from glom_plugin.storage import atomic_path, write_json, write_parquet

    model = TrainedModel.load(layout.glm_dir)
    result = expand_audience(model, read_seed_file(seeds_file), cfg.expand)
    out_path = Path(out_path)
    table = result.lookalikes
    if out_path.suffix.lower() == ".parquet":
        write_parquet(table, out_path)
    elif out_path.suffix.lower() == ".csv":
        with atomic_path(out_path) as tmp:
            table.to_csv(tmp, index=False)
    else:
        raise ValueError(f"{out_path}: output must end in .csv or .parquet")
    write_json(result.summary(), out_path.with_name(out_path.name + ".summary.json"))
    return result

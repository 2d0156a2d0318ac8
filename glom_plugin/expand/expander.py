"""Seeds -> lookalikes (GLoM §3.7): rank users by sim(u, S) over their embeddings, keep those above the
similarity threshold T and/or the top k, never return a seed.

sim(u, S) aggregates cosine similarities over the seeds (``glom_plugin.expand.aggregation``): ``max``
(Yahoo Eq. 3), ``mean`` (similarity to the seed centroid) or ``probabilistic`` (Yahoo Eq. 4).

Without an index (up to ``EXACT_MAX_USERS`` users) every user is scored. With one, each aggregation asks
the index only for the users that can rank (``glom_plugin.expand.candidates``: one centroid search for
mean; the centroid and every seed for max / probabilistic), and those candidates are re-scored exactly,
so every returned score is exact. On an exact (flat) index the candidates come with a proof that they
hold the whole top k; when the proof fails the expander scores every user, so the ranking is always
brute force's. On an approximate index (IVF, HNSW) only the candidate set is approximate.

Seed ids the model does not know are reported (``unknown_seeds``), not fatal; when none is known the
call fails with a clear error.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from itertools import compress
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from glom_plugin.config import ExpandConfig
from glom_plugin.data.hashing import HASH_CHARS, looks_hashed
from glom_plugin.data.id_files import read_id_list
from glom_plugin.expand.aggregation import (
    SeedSet,
    aggregate_similarity,
    exact_similarity,
    mean_similarity_of_units,
)
from glom_plugin.expand.calibration import seed_calibrated_threshold
from glom_plugin.expand.candidates import CANDIDATE_SEARCHES, complete, last_scores
from glom_plugin.expand.explain import Explanations, SharedItems, explain_lookalikes
from glom_plugin.expand.index import UserIndex, build_index, search_with_vectors
from glom_plugin.expand.topk import top_k_order
from glom_plugin.models.artifact import TrainedModel

if TYPE_CHECKING:
    from glom_plugin.models.base import LookalikeModel

EXACT_MAX_USERS = 500_000
# Extra neighbours per search beyond k + |S|, so faiss's and numpy's last-bit rounding never decides
# who makes the top k.
SEARCH_MARGIN = 16
# Cosine differences between BLAS and exact_similarity are ~1e-7; this bounds them with room to spare.
RESCORE_SLACK = 1e-5
# A search asking for more than this share of all users costs more than scoring every user.
SEARCH_MAX_SHARE = 0.25
_STR_ONLY = {str}  # seed ids that are all plain str are used as given


@dataclass
class ExpansionResult:
    """The ranked lookalikes as arrays (``rows``, ``scores``: best first; ``user_ids``: their ids) and,
    built on first use, as the ``lookalikes`` table: columns user_id, score, rank (1 = most alike); with
    ``explain``, also nearest_seeds, nearest_seed_scores and shared_items (when item interactions were
    given). ``all_user_ids``: every user's id by row, the model's own array; ``user_ids`` is taken from it
    on first use (the service's body takes ready JSON texts by row instead: ~5 us of a request saved)."""

    rows: np.ndarray
    all_user_ids: np.ndarray
    scores: np.ndarray
    seeds_used: list[str]
    unknown_seeds: list[str]
    aggregation: str
    threshold: float | None
    k: int | None
    candidate_source: str  # "exact" (every user scored) or the index kind the candidates came from
    model_name: str = ""
    explanations: Explanations | None = None
    stats: dict = field(default_factory=dict)

    @cached_property
    def user_ids(self) -> np.ndarray:
        return self.all_user_ids.take(self.rows)

    @cached_property
    def lookalikes(self) -> pd.DataFrame:
        table = pd.DataFrame(
            {"user_id": self.user_ids, "score": self.scores.astype(np.float32), "rank": np.arange(1, len(self.rows) + 1)}
        )
        if self.explanations is not None:
            table["nearest_seeds"] = pd.Series(self.explanations.nearest_seeds, dtype=object)
            table["nearest_seed_scores"] = pd.Series(self.explanations.nearest_seed_scores, dtype=object)
            if self.explanations.shared_items is not None:
                table["shared_items"] = pd.Series(self.explanations.shared_items, dtype=object)
        return table

    def summary(self) -> dict:
        return {
            "model_name": self.model_name,
            "n_seeds_given": len(self.seeds_used) + len(self.unknown_seeds),
            "n_seeds_used": len(self.seeds_used),
            # hashed ids only: a raw id passed by mistake is counted, never written (issue 14)
            "unknown_seeds": [s for s in self.unknown_seeds if looks_hashed(s)],
            "n_unknown_seeds": len(self.unknown_seeds),
            "n_unknown_not_hashed": sum(not looks_hashed(s) for s in self.unknown_seeds),
            "n_lookalikes": int(len(self.rows)),
            "aggregation": self.aggregation,
            "threshold": self.threshold,
            "k": self.k,
            "candidate_source": self.candidate_source,
            **self.stats,
        }


def resolve_seeds(model: TrainedModel | LookalikeModel, seed_ids: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """(row indices of known seeds, known seed ids, unknown seed ids); duplicates are counted once."""
    index = model.user_index()
    distinct = list(dict.fromkeys(seed_ids if set(map(type, seed_ids)) == _STR_ONLY else map(str, seed_ids)))
    try:  # the usual case, every seed known: one C-level pass straight into the array (~20 ids online)
        return np.fromiter(map(index.__getitem__, distinct), dtype=np.int64, count=len(distinct)), distinct, []
    except KeyError:
        pass
    found = list(map(index.get, distinct))
    known_rows: list[int] = []
    known: list[str] = []
    unknown: list[str] = []
    for sid, row in zip(distinct, found, strict=True):
        if row is None:
            unknown.append(sid)
        else:
            known_rows.append(row)
            known.append(sid)
    if not known:
        # The ids are not quoted: they may be raw account ids given by mistake.
        raw = sum(not looks_hashed(s) for s in unknown)
        hint = f"; {raw} of them do not look like hashed ids ({HASH_CHARS} hex characters)" if raw else ""
        raise ValueError(
            f"none of the {len(unknown)} seed ids is known to model {model.model_name!r} "
            f"({model.n_users} users){hint}. Seeds must be hashed user ids of the training data: hash raw ids "
            "with `glom hash-ids RAW_FILE SEEDS_FILE` (same $GLOM_ID_SALT as ingestion)"
        )
    return np.asarray(known_rows, dtype=np.int64), known, unknown


def calibrated_threshold(embeddings: np.ndarray, seed_rows: np.ndarray, cfg: ExpandConfig) -> float | None:
    """T: ``cfg.threshold`` when set, else calibrated on held-out seeds when ``cfg.seed_recall`` is set
    (each fold scores only its held-out seeds against the rest: O(|S|^2), never every user)."""
    if cfg.threshold is not None or cfg.seed_recall is None:
        return cfg.threshold
    return seed_calibrated_threshold(
        seed_rows,
        lambda rest, held: aggregate_similarity(embeddings[held], embeddings[rest], cfg.aggregation),
        cfg.seed_recall,
    )


def _select(rows: np.ndarray, scores: np.ndarray, k: int | None, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Keep score >= T, then the top k (brute force's order: best first, ties by lower row; ``rows``
    must be ascending)."""
    if threshold is not None:
        keep = scores >= threshold
        rows, scores = rows[keep], scores[keep]
    order = top_k_order(scores, k)
    return rows[order], scores[order]


def select_ranked(
    rows: np.ndarray, scores: np.ndarray, k: int | None, threshold: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of ascending ``rows`` -> those >= T, best first, cut to k (ties by lower row): the order
    every path returns, per-campaign models' included."""
    return _select(np.asarray(rows), np.asarray(scores), k, threshold)


def shortlist_ranking(
    embeddings: np.ndarray,
    rows: np.ndarray,
    fast_scores: np.ndarray,
    seeds: SeedSet,
    aggregation: str,
    k: int | None,
    threshold: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The last step of every path: from BLAS scores of ascending ``rows``, a short list (the top
    k + ``SEARCH_MARGIN``, score >= T - ``RESCORE_SLACK``) re-scored with ``exact_similarity``, then T and
    the top k. BLAS and exact scores differ by ~1e-7, far inside the margin and the slack."""
    if threshold is not None:
        keep = fast_scores >= threshold - RESCORE_SLACK
        rows, fast_scores = rows[keep], fast_scores[keep]
    if k is not None and len(rows) > k + SEARCH_MARGIN:
        rows = np.sort(rows[top_k_order(fast_scores, k + SEARCH_MARGIN)])
    exact = exact_similarity(embeddings[rows], seeds, aggregation)
    return _select(rows, exact, k, threshold)


def score_every_user(
    embeddings: np.ndarray, seed_rows: np.ndarray, aggregation: str, k: int | None, threshold: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: sim(u, S) for every non-seed user, then T and the top k."""
    scores = aggregate_similarity(embeddings, embeddings[seed_rows], aggregation)
    others = np.ones(len(embeddings), dtype=bool)
    others[seed_rows] = False
    rows = np.flatnonzero(others)
    return shortlist_ranking(embeddings, rows, scores[others], SeedSet.of(embeddings[seed_rows]), aggregation, k, threshold)


def _without(rows: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """Mask of ``rows`` (ascending, distinct) not in ``excluded``: a binary search, not np.isin's sort."""
    keep = np.ones(len(rows), dtype=bool)
    pos = np.minimum(np.searchsorted(rows, excluded), max(len(rows) - 1, 0))
    if len(rows):
        keep[pos[rows[pos] == excluded]] = False
    return keep


def rank_with_index(
    embeddings: np.ndarray,
    index: UserIndex,
    seed_rows: np.ndarray,
    aggregation: str,
    k: int | None,
    threshold: float | None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(rows, scores, source): the aggregation's candidate searches, exact re-scoring of the candidates,
    and on an exact index the proof that nothing outside them ranks (else every user is scored)."""
    budget = (k or 0) + len(seed_rows) + SEARCH_MARGIN
    if not k or budget > SEARCH_MAX_SHARE * index.n_users:
        return (*score_every_user(embeddings, seed_rows, aggregation, k, threshold), "exact")
    if index.norms is not None and len(index.norms) == len(embeddings):
        seeds = SeedSet.of_rows(embeddings, seed_rows, index.norms)
    else:
        seeds = SeedSet.of(embeddings.take(seed_rows, axis=0))  # take: a third of fancy indexing's overhead
    if aggregation == "mean":
        return _rank_mean(embeddings, index, seeds, seed_rows, k, threshold, budget)
    found = CANDIDATE_SEARCHES[aggregation](index, seeds.units, seeds.centroid, budget)
    others = _without(found.rows, seed_rows)  # seeds are never lookalikes
    rows = found.rows[others]
    if found.scores is not None:
        fast = found.scores[others]
    else:
        fast = aggregate_similarity(embeddings[rows], embeddings[seed_rows], aggregation)
    rows, scores = shortlist_ranking(embeddings, rows, fast, seeds, aggregation, k, threshold)
    if index.exact and not complete(found.outside_bound, scores, k, threshold, slack=RESCORE_SLACK):
        return (*score_every_user(embeddings, seed_rows, aggregation, k, threshold), "exact")
    return rows, scores, index.kind


def _rank_mean(
    embeddings: np.ndarray,
    index: UserIndex,
    seeds: SeedSet,
    seed_rows: np.ndarray,
    k: int,
    threshold: float | None,
    budget: int,
) -> tuple[np.ndarray, np.ndarray, str]:
    """``mean`` in one search and one short re-scoring: what ``rank_with_index`` does for every
    aggregation, without the steps mean does not need (issue 15: a mean request is ~0.5 ms of search, and
    the general path's sorts, masks and second top-k added as much again).

    faiss returns the centroid's neighbours best first, and their scores *are* sim(u, S) in float32, so
    the first k + ``SEARCH_MARGIN`` non-seed rows are the short list the general path would pick (the
    margin absorbs float32 rounding and ties); they are re-scored with ``exact_similarity``'s formula on the
    unit vectors the search hands back (``search_with_vectors``: no gather from the embedding matrix) and
    ranked by (score desc, row asc): the same users, order and scores as ``shortlist_ranking`` (tested)."""
    scores, ids, vectors = search_with_vectors(index, seeds.centroid[None, :], budget, normalized=True)
    # every returned user scored at once, on the index's own copies of the unit vectors (what
    # exact_similarity computes from the rows; a row's score depends on that row alone), then ranked in
    # Python: ~136 neighbours are one pass over lists, where numpy masks, takes and a lexsort were ~12
    # array operations of ~3 us each between two searches that flush the caches. The pass is C-level
    # iteration (zip, map, compress) over (-score, row) pairs: no bytecode per neighbour.
    negated = np.negative(mean_similarity_of_units(vectors[0], seeds.centroid, overwrite=True)).tolist()
    found = ids[0].tolist()
    excluded = set(seed_rows.tolist())
    excluded.add(-1)  # faiss pads a short list with -1
    if threshold is None:
        keep: Iterable[bool] = map(operator.not_, map(excluded.__contains__, found))
    else:
        floor = threshold - RESCORE_SLACK  # the general path's pre-filter, on the search's own scores
        keep = [row not in excluded and fast >= floor for row, fast in zip(found, scores[0].tolist(), strict=True)]
    ranked = list(compress(zip(negated, found, strict=True), keep))
    del ranked[k + SEARCH_MARGIN :]  # the short list: the first k + margin in the search's order
    if threshold is not None:
        # scores are float32 values, and numpy compares a float32 array with T in float32
        cut = -float(np.float32(threshold))
        ranked = [pair for pair in ranked if pair[0] <= cut]
    ranked.sort()  # (score desc, row asc): brute force's order
    del ranked[k:]
    negated, kept = zip(*ranked, strict=True) if ranked else ((), ())
    rows = np.array(kept, dtype=np.int64)
    exact = -np.array(negated, dtype=np.float32)
    if index.exact:
        # no user the search did not return scores above its last returned score
        if not complete(float(last_scores(scores, ids)[0]), exact, k, threshold, slack=RESCORE_SLACK):
            return (*score_every_user(embeddings, seed_rows, "mean", k, threshold), "exact")
    return rows, exact, index.kind


def expand_audience(
    model: TrainedModel,
    seed_ids: list[str],
    cfg: ExpandConfig,
    k: int | None = None,
    explain: bool = False,
    index: UserIndex | None = None,
    interactions: pd.DataFrame | SharedItems | None = None,
) -> ExpansionResult:
    """Rank non-seed users by sim(u, S); keep score >= T and the top ``k`` (``cfg.top_k`` when k is None;
    k=0 with a threshold means "every user above T"). T is ``cfg.threshold`` when set, else calibrated on
    the held-out seeds when ``cfg.seed_recall`` is set (``expand/calibration.py``), else there is none.

    ``index``: a prebuilt index over ``model.user_embeddings`` (built on demand above ``EXACT_MAX_USERS``).
    ``interactions``: optional user_id/item_id table (or its prebuilt ``SharedItems``); with ``explain``
    it adds each lookalike's items shared with its nearest seeds.
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
    threshold = calibrated_threshold(embeddings, seed_rows, cfg)
    if index is None and model.n_users <= EXACT_MAX_USERS:
        rows, scores = score_every_user(embeddings, seed_rows, cfg.aggregation, top_k or None, threshold)
        source = "exact"
    else:
        index = index or build_index(embeddings)
        rows, scores, source = rank_with_index(embeddings, index, seed_rows, cfg.aggregation, top_k or None, threshold)
    explanations = None
    if explain:
        items = SharedItems.from_interactions(interactions) if isinstance(interactions, pd.DataFrame) else interactions
        explanations = explain_lookalikes(embeddings, model.user_ids, rows, seed_rows, items)
    return ExpansionResult(
        rows=rows,
        all_user_ids=model.user_ids,
        scores=np.asarray(scores, dtype=np.float32),
        seeds_used=seeds_used,
        unknown_seeds=unknown,
        aggregation=cfg.aggregation,
        threshold=threshold,
        k=top_k or None,
        candidate_source=source,
        model_name=model.model_name,
        explanations=explanations,
    )


# --- stage -----------------------------------------------------------------------------------------------


def read_seed_file(path: str | Path) -> list[str]:
    """Seeds: one hashed id per line, or a CSV whose header has a ``user_id`` column
    (``glom_plugin.data.id_files``, the parser ``glom hash-ids`` uses too). Errors name file, line, field."""
    seeds = read_id_list(path).ids
    if not seeds:
        raise ValueError(f"{path}: no seed ids found")
    return seeds


def check_min_seeds(n_known: int, cfg: ExpandConfig) -> str | None:
    """k-anonymity of the seed list: fewer than ``expand.min_seeds`` known seeds is refused (``ValueError``)
    or, with ``expand.min_seeds_action=warn``, returns the warning. The GLoM paper's quality also falls
    steeply below a few hundred seeds (Fig. 6)."""
    if n_known >= cfg.min_seeds:
        return None
    message = (f"only {n_known} known seed(s), below expand.min_seeds={cfg.min_seeds}: an audience expanded "
               "from so few users can single them out")
    if cfg.min_seeds_action == "refuse":
        raise ValueError(message + " (set expand.min_seeds_action=warn to expand anyway)")
    return message

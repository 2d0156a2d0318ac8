"""What the evaluation scores for a seed list, ranked as every expansion path ranks: the reference the
model-face tests compare ``expand``, the MLflow pyfunc and ``bentoml serve`` against."""

from __future__ import annotations

import numpy as np

from glom_plugin.expand.expander import select_ranked
from glom_plugin.models.base import LookalikeModel, expansion_rng, population_campaign

# Training budgets small enough for tests; every family still fits and ranks.
FAST = {
    "device": "cpu", "pm.dim": 8, "pm.epochs": 2, "glm.epochs": 2, "glm.seedset_episodes": 32,
    "pm.use_profiles": False, "baselines.graphsage.epochs": 2, "baselines.lightgcn.epochs": 2,
    "baselines.pinterest.epochs": 2, "baselines.metaheac.meta_epochs": 1, "similarity.min_corated": 2,
    "evaluate.negative_ratio": 3, "expand.top_k": 25,
}


def evaluation_ranking(model: LookalikeModel, seed_ids: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, scores): the realistic protocol's campaign for these seeds (every other user a candidate,
    the seed list's own label-blind non-seed sample), scored by ``score_campaign``, top k."""
    index = model.user_index()
    rows = np.array(sorted(index[s] for s in seed_ids))
    campaign = population_campaign("c", rows, model.n_users, model.config.evaluate.negative_ratio,
                                   expansion_rng(model.seed, rows))
    return select_ranked(campaign.candidates, np.asarray(model.score_campaign(campaign), dtype=np.float64), k, None)

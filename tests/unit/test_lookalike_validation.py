"""Retrieval around the user mean, and GLM's model selection on held-out lookalike campaigns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glom_plugin.config import GlomConfig
from glom_plugin.data.schema import RELATION_INTERACTED
from glom_plugin.expand.aggregation import retrieval_vectors
from glom_plugin.models.base import Campaign, EmbeddingLookalikeModel
from glom_plugin.models.glm import GraphLearningModel, build_message_graph
from glom_plugin.models.kg import KnowledgeTriples, build_knowledge_triples
from glom_plugin.models.lookalike_validation import CANDIDATES, MIN_SEEDS, LookalikeValidation
from glom_plugin.models.training import fit_glm, fit_pm, held_out_split
from tests.support.planted import make_planted_data

torch.set_num_threads(1)


class FixedEmbeddings(EmbeddingLookalikeModel):
    name = "fixed"

    def __init__(self, config: GlomConfig, embeddings: np.ndarray) -> None:
        super().__init__(config)
        self.given = embeddings

    def fit(self, data):  # noqa: ARG002 - the vectors are given
        self.embeddings = self.given
        return self


@pytest.mark.parametrize("aggregation", ["mean", "max", "probabilistic"])
def test_a_shared_offset_does_not_change_centred_scores(aggregation):
    rng = np.random.default_rng(0)
    users = rng.normal(size=(40, 8)).astype(np.float32)
    offset = 25.0 * rng.normal(size=(1, 8)).astype(np.float32)
    campaign = Campaign("c", seeds=np.arange(5), non_seeds=np.empty(0, np.int64), candidates=np.arange(5, 40))
    cfg = GlomConfig().with_overrides(**{"expand.aggregation": aggregation})
    plain = FixedEmbeddings(cfg, users).fit(None).score_campaign(campaign)
    shifted = FixedEmbeddings(cfg, users + offset).fit(None).score_campaign(campaign)
    np.testing.assert_allclose(plain, shifted, atol=1e-4)
    # without centring the offset dominates cosine: every score is pushed towards 1, the spread collapses
    raw = FixedEmbeddings(cfg.with_overrides(**{"expand.center": False}), users + offset).fit(None)
    raw_scores = raw.score_campaign(campaign)
    assert raw_scores.min() > 0.9 and raw_scores.std() < plain.std() / 5


def test_retrieval_vectors_centre_once_and_keep_a_centred_space():
    x = np.random.default_rng(1).normal(size=(30, 4)).astype(np.float32) + 3.0
    centred = retrieval_vectors(x)
    np.testing.assert_allclose(centred.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(retrieval_vectors(centred), centred, atol=1e-5)
    np.testing.assert_array_equal(retrieval_vectors(x, center=False), x)


def two_item_graph() -> KnowledgeTriples:
    """Users 0..9; item 10 bought by users 0..5, item 11 by users 6..9 (interacted only)."""
    users = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    items = np.array([10] * 6 + [11] * 4)
    return KnowledgeTriples(users, np.zeros(10, np.int64), items, (RELATION_INTERACTED,), n_users=10, n_items=2)


def test_campaigns_seed_from_training_purchasers_and_never_draw_a_purchaser_as_negative():
    full = two_item_graph()
    held = np.isin(np.arange(10), [0, 6])  # pairs (0, 10) and (6, 11) are held out
    train = full.subset(~held)
    campaigns = LookalikeValidation.build(
        np.array([0, 6]), np.array([10, 11]), train, full, np.random.default_rng(0)
    )
    assert campaigns is not None and len(campaigns) == 2
    np.testing.assert_array_equal(campaigns.seeds[0], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(campaigns.seeds[1], [7, 8, 9])
    assert campaigns.candidates.shape == (2, 1 + CANDIDATES)
    np.testing.assert_array_equal(campaigns.candidates[:, 0], [0, 6])
    for row, valid, purchasers in zip(campaigns.candidates, campaigns.valid, [range(0, 6), range(6, 10)], strict=True):
        negatives = row[1:][valid]
        assert len(negatives) > 0 and not np.isin(negatives, list(purchasers)).any()


def test_items_with_too_few_other_purchasers_are_not_campaigns():
    full = two_item_graph()
    train = full.subset(~np.isin(np.arange(10), [6, 7]))  # item 11 keeps only users 8 and 9
    assert MIN_SEEDS > 2
    assert LookalikeValidation.build(np.array([6]), np.array([11]), train, full, np.random.default_rng(0)) is None


def test_score_ranks_a_lookalike_first_and_an_outsider_last():
    full = two_item_graph()
    train = full.subset(np.arange(10) != 0)
    campaigns = LookalikeValidation.build(np.array([0]), np.array([10]), train, full, np.random.default_rng(0))
    # buyers of item 10 share a direction; everyone else points elsewhere
    vectors = np.tile(np.array([[0.0, 1.0]], np.float32), (10, 1))
    vectors[:6] = [1.0, 0.0]
    assert campaigns.score(vectors)["mrr"] == pytest.approx(1.0)
    swapped = vectors.copy()
    swapped[0] = vectors[9]  # the held-out buyer now looks exactly like the outsiders: a 51-way tie
    assert campaigns.score(swapped)["mrr"] == pytest.approx(1.0 / (1.0 + 0.5 * CANDIDATES))


def test_held_out_split_is_a_function_of_the_seed():
    data = make_planted_data(n_users=60, n_items=25, seed=3)
    triples = build_knowledge_triples(data, GlomConfig().graph)
    a = held_out_split(triples, 0.2, seed=5)
    b = held_out_split(triples, 0.2, seed=5)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert len(a[1]) > 0 and len(a[0].heads) < len(triples.heads)


def test_glm_keeps_the_initial_state_unless_an_epoch_beats_it():
    """With nothing learnt (lr 0) no epoch beats the state before training, so GLM returns the propagated
    PM embeddings (best_epoch -1): exactly the untrained layers' output."""
    data = make_planted_data(n_users=150, n_items=50, seed=4)
    cfg = GlomConfig(device="cpu").with_overrides(
        **{"pm.dim": 12, "pm.epochs": 6, "pm.val_fraction": 0.2, "glm.epochs": 2, "glm.lr": 0.0}
    )
    pm = fit_pm(data, cfg, seed=0, progress=False)
    result = fit_glm(data, cfg, seed=0, pm=pm, progress=False)
    history = result.history
    assert history.selection == "lookalike"
    assert history.initial_val_mrr is not None and history.best_epoch == -1
    assert history.val_mrr == pytest.approx([history.initial_val_mrr] * 2)
    untrained = GraphLearningModel(
        pm.triples.n_nodes, pm.triples.n_relations, 12, cfg.glm.layers, cfg.glm.aggregator,
        initial_nodes=pm.node_embeddings, initial_relations=pm.relation_table,
    )
    with torch.no_grad():
        expected, _ = untrained(build_message_graph(pm.triples, "dgl", "cpu"))
    np.testing.assert_allclose(result.node_embeddings, expected.numpy(), rtol=1e-4, atol=1e-4)


def test_link_selection_is_still_available():
    data = make_planted_data(n_users=80, n_items=30, seed=5)
    cfg = GlomConfig(device="cpu").with_overrides(
        **{"pm.dim": 8, "pm.epochs": 2, "glm.epochs": 2, "glm.select_on": "link", "pm.val_fraction": 0.2}
    )
    result = fit_glm(data, cfg, seed=0, pm=fit_pm(data, cfg, seed=0, progress=False), progress=False)
    assert result.history.selection == "link" and len(result.history.val_mrr) >= 1


def test_an_epoch_that_improves_lookalike_retrieval_is_kept():
    """From random embeddings (the "w/o PM" ablation) Eq. 9 training does help on planted communities."""
    data = make_planted_data(n_users=150, n_items=50, seed=4)
    cfg = GlomConfig(device="cpu").with_overrides(
        **{"pm.dim": 12, "glm.use_pm": False, "glm.val_fraction": 0.2, "glm.epochs": 6, "glm.lr": 0.02,
           "glm.batch_size": 256, "glm.patience": 6}
    )
    history = fit_glm(data, cfg, seed=0, progress=False).history
    assert history.best_epoch >= 0
    assert history.best_val_mrr > history.initial_val_mrr

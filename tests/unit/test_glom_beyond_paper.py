"""The beyond-paper GLoM variants: the seed-set GLM objective and the per-campaign hybrid head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from glom_plugin.config import GlomConfig
from glom_plugin.expand.aggregation import l2_normalize, retrieval_vectors
from glom_plugin.models.kg import build_knowledge_triples
from glom_plugin.models.registry import create_model
from glom_plugin.models.seedset import SeedSetObjective, users_by_item
from glom_plugin.models.training import fit_glm, fit_pm, held_out_split
from tests.support.planted import community_of_users, make_campaigns, make_planted_data, training_view

torch.set_num_threads(1)


def _cfg(**extra) -> GlomConfig:
    return GlomConfig(device="cpu").with_overrides(
        **{"pm.dim": 16, "pm.epochs": 8, "pm.batch_size": 256, "glm.epochs": 4, "glm.aggregator": "mean", **extra}
    )


@pytest.fixture(scope="module")
def planted():
    data = make_planted_data(n_users=240, n_items=80, seed=3)
    campaigns = make_campaigns(data, n_campaigns=6, seed=2)
    return training_view(data, campaigns), campaigns


def _objective(data, cfg, seed=0):
    full = build_knowledge_triples(data, cfg.graph)
    train, _, _ = held_out_split(full, cfg.pm.val_fraction, seed)
    rng = np.random.default_rng(seed)
    return SeedSetObjective(
        train, full, cfg.glm, True, "dgl", torch.device("cpu"), rng, torch.Generator().manual_seed(seed)
    ), train, full


def test_seedset_episodes_split_each_items_training_buyers(planted):
    data, _ = planted
    objective, train, full = _objective(data, _cfg(**{"glm.seedset_episodes": 30}))
    buyers = users_by_item(train)
    episodes = objective.episodes()
    assert len(episodes) == 30 and len({item for item, _, _ in episodes}) == 30
    for item, seeds, audience in episodes:
        assert len(seeds) >= 2 and len(audience) >= 2
        assert not set(seeds) & set(audience)
        assert set(seeds) | set(audience) <= set(buyers[item])  # only training buyers, never a validation pair


def test_seedset_epoch_graph_hides_exactly_the_audiences_item_edges(planted):
    data, _ = planted
    objective, train, _ = _objective(data, _cfg(**{"glm.seedset_episodes": 10}))
    episodes = objective.episodes()
    graph = objective.epoch_graph(episodes)
    kept = set(zip(graph.src.tolist(), graph.dst.tolist(), strict=True))
    for item, seeds, audience in episodes:
        for user in audience:  # the hidden audience's purchase of the item: gone in both directions
            assert (int(user), item) not in kept and (item, int(user)) not in kept
        assert any((int(s), item) in kept for s in seeds)  # seeds keep theirs, as in a real campaign
    hidden = sum(len(a) for _, _, a in episodes)
    removed = len(train.heads) - len(graph.src)
    assert removed >= 2 * hidden  # at least interacted + interacted_by for every hidden pair
    assert removed < len(train.heads)


def test_seedset_loss_is_the_infonce_of_the_audience_by_hand(planted):
    data, _ = planted
    cfg = _cfg(**{"glm.seedset_negatives": 5, "glm.seedset_temperature": 0.5})
    objective, train, _ = _objective(data, cfg)
    h = torch.randn(train.n_nodes, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    item, seeds, audience = objective.episodes()[0]
    state = objective.rng.bit_generator.state
    loss = objective.loss(h, [(item, seeds, audience)])
    objective.rng.bit_generator.state = state
    negatives, valid = objective.negatives(item)
    users = h[: train.n_users] - h[: train.n_users].mean(0)
    v = users / users.norm(dim=1, keepdim=True)
    q = v[seeds].mean(0)
    q = q / q.norm()
    expected = []
    for a in audience:
        logits = torch.cat([(v[a] @ q).reshape(1), (v[negatives[valid]] @ q)]) / 0.5
        expected.append(torch.logsumexp(logits, 0) - logits[0])
    torch.testing.assert_close(loss, torch.stack(expected).mean())


def test_seedset_training_improves_its_own_objective_and_ranks_communities(planted):
    data, campaigns = planted
    cfg = _cfg(**{"glm.objective": "seedset", "glm.epochs": 6, "glm.patience": 10, "glm.lr": 0.01})
    pm = fit_pm(data, cfg, seed=0, progress=False)
    result = fit_glm(data, cfg, seed=0, pm=pm, progress=False)
    assert result.history.train_loss[-1] < result.history.train_loss[0]
    model = create_model("glom-seedset", cfg, seed=0).fit(data)
    aps = [average_precision_score(labels, model.score_campaign(c)) for c, labels in campaigns]
    chance = [labels.mean() for _, labels in campaigns]
    assert np.mean(aps) > 2.5 * np.mean(chance)


def test_hybrid_features_are_the_item_bag_beside_the_weighted_glom_embedding(planted):
    data, campaigns = planted
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(data.n_users, 6))
    cfg = _cfg(**{"hybrid.embedding_weight": 3.0})
    model = create_model("glom-hybrid", cfg).fit_embeddings(data, embeddings)
    campaign = campaigns[0][0]
    x = model.features(campaign.candidates, campaign.item_idx).toarray()
    expected = 3.0 * l2_normalize(retrieval_vectors(embeddings))[campaign.candidates]
    np.testing.assert_allclose(x[:, -7:-1], expected, rtol=1e-6)  # then the evidence column (test below)
    bag = model.raw.rows(campaign.candidates, campaign.item_idx).toarray()
    np.testing.assert_allclose(x[:, :-7], bag)
    assert np.all(bag[:, campaign.item_idx] == 0)  # the campaign's own item is hidden, as in LR


def test_hybrid_learns_the_campaign_from_informative_embeddings(planted):
    """With the item bag off and embeddings that encode the planted community, the per-campaign head
    must rank the seeds' community first."""
    data, campaigns = planted
    communities = community_of_users(data.n_users, 4)
    embeddings = np.eye(4)[communities] + 0.05 * np.random.default_rng(1).normal(size=(data.n_users, 4))
    cfg = _cfg(**{"hybrid.item_bag": False})
    model = create_model("glom-hybrid", cfg).fit_embeddings(data, embeddings)
    for campaign, _ in campaigns:
        scores = model.score_campaign(campaign)
        seed_community = np.bincount(communities[campaign.seeds]).argmax()
        same = communities[campaign.candidates] == seed_community
        assert scores[same].min() > scores[~same].max()


def test_hybrid_evidence_column_counts_items_without_the_campaigns_own(planted):
    """v / (1 + n_u), n_u = items bought minus the campaign's item: a seed (who bought it, in the graph)
    and a candidate with the same other items get the same value, so the column cannot tell seeds apart."""
    data, campaigns = planted
    embeddings = np.random.default_rng(0).normal(size=(data.n_users, 6))
    model = create_model("glom-hybrid", _cfg(**{"hybrid.evidence_weight": 2.0})).fit_embeddings(data, embeddings)
    campaign = campaigns[0][0]
    bought = data.user_item_matrix().astype(bool).toarray()
    users = np.concatenate([campaign.seeds, campaign.candidates])
    others = bought[users].sum(axis=1) - bought[users, campaign.item_idx]
    x = model.features(users, campaign.item_idx).toarray()
    np.testing.assert_allclose(x[:, -1], 2.0 / (1.0 + others))
    assert bought[campaign.seeds, campaign.item_idx].all()  # the seeds' own purchase is in the graph...
    np.testing.assert_allclose(model.evidence(campaign.seeds, None), 1.0 / (2.0 + others[: len(campaign.seeds)]))
    without = create_model("glom-hybrid", _cfg(**{"hybrid.evidence_weight": 0.0})).fit_embeddings(data, embeddings)
    assert without.features(users, campaign.item_idx).shape[1] == x.shape[1] - 1  # 0 leaves the column out

"""The GLoM paper's comparison systems (§4.2): LR, GraphSAGE, LightGCN, Pinterest, MetaHeac.

Each is fitted on a small graph with planted communities (tests/support/planted.py) after the
held-out purchases are removed, and must rank a campaign's hidden purchasers well above chance
(PR-AUC >= 2x the positive rate), give the same scores twice under one seed, and work on ratings
alone (no categories, no profiles). Profiles enter only the methods defined over node features.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from glom_plugin.config import GlomConfig
from glom_plugin.models.base import Campaign, EmbeddingLookalikeModel
from glom_plugin.models.registry import create_model
from tests.support.planted import make_campaigns, make_planted_data, training_view, without_categories

MODELS = ["lr", "graphsage", "lightgcn", "pinterest", "metaheac"]
# Small training budgets: the planted structure is learnt in a few epochs.
FAST = {
    "device": "cpu",
    "baselines.graphsage.epochs": 10,
    "baselines.lightgcn.epochs": 10,
    "baselines.pinterest.epochs": 10,
    "baselines.metaheac.meta_epochs": 5,
    "baselines.metaheac.outer_lr": 0.02,
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def config() -> GlomConfig:
    return GlomConfig().with_overrides(**FAST)


@pytest.fixture(scope="module")
def planted():
    """(full data, campaigns with labels); the models train on ``training_view``."""
    data = make_planted_data(n_users=300, n_communities=4, n_items=120, seed=0)
    return data, make_campaigns(data, n_campaigns=8, seed=1)


@pytest.fixture(scope="module")
def ratings_only(planted):
    data, campaigns = planted
    return without_categories(training_view(data, campaigns)), campaigns


@pytest.fixture(scope="module")
def fitted(config, ratings_only):
    """One fitted model per name on the ratings-only training view (shared by several tests)."""
    data, _ = ratings_only
    return {name: create_model(name, config, seed=3).fit(data) for name in MODELS}


@pytest.fixture(scope="module")
def fitted_with_categories(config, planted):
    """Lazily fitted models on the training view that keeps item categories (no profiles)."""
    data, campaigns = planted
    view = training_view(data, campaigns)
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = create_model(name, config, seed=3).fit(view)
        return cache[name]

    return get


def mean_pr_auc(model, campaigns) -> tuple[float, float]:
    aps, rates = [], []
    for campaign, labels in campaigns:
        scores = model.score_campaign(campaign)
        assert scores.shape == (len(campaign.candidates),)
        assert np.isfinite(scores).all()
        aps.append(average_precision_score(labels, scores))
        rates.append(labels.mean())
    return float(np.mean(aps)), float(np.mean(rates))


@pytest.mark.parametrize("name", MODELS)
def test_beats_random_on_ratings_only_data(name, fitted, ratings_only):
    _, campaigns = ratings_only
    pr_auc, positive_rate = mean_pr_auc(fitted[name], campaigns)
    assert pr_auc >= 2.0 * positive_rate, f"{name}: PR-AUC {pr_auc:.3f} vs positive rate {positive_rate:.3f}"


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_scores(name, config, fitted, ratings_only):
    data, campaigns = ratings_only
    again = create_model(name, config, seed=3).fit(data)
    for campaign, _ in campaigns[:3]:
        np.testing.assert_array_equal(fitted[name].score_campaign(campaign), again.score_campaign(campaign))


@pytest.mark.parametrize("name", ["graphsage", "lightgcn", "pinterest", "metaheac"])
def test_other_seed_other_model(name, config, fitted, ratings_only):
    data, campaigns = ratings_only
    other = create_model(name, config, seed=4).fit(data)
    campaign = campaigns[0][0]
    assert not np.array_equal(fitted[name].score_campaign(campaign), other.score_campaign(campaign))


@pytest.mark.parametrize("name", ["graphsage", "metaheac"])
def test_node_feature_methods_use_profiles(name, config, planted, fitted_with_categories):
    """GraphSAGE and MetaHeac are defined over node/user features: profiles change (and still inform) them."""
    _, campaigns = planted
    with_profiles = training_view(make_planted_data(300, 4, 120, seed=0, with_profiles=True), campaigns)
    a = fitted_with_categories(name)
    b = create_model(name, config, seed=3).fit(with_profiles)
    campaign = campaigns[0][0]
    assert not np.allclose(a.score_campaign(campaign), b.score_campaign(campaign))
    pr_auc, positive_rate = mean_pr_auc(b, campaigns)
    assert pr_auc >= 2.0 * positive_rate
    off = create_model(name, config.with_overrides(**{f"baselines.{name}.use_profiles": False}), seed=3).fit(
        with_profiles
    )
    np.testing.assert_allclose(off.score_campaign(campaign), a.score_campaign(campaign), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["lr", "lightgcn", "pinterest"])
def test_id_based_methods_ignore_profiles(name, config, planted, fitted_with_categories):
    _, campaigns = planted
    with_profiles = training_view(make_planted_data(300, 4, 120, seed=0, with_profiles=True), campaigns)
    campaign = campaigns[0][0]
    a = fitted_with_categories(name).score_campaign(campaign)
    b = create_model(name, config, seed=3).fit(with_profiles).score_campaign(campaign)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["lr", "metaheac"])
def test_categories_are_used_when_present(name, planted, fitted_with_categories):
    data, campaigns = planted
    model = fitted_with_categories(name)
    pr_auc, positive_rate = mean_pr_auc(model, campaigns)
    assert pr_auc >= 2.0 * positive_rate
    if name == "lr":
        assert model.features.n_features == data.n_items + data.item_categories.shape[1]
    else:
        assert model.network.n_categories == data.item_categories.shape[1]


def test_lr_l1_gives_sparse_coefficients(config, ratings_only):
    data, campaigns = ratings_only
    campaign = campaigns[0][0]
    l2 = create_model("lr", config, seed=0).fit(data)
    l1 = create_model(
        "lr", config.with_overrides(**{"baselines.lr.penalty": "l1", "baselines.lr.C": 10.0}), seed=0
    ).fit(data)
    l2.score_campaign(campaign)
    scores = l1.score_campaign(campaign)
    assert np.count_nonzero(l1.last_coefficients) < 0.5 * np.count_nonzero(l2.last_coefficients)
    pr_auc, positive_rate = mean_pr_auc(l1, campaigns)
    assert pr_auc > positive_rate
    assert ((scores >= 0) & (scores <= 1)).all()
    assert l1.decision_threshold == 0.5


@pytest.mark.parametrize("weighting", ["binary", "counts", "tfidf"])
def test_lr_feature_weightings(weighting, planted):
    from sklearn.feature_extraction.text import TfidfTransformer

    from glom_plugin.models.lr import RawUserFeatures

    data, _ = planted
    features = RawUserFeatures(data, weighting, use_categories=True)
    users = np.arange(data.n_users)
    rows = features.rows(users)
    counts = (
        features.rows(users) if weighting == "counts" else RawUserFeatures(data, "counts", True).rows(users)
    )
    assert rows.shape == (data.n_users, data.n_items + data.item_categories.shape[1])
    np.testing.assert_allclose(counts[:, data.n_items :].toarray(), data.user_category_matrix().toarray())
    if weighting == "binary":
        assert set(np.unique(rows.data)) == {1.0}
    if weighting == "tfidf":  # same numbers as scikit-learn's transformer
        expected = TfidfTransformer(sublinear_tf=True).fit_transform(counts)
        np.testing.assert_allclose(rows.toarray(), expected.toarray(), atol=1e-12)


def test_lr_hides_the_campaign_item(planted):
    """Every seed bought the campaign's item: it must not be a feature (nor count in its category)."""
    from glom_plugin.models.lr import RawUserFeatures

    data, campaigns = planted
    campaign = campaigns[0][0]
    features = RawUserFeatures(data, "counts", use_categories=True)
    full = features.rows(campaign.seeds)
    hidden = features.rows(campaign.seeds, hide_item=campaign.item_idx)
    assert full[:, campaign.item_idx].toarray().min() == 1.0
    assert hidden[:, campaign.item_idx].nnz == 0
    assert full.sum() - hidden.sum() == 2 * len(campaign.seeds)  # the item and its one category


def test_lr_needs_non_seeds(fitted, ratings_only):
    campaign = ratings_only[1][0][0]
    bare = Campaign("no-negatives", campaign.seeds, np.array([], dtype=np.int64), campaign.candidates)
    with pytest.raises(ValueError, match="non_seeds"):
        fitted["lr"].score_campaign(bare)


@pytest.mark.parametrize("name", MODELS)
def test_scoring_before_fit_is_an_error(name, config, ratings_only):
    with pytest.raises(RuntimeError, match="fit"):
        create_model(name, config).score_campaign(ratings_only[1][0][0])


@pytest.mark.parametrize("name", ["graphsage", "lightgcn", "pinterest"])
def test_embedding_models_expose_user_embeddings(name, fitted, ratings_only):
    data, _ = ratings_only
    embeddings = fitted[name].user_embeddings()
    assert embeddings.shape == (data.n_users, 64)
    assert embeddings.dtype == np.float32
    loss = fitted[name].loss_history
    assert loss[-1] < loss[0], f"{name}: BPR loss did not decrease ({loss[0]:.4f} -> {loss[-1]:.4f})"


def test_graph_baselines_score_by_seed_similarity(fitted):
    assert isinstance(fitted["graphsage"], EmbeddingLookalikeModel)
    assert isinstance(fitted["lightgcn"], EmbeddingLookalikeModel)


# ---- the math, on hand-computed examples ----------------------------------------------------------


def test_bpr_loss_hand_computed():
    from glom_plugin.models.bpr import bpr_loss

    loss = bpr_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0]))
    expected = (math.log1p(math.exp(-2.0)) + math.log(2.0)) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_bpr_sampler_negatives_avoid_known_purchases(ratings_only):
    from glom_plugin.models.bpr import BprSampler

    data, _ = ratings_only
    sampler = BprSampler.from_data(data, np.random.default_rng(0))
    known = set(zip(sampler.users.tolist(), sampler.items.tolist(), strict=True))
    seen = 0
    for users, pos, neg in sampler.epoch(512):
        seen += len(users)
        clashes = sum((u, j) in known for u, j in zip(users.tolist(), neg.tolist(), strict=True))
        assert clashes <= 0.01 * len(users)
        assert all((u, i) in known for u, i in zip(users.tolist(), pos.tolist(), strict=True))
    assert seen == len(data.edges)


@pytest.mark.parametrize("backend", ["dgl", "torch"])
def test_lightgcn_propagation_is_symmetric_normalized_adjacency(backend):
    """Both backends compute D^{-1/2} A D^{-1/2} h (LightGCN Eq. 8) on a 2-user, 2-item graph."""
    from glom_plugin.models.lightgcn import NormalizedAdjacency

    users, items = np.array([0, 0, 1]), np.array([0, 1, 1])  # u0-i0, u0-i1, u1-i1
    adjacency = NormalizedAdjacency.from_edges(users, items, 2, 2, backend, torch.device("cpu"))
    a = np.zeros((4, 4))
    for u, i in zip(users, items, strict=True):
        a[u, 2 + i] = a[2 + i, u] = 1.0
    d = a.sum(1)
    expected_matrix = a / np.sqrt(np.outer(d, d))
    h = torch.arange(8, dtype=torch.float32).reshape(4, 2)
    np.testing.assert_allclose(adjacency.propagate(h).numpy(), expected_matrix @ h.numpy(), rtol=1e-6)


def test_lightgcn_layer_mean():
    """e = 1/(K+1) sum_k e^(k) (Eq. 4): with K = 0 the output is the ID embedding itself (matrix factorization)."""
    from glom_plugin.models.lightgcn import LightGCN, NormalizedAdjacency

    adjacency = NormalizedAdjacency.from_edges(np.array([0]), np.array([0]), 1, 1, "dgl", torch.device("cpu"))
    mf = LightGCN(1, 1, dim=3, layers=0)
    users, items, users0, _ = mf(adjacency)
    torch.testing.assert_close(users, users0)
    one = LightGCN(1, 1, dim=3, layers=1)
    users, items, _, _ = one(adjacency)
    e0 = one.embedding.weight
    torch.testing.assert_close(users[0], (e0[0] + e0[1]) / 2)  # u's only neighbour is i; degrees are 1


def test_graphsage_neighbour_sampler_keeps_fanout():
    from glom_plugin.models.graphsage import NeighbourSampler

    dst = np.repeat(np.arange(4), [1, 5, 12, 0])
    src = np.arange(len(dst)) % 4
    sampler = NeighbourSampler(src, dst, 4, np.random.default_rng(0))
    graph = sampler.sample(3)
    assert graph.in_degrees().tolist() == [1, 3, 3, 0]
    assert sampler.full().in_degrees().tolist() == [1, 5, 12, 0]


def test_pinterest_affinity_prefers_the_seeds_region():
    from glom_plugin.models.pinterest import LshRegions, rank_percentile

    rng = np.random.default_rng(0)
    near = rng.normal([5.0, 5.0], 0.1, (50, 2))
    far = rng.normal([-5.0, -5.0], 0.1, (50, 2))
    regions = LshRegions(np.concatenate([near, far]), tables=8, bits=2, rng=np.random.default_rng(1))
    affinity = regions.affinity(seeds=np.arange(10), candidates=np.array([20, 30, 70, 80]), smoothing=1.0)
    assert affinity[:2].min() > affinity[2:].max()
    np.testing.assert_allclose(rank_percentile(np.array([3.0, 1.0, 2.0])), [1.0, 0.0, 0.5])


def test_metaheac_hides_the_task_item_and_splits_hot_cold(config, fitted, ratings_only):
    from glom_plugin.models.metaheac import UserBags

    data, campaigns = ratings_only
    bags = UserBags(data.user_item_matrix(), torch.device("cpu"))
    users = np.array([0, 1])
    flat, offsets = bags.bags(users)
    matrix = data.user_item_matrix()
    np.testing.assert_array_equal(flat.numpy(), np.concatenate([np.unique(matrix[u].indices) for u in users]))
    first_item = int(flat[0])
    hidden, hidden_offsets = bags.bags(users, hide_item=first_item)
    assert first_item not in hidden.tolist()
    assert len(hidden) == len(flat) - int((flat == first_item).sum())
    assert hidden_offsets[0] == 0

    model = fitted["metaheac"]
    seeds = campaigns[0][0].seeds
    hot = Campaign("hot", np.arange(40), campaigns[0][0].non_seeds, campaigns[0][0].candidates)
    cold = Campaign("cold", seeds[:3], campaigns[0][0].non_seeds, campaigns[0][0].candidates)
    assert model.finetune_steps(hot) == config.baselines.metaheac.finetune_steps_hot
    assert model.finetune_steps(cold) == config.baselines.metaheac.finetune_steps_cold
    assert model.meta_loss_history and all(np.isfinite(model.meta_loss_history))


# ---- CUDA: DGL's PyPI build is CPU-only, so the GPU path of LightGCN / Pinterest is torch sparse ------


def test_dgl_backend_refuses_cuda():
    from glom_plugin.models.lightgcn import resolve_backend

    with pytest.raises(ValueError, match="CPU-only"):
        resolve_backend("dgl", torch.device("cuda"))
    assert resolve_backend("auto", torch.device("cuda")) == "torch"
    assert resolve_backend("auto", torch.device("cpu")) == "dgl"


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["lightgcn", "pinterest", "metaheac"])
def test_cuda_path_beats_random(name, ratings_only):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA: checks the torch-sparse / torch GPU path of the baselines")
    data, campaigns = ratings_only
    model = create_model(name, GlomConfig().with_overrides(**{**FAST, "device": "cuda"}), seed=3).fit(data)
    pr_auc, positive_rate = mean_pr_auc(model, campaigns)
    assert pr_auc >= 2.0 * positive_rate, f"{name} on CUDA: PR-AUC {pr_auc:.3f} vs {positive_rate:.3f}"
    if model.user_embeddings() is not None:
        assert isinstance(model.user_embeddings(), np.ndarray)

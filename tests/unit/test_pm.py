"""PM (§3.5): energies by hand, Eq. 2 margin loss, filtered negative sampling, training reduces the loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from glom_plugin.config import GlomConfig, GraphConfig
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.kg import build_knowledge_triples
from glom_plugin.models.pm import FilteredNegativeSampler, PretrainEnergyModel, margin_ranking_loss
from glom_plugin.models.registry import create_model
from glom_plugin.models.training import fit_pm
from tests.support.planted import make_planted_data

torch.set_num_threads(1)


def tiny_data(with_profiles: bool = False) -> LookalikeData:
    """3 users, 2 items: u0 likes i0, u1 dislikes i0, u1 likes i1, u2 likes i1; u0~u1 similar."""
    edges = pd.DataFrame(
        {
            "user_idx": [0, 1, 1, 2],
            "item_idx": [0, 0, 1, 1],
            "rating_norm": [1.0, 0.0, 0.75, 1.0],
            "sentiment": [1.0, 0.1, 0.8, np.nan],
            "polarity": [1.0, 0.05, 0.775, 1.0],
            "liked": [True, False, True, True],
        }
    )
    similarity = pd.DataFrame({"user_a": [0], "user_b": [1], "similarity": [0.9]})
    data = LookalikeData(
        user_ids=np.array(["a", "b", "c"]),
        item_ids=np.array(["x", "y"]),
        edges=edges,
        similarity=similarity,
        item_categories=sp.csr_matrix((2, 0)),
    )
    if with_profiles:
        data = data.with_profiles(np.eye(3, 2, dtype=np.float32), np.eye(2, 2, dtype=np.float32))
    return data


def test_knowledge_triples_relations_and_ablations():
    triples = build_knowledge_triples(tiny_data(), GraphConfig())
    counts = triples.counts()
    assert counts["interacted"] == 4 and counts["likes"] == 3 and counts["dislikes"] == 1
    assert counts["similar"] == 2  # both directions
    assert counts["interacted_by"] == 4 and counts["liked_by"] == 3 and counts["disliked_by"] == 1
    # item node ids are offset by n_users
    inter = triples.relation_id("interacted")
    assert set(triples.tails[triples.relations == inter]) == {3, 4}
    reverse = triples.reverse_of()
    assert reverse[triples.relation_id("liked_by")] == triples.relation_id("likes")
    assert reverse[triples.relation_id("similar")] == -1
    no_pol = build_knowledge_triples(tiny_data(), GraphConfig(use_polarity_edges=False)).counts()
    assert "likes" not in no_pol and "dislikes" not in no_pol and no_pol["interacted"] == 4
    no_sim = build_knowledge_triples(tiny_data(), GraphConfig(use_similarity_edges=False)).counts()
    assert "similar" not in no_sim


def _set(model: PretrainEnergyModel, entity: list[list[float]], relation: list[list[float]]) -> None:
    with torch.no_grad():
        model.entity.weight.copy_(torch.tensor(entity))
        model.relation.weight.copy_(torch.tensor(relation))


@pytest.mark.parametrize("norm", [1, 2])
def test_interaction_energy_by_hand(norm):
    model = PretrainEnergyModel(n_users=1, n_items=1, n_relations=1, dim=2, norm=norm)
    _set(model, [[0.1, 0.2], [0.5, -0.1]], [[0.3, 0.1]])
    # u + r - v = (0.1+0.3-0.5, 0.2+0.1+0.1) = (-0.1, 0.4)
    expected = 0.5 if norm == 1 else float(np.hypot(0.1, 0.4))
    energy = model.energy(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))
    assert energy.item() == pytest.approx(expected, abs=1e-6)


def test_profile_energies_by_hand():
    user_profile = np.array([[0.2, 0.0]], dtype=np.float32)
    item_profile = np.array([[0.0, 0.3]], dtype=np.float32)
    model = PretrainEnergyModel(
        1, 1, 1, dim=2, norm=2, user_profiles=user_profile, item_profiles=item_profile
    )
    _set(model, [[0.1, 0.2], [0.5, -0.1]], [[0.3, 0.1]])
    with torch.no_grad():  # projections = identity, so u_p / v_p are the profiles themselves
        for proj in (model.user_projection, model.item_projection):
            proj.weight.copy_(torch.eye(2))
            proj.bias.zero_()
    terms = model.energy_terms(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))
    u_i, v_i, r = np.array([0.1, 0.2]), np.array([0.5, -0.1]), np.array([0.3, 0.1])
    u_p, v_p = user_profile[0], item_profile[0]
    assert terms["F_I"].item() == pytest.approx(np.linalg.norm(u_i + r - v_i), abs=1e-6)
    assert terms["F_GG"].item() == pytest.approx(np.linalg.norm(u_p + r - v_p), abs=1e-6)
    assert terms["F_GI"].item() == pytest.approx(np.linalg.norm(u_p + r - v_i), abs=1e-6)
    assert terms["F_IG"].item() == pytest.approx(np.linalg.norm(u_i + r - v_p), abs=1e-6)
    total = model.energy(torch.tensor([0]), torch.tensor([0]), torch.tensor([1])).item()
    assert total == pytest.approx(sum(t.item() for t in terms.values()), abs=1e-6)
    # node embedding = mean of interaction- and profile-based representations
    nodes = model.node_embeddings().numpy()
    np.testing.assert_allclose(nodes[0], (u_i + u_p) / 2, atol=1e-6)
    np.testing.assert_allclose(nodes[1], (v_i + v_p) / 2, atol=1e-6)


def test_user_user_triple_uses_user_representations_on_both_sides():
    user_profiles = np.array([[0.2, 0.0], [0.0, 0.2]], dtype=np.float32)
    model = PretrainEnergyModel(2, 1, 1, dim=2, user_profiles=user_profiles)
    with torch.no_grad():
        model.user_projection.weight.copy_(torch.eye(2))
        model.user_projection.bias.zero_()
    terms = model.energy_terms(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))
    u0, u1, r = model.entity.weight[0], model.entity.weight[1], model.relation.weight[0]
    expected_gg = torch.linalg.vector_norm(torch.tensor([0.2, 0.0]) + r - torch.tensor([0.0, 0.2]))
    assert terms["F_GG"].item() == pytest.approx(expected_gg.item(), abs=1e-6)
    assert terms["F_I"].item() == pytest.approx(torch.linalg.vector_norm(u0 + r - u1).item(), abs=1e-6)


def test_profile_terms_absent_without_profiles_and_zero_for_profileless_type():
    model = PretrainEnergyModel(1, 1, 1, dim=2)
    assert set(model.energy_terms(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))) == {"F_I"}
    only_users = PretrainEnergyModel(1, 1, 1, dim=2, user_profiles=np.ones((1, 3), np.float32))
    terms = only_users.energy_terms(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))
    assert terms["F_GG"].item() == 0.0 and terms["F_IG"].item() == 0.0 and terms["F_GI"].item() > 0.0


def test_reverse_relation_is_negated():
    model = PretrainEnergyModel(1, 1, 2, dim=3, reverse_of=np.array([-1, 0]))
    table = model.relation_table()
    torch.testing.assert_close(table[1], -table[0])


def test_margin_loss_eq2_by_hand():
    loss = margin_ranking_loss(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 1.5]), margin=1.0)
    # [1 + 1 - 3]_+ = 0, [1 + 2 - 1.5]_+ = 1.5
    assert loss.item() == pytest.approx(0.75)


def test_negative_sampler_never_returns_a_known_triple():
    data = make_planted_data(n_users=30, n_items=8, n_communities=2, seed=3, items_per_user=(4, 7))
    triples = build_knowledge_triples(data, GraphConfig())
    known = set(zip(triples.heads.tolist(), triples.relations.tolist(), triples.tails.tolist(), strict=True))
    sampler = FilteredNegativeSampler(triples)
    gen = torch.Generator().manual_seed(0)
    h = torch.as_tensor(triples.heads).repeat(5)
    r = torch.as_tensor(triples.relations).repeat(5)
    t = torch.as_tensor(triples.tails).repeat(5)
    neg_h, neg_t, valid = sampler.sample(h, r, t, gen)
    assert valid.float().mean() > 0.9  # dense graph: most rows still find a clean corruption
    for a, b, c in zip(neg_h[valid].tolist(), r[valid].tolist(), neg_t[valid].tolist(), strict=True):
        assert (a, b, c) not in known
    # a corrupted slot keeps its node type
    assert torch.equal(neg_h < data.n_users, h < data.n_users)
    assert torch.equal(neg_t < data.n_users, t < data.n_users)
    # exactly one side changes per valid row
    changed = (neg_h != h).int() + (neg_t != t).int()
    assert bool((changed[valid] == 1).all())


def test_negative_sampler_marks_impossible_rows_invalid():
    # one user who bought every item: no clean tail corruption exists
    edges = pd.DataFrame(
        {
            "user_idx": [0, 0],
            "item_idx": [0, 1],
            "rating_norm": [1.0, 1.0],
            "sentiment": [1.0, 1.0],
            "polarity": [1.0, 1.0],
            "liked": [True, True],
        }
    )
    data = LookalikeData(
        np.array(["a"]),
        np.array(["x", "y"]),
        edges,
        pd.DataFrame({"user_a": [], "user_b": [], "similarity": []}),
        sp.csr_matrix((2, 0)),
    )
    triples = build_knowledge_triples(data, GraphConfig(use_polarity_edges=False))
    sampler = FilteredNegativeSampler(triples, max_tries=5)
    h, r, t = (torch.as_tensor(x) for x in (triples.heads[:2], triples.relations[:2], triples.tails[:2]))
    _, _, valid = sampler.sample(h, r, t, torch.Generator().manual_seed(0), head_probability=0.0)
    assert not bool(valid.any())


def _small_cfg(**extra) -> GlomConfig:
    return GlomConfig(device="cpu").with_overrides(
        **{"pm.dim": 16, "pm.epochs": 6, "pm.batch_size": 256, "pm.patience": 10, **extra}
    )


def test_pm_training_lowers_the_loss_and_is_reproducible():
    data = make_planted_data(n_users=120, n_items=40, seed=1, with_profiles=True)
    cfg = _small_cfg()
    first = fit_pm(data, cfg, seed=5, progress=False)
    assert first.history.train_loss[-1] < 0.8 * first.history.train_loss[0]
    assert len(first.history.epoch_seconds) == len(first.history.train_loss) > 0
    assert first.history.val_mrr and 0.0 < first.history.best_val_mrr <= 1.0
    assert first.node_embeddings.shape == (data.n_users + data.n_items, 16)
    second = fit_pm(data, cfg, seed=5, progress=False)
    np.testing.assert_array_equal(first.node_embeddings, second.node_embeddings)


def test_pretrained_model_via_registry():
    data = make_planted_data(n_users=80, n_items=30, seed=2)
    model = create_model("pm", _small_cfg(**{"pm.epochs": 2}), seed=0).fit(data)
    assert model.user_embeddings().shape == (80, 16)
    assert np.isfinite(model.user_embeddings()).all()


def test_a_batch_that_touches_every_node_projects_all_of_them_with_the_same_values_and_gradients():
    rng = np.random.default_rng(0)
    profiles = rng.normal(size=(30, 16)).astype(np.float32), rng.normal(size=(20, 16)).astype(np.float32)
    nodes = torch.as_tensor(rng.integers(0, 50, size=40))
    results = []
    for batch in (nodes, torch.cat([nodes, torch.zeros(100, dtype=torch.long)])):  # 40 < 2 x 50 <= 140
        torch.manual_seed(0)
        model = PretrainEnergyModel(30, 20, 3, 8, 2, None, *profiles)
        vectors, has = model.profile_representation(batch)
        vectors[:40].sum().backward()
        results.append((vectors[:40].detach(), has[:40], model.user_projection.weight.grad.clone()))
    (small, small_has, small_grad), (large, large_has, large_grad) = results
    torch.testing.assert_close(large, small)
    assert torch.equal(large_has, small_has) and bool(small_has.all())
    torch.testing.assert_close(large_grad, small_grad)


def test_pm_batch_grows_so_an_epoch_takes_at_most_max_steps():
    from glom_plugin.models.training import pm_batch_size

    assert pm_batch_size(14_000, 1024, 64) == 1024  # small graph: pm.batch_size as set
    assert pm_batch_size(952_490, 1024, 64) == 14_883  # ceil(952,490 / 64)
    assert pm_batch_size(952_490, 1024, None) == 1024


def test_the_pm_math_module_imports_no_training_code():
    import subprocess
    import sys

    code = "import sys, glom_plugin.models.pm; print(sorted(m for m in sys.modules if m.startswith('glom_plugin.models')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "glom_plugin.models.training" not in loaded and "glom_plugin.models.pretrained" not in loaded


def test_the_unit_ball_constraint_bounds_every_vector_and_can_be_lifted():
    """pm.unit_ball (a diagnosis row): on, every interaction- and profile-based vector has norm <= 1 after
    training; off, nothing projects them back, so the margin loss is free to push some past 1."""
    data = make_planted_data(n_users=120, n_items=40, seed=1, with_profiles=True)
    norms = {}
    for unit_ball in (True, False):
        result = fit_pm(data, _small_cfg(**{"pm.unit_ball": unit_ball, "pm.lr": 0.05}), seed=5, progress=False)
        entity = result.model.entity.weight.detach()
        profile, _ = result.model.profile_representation(torch.arange(data.n_users + data.n_items))
        norms[unit_ball] = torch.cat([entity.norm(dim=1), profile.detach().norm(dim=1)])
    assert float(norms[True].max()) <= 1.0 + 1e-5
    assert float(norms[False].max()) > 1.0 + 1e-3

"""GLM (§3.6): knowledge queries, the three aggregators, the linear update of Eq. 8, Eq. 9, and the
agreement of the DGL and torch-scatter message-passing backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glom_plugin.config import GlomConfig, GraphConfig
from glom_plugin.models.glm import (
    GraphLearningModel,
    KnowledgeQueryLayer,
    build_message_graph,
    resolve_backend,
)
from glom_plugin.models.kg import KnowledgeTriples, build_knowledge_triples
from glom_plugin.models.training import fit_glm, fit_pm
from tests.support.planted import make_planted_data

torch.set_num_threads(1)
BACKENDS = ["torch", "dgl"]
AGGREGATORS = ["mean", "attn1", "attn2"]


def toy_triples() -> KnowledgeTriples:
    """2 users (0, 1), 2 items (2, 3). Node 2 receives 3 queries, node 0 receives 2, node 3 receives 1,
    node 1 receives none."""
    heads = np.array([0, 1, 1, 2, 3, 0])
    rels = np.array([0, 0, 1, 2, 2, 1])
    tails = np.array([2, 2, 3, 0, 0, 2])
    return KnowledgeTriples(
        heads, rels, tails, ("interacted", "likes", "interacted_by"), n_users=2, n_items=2
    )


def _h_r(dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(4, 3, generator=gen, dtype=dtype), torch.randn(3, 3, generator=gen, dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mean_aggregator_equals_manual_mean(backend):
    triples = toy_triples()
    graph = build_message_graph(triples, backend, "cpu")
    h, r = _h_r()
    layer = KnowledgeQueryLayer(3, "mean").double()
    message = layer.aggregator(graph, h, r)
    q = lambda u, rel: h[u] + r[rel]  # noqa: E731 - Q(u, r, v) = h_u + h_r
    torch.testing.assert_close(message[2], (q(0, 0) + q(1, 0) + q(0, 1)) / 3)
    torch.testing.assert_close(message[0], (q(2, 2) + q(3, 2)) / 2)
    torch.testing.assert_close(message[3], q(1, 1))
    torch.testing.assert_close(message[1], torch.zeros(3, dtype=torch.float64))  # no incoming queries


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("aggregator", ["attn1", "attn2"])
def test_attention_weights_sum_to_one_per_destination(backend, aggregator):
    triples = toy_triples()
    graph = build_message_graph(triples, backend, "cpu")
    h, r = _h_r()
    layer = KnowledgeQueryLayer(3, aggregator).double()
    alpha = layer.aggregator.attention(graph, h, r)
    sums = torch.zeros(4, dtype=torch.float64).index_add(0, torch.as_tensor(triples.tails), alpha)
    torch.testing.assert_close(sums[[0, 2, 3]], torch.ones(3, dtype=torch.float64))
    assert bool((alpha > 0).all())


@pytest.mark.parametrize("backend", BACKENDS)
def test_attn1_is_softmax_of_inner_product_with_destination(backend):
    triples = toy_triples()
    graph = build_message_graph(triples, backend, "cpu")
    h, r = _h_r()
    layer = KnowledgeQueryLayer(3, "attn1").double()
    queries = h[triples.heads] + r[triples.relations]  # Q(u, r, v) = h_u + h_r, explicitly
    alpha = layer.aggregator.attention(graph, h, r)
    into_2 = np.flatnonzero(triples.tails == 2)
    logits = torch.stack([queries[e] @ h[2] for e in into_2])  # Eq. 6
    torch.testing.assert_close(alpha[into_2], torch.softmax(logits, dim=0))
    message = layer.aggregator(graph, h, r)
    torch.testing.assert_close(message[2], (alpha[into_2].unsqueeze(1) * queries[into_2]).sum(0))  # Eq. 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_attn2_logits_are_leaky_relu_of_a_concat(backend):
    triples = toy_triples()
    graph = build_message_graph(triples, backend, "cpu")
    h, r = _h_r()
    layer = KnowledgeQueryLayer(3, "attn2").double()
    queries = h[triples.heads] + r[triples.relations]
    logits = layer.aggregator.logits(graph, h, r)
    a = layer.aggregator.a
    expected = torch.nn.functional.leaky_relu(
        torch.cat([queries, h[triples.tails]], dim=1) @ a, negative_slope=0.2
    )  # Eq. 7
    torch.testing.assert_close(logits, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_eq8_linear_update_by_hand(backend):
    triples = toy_triples()
    graph = build_message_graph(triples, backend, "cpu")
    h, r = _h_r()
    layer = KnowledgeQueryLayer(3, "mean").double()
    W = torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 0.5], [3.0, 0.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    with torch.no_grad():
        layer.linear.weight.copy_(W)
        layer.linear.bias.copy_(b)
    h_next, r_next = layer(graph, h, r)
    q = lambda u, rel: h[u] + r[rel]  # noqa: E731
    m2 = (q(0, 0) + q(1, 0) + q(0, 1)) / 3
    torch.testing.assert_close(h_next[2], W @ (h[2] + m2) + b)  # h_v^l = W(h_v + m) + b
    torch.testing.assert_close(h_next[1], W @ h[1] + b)  # no incoming queries: m = 0
    torch.testing.assert_close(r_next, r @ W.T + b)  # r^l = W r + b, no non-linearity


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_dgl_and_torch_backends_agree_on_outputs_and_gradients(aggregator):
    data = make_planted_data(n_users=40, n_items=15, seed=4)
    triples = build_knowledge_triples(data, GraphConfig())
    results = {}
    for backend in BACKENDS:
        torch.manual_seed(0)
        model = GraphLearningModel(
            triples.n_nodes, triples.n_relations, 6, layers=2, aggregator=aggregator
        ).double()
        graph = build_message_graph(triples, backend, "cpu")
        h, r = model(graph)
        users = torch.arange(0, 20)
        items = torch.as_tensor(triples.tails[:20])
        loss = model.loss(h, users, items, items.flip(0), margin=1.0) + (h**2).sum() * 1e-3 + r.sum()
        loss.backward()
        results[backend] = (h.detach(), r.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    h_t, r_t, g_t = results["torch"]
    h_d, r_d, g_d = results["dgl"]
    assert torch.allclose(h_t, h_d, atol=1e-10) and torch.allclose(r_t, r_d, atol=1e-10)
    assert g_t.keys() == g_d.keys()
    for name in g_t:
        assert torch.allclose(g_t[name], g_d[name], atol=1e-9), name


def test_dgl_graphs_take_int32_ids_where_every_index_fits():
    from glom_plugin.models.glm import DGLMessageGraph, TorchMessageGraph

    graph = build_message_graph(toy_triples(), "dgl", "cpu")
    assert graph.graph.idtype == torch.int32
    assert {graph.src.dtype, graph.dst.dtype, graph.etype.dtype} == {torch.int32}
    # dst * R + etype must fit as well: past 2^31 the graph keeps int64 ids
    assert DGLMessageGraph.index_dtype(2**31 // 3 + 1, 3, 10) == torch.int64
    assert DGLMessageGraph.index_dtype(2**31 // 3 - 1, 3, 10) == torch.int32
    # the scatter backend (CUDA) needs int64 indices for scatter_reduce
    assert TorchMessageGraph.index_dtype(10, 3, 10) == torch.int64


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_int32_and_int64_dgl_graphs_give_the_same_bits(aggregator, monkeypatch):
    from glom_plugin.models.glm import DGLMessageGraph

    data = make_planted_data(n_users=40, n_items=15, seed=4)
    triples = build_knowledge_triples(data, GraphConfig())
    outputs = {}
    for narrow in (True, False):
        monkeypatch.setattr(DGLMessageGraph, "narrow_indices", narrow)
        torch.manual_seed(0)
        model = GraphLearningModel(triples.n_nodes, triples.n_relations, 6, layers=2, aggregator=aggregator)
        graph = build_message_graph(triples, "dgl", "cpu")
        assert graph.graph.idtype == (torch.int32 if narrow else torch.int64)
        h, r = model(graph)
        (h.square().sum() + r.sum()).backward()
        outputs[narrow] = (h.detach(), r.detach(), [p.grad.clone() for p in model.parameters()])
    assert torch.equal(outputs[True][0], outputs[False][0]) and torch.equal(outputs[True][1], outputs[False][1])
    assert all(torch.equal(a, b) for a, b in zip(outputs[True][2], outputs[False][2], strict=True))


def test_eq9_loss_by_hand():
    model = GraphLearningModel(3, 1, 2, layers=0, aggregator="mean", norm=2)
    h = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    # f(u, i) = 1, f(u, i') = 3: [1 + 1 - 3]_+ = 0 ; swapped: [1 + 3 - 1]_+ = 3
    loss = model.loss(h, torch.tensor([0, 0]), torch.tensor([1, 2]), torch.tensor([2, 1]), margin=1.0)
    assert loss.item() == pytest.approx(1.5)


def test_backend_resolution():
    assert resolve_backend("auto", "cpu") == "dgl"
    assert resolve_backend("auto", "cuda") == "torch"
    assert resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ValueError, match="CPU-only"):
        resolve_backend("dgl", "cuda")


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_glm_training_lowers_the_loss(aggregator):
    data = make_planted_data(n_users=100, n_items=40, seed=6)
    cfg = GlomConfig(device="cpu").with_overrides(
        **{
            "pm.dim": 12,
            "pm.epochs": 3,
            "glm.epochs": 5,
            "glm.batch_size": 256,
            "glm.patience": 10,
            "glm.aggregator": aggregator,
            "glm.lr": 0.01,
        }
    )
    pm = fit_pm(data, cfg, seed=0, progress=False)
    result = fit_glm(data, cfg, seed=0, pm=pm, progress=False)
    loss = result.history.train_loss
    assert loss[-1] < loss[0]
    assert result.history.backend == "dgl"
    assert result.node_embeddings.shape == (140, 12) and np.isfinite(result.node_embeddings).all()


def test_glm_without_pm_needs_no_pm_result_and_refuses_a_missing_one():
    data = make_planted_data(n_users=60, n_items=20, seed=7)
    cfg = GlomConfig(device="cpu").with_overrides(**{"pm.dim": 8, "glm.epochs": 2, "glm.use_pm": False})
    assert fit_glm(data, cfg, seed=0, progress=False).node_embeddings.shape == (80, 8)
    with pytest.raises(ValueError, match="use_pm"):
        fit_glm(data, cfg.with_overrides(**{"glm.use_pm": True}), seed=0, progress=False)


def test_training_with_the_torch_backend_on_cpu():
    """The scatter backend (the CUDA path) trains end to end, here on CPU."""
    data = make_planted_data(n_users=80, n_items=30, seed=8)
    cfg = GlomConfig(device="cpu").with_overrides(
        **{"pm.dim": 8, "pm.epochs": 2, "glm.epochs": 4, "glm.backend": "torch", "glm.patience": 10}
    )
    result = fit_glm(data, cfg, seed=0, pm=fit_pm(data, cfg, seed=0, progress=False), progress=False)
    assert result.history.backend == "torch"
    assert result.history.train_loss[-1] < result.history.train_loss[0]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_pm_and_glm_train_on_cuda(aggregator):
    data = make_planted_data(n_users=200, n_items=80, seed=9, with_profiles=True)
    cfg = GlomConfig(device="cuda").with_overrides(
        **{"pm.dim": 16, "pm.epochs": 4, "glm.epochs": 4, "glm.aggregator": aggregator, "glm.patience": 10}
    )
    pm = fit_pm(data, cfg, seed=0, progress=False)
    result = fit_glm(data, cfg, seed=0, pm=pm, progress=False)
    assert pm.history.device.startswith("cuda") and result.history.backend == "torch"
    assert result.history.train_loss[-1] < result.history.train_loss[0]
    assert np.isfinite(result.node_embeddings).all()
    # the same layer on CUDA and on CPU gives the same numbers
    triples = build_knowledge_triples(data, GraphConfig())
    torch.manual_seed(0)
    model = GraphLearningModel(triples.n_nodes, triples.n_relations, 8, 2, aggregator).double()
    on_cpu = model(build_message_graph(triples, "torch", "cpu"))[0]
    on_gpu = model.to("cuda")(build_message_graph(triples, "torch", "cuda"))[0]
    assert torch.allclose(on_cpu, on_gpu.cpu(), atol=1e-9)

"""Spark backends agree with the in-memory ones: MinHash LSH (Yahoo §3.1) and Pearson similarity (GLoM Eq. 1)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

pytest.importorskip("pyspark", reason="the Spark backends need pyspark (pip install 'glom-plugin[spark]')")

from glom_plugin.config import GlomConfig, SimilarityConfig  # noqa: E402
from glom_plugin.graph.lsh import (  # noqa: E402
    build_user_graph,
    exact_jaccard_pairs,
    minhash_candidate_pairs,
    pair_recall,
    pair_similarity,
)
from glom_plugin.graph.similarity import compute_similarity, pearson_similarity_memory  # noqa: E402
from glom_plugin.models.registry import create_model  # noqa: E402
from tests.support.near_duplicates import near_duplicate_users  # noqa: E402
from tests.support.planted import make_campaigns, make_planted_data, training_view  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.spark]


@pytest.fixture(scope="module")
def spark():
    from glom_plugin.spark_session import get_spark_session

    session = get_spark_session("glom-tests")
    yield session
    session.stop()


def test_spark_minhash_lsh_vs_numpy_lsh_vs_exact(spark):
    X = near_duplicate_users(n_base=120)
    n = X.shape[0]
    truth = exact_jaccard_pairs(X, 0.5)
    assert len(truth) > 120
    # One Spark job: MinHashLSH approxSimilarityJoin (8 OR-ed tables, distance < 0.5), then the shared
    # verification / top-k step (50 neighbours prune nothing here: each user has <= 2 near-copies).
    graph = build_user_graph(X, bands=8, min_similarity=0.5, neighbors_per_user=50, backend="spark", seed=1)
    spark_pairs = graph.edges()[["user_a", "user_b"]].to_numpy()
    numpy_pairs = minhash_candidate_pairs(X, bands=24, rows=3, seed=1)
    spark_recall = pair_recall(spark_pairs, truth, n)
    numpy_recall = pair_recall(numpy_pairs, truth, n)
    # Spark ORs 8 one-hash tables: P(found | J=0.5) = 1 - 0.5**8 = 0.996; numpy 24 x 3: 0.96.
    assert spark_recall >= 0.95, spark_recall
    assert numpy_recall >= 0.9, numpy_recall
    # Every Spark pair is a true pair (approxSimilarityJoin filters on the exact distance), exactly weighted.
    np.testing.assert_allclose(graph.edges()["similarity"], pair_similarity(X, spark_pairs))
    assert (graph.edges()["similarity"] >= 0.5 - 1e-9).all()
    assert len(spark_pairs) <= len(truth)


def test_spark_pearson_matches_numpy(spark):
    data = make_planted_data(n_users=300, n_items=120, seed=2)
    cfg = SimilarityConfig(min_corated=2, t_sim=0.2, top_k=5)  # top-k exercises the window ranking
    memory = pearson_similarity_memory(data.edges, data.n_users, data.n_items, cfg)
    on_spark = compute_similarity(data.edges, data.n_users, cfg, backend="spark", n_items=data.n_items)
    assert len(memory) > 100
    assert memory[["user_a", "user_b", "n_corated"]].equals(on_spark[["user_a", "user_b", "n_corated"]])
    np.testing.assert_allclose(on_spark["similarity"], memory["similarity"], atol=1e-9)


def test_graph_constraint_model_on_the_spark_graph(spark):
    data = make_planted_data(n_users=300, n_items=120, seed=0)
    campaigns = make_campaigns(data, n_campaigns=4, seed=0)
    cfg = GlomConfig().with_overrides(**{"yahoo.lsh_backend": "spark"})
    model = create_model("graph-constraint", cfg, seed=0).fit(training_view(data, campaigns))
    aps = [average_precision_score(labels, model.score_campaign(c)) for c, labels in campaigns]
    positive_rate = np.mean([labels.mean() for _, labels in campaigns])
    assert np.mean(aps) >= 2 * positive_rate

"""Feast over the pipeline's Parquet: apply, materialize into a real redis-server, read back the same values;
training features through historical retrieval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from glom_plugin.config import GlomConfig
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.layout import RunLayout
from glom_plugin.platform import feast_features as ff

from .platform_support import copy_feature_repo, redis_server, write_run_inputs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("feast_run")
    layout = RunLayout.at(root / "run")
    inputs = write_run_inputs(layout)
    written = ff.export_feature_tables(layout)
    return layout, inputs, written, copy_feature_repo(root / "feature_repo")


def test_redis_online_store_serves_the_parquet_values(run, monkeypatch):
    layout, inputs, written, repo = run
    with redis_server() as connection:
        monkeypatch.setenv("GLOM_REDIS_CONNECTION", connection)
        yaml_file = repo / "feature_store.redis.yaml"
        applied = ff.feast_apply(repo, features_dir=layout.features_dir, fs_yaml_file=yaml_file)
        assert {"user", "item", "user_profile_embedding", "user_polarity_stats", "item_polarity_stats"} <= set(applied)
        ff.materialize(repo, fs_yaml_file=yaml_file)

        import redis

        host, port = connection.split(":")
        assert redis.Redis(host=host, port=int(port)).dbsize() > 0, "materialize wrote nothing into redis"

        users = inputs["users"]
        online = ff.get_online_features(
            repo,
            ["user_profile_embedding:embedding"] + [f"user_polarity_stats:{s}" for s in ff.POLARITY_STATS],
            [{"user_id": u} for u in users],
            fs_yaml_file=yaml_file,
        )
        stats = pd.read_parquet(written["user_polarity_stats"]).set_index("user_id").loc[users]
        np.testing.assert_array_equal(np.asarray(online["user_profile_embedding__embedding"], dtype=np.float32), inputs["embeddings"]["user_id"])
        np.testing.assert_allclose(online["user_polarity_stats__mean_polarity"], stats["mean_polarity"], rtol=0, atol=1e-12)
        for stat in ("likes", "dislikes", "interactions"):
            assert online[f"user_polarity_stats__{stat}"] == stats[stat].tolist()

        items = inputs["items"]
        online_items = ff.get_online_features(
            repo, ["item_polarity_stats:interactions"], [{"item_id": i} for i in items], fs_yaml_file=yaml_file
        )
        expected = inputs["edges"].groupby("item_id").size().reindex(items, fill_value=0)
        assert [v or 0 for v in online_items["item_polarity_stats__interactions"]] == expected.tolist()


def test_polarity_statistics_match_the_edges(run):
    _, inputs, written, _ = run
    edges = inputs["edges"]
    stats = pd.read_parquet(written["user_polarity_stats"]).set_index("user_id")
    for user, group in edges.groupby("user_id"):
        assert stats.loc[user, "mean_polarity"] == pytest.approx(group["polarity"].mean())
        assert stats.loc[user, "likes"] == int(group["liked"].sum())
        assert stats.loc[user, "dislikes"] == int((~group["liked"]).sum())
        assert stats.loc[user, "likes"] + stats.loc[user, "dislikes"] == stats.loc[user, "interactions"]


def test_training_reads_profiles_through_historical_retrieval(run, tmp_path):
    layout, inputs, _, _ = run
    repo = copy_feature_repo(tmp_path / "feature_repo")
    cfg = GlomConfig(run_dir=str(layout.root)).with_overrides(**{"features.source": "feast", "features.feast_repo": str(repo)})
    # Users in another order than the Parquet, plus one Feast has never seen.
    user_ids = np.array(inputs["users"][::-1] + ["user-unknown"])
    item_ids = np.array(inputs["items"])
    data = LookalikeData(
        user_ids=user_ids,
        item_ids=item_ids,
        edges=pd.DataFrame(columns=["user_idx", "item_idx", "rating_norm", "sentiment", "polarity", "liked"]),
        similarity=pd.DataFrame(columns=["user_a", "user_b", "similarity"]),
        item_categories=sp.csr_matrix((len(item_ids), 0)),
    )
    attached = ff.attach_profile_embeddings_from_feast(data, cfg, layout)
    expected_users = inputs["embeddings"]["user_id"][::-1]
    np.testing.assert_array_equal(attached.user_profile_embeddings[:-1], expected_users)
    np.testing.assert_array_equal(attached.user_profile_embeddings[-1], np.zeros(expected_users.shape[1], np.float32))
    np.testing.assert_array_equal(attached.item_profile_embeddings, inputs["embeddings"]["item_id"])

    features = ff.load_training_features(repo, list(user_ids), list(item_ids))
    assert features["user_profile_found"].tolist() == [True] * len(inputs["users"]) + [False]
    counts = inputs["edges"].groupby("user_id").size()
    np.testing.assert_array_equal(features["user_interactions"][:-1], counts.loc[list(user_ids[:-1])].to_numpy())
    assert np.isnan(features["user_interactions"][-1])

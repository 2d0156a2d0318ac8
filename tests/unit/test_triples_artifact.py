"""The graph stage's ``triples.parquet`` is what PM and GLM train on in a run directory: read back it is
the same ``KnowledgeTriples`` the in-memory build gives, training on it gives the same embeddings, and a
file that does not describe the run's data (another graph run, other graph settings) is refused."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from glom_plugin.config import GlomConfig, GraphConfig
from glom_plugin.data.schema import TRIPLES_SCHEMA
from glom_plugin.graph.build import load_lookalike_data
from glom_plugin.graph.knowledge_graph import knowledge_graph_triples
from glom_plugin.layout import RunLayout
from glom_plugin.models.kg import KnowledgeTriples, build_knowledge_triples, load_knowledge_triples
from glom_plugin.models.training import fit_glm, fit_pm
from glom_plugin.stages.graph import run_graph_stage
from glom_plugin.stages.train import training_triples
from glom_plugin.storage import write_parquet
from tests.support.planted import make_planted_data
from tests.unit.test_graph_stage import write_ingested

torch.set_num_threads(1)


def assert_same_triples(a: KnowledgeTriples, b: KnowledgeTriples) -> None:
    assert a.relation_names == b.relation_names
    assert (a.n_users, a.n_items) == (b.n_users, b.n_items)
    for field in ("heads", "relations", "tails"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def write_triples(data, graph: GraphConfig, path) -> None:
    write_parquet(knowledge_graph_triples(data, graph), path, schema=TRIPLES_SCHEMA)


@pytest.mark.parametrize(
    "graph",
    [GraphConfig(), GraphConfig(use_polarity_edges=False), GraphConfig(use_similarity_edges=False)],
    ids=["full", "no-polarity", "no-similarity"],
)
def test_read_back_triples_equal_the_in_memory_build(tmp_path, graph):
    data = make_planted_data(n_users=80, n_items=40, seed=3)
    write_triples(data, graph, tmp_path / "triples.parquet")
    assert_same_triples(load_knowledge_triples(tmp_path / "triples.parquet", data, graph), build_knowledge_triples(data, graph))


def test_stage_training_from_the_artifact_matches_in_memory_triples(tmp_path):
    layout = RunLayout.at(tmp_path)
    write_ingested(layout)
    cfg = GlomConfig(run_dir=str(tmp_path)).with_overrides(
        **{
            "similarity.t_sim": 0.0,
            "similarity.min_corated": 2,
            "pm.epochs": 3,
            "pm.dim": 8,
            "pm.batch_size": 16,
            "pm.use_profiles": False,
            "pm.val_fraction": 0.0,
            "glm.epochs": 2,
            "glm.objective": "eq9",
            "glm.batch_size": 16,
        }
    )
    run_graph_stage(cfg, layout)
    data = load_lookalike_data(layout)
    artifact = training_triples(cfg, layout, data)  # what the pretrain / train stages train on
    assert_same_triples(artifact, build_knowledge_triples(data, cfg.graph))

    from_file = fit_pm(data, cfg, seed=5, triples=artifact, progress=False)
    in_memory = fit_pm(data, cfg, seed=5, progress=False)
    np.testing.assert_array_equal(from_file.node_embeddings, in_memory.node_embeddings)
    glm_file = fit_glm(data, cfg, seed=5, pm=from_file, triples=artifact, progress=False)
    glm_memory = fit_glm(data, cfg, seed=5, pm=in_memory, progress=False)
    np.testing.assert_array_equal(glm_file.node_embeddings, glm_memory.node_embeddings)


def test_triples_of_another_graph_run_are_refused(tmp_path):
    data = make_planted_data(n_users=80, n_items=40, seed=3)
    path = tmp_path / "triples.parquet"
    write_triples(data, GraphConfig(), path)
    # the graph was rebuilt (one interaction fewer) but the triples file was not rewritten
    newer = replace(data, edges=data.edges.iloc[1:].reset_index(drop=True))
    with pytest.raises(ValueError, match=r"triples.parquet: relation 'interacted' holds \d+ triples .*stale"):
        load_knowledge_triples(path, newer, GraphConfig())
    fewer_users = make_planted_data(n_users=40, n_items=40, seed=3)
    with pytest.raises(ValueError, match="outside the 40 users|not the"):
        load_knowledge_triples(path, fewer_users, GraphConfig())


def test_triples_written_with_other_graph_settings_are_refused(tmp_path):
    data = make_planted_data(n_users=80, n_items=40, seed=3)
    path = tmp_path / "triples.parquet"
    write_triples(data, GraphConfig(), path)
    with pytest.raises(ValueError, match=r"row \d+: relation 'similar' is not in this config's knowledge graph"):
        load_knowledge_triples(path, data, GraphConfig(use_similarity_edges=False))
    write_triples(data, GraphConfig(use_polarity_edges=False), path)
    with pytest.raises(ValueError, match=r"relation 'likes' holds 0 triples"):
        load_knowledge_triples(path, data, GraphConfig())


def test_a_bad_row_is_named_by_row_and_field(tmp_path):
    data = make_planted_data(n_users=80, n_items=40, seed=3)
    table = knowledge_graph_triples(data, GraphConfig())
    table.loc[7, "tail_type"] = "user"
    path = tmp_path / "triples.parquet"
    write_parquet(table, path, schema=TRIPLES_SCHEMA)
    with pytest.raises(ValueError, match="triples.parquet: row 7: field tail_type of relation 'interacted' is 'user'"):
        load_knowledge_triples(path, data, GraphConfig())
    with pytest.raises(ValueError, match="missing column"):
        pd.DataFrame({"head": [0]}).to_parquet(path)
        load_knowledge_triples(path, data, GraphConfig())
    with pytest.raises(FileNotFoundError, match="run `glom graph` first"):
        load_knowledge_triples(tmp_path / "none.parquet", data, GraphConfig())

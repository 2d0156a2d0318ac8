"""Where each stage reads and writes inside one run directory.

Data moves one way (ingest -> validate -> graph -> profiles -> pretrain -> glm -> index -> expand -> evaluate);
each stage reads the previous stage's files from here, so any stage can be rerun alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunLayout:
    root: Path

    @classmethod
    def at(cls, root: str | Path) -> RunLayout:
        return cls(Path(root))

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # raw input written by the synthetic generator (Amazon 2023 layout)
    @property
    def raw_dir(self) -> Path:
        return self._dir("raw")

    # ingest: normalized tables
    @property
    def ingest_dir(self) -> Path:
        return self._dir("ingest")

    @property
    def interactions(self) -> Path:
        return self.ingest_dir / "interactions.parquet"

    @property
    def items(self) -> Path:
        return self.ingest_dir / "items.parquet"

    @property
    def users(self) -> Path:
        return self.ingest_dir / "users.parquet"

    @property
    def outside_interactions(self) -> Path:
        """Valid rows the minimum-interactions filter removed whose item it kept: the interactions of
        users outside the trained graph, which models score by fold-in (``LookalikeData.outside_edges``)."""
        return self.ingest_dir / "outside_interactions.parquet"

    @property
    def rejects(self) -> Path:
        return self.ingest_dir / "rejects.jsonl"

    @property
    def ingest_report(self) -> Path:
        return self.ingest_dir / "ingest_report.json"

    # validate: GX results and Data Docs
    @property
    def validation_dir(self) -> Path:
        return self._dir("validation")

    # graph: polarity, similarity, knowledge graph
    @property
    def graph_dir(self) -> Path:
        return self._dir("graph")

    @property
    def polarity_edges(self) -> Path:
        return self.graph_dir / "polarity_edges.parquet"

    @property
    def similarity_edges(self) -> Path:
        return self.graph_dir / "similarity_edges.parquet"

    @property
    def knowledge_graph(self) -> Path:
        return self.graph_dir / "knowledge_graph.bin"

    @property
    def triples(self) -> Path:
        return self.graph_dir / "triples.parquet"

    @property
    def user_index(self) -> Path:
        return self.graph_dir / "user_index.parquet"

    @property
    def item_index(self) -> Path:
        return self.graph_dir / "item_index.parquet"

    @property
    def graph_report(self) -> Path:
        return self.graph_dir / "graph_report.json"

    # profiles: texts and embeddings (also the Feast offline sources)
    @property
    def profiles_dir(self) -> Path:
        return self._dir("profiles")

    @property
    def profiles_report(self) -> Path:
        return self.profiles_dir / "profiles_report.json"

    @property
    def user_profiles(self) -> Path:
        return self.profiles_dir / "user_profiles.parquet"

    @property
    def item_profiles(self) -> Path:
        return self.profiles_dir / "item_profiles.parquet"

    @property
    def user_profile_embeddings(self) -> Path:
        return self.profiles_dir / "user_profile_embeddings.parquet"

    @property
    def item_profile_embeddings(self) -> Path:
        return self.profiles_dir / "item_profile_embeddings.parquet"

    @property
    def cache_dir(self) -> Path:
        """Content-addressed caches (LLM answers, embeddings) shared by reruns."""
        return self._dir("cache")

    # features for Feast
    @property
    def features_dir(self) -> Path:
        return self._dir("features")

    # models
    @property
    def models_dir(self) -> Path:
        return self._dir("models")

    @property
    def pm_dir(self) -> Path:
        return self._dir("models/pm")

    @property
    def glm_dir(self) -> Path:
        return self._dir("models/glm")

    @property
    def expand_dir(self) -> Path:
        return self._dir("expand")

    @property
    def evaluate_dir(self) -> Path:
        return self._dir("evaluate")

"""The one protocol every lookalike model implements, and the one public face it answers with.

A model is first fitted, campaign-agnostically, on a ``LookalikeData`` built from training interactions
only (``fit``). It then answers two questions, and the evaluation, ``glom expand``, the MLflow pyfunc and
the BentoML service all ask them through the same two methods:

- ``score_campaign(campaign)``: one score per given candidate (the evaluator's question: it picks the
  candidates and keeps the labels; a model never sees which candidates are positives);
- ``expand(seed_ids, k)``: the top k of every user the model knows, given hashed seed ids (the
  advertiser's question). Embedding models answer through the ANN index (``expand/expander.py``);
  per-campaign models (LR, MetaHeac, Pinterest, graph-constraint, the GLoM hybrid) fit their campaign at
  request time on the seeds against a label-blind sample of the other users — exactly the realistic
  evaluation protocol's campaign (``population_campaign``), so what is served is what was measured.

Users outside the trained graph (``LookalikeData.outside_user_ids``: dropped by the minimum-interactions
filter, or arrived after training) are rows ``data.n_users ..`` of the scoring index. A model that can
score them from their item rows sets ``covers_outside``: its ``user_ids`` / ``n_users`` then count them,
``expand`` returns them and the evaluation ranks them; embedding models fold them in (``models/fold_in.py``).
A model that cannot leaves them out, and the evaluation's coverage column says so.

``learned_state`` / ``restore`` are what saving needs (``models/saved.py``): the arrays and weights
``fit`` learned beyond the data. A model whose fit is a deterministic, cheap function of the data and
its seed (feature matrices, an LSH graph with a fixed seed) learns nothing beyond it: loading refits it.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from glom_plugin.config import ExpandConfig, GlomConfig
from glom_plugin.expand.aggregation import aggregate_similarity
from glom_plugin.expand.expander import ExpansionResult, expand_audience, resolve_seeds, select_ranked
from glom_plugin.graph.dataset import LookalikeData

if TYPE_CHECKING:
    import pandas as pd

    from glom_plugin.expand.explain import SharedItems
    from glom_plugin.expand.index import UserIndex
    from glom_plugin.models.artifact import TrainedModel

ModelKind = Literal["embedding", "per-campaign"]


@dataclass(frozen=True)
class Campaign:
    """One lookalike task (§4.1: tasks are items).

    seeds: user indices the advertiser uploaded (m of them).
    non_seeds: user indices sampled as negatives for per-campaign training (seed:non-seed = 1:10).
    candidates: user indices to score (the held-out purchasers mixed with sampled non-purchasers);
        never contains a seed.
    """

    name: str
    seeds: np.ndarray
    non_seeds: np.ndarray
    candidates: np.ndarray
    item_idx: int | None = None


def population_campaign(
    name: str, seed_rows: np.ndarray, n_users: int, negative_ratio: int, rng: np.random.Generator,
    item_idx: int | None = None,
) -> Campaign:
    """A real campaign over ``n_users``: every non-seed user is a candidate, and the non-seeds a
    per-campaign model trains against are the first ``negative_ratio`` x m of a label-blind permutation of
    those same users. The evaluation's realistic protocol (``evaluate.candidates=all``) builds its
    campaigns the same way (``evaluate/campaigns.py``), and ``expand`` builds this one."""
    seed_rows = np.unique(np.asarray(seed_rows, dtype=np.int64))
    others = np.ones(n_users, dtype=bool)
    others[seed_rows] = False
    population = np.flatnonzero(others)
    non_seeds = rng.permutation(population)[: negative_ratio * len(seed_rows)]
    return Campaign(name, seed_rows, non_seeds, population, item_idx)


def expansion_rng(model_seed: int, seed_rows: np.ndarray) -> np.random.Generator:
    """The non-seed sample of one seed list: the same seeds always draw the same non-seeds (a served
    audience is reproducible across calls, workers and reloads), different seed lists draw differently."""
    key = zlib.crc32(np.sort(np.asarray(seed_rows, dtype=np.int64)).tobytes())
    return np.random.default_rng([int(model_seed) % (2**32), key])


class LookalikeModel(ABC):
    """fit once on the (leak-free) graph; then score a campaign's candidates, or expand a seed list."""

    name: ClassVar[str] = "model"
    # "embedding": one vector per user, campaigns ranked by sim(u, S); "per-campaign": a model fitted per
    # campaign at scoring time. Decides how ``expand`` answers and what a registered version is tagged.
    kind: ClassVar[ModelKind] = "per-campaign"
    # Score above which a candidate counts as expanded (for precision/recall at threshold); None = rank only.
    decision_threshold: float | None = None
    # Scores users outside the trained graph from their item rows (rows data.n_users.. of every campaign).
    covers_outside: ClassVar[bool] = False

    def __init__(self, config: GlomConfig, seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        self.data: LookalikeData | None = None
        self._user_index: dict[str, int] | None = None

    # ------------------------------------------------------------------------------------------ fitting
    def fit(self, data: LookalikeData) -> LookalikeModel:
        """Campaign-agnostic training on the whole (training) graph; the data is kept, since per-campaign
        models fit on its features at request time and saving writes it with the model."""
        self._remember(data)
        self._fit(data)
        return self

    def _fit(self, data: LookalikeData) -> None:
        """The model's own training (``fit`` has recorded ``data`` first). Built-in models implement this;
        a third-party class may override ``fit`` itself instead (``__init_subclass__`` keeps the data)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither _fit nor fit")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own_fit = cls.__dict__.get("fit")
        if own_fit is not None and not getattr(own_fit, "_remembers_data", False):
            def fit(self: LookalikeModel, data: LookalikeData, _fit: Any = own_fit) -> LookalikeModel:
                self._remember(data)
                _fit(self, data)
                return self

            fit.__doc__, fit.__name__, fit._remembers_data = own_fit.__doc__, "fit", True  # type: ignore[attr-defined]
            cls.fit = fit  # type: ignore[method-assign]

    def _remember(self, data: LookalikeData) -> None:
        self.data = data
        self._user_index = None

    def learned_state(self) -> dict[str, Any]:
        """What ``fit`` learned beyond the data: numpy arrays, or torch state dicts (name -> tensor).
        Empty: the fit is a deterministic function of the data and the seed, and loading refits it."""
        return {}

    def restore(self, data: LookalikeData, state: dict[str, Any]) -> LookalikeModel:
        """The fitted model again, from its data and ``learned_state()`` (``models/saved.py``)."""
        if state:
            raise ValueError(f"{self.name}: saved state {sorted(state)} but the model learns nothing beyond its data")
        return self.fit(data)

    # ------------------------------------------------------------------------------------------ scoring
    @abstractmethod
    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        """One score per ``campaign.candidates`` entry."""

    def user_embeddings(self) -> np.ndarray | None:
        """Per-user vectors (n_users, d) when the model has them (used by the ANN index and serving)."""
        return None

    # ----------------------------------------------------------------------------------------- the face
    @property
    def model_name(self) -> str:
        return self.name

    @property
    def user_ids(self) -> np.ndarray:
        """Every user this model scores, by row: the graph's users, then (``covers_outside``) the outside ones."""
        data = self._fitted()
        return np.asarray(data.all_user_ids if self.covers_outside else data.user_ids).astype(str)

    @property
    def n_users(self) -> int:
        """How many users this model scores (rows 0..n_users-1 of a campaign)."""
        data = self._fitted()
        return data.n_users + (data.n_outside if self.covers_outside else 0)

    def user_index(self) -> dict[str, int]:
        """hashed user id -> row, built once per fit."""
        if self._user_index is None:
            self._user_index = {uid: i for i, uid in enumerate(self.user_ids.tolist())}
        return self._user_index

    def expand(
        self,
        seed_ids: Sequence[str],
        k: int | None = None,
        *,
        threshold: float | None = None,
        explain: bool = False,
        config: ExpandConfig | None = None,
        index: UserIndex | None = None,
        interactions: pd.DataFrame | SharedItems | None = None,
    ) -> ExpansionResult:
        """The top ``k`` (default ``expand.top_k``) of every known non-seed user for these hashed seeds,
        best first, keeping only scores >= ``threshold`` when given. This per-campaign default scores the
        realistic protocol's campaign for the seeds (``population_campaign``, non-seeds drawn by
        ``expansion_rng``). ``index`` / ``interactions`` serve embedding models; explanations need them."""
        if explain:
            raise ValueError(
                f"{self.name} is a per-campaign model: explanations (nearest seeds in embedding space) need an "
                "embedding model; ask without explain"
            )
        cfg = _expand_settings(self.config.expand, config, threshold)
        if len(seed_ids) == 0:
            raise ValueError("the seed list is empty")
        top_k = cfg.top_k if k is None else int(k)
        if top_k < 0:
            raise ValueError(f"k must be >= 0, got {top_k}")
        seed_rows, used, unknown = resolve_seeds(self, list(seed_ids))
        campaign = population_campaign(
            "expand", seed_rows, self.n_users, self.config.evaluate.negative_ratio, expansion_rng(self.seed, seed_rows)
        )
        scores = np.asarray(self.score_campaign(campaign), dtype=np.float64)
        rows, kept = select_ranked(campaign.candidates, scores, top_k or None, cfg.threshold)
        return ExpansionResult(
            rows=rows,
            all_user_ids=self.user_ids,
            scores=kept.astype(np.float32),
            seeds_used=used,
            unknown_seeds=unknown,
            aggregation="campaign-model",
            threshold=cfg.threshold,
            k=top_k or None,
            candidate_source="campaign-model",
            model_name=self.name,
        )

    def _fitted(self) -> LookalikeData:
        if self.data is None:
            raise RuntimeError(f"{self.name}: fit() (or load) must run first")
        return self.data


def _expand_settings(base: ExpandConfig, given: ExpandConfig | None, threshold: float | None) -> ExpandConfig:
    cfg = given or base
    return cfg.model_copy(update={"threshold": threshold}) if threshold is not None else cfg


class EmbeddingLookalikeModel(LookalikeModel):
    """Models whose output is one vector per user; campaigns are scored by sim(u, S) over seeds.

    Subclasses set ``self.embeddings`` in ``_fit``. Retrieval compares ``user_embeddings()``: those
    vectors centred on the user mean when ``expand.center`` (``retrieval_vectors``), the same for every
    embedding model so the comparison stays fair — and the same vectors the served index holds, so the
    evaluation and the service rank alike. The aggregation (max / mean / probabilistic) and the
    similarity threshold T (§3.7) come from ``config.expand``.
    """

    kind: ClassVar[ModelKind] = "embedding"
    covers_outside: ClassVar[bool] = True
    # How users outside the graph get a vector (``models/fold_in.py``): "buyers" (mean of their items'
    # buyer centroids, any model) or "translation" (TransE, h_u = mean h_i - r; needs item_embeddings).
    fold_in_method: ClassVar[str] = "buyers"
    embeddings: np.ndarray | None = None
    item_embeddings: np.ndarray | None = None
    _retrieval: tuple[np.ndarray, np.ndarray] | None = None  # (the embeddings it was made from, vectors)

    @property
    def decision_threshold(self) -> float | None:  # type: ignore[override]
        return self.config.expand.threshold

    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        vectors = self.user_embeddings()
        if vectors is None:
            raise RuntimeError(f"{self.name}: fit() must run before scoring")
        return aggregate_similarity(
            vectors[campaign.candidates], vectors[campaign.seeds], self.config.expand.aggregation
        )

    def user_embeddings(self) -> np.ndarray | None:
        """Retrieval vectors of every scored user: the graph's (trained), then the outside users' (folded
        in), centred on the *graph* users' mean so folding users in never moves a trained user's vector."""
        if self.embeddings is None:
            return None
        # computed once per fitted embedding matrix, not once per campaign
        if self._retrieval is None or self._retrieval[0] is not self.embeddings:
            from glom_plugin.models.fold_in import retrieval_with_outside

            vectors = retrieval_with_outside(self.embeddings, self.config.expand.center, self.outside_embeddings())
            self._retrieval = (self.embeddings, vectors)
        return self._retrieval[1]

    def outside_embeddings(self) -> np.ndarray | None:
        """Folded-in embeddings (pre-centring) of the data's outside users (``fold_in_method``)."""
        data = self.data
        if self.embeddings is None or data is None or not data.n_outside:
            return None
        return self.fold_in(data.outside_item_matrix())

    def fold_in(self, item_rows: Any) -> np.ndarray:
        """Embeddings (in ``self.embeddings``' space) of users given only their items: ``item_rows`` is a
        users x graph-items sparse matrix. No retraining; the trained vectors are unchanged."""
        from glom_plugin.models.fold_in import fold_in

        data = self._fitted()
        if self.embeddings is None:
            raise RuntimeError(f"{self.name}: fit() must run before fold-in")
        return fold_in(self.fold_in_method, item_rows, self.embeddings, data.user_item_matrix(),
                       self.item_embeddings, data.edges)

    def learned_state(self) -> dict[str, Any]:
        if self.embeddings is None:
            raise RuntimeError(f"{self.name}: fit() must run before saving")
        state: dict[str, Any] = {"embeddings": np.asarray(self.embeddings, dtype=np.float32)}
        if self.item_embeddings is not None:
            state["item_embeddings"] = np.asarray(self.item_embeddings, dtype=np.float32)
        return state

    def restore(self, data: LookalikeData, state: dict[str, Any]) -> EmbeddingLookalikeModel:
        embeddings = np.asarray(state["embeddings"], dtype=np.float32)
        if embeddings.shape[0] != data.n_users:
            raise ValueError(f"{self.name}: saved embeddings have {embeddings.shape[0]} rows for {data.n_users} users")
        self._remember(data)
        self.embeddings = embeddings
        self.item_embeddings = state.get("item_embeddings")
        return self

    def as_trained(self) -> TrainedModel:
        """The retrieval vectors as a ``TrainedModel`` (what the index, Feast export and batch jobs read)."""
        from glom_plugin.models.artifact import TrainedModel

        vectors = self.user_embeddings()
        if vectors is None:
            raise RuntimeError(f"{self.name}: fit() must run first")
        cached = getattr(self, "_trained_view", None)
        if cached is None or cached[0] is not vectors:
            view = TrainedModel(model_name=self.name, user_ids=self.user_ids, user_embeddings=vectors,
                                config=self.config.model_dump())
            cached = (vectors, view)
            self._trained_view = cached
        return cached[1]

    def expand(
        self,
        seed_ids: Sequence[str],
        k: int | None = None,
        *,
        threshold: float | None = None,
        explain: bool = False,
        config: ExpandConfig | None = None,
        index: UserIndex | None = None,
        interactions: pd.DataFrame | SharedItems | None = None,
    ) -> ExpansionResult:
        """sim(u, S) over the retrieval vectors (GLoM §3.7), through ``index`` when given (exact
        re-scoring of its candidates, ``expand/expander.py``)."""
        cfg = _expand_settings(self.config.expand, config, threshold)
        return expand_audience(self.as_trained(), list(seed_ids), cfg, k=k, explain=explain, index=index,
                               interactions=interactions)

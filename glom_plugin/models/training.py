"""Training loops for PM (§3.5, Eq. 2) and GLM (§3.6–3.7, Eq. 9): mini-batches, Adam, early stopping.

Early stopping uses held-out pairs: a share (``val_fraction``) of the observed user–item pairs is
removed — every triple between the pair, both directions — from what the model trains on (and, for GLM,
from the message-passing graph). GLM holds out the same pairs as its PM (``held_out_split``), so its
initial embeddings were never trained on them either.

- PM (and GLM with ``glm.select_on=link``): link prediction, each held-out pair ranked against
  ``VALIDATION_NEGATIVES`` sampled items the user never interacted with.
- GLM (default ``glm.select_on=lookalike``): lookalike retrieval, each held-out user ranked among
  non-purchasers by similarity to the item's other purchasers (``lookalike_validation.py``). The state
  before the first GLM step is scored too (``initial_val_mrr``; ``best_epoch = -1`` when it wins).

The best epoch's weights are kept and training stops after ``patience`` epochs without improvement.
Final embeddings come from the full graph (held-out pairs included), so nothing the data offers is left
out of the served model.

Reproducible: ``torch.manual_seed``, a seeded ``numpy`` generator for the split and a seeded
``torch.Generator`` (on the training device) for negatives. Runs on ``cfg.resolved_device()``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from glom_plugin.config import GlomConfig
from glom_plugin.data.schema import RELATION_INTERACTED
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.checkpoint import EpochCheckpoint
from glom_plugin.models.fold_in import GlmFoldIn
from glom_plugin.models.glm import GraphLearningModel, build_message_graph, resolve_backend
from glom_plugin.models.kg import KnowledgeTriples, build_knowledge_triples
from glom_plugin.models.lookalike_validation import LookalikeValidation
from glom_plugin.models.pm import FilteredNegativeSampler, PretrainEnergyModel
from glom_plugin.models.ranking import rank_metrics
from glom_plugin.models.seedset import SeedSetObjective

VALIDATION_NEGATIVES = 50
MAX_VALIDATION_PAIRS = 2000
MIN_VALIDATION_PAIRS = 10


@dataclass
class TrainingHistory:
    """What one training run did, logged with the model (MLflow metrics, artifact metadata)."""

    device: str
    epoch_seconds: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_mrr: list[float] = field(default_factory=list)
    val_hits_at_10: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val_mrr: float | None = None
    stopped_early: bool = False
    backend: str | None = None
    selection: str = "link"  # what val_mrr measures: "link" prediction or "lookalike" retrieval
    initial_val_mrr: float | None = None  # GLM: the validation metric before the first step
    batch_size: int | None = None  # PM: the batch it trained with (pm.batch_size grown per max_steps_per_epoch)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PMResult:
    model: PretrainEnergyModel
    triples: KnowledgeTriples
    history: TrainingHistory
    node_embeddings: np.ndarray  # (n_users + n_items, dim)
    relation_table: np.ndarray  # (n_relations, dim)


@dataclass
class GLMResult:
    model: GraphLearningModel
    triples: KnowledgeTriples
    history: TrainingHistory
    node_embeddings: np.ndarray  # h^L, (n_users + n_items, dim)
    relation_table: np.ndarray  # r^L
    # what GLoM's fold-in needs of each layer, recorded in the final pass (``GlmFoldIn.propagate``)
    fold_state: dict[str, np.ndarray] | None = None


@dataclass(frozen=True)
class ValidationSplit:
    """Held-out (user, item) pairs with their fixed sampled negative items (node ids)."""

    users: torch.Tensor
    items: torch.Tensor
    negatives: torch.Tensor  # (B, K)
    negative_valid: torch.Tensor  # (B, K) False where the draw is a known item of the user

    def __len__(self) -> int:
        return len(self.users)


def seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def held_out_split(
    triples: KnowledgeTriples, fraction: float, seed: int
) -> tuple[KnowledgeTriples, np.ndarray, np.ndarray]:
    """``split_validation`` drawn from ``seed`` alone: PM and GLM of one GLoM fit hold out the same pairs."""
    return split_validation(triples, fraction, np.random.default_rng(seed))


def split_validation(
    triples: KnowledgeTriples, fraction: float, rng: np.random.Generator
) -> tuple[KnowledgeTriples, np.ndarray, np.ndarray]:
    """(training triples, held-out users, held-out items): pairs drawn from the ``interacted`` relation,
    all of their triples removed in both directions so the held-out link is not leaked by a reverse edge."""
    rid = triples.relation_id(RELATION_INTERACTED)
    candidates = np.flatnonzero(triples.relations == rid)
    n_val = min(int(round(fraction * len(candidates))), MAX_VALIDATION_PAIRS)
    if fraction <= 0 or n_val < MIN_VALIDATION_PAIRS:
        return triples, np.empty(0, np.int64), np.empty(0, np.int64)
    chosen = rng.choice(candidates, size=n_val, replace=False)
    users, items = triples.heads[chosen], triples.tails[chosen]
    n = triples.n_nodes
    pair_key = np.minimum(triples.heads, triples.tails) * n + np.maximum(triples.heads, triples.tails)
    held = np.isin(pair_key, np.minimum(users, items) * n + np.maximum(users, items))
    return triples.subset(~held), users, items


def make_validation(
    users: np.ndarray,
    items: np.ndarray,
    full: KnowledgeTriples,
    device: torch.device,
    generator: torch.Generator,
    sampler: FilteredNegativeSampler | None = None,
) -> ValidationSplit | None:
    """Held-out pairs with ``VALIDATION_NEGATIVES`` sampled items each; ``sampler`` (over ``full``) is
    reused when the caller has one, since building it sorts every triple key."""
    if len(users) == 0:
        return None
    u = torch.as_tensor(users, device=device)
    i = torch.as_tensor(items, device=device)
    k = VALIDATION_NEGATIVES
    draws = full.n_users + (torch.rand(len(u), k, generator=generator, device=device) * full.n_items).long()
    draws = draws.clamp(max=full.n_nodes - 1)
    sampler = sampler if sampler is not None else FilteredNegativeSampler(full, device=device)
    rid = torch.full_like(draws, full.relation_id(RELATION_INTERACTED))
    known = sampler.is_known(u.unsqueeze(1).expand_as(draws), rid, draws)
    return ValidationSplit(u, i, draws, ~known)


class EarlyStopping:
    """Keep the best-MRR weights; stop after ``patience`` epochs without improvement."""

    def __init__(self, patience: int) -> None:
        self.patience = max(int(patience), 1)
        self.best: float | None = None
        self.best_state: dict | None = None
        self.best_epoch = -1
        self.waited = 0

    def update(self, metric: float, epoch: int, model: torch.nn.Module) -> bool:
        """Record an epoch; True when training should stop."""
        if self.best is None or metric > self.best:
            self.best, self.best_epoch, self.waited = metric, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


def _profiles(data: LookalikeData, cfg: GlomConfig) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not cfg.pm.use_profiles:
        return None, None
    return data.user_profile_embeddings, data.item_profile_embeddings


def fit_pm(
    data: LookalikeData,
    cfg: GlomConfig,
    seed: int = 0,
    device: str | None = None,
    triples: KnowledgeTriples | None = None,
    progress: bool = True,
    checkpoint: EpochCheckpoint | None = None,
) -> PMResult:
    """Train PM (Eq. 2) on the KG of ``data``: ``triples`` when given (the graph stage's artifact,
    ``kg.load_knowledge_triples``), else built from ``data``; returns the model and its embeddings."""
    device = torch.device(device or cfg.resolved_device())
    seed_everything(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    full = triples if triples is not None else build_knowledge_triples(data, cfg.graph)
    train, val_users, val_items = held_out_split(full, cfg.pm.val_fraction, seed)
    user_profiles, item_profiles = _profiles(data, cfg)
    model = PretrainEnergyModel(
        full.n_users,
        full.n_items,
        full.n_relations,
        cfg.pm.dim,
        cfg.pm.norm,
        full.reverse_of(),
        user_profiles,
        item_profiles,
        cfg.pm.unit_ball,
    ).to(device)
    sparse = model.sparse_parameters()
    dense = [p for p in model.parameters() if all(p is not q for q in sparse)]
    optimizers = [torch.optim.SparseAdam(sparse, lr=cfg.pm.lr), torch.optim.Adam(dense, lr=cfg.pm.lr)]
    sampler = FilteredNegativeSampler(full, device=device)
    validation = make_validation(val_users, val_items, full, device, generator, sampler)
    interacted = full.relation_id(RELATION_INTERACTED)

    # PM learns forward relations only; a reverse relation is -r by construction (pm.relation_table)
    forward = train.forward_only()
    heads = torch.as_tensor(forward.heads, device=device)
    rels = torch.as_tensor(forward.relations, device=device)
    tails = torch.as_tensor(forward.tails, device=device)
    batch_size = pm_batch_size(len(heads), cfg.pm.batch_size, cfg.pm.max_steps_per_epoch)
    history = TrainingHistory(device=str(device), batch_size=batch_size)
    stopper = EarlyStopping(cfg.pm.patience)
    negatives = max(int(cfg.pm.negatives), 1)

    first = checkpoint.restore(model, optimizers, generator, history, stopper) if checkpoint else 0
    epochs = tqdm(range(first, cfg.pm.epochs), desc="PM epochs", disable=not progress, leave=False)
    for epoch in epochs:
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(heads), generator=generator, device=device)
        total, batches = 0.0, 0
        for begin in range(0, len(order), batch_size):
            idx = order[begin : begin + batch_size].repeat(negatives)
            h, r, t = heads[idx], rels[idx], tails[idx]
            neg_h, neg_t, valid = sampler.sample(h, r, t, generator)
            if not bool(valid.any()):
                continue
            h, r, t, neg_h, neg_t = h[valid], r[valid], t[valid], neg_h[valid], neg_t[valid]
            loss = model.loss((h, r, t), (neg_h, r, neg_t), cfg.pm.margin)
            for optimizer in optimizers:
                optimizer.zero_grad()
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
            model.apply_constraints(torch.cat([h, t, neg_h, neg_t]))
            total += float(loss.detach())
            batches += 1
        validate = None if validation is None else (lambda: _pm_validation(model, validation, interacted))
        stop = _close_epoch(history, epochs, stopper, model, epoch, start, total / max(batches, 1), device, validate)
        if checkpoint:
            checkpoint.save(epoch, stop, model, optimizers, generator, history, stopper)
        if stop:
            break
    _finish_training(history, stopper, model)
    return PMResult(
        model=model,
        triples=full,
        history=history,
        node_embeddings=model.node_embeddings().cpu().numpy().astype(np.float32),
        relation_table=model.relation_table().detach().cpu().numpy().astype(np.float32),
    )


def pm_batch_size(n_triples: int, batch_size: int, max_steps_per_epoch: int | None) -> int:
    """``pm.batch_size``, grown so an epoch over ``n_triples`` takes at most ``max_steps_per_epoch`` steps."""
    if max_steps_per_epoch is None:
        return int(batch_size)
    return max(int(batch_size), -(-int(n_triples) // int(max_steps_per_epoch)))


def _close_epoch(
    history: TrainingHistory,
    progress: tqdm,
    stopper: EarlyStopping,
    model: torch.nn.Module,
    epoch: int,
    started: float,
    mean_loss: float,
    device: torch.device,
    validate: Callable[[], dict] | None,
) -> bool:
    """Record an epoch (seconds, loss, validation MRR / hits@10) for PM and GLM alike; True = stop early."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # so the epoch's seconds include its queued kernels
    history.epoch_seconds.append(round(time.perf_counter() - started, 4))
    history.train_loss.append(mean_loss)
    if validate is None:
        return False
    metrics = validate()
    history.val_mrr.append(metrics["mrr"])
    history.val_hits_at_10.append(metrics["hits_at_10"])
    progress.set_postfix(loss=f"{mean_loss:.4f}", mrr=f"{metrics['mrr']:.3f}")
    if stopper.update(metrics["mrr"], epoch, model):
        history.stopped_early = True
        return True
    return False


def _finish_training(history: TrainingHistory, stopper: EarlyStopping, model: torch.nn.Module) -> None:
    """Back to the best validated weights, recorded in the history; eval mode for embedding extraction."""
    stopper.restore(model)
    history.best_epoch, history.best_val_mrr = stopper.best_epoch, stopper.best
    model.eval()


@torch.no_grad()
def _pm_validation(model: PretrainEnergyModel, val: ValidationSplit, interacted: int) -> dict:
    model.eval()
    b, k = val.negatives.shape
    rel = torch.full((b,), interacted, device=val.users.device)
    positive = model.energy(val.users, rel, val.items)
    negative = model.energy(
        val.users.repeat_interleave(k), rel.repeat_interleave(k), val.negatives.reshape(-1)
    ).reshape(b, k)
    return rank_metrics(positive, negative, val.negative_valid)


def fit_glm(
    data: LookalikeData,
    cfg: GlomConfig,
    seed: int = 0,
    device: str | None = None,
    pm: PMResult | None = None,
    progress: bool = True,
    checkpoint: EpochCheckpoint | None = None,
    triples: KnowledgeTriples | None = None,
) -> GLMResult:
    """Train GLM on the KG of ``data`` with ``cfg.glm.objective`` (Eq. 9, or the seed-set episodes of
    ``seedset.py``); h^0 from ``pm`` when ``cfg.glm.use_pm`` (random otherwise). The KG is ``triples``
    when given (the graph stage's artifact, ``kg.load_knowledge_triples``), else PM's, else built
    from ``data``."""
    device = torch.device(device or cfg.resolved_device())
    backend = resolve_backend(cfg.glm.backend, device.type)
    rng = seed_everything(seed + 1)
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    full = triples if triples is not None else pm.triples if pm is not None else build_knowledge_triples(
        data, cfg.graph
    )
    if pm is not None and (full.n_users, full.n_items) != (pm.triples.n_users, pm.triples.n_items):
        raise ValueError(
            f"fit_glm: triples over {full.n_users} users + {full.n_items} items, PM trained on "
            f"{pm.triples.n_users} + {pm.triples.n_items}: train PM on the same graph"
        )
    if cfg.glm.use_pm and pm is None:
        raise ValueError(
            "glm.use_pm is true but no PM result was given; run fit_pm first (or set glm.use_pm=false)"
        )
    # with PM: PM's held-out pairs (same seed and fraction), which its embeddings never trained on
    fraction = cfg.pm.val_fraction if cfg.glm.use_pm else cfg.glm.val_fraction
    train, val_users, val_items = held_out_split(full, fraction, seed)
    model = GraphLearningModel(
        full.n_nodes,
        full.n_relations,
        cfg.pm.dim,
        cfg.glm.layers,
        cfg.glm.aggregator,
        cfg.pm.norm,
        initial_nodes=pm.node_embeddings if cfg.glm.use_pm else None,
        initial_relations=pm.relation_table if cfg.glm.use_pm else None,
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.glm.lr)
    train_graph = build_message_graph(train, backend, device)
    # the filtered sampler sorts every triple key: only Eq. 9 draws negatives from it
    sampler = FilteredNegativeSampler(full, device=device) if cfg.glm.objective == "eq9" else None
    validate, selection = _glm_validator(cfg, model, train_graph, train, full, val_users, val_items, rng, generator)

    # Eq. 9 positives: the observed user-item pairs (the interacted relation covers every interaction)
    positives = train.subset(train.relations == full.relation_id(RELATION_INTERACTED))
    users = torch.as_tensor(positives.heads, device=device)
    items = torch.as_tensor(positives.tails, device=device)
    rels = torch.as_tensor(positives.relations, device=device)
    history = TrainingHistory(device=str(device), backend=backend, selection=selection)
    stopper = EarlyStopping(cfg.glm.patience)
    if validate is not None:
        # the propagated PM embeddings, before any GLM step, are a candidate like every epoch
        history.initial_val_mrr = validate()["mrr"]
        stopper.update(history.initial_val_mrr, -1, model)

    seedset = (
        SeedSetObjective(train, full, cfg.glm, cfg.expand.center, backend, device, rng, generator)
        if cfg.glm.objective == "seedset"
        else None
    )

    def eq9_epoch() -> tuple[float, int]:
        if sampler is None:
            raise RuntimeError("the Eq. 9 epoch needs the filtered negative sampler")
        order = torch.randperm(len(users), generator=generator, device=device)
        total, batches = 0.0, 0
        for begin in range(0, len(order), cfg.glm.batch_size):
            idx = order[begin : begin + cfg.glm.batch_size]
            u, i = users[idx], items[idx]
            _, negative_items, valid = sampler.sample(u, rels[idx], i, generator, head_probability=0.0)
            if not bool(valid.any()):
                continue
            h, _ = model(train_graph)  # full-graph propagation, then the loss on this batch of pairs
            loss = model.loss(h, u[valid], i[valid], negative_items[valid], cfg.glm.margin)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            batches += 1
        return total, batches

    first = checkpoint.restore(model, [optimizer], generator, history, stopper, rng) if checkpoint else 0
    epochs = tqdm(
        range(first, cfg.glm.epochs), desc=f"GLM-{cfg.glm.aggregator} epochs", disable=not progress, leave=False
    )
    for epoch in epochs:
        start = time.perf_counter()
        model.train()
        total, batches = seedset.epoch(model, optimizer) if seedset is not None else eq9_epoch()
        stop = _close_epoch(history, epochs, stopper, model, epoch, start, total / max(batches, 1), device, validate)
        if checkpoint:
            checkpoint.save(epoch, stop, model, [optimizer], generator, history, stopper, rng)
        if stop:
            break
    _finish_training(history, stopper, model)
    # h^L and, in the same pass, the fold-in state of outside users (GLoM's §3.6 layers)
    h, r, fold_state = GlmFoldIn.propagate(model, build_message_graph(full, backend, device), full, data)
    return GLMResult(
        model=model,
        triples=full,
        history=history,
        node_embeddings=h.cpu().numpy().astype(np.float32),
        relation_table=r.cpu().numpy().astype(np.float32),
        fold_state=fold_state,
    )


def _glm_validator(
    cfg: GlomConfig,
    model: GraphLearningModel,
    graph,
    train: KnowledgeTriples,
    full: KnowledgeTriples,
    val_users: np.ndarray,
    val_items: np.ndarray,
    rng: np.random.Generator,
    generator: torch.Generator,
) -> tuple[Callable[[], dict] | None, str]:
    """(the per-epoch validation, what it measures); lookalike falls back to link when no held-out item has
    enough other purchasers to seed a campaign (tiny graphs)."""
    device = model.node.device
    if cfg.glm.select_on == "lookalike":
        campaigns = LookalikeValidation.build(
            val_users, val_items, train, full, rng, cfg.expand.aggregation, cfg.expand.center
        )
        if campaigns is not None:
            return (lambda: _glm_lookalike_validation(model, graph, campaigns, full.n_users)), "lookalike"
    links = make_validation(val_users, val_items, full, device, generator)
    if links is None:
        return None, "link"
    return (lambda: _glm_link_validation(model, graph, links)), "link"


@torch.no_grad()
def _glm_lookalike_validation(
    model: GraphLearningModel, graph, campaigns: LookalikeValidation, n_users: int
) -> dict:
    model.eval()
    h, _ = model(graph)
    return campaigns.score(h[:n_users].cpu().numpy())


@torch.no_grad()
def _glm_link_validation(model: GraphLearningModel, graph, val: ValidationSplit) -> dict:
    model.eval()
    h, _ = model(graph)
    b, k = val.negatives.shape
    positive = model.distance(h, val.users, val.items)
    negative = model.distance(h, val.users.repeat_interleave(k), val.negatives.reshape(-1)).reshape(b, k)
    return rank_metrics(positive, negative, val.negative_valid)

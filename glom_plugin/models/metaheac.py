"""MetaHeac (Zhu et al., KDD'21, "Learning to Expand Audience via Meta Hybrid Experts and Critics") —
the GLoM paper's §4.2 state-of-the-art baseline [2], deployed in WeChat.

A user is represented from what they interacted with: the mean embedding of their items, the mean
embedding of those items' categories and, when the data has them, a projection of their profile
embedding (MetaHeac's user features). Then, for a task (campaign) with seed users S:

    t      = mean_{s in S} x_s                                   task embedding from the seeds' features
    h_u    = sum_k softmax(W_e t)_k  Expert_k(x_u)               hybrid experts (shared MLPs, task gate)
    c_u    = [h_u ; h_u * mean_{s in S} h_s]                     the user next to the seed list
    logit  = sum_j softmax(W_c t)_j  Critic_j(c_u)               hybrid critics (second task gate)

Meta-training is MAML over tasks, **first-order** (FOMAML: the inner-loop gradient is treated as a
constant, so no second derivatives): the critics and their gate are adapted in the inner loop on a
task's support set (half its purchasers + sampled non-purchasers), the query set's loss with the adapted
critics updates everything (embeddings, experts, gates, critics' initialization). ``fit`` never sees
campaigns, so meta-training tasks are built from the training graph itself: items with at least
``min_task_purchasers`` purchasers, the item itself hidden from every user's bag (otherwise "bought
the item" would be the whole answer). At scoring time the critics are fine-tuned on the campaign's
seeds vs non-seeds — more steps for hot campaigns (many seeds) than for cold ones, whose few seeds
would be over-fitted. Scores are probabilities; ``decision_threshold = 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm

from glom_plugin.config import GlomConfig, MetaHeacBaselineConfig
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import Campaign, LookalikeModel


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class UserBags:
    """Each user's interacted items as EmbeddingBag input, optionally hiding one item (the task's)."""

    def __init__(self, user_items: sp.csr_matrix, device: torch.device) -> None:
        user_items = user_items.tocsr()
        user_items.sum_duplicates()
        self.indptr, self.indices, self.device = (
            user_items.indptr,
            user_items.indices.astype(np.int64),
            device,
        )

    def bags(self, users: np.ndarray, hide_item: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        starts = self.indptr[users]
        lengths = self.indptr[users + 1] - starts
        owner = np.repeat(np.arange(len(users)), lengths)
        # Position k of the flattened bags reads indices[start of its user + rank of k inside that bag].
        bag_start = np.cumsum(lengths) - lengths
        flat = self.indices[np.repeat(starts - bag_start, lengths) + np.arange(int(lengths.sum()))]
        if hide_item is not None:
            keep = flat != hide_item
            flat, owner = flat[keep], owner[keep]
        offsets = np.searchsorted(owner, np.arange(len(users)))  # empty bags give zero vectors
        return torch.from_numpy(flat).to(self.device), torch.from_numpy(offsets.astype(np.int64)).to(
            self.device
        )


class HybridExpertsCritics(nn.Module):
    """Experts + task gate (shared, outer loop) and critics + critic gate (``head``, adapted per task)."""

    def __init__(
        self,
        n_items: int,
        item_categories: sp.csr_matrix,
        profiles: torch.Tensor | None,
        settings: MetaHeacBaselineConfig,
    ) -> None:
        super().__init__()
        dim, hidden = settings.dim, settings.hidden
        self.item_embedding = nn.Embedding(n_items, dim)
        nn.init.normal_(self.item_embedding.weight, std=0.1)
        self.n_categories = item_categories.shape[1]
        parts = 1
        if self.n_categories > 0:
            # Row-normalized items x categories, so an item's category vector is the mean of its categories.
            rows = np.asarray(item_categories.sum(axis=1)).ravel()
            normalized = sp.diags(1.0 / np.maximum(rows, 1.0)) @ item_categories
            coo = normalized.tocoo()
            self.register_buffer(
                "item_category_matrix",
                torch.sparse_coo_tensor(
                    np.stack([coo.row, coo.col]),
                    coo.data.astype(np.float32),
                    normalized.shape,
                    check_invariants=True,
                ).coalesce(),
            )
            self.category_embedding = nn.Embedding(self.n_categories, dim)
            nn.init.normal_(self.category_embedding.weight, std=0.1)
            parts += 1
        self.register_buffer("profiles", profiles)
        if profiles is not None:
            self.profile_projection = nn.Linear(profiles.shape[1], dim)
            parts += 1
        feature_dim = parts * dim
        self.experts = nn.ModuleList(_mlp(feature_dim, hidden, dim) for _ in range(settings.n_experts))
        self.expert_gate = nn.Linear(feature_dim, settings.n_experts)
        self.head = nn.ModuleDict(
            {
                "critics": nn.ModuleList(_mlp(2 * dim, hidden, 1) for _ in range(settings.n_critics)),
                "critic_gate": nn.Linear(feature_dim, settings.n_critics),
            }
        )

    def user_features(self, users: torch.Tensor, bags: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """x_u = [mean item emb ; mean category emb of those items ; W_p profile_u]."""
        flat, offsets = bags
        parts = [F.embedding_bag(flat, self.item_embedding.weight, offsets, mode="mean")]
        if self.n_categories > 0:
            item_category_table = torch.sparse.mm(self.item_category_matrix, self.category_embedding.weight)
            parts.append(F.embedding_bag(flat, item_category_table, offsets, mode="mean"))
        if self.profiles is not None:
            parts.append(self.profile_projection(self.profiles[users]))
        return torch.cat(parts, dim=1)

    def represent(self, x: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """h_u = sum_k g_k Expert_k(x_u), g = softmax(W_e t)."""
        gate = torch.softmax(self.expert_gate(task), dim=-1)
        return (torch.stack([expert(x) for expert in self.experts], dim=-1) @ gate.T).squeeze(-1)

    @staticmethod
    def critic_logits(
        head: nn.ModuleDict, h: torch.Tensor, seed_rep: torch.Tensor, task: torch.Tensor
    ) -> torch.Tensor:
        """logit_u = sum_j w_j Critic_j([h_u ; h_u * s]), w = softmax(W_c t)."""
        c = torch.cat([h, h * seed_rep], dim=1)
        weights = torch.softmax(head["critic_gate"](task), dim=-1)
        return torch.cat([critic(c) for critic in head["critics"]], dim=1) @ weights.T


class _HeadCall(nn.Module):
    """Lets ``functional_call`` run the critics with adapted (fast) parameters."""

    def __init__(self, head: nn.ModuleDict) -> None:
        super().__init__()
        self.head = head

    def forward(self, h: torch.Tensor, seed_rep: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        return HybridExpertsCritics.critic_logits(self.head, h, seed_rep, task)


@dataclass
class Episode:
    """One task: seed (support-positive) users and labelled support / query users, user indices."""

    hide_item: int | None
    seeds: np.ndarray
    support: np.ndarray
    support_labels: np.ndarray
    query: np.ndarray
    query_labels: np.ndarray


def balanced_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with positives up-weighted by n_neg / n_pos (tasks are 1:ratio imbalanced)."""
    n_pos = labels.sum().clamp(min=1.0)
    pos_weight = (labels.numel() - n_pos) / n_pos
    return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=pos_weight.clamp(min=1.0))


class MetaHeacModel(LookalikeModel):
    """GLoM §4.2 MetaHeac: hybrid experts and critics, first-order MAML over item tasks, per-campaign fine-tuning."""

    name = "metaheac"
    decision_threshold = 0.5

    def __init__(self, config: GlomConfig, seed: int = 0) -> None:
        super().__init__(config, seed)
        self.settings = config.baselines.metaheac
        self.device = torch.device(config.resolved_device())
        self.network: HybridExpertsCritics | None = None
        self.meta_loss_history: list[float] = []

    # ---- meta-training ----------------------------------------------------------------------------
    def _build_network(self, data: LookalikeData) -> None:
        """The user bags and the (untrained) network for ``data``: what both meta-training and loading
        saved weights start from."""
        s = self.settings
        torch.manual_seed(self.seed)
        self._bags = UserBags(data.user_item_matrix(), self.device)
        profiles = None
        if s.use_profiles and data.user_profile_embeddings is not None:
            profiles = torch.from_numpy(np.asarray(data.user_profile_embeddings, np.float32)).to(self.device)
        self.network = HybridExpertsCritics(data.n_items, data.item_categories, profiles, s).to(self.device)
        self._head_call = _HeadCall(self.network.head)

    def learned_state(self) -> dict[str, object]:
        if self.network is None:
            raise RuntimeError(f"{self.name}: fit() must run before saving")
        return {"network": {k: v.detach().cpu() for k, v in self.network.state_dict().items()}}

    def restore(self, data: LookalikeData, state: dict[str, object]) -> MetaHeacModel:
        self._remember(data)
        self._build_network(data)
        assert self.network is not None
        self.network.load_state_dict(state["network"])  # type: ignore[arg-type]
        self.network.eval()
        return self

    def _fit(self, data: LookalikeData) -> None:
        s = self.settings
        self._build_network(data)
        assert self.network is not None
        rng = np.random.default_rng(self.seed)
        tasks = self._meta_tasks(data, rng)
        if not tasks:
            raise ValueError(
                f"metaheac: no item has >= {s.min_task_purchasers} purchasers to meta-train on "
                "(lower baselines.metaheac.min_task_purchasers)"
            )
        all_users = np.arange(data.n_users)
        optimizer = torch.optim.Adam(self.network.parameters(), lr=s.outer_lr)
        for _ in tqdm(range(s.meta_epochs), desc="metaheac meta-training", leave=False):
            order = rng.permutation(len(tasks))
            epoch_loss, steps = 0.0, 0
            for start in range(0, len(order), s.tasks_per_batch):
                optimizer.zero_grad()
                batch = [
                    self._episode(tasks[t], all_users, rng) for t in order[start : start + s.tasks_per_batch]
                ]
                loss = torch.stack([self._query_loss(ep) for ep in batch]).mean()
                loss.backward()
                optimizer.step()
                epoch_loss += float(loss.detach())
                steps += 1
            self.meta_loss_history.append(epoch_loss / max(steps, 1))
        self.network.eval()

    def _meta_tasks(self, data: LookalikeData, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
        """(item, purchasers) for items with enough purchasers; at most ``max_tasks``, chosen at random."""
        purchasers = data.user_item_matrix().tocsc()
        purchasers.sum_duplicates()
        counts = np.diff(purchasers.indptr)
        eligible = np.flatnonzero(counts >= self.settings.min_task_purchasers)
        if len(eligible) > self.settings.max_tasks:
            eligible = np.sort(rng.choice(eligible, self.settings.max_tasks, replace=False))
        return [
            (int(i), purchasers.indices[purchasers.indptr[i] : purchasers.indptr[i + 1]]) for i in eligible
        ]

    def _episode(
        self, task: tuple[int, np.ndarray], all_users: np.ndarray, rng: np.random.Generator
    ) -> Episode:
        item, buyers = task
        # At most max_task_purchasers purchasers per episode, so a best-seller does not make a huge episode.
        buyers = rng.permutation(buyers)[: self.settings.max_task_purchasers]
        half = len(buyers) // 2
        n_neg = min(self.settings.task_negative_ratio * len(buyers), len(all_users) - len(buyers))
        # Sample non-buyers by rejection: buyers are a small share of users.
        pool = rng.permutation(all_users)
        negatives = pool[~np.isin(pool, buyers)][:n_neg]
        neg_half = len(negatives) // 2
        support = np.concatenate([buyers[:half], negatives[:neg_half]])
        query = np.concatenate([buyers[half:], negatives[neg_half:]])
        return Episode(
            hide_item=item,
            seeds=buyers[:half],
            support=support,
            support_labels=np.concatenate([np.ones(half), np.zeros(neg_half)]),
            query=query,
            query_labels=np.concatenate([np.ones(len(buyers) - half), np.zeros(len(negatives) - neg_half)]),
        )

    def _encode(
        self, users: np.ndarray, task: torch.Tensor, hide_item: int | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_u, h_u) for ``users``."""
        users_t = torch.from_numpy(users).to(self.device)
        x = self.network.user_features(users_t, self._bags.bags(users, hide_item))
        return x, self.network.represent(x, task)

    def _task_context(self, seeds: np.ndarray, hide_item: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, s): the task embedding (mean seed features) and the seed list's mean representation."""
        users_t = torch.from_numpy(seeds).to(self.device)
        x_seeds = self.network.user_features(users_t, self._bags.bags(seeds, hide_item))
        task = x_seeds.mean(dim=0, keepdim=True)
        return task, self.network.represent(x_seeds, task).mean(dim=0, keepdim=True)

    def _adapt(
        self, task: torch.Tensor, seed_rep: torch.Tensor, h: torch.Tensor, labels: torch.Tensor, steps: int
    ):
        """Inner loop: ``steps`` SGD steps on the critics; first-order (gradients detached)."""
        fast = {name: p for name, p in self._head_call.named_parameters()}
        for _ in range(steps):
            loss = balanced_bce(
                functional_call(self._head_call, fast, (h, seed_rep, task)).squeeze(1), labels
            )
            grads = torch.autograd.grad(loss, list(fast.values()), retain_graph=True)
            fast = {
                name: p - self.settings.inner_lr * g.detach()
                for (name, p), g in zip(fast.items(), grads, strict=True)
            }
        return fast

    def _query_loss(self, episode: Episode) -> torch.Tensor:
        task, seed_rep = self._task_context(episode.seeds, episode.hide_item)
        _, h_support = self._encode(episode.support, task, episode.hide_item)
        support_labels = torch.from_numpy(episode.support_labels.astype(np.float32)).to(self.device)
        fast = self._adapt(task, seed_rep, h_support, support_labels, self.settings.inner_steps)
        _, h_query = self._encode(episode.query, task, episode.hide_item)
        logits = functional_call(self._head_call, fast, (h_query, seed_rep, task)).squeeze(1)
        return balanced_bce(logits, torch.from_numpy(episode.query_labels.astype(np.float32)).to(self.device))

    # ---- per-campaign fine-tuning and scoring -------------------------------------------------------
    def finetune_steps(self, campaign: Campaign) -> int:
        """Hot campaigns (many seeds) are fine-tuned longer than cold ones."""
        s = self.settings
        return s.finetune_steps_hot if len(campaign.seeds) >= s.hot_seed_threshold else s.finetune_steps_cold

    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        if self.network is None:
            raise RuntimeError(f"{self.name}: fit() must run before scoring")
        if len(campaign.seeds) == 0:
            raise ValueError(f"campaign {campaign.name!r} has no seeds")
        # As in meta-training, the campaign's own item is hidden: every seed bought it, and no candidate's
        # purchase of it is in the training graph, so it would only tell seeds from candidates.
        hide = campaign.item_idx
        task, seed_rep = self._task_context(campaign.seeds, hide)
        support = np.concatenate([campaign.seeds, campaign.non_seeds])
        labels = torch.from_numpy(
            np.concatenate([np.ones(len(campaign.seeds)), np.zeros(len(campaign.non_seeds))]).astype(
                np.float32
            )
        ).to(self.device)
        _, h_support = self._encode(support, task, hide)
        fast = self._adapt(task, seed_rep, h_support, labels, self.finetune_steps(campaign))
        with torch.no_grad():
            _, h = self._encode(campaign.candidates, task, hide)
            logits = functional_call(self._head_call, fast, (h, seed_rep, task)).squeeze(1)
        return torch.sigmoid(logits).cpu().numpy().astype(np.float64)

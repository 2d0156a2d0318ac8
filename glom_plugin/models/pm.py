"""Pre-trained Model (PM), GLoM §3.5: TransE energies over interaction- and profile-based representations.

Two representations per entity live in one vector space (§3.5, "without enforcing unification"):

- interaction-based ``u_i`` / ``v_i``: a free embedding per user and item (``nn.Embedding``);
- profile-based ``u_p`` / ``v_p``: a learned linear projection of the fixed-size profile embedding
  (§3.2.4, ``u_p = f_e(P_u)``; 384-d sentence vectors) into the same space, one projection per node type.

Energy of a triple (u, r, v)::

    F    = F_I + F_GG + F_GI + F_IG
    F_I  = ||u_i + r - v_i||        F_GG = ||u_p + r - v_p||
    F_GI = ||u_p + r - v_i||        F_IG = ||u_i + r - v_p||

with the L1 or L2 norm (``pm.norm``). A profile term enters only for endpoints that have a profile and
only when ``pm.use_profiles`` (ablation "w/o U/I profiles" drops all three). Loss: Eq. 2,
``[gamma + f(pos) - f(neg)]_+`` with negatives from ``FilteredNegativeSampler``.

``h_u + r`` is the *knowledge query* (§3.5) that GLM aggregates (§3.6).

Reverse relations (``likes_by``) are not trained separately: the exact TransE inverse of ``r`` is
``-r`` (``v + (-r) = u``), so ``relation_table()`` returns ``-r`` for them; GLM starts from that.

This module holds the math and imports no training or stage code; the loop is
``glom_plugin.models.training`` and the registry's ``pm`` model is ``glom_plugin.models.pretrained``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from glom_plugin.models.kg import KnowledgeTriples, triple_keys


def translation_distance(query: Tensor, tail: Tensor, norm: int) -> Tensor:
    """f(u, r, v) = ||e_u + e_r - e_v||_{1,2} (§3.5) from the knowledge query e_u + e_r, one value per row
    (a query serves two energies: u_i + r enters F_I and F_IG, u_p + r enters F_GG and F_GI)."""
    return torch.linalg.vector_norm(query - tail, ord=norm, dim=-1)


def margin_ranking_loss(positive_energy: Tensor, negative_energy: Tensor, margin: float) -> Tensor:
    """Eq. 2 / Eq. 9: mean over pairs of [gamma + f(pos) - f(neg)]_+ (mean, so lr does not scale with batch)."""
    return torch.relu(margin + positive_energy - negative_energy).mean()


def _clip_to_unit_ball(x: Tensor) -> Tensor:
    # TransE's constraint ||e|| <= 1: without it the margin loss is lowered by scaling every vector up.
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp(min=1.0)


class PretrainEnergyModel(nn.Module):
    """Parameters and energies of PM. Nodes use the unified index of ``KnowledgeTriples``."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_relations: int,
        dim: int,
        norm: int = 2,
        reverse_of: np.ndarray | None = None,
        user_profiles: np.ndarray | None = None,
        item_profiles: np.ndarray | None = None,
        unit_ball: bool = True,
    ) -> None:
        super().__init__()
        self.n_users, self.n_items, self.dim, self.norm = n_users, n_items, dim, int(norm)
        # ``pm.unit_ball``: False lifts TransE's ||e|| <= 1 (a diagnosis row, benchmarks/bench_diagnosis.py)
        self.unit_ball = bool(unit_ball)
        # interaction-based representations u_i (users) and v_i (items), one table in the unified index
        # sparse gradients: a step touches only its batch's rows, so its cost does not grow with the graph
        self.entity = nn.Embedding(n_users + n_items, dim, sparse=True)
        self.relation = nn.Embedding(n_relations, dim)
        bound = 6.0 / dim**0.5  # TransE initialisation (Bordes et al. 2013)
        nn.init.uniform_(self.entity.weight, -bound, bound)
        nn.init.uniform_(self.relation.weight, -bound, bound)
        with torch.no_grad():
            self.entity.weight.copy_(self._clip(self.entity.weight))
            self.relation.weight.copy_(torch.nn.functional.normalize(self.relation.weight, dim=-1))
        reverse = np.full(n_relations, -1) if reverse_of is None else np.asarray(reverse_of)
        self.register_buffer("reverse_of", torch.as_tensor(reverse, dtype=torch.long), persistent=True)
        # profile-based representations: linear projections of the fixed-size profile embeddings
        self.user_projection = self._projection(user_profiles, "user_profiles", n_users)
        self.item_projection = self._projection(item_profiles, "item_profiles", n_items)

    def _projection(self, profiles: np.ndarray | None, name: str, n_rows: int) -> nn.Linear | None:
        if profiles is None:
            self.register_buffer(name, None)
            return None
        profiles = np.asarray(profiles, dtype=np.float32)
        if profiles.ndim != 2 or profiles.shape[0] != n_rows:
            raise ValueError(f"{name} must have shape ({n_rows}, d), got {profiles.shape}")
        self.register_buffer(name, torch.from_numpy(profiles), persistent=False)
        return nn.Linear(profiles.shape[1], self.dim)

    @property
    def uses_profiles(self) -> bool:
        return self.user_projection is not None or self.item_projection is not None

    def relation_table(self) -> Tensor:
        """(R, d) relation vectors; a reverse relation is the negation of the relation it reverses."""
        weight = self.relation.weight
        reverse = self.reverse_of
        if bool((reverse >= 0).any()):
            sign = torch.where(reverse >= 0, -1.0, 1.0).to(weight.dtype).unsqueeze(1)
            source = torch.where(reverse >= 0, reverse, torch.arange(len(reverse), device=reverse.device))
            weight = sign * weight[source]
        return weight

    def interaction_representation(self, nodes: Tensor) -> Tensor:
        return self.entity(nodes)

    def profile_representation(self, nodes: Tensor) -> tuple[Tensor, Tensor]:
        """(profile-based vectors, has_profile mask) for ``nodes``; zeros where a node type has no profile.

        Each distinct node is projected once: a batch repeats users and popular items many times, and the
        projection's forward and backward dominate PM's step otherwise (same values, same gradients).
        """
        dtype = self.entity.weight.dtype
        if len(nodes) >= 2 * (self.n_users + self.n_items):
            # a batch this large touches nearly every node: projecting them all skips the sort and the copy
            # of the profile rows (rows not in the batch get zero gradient, so the step is the same)
            every = self._project(torch.arange(self.n_users), torch.arange(self.n_items), dtype, nodes.device)
            return every[0][nodes], every[1][nodes]
        unique, inverse = torch.unique(nodes, return_inverse=True)  # sorted: users, then items
        n_user_rows = int(torch.searchsorted(unique, self.n_users))
        vectors, has = self._project(unique[:n_user_rows], unique[n_user_rows:] - self.n_users, dtype, nodes.device)
        return vectors[inverse], has[inverse]

    def _project(
        self, users: Tensor, items: Tensor, dtype: torch.dtype, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """Profile-based vectors of ``users`` then ``items`` (own index spaces) and which of them have one."""
        vectors, has = [], []
        for projection, profiles, rows, n_rows in (
            (self.user_projection, self.user_profiles, users, self.n_users),
            (self.item_projection, self.item_profiles, items, self.n_items),
        ):
            if projection is None:
                vectors.append(torch.zeros(len(rows), self.dim, device=device, dtype=dtype))
                has.append(torch.zeros(len(rows), dtype=torch.bool, device=device))
                continue
            inputs = profiles if len(rows) == n_rows else profiles[rows.to(device)]
            vectors.append(self._clip(projection(inputs.to(dtype))))
            has.append(torch.ones(len(rows), dtype=torch.bool, device=device))
        return torch.cat(vectors), torch.cat(has)

    def energy_terms(self, heads: Tensor, relations: Tensor, tails: Tensor) -> dict[str, Tensor]:
        """F_I, F_GG, F_GI, F_IG per triple (profile terms are 0 where an endpoint has no profile)."""
        r = self.relation_table()[relations]
        # heads and tails in one lookup and one projection: a batch's nodes are projected once each
        n = len(heads)
        nodes = torch.cat([heads, tails])
        interaction = self.interaction_representation(nodes)
        u_i, v_i = interaction[:n], interaction[n:]
        query_i = u_i + r  # the knowledge query (§3.5)
        terms = {"F_I": translation_distance(query_i, v_i, self.norm)}
        if self.uses_profiles:
            profile, has = self.profile_representation(nodes)
            u_p, v_p = profile[:n], profile[n:]
            head_has, tail_has = has[:n].to(r.dtype), has[n:].to(r.dtype)
            query_p = u_p + r
            terms["F_GG"] = translation_distance(query_p, v_p, self.norm) * head_has * tail_has
            terms["F_GI"] = translation_distance(query_p, v_i, self.norm) * head_has
            terms["F_IG"] = translation_distance(query_i, v_p, self.norm) * tail_has
        return terms

    def energy(self, heads: Tensor, relations: Tensor, tails: Tensor) -> Tensor:
        """F = F_I + F_GG + F_GI + F_IG (§3.5)."""
        return torch.stack(list(self.energy_terms(heads, relations, tails).values())).sum(dim=0)

    def loss(
        self, positive: tuple[Tensor, Tensor, Tensor], negative: tuple[Tensor, Tensor, Tensor], margin: float
    ):
        """Eq. 2 for aligned positive / negative triples (both energies in one pass over their nodes)."""
        n = len(positive[0])
        energy = self.energy(*(torch.cat([p, q]) for p, q in zip(positive, negative, strict=True)))
        return margin_ranking_loss(energy[:n], energy[n:], margin)

    def _clip(self, x: Tensor) -> Tensor:
        return _clip_to_unit_ball(x) if self.unit_ball else x

    @torch.no_grad()
    def apply_constraints(self, nodes: Tensor | None = None) -> None:
        """Project interaction-based entity vectors (those of ``nodes``, or all) back into the unit ball
        after a step (TransE); nothing to do when the constraint is off."""
        if not self.unit_ball:
            return
        weight = self.entity.weight
        if nodes is None:
            weight.copy_(_clip_to_unit_ball(weight))
            return
        rows = torch.unique(nodes)
        weight[rows] = _clip_to_unit_ball(weight[rows])

    def sparse_parameters(self) -> list[nn.Parameter]:
        """Parameters with sparse gradients (``torch.optim.SparseAdam``); the rest take ``Adam``."""
        return [self.entity.weight]

    @torch.no_grad()
    def node_embeddings(self) -> Tensor:
        """One vector per node: the mean of its interaction- and profile-based representations.

        Why the mean: both representations satisfy the same translation (u + r ~ v), and by the triangle
        inequality ||(u_i+u_p)/2 + r - (v_i+v_p)/2|| <= (F_I + F_GG)/2, so the mean keeps the
        translation while carrying the profile's semantics; it also keeps the GLM input at ``dim``.
        Nodes without a profile use the interaction-based vector alone.
        """
        nodes = torch.arange(self.n_users + self.n_items, device=self.entity.weight.device)
        interaction = self.interaction_representation(nodes)
        if not self.uses_profiles:
            return interaction.clone()
        profile, has = self.profile_representation(nodes)
        return torch.where(has.unsqueeze(1), (interaction + profile) / 2, interaction)


class FilteredNegativeSampler:
    """Corrupt the head or the tail of each positive with a node of the same type (user for a user slot,
    item for an item slot), never returning a triple that exists in the KG ("filtered" setting).

    Draws are redrawn until clean (up to ``max_tries``); rows still colliding after that (a node linked to
    nearly every candidate) come back with ``valid=False`` and the caller drops them.
    """

    def __init__(
        self, triples: KnowledgeTriples, device: str | torch.device = "cpu", max_tries: int = 20
    ) -> None:
        self.n_users, self.n_items = triples.n_users, triples.n_items
        self.n_relations, self.n_nodes = triples.n_relations, triples.n_nodes
        self.known = torch.as_tensor(np.unique(triples.triple_keys()), device=device)
        self.device = torch.device(device)
        self.max_tries = max_tries

    def _draw_like(self, nodes: Tensor, generator: torch.Generator) -> Tensor:
        # a uniform draw from the same node type as ``nodes``
        u = torch.rand(len(nodes), generator=generator, device=nodes.device)
        users = (u * self.n_users).long().clamp(max=max(self.n_users - 1, 0))
        items = self.n_users + (u * self.n_items).long().clamp(max=max(self.n_items - 1, 0))
        return torch.where(nodes < self.n_users, users, items)

    def is_known(self, heads: Tensor, relations: Tensor, tails: Tensor) -> Tensor:
        # binary search in the sorted key array: O(B log E) per batch (torch.isin re-sorts E every call)
        keys = triple_keys(heads, relations, tails, self.n_relations, self.n_nodes)
        if len(self.known) == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        pos = torch.searchsorted(self.known, keys).clamp(max=len(self.known) - 1)
        return self.known[pos] == keys

    def sample(
        self,
        heads: Tensor,
        relations: Tensor,
        tails: Tensor,
        generator: torch.Generator,
        head_probability: float = 0.5,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(negative heads, negative tails, valid mask) aligned with the positives.

        Each row corrupts its head with ``head_probability`` and its tail otherwise (Eq. 2 uses both;
        Eq. 9 corrupts only the item, ``head_probability=0``).
        """
        corrupt_head = torch.rand(len(heads), generator=generator, device=heads.device) < head_probability
        neg_h, neg_t = heads.clone(), tails.clone()
        todo = torch.ones(len(heads), dtype=torch.bool, device=heads.device)
        for _ in range(self.max_tries):
            idx = todo.nonzero(as_tuple=True)[0]
            if len(idx) == 0:
                break
            ch = corrupt_head[idx]
            neg_h[idx] = torch.where(ch, self._draw_like(heads[idx], generator), heads[idx])
            neg_t[idx] = torch.where(ch, tails[idx], self._draw_like(tails[idx], generator))
            bad = self.is_known(neg_h[idx], relations[idx], neg_t[idx])
            todo[idx] = bad
        return neg_h, neg_t, ~todo

"""The LLM profile builder: P_v = LLM(M_v, S_v) first, then P_u = LLM(M_u, S_u) with the P_v inside M_u (§3.2).

Every answer goes through the content-addressed cache (llm_cache.py) keyed by model + template id +
messages, so a rerun requests only what is missing and an interrupted run resumes where it stopped.
Outputs are labelled ``builder="llm:<model>"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from glom_plugin.config import GlomConfig
from glom_plugin.text.llm_cache import ProfileCache, cache_key
from glom_plugin.text.llm_client import ChatRequest, Completion, LLMClient
from glom_plugin.text.profile_inputs import ItemInput, UserInput
from glom_plugin.text.prompts import PromptTemplates, estimate_tokens, load_templates


@dataclass
class DryRunReport:
    """What a run would cost before anything is spent."""

    builder: str
    item_prompts: int
    user_prompts: int
    cached_item_prompts: int
    cached_user_prompts: int
    est_prompt_tokens: int
    est_completion_tokens: int
    est_cost_usd: float | None
    note: str = ""

    @property
    def prompts(self) -> int:
        return self.item_prompts + self.user_prompts

    @property
    def to_request(self) -> int:
        return self.prompts - self.cached_item_prompts - self.cached_user_prompts

    def as_dict(self) -> dict:
        return {**asdict(self), "prompts": self.prompts, "to_request": self.to_request}

    def format(self) -> str:
        cost = "no prices configured" if self.est_cost_usd is None else f"${self.est_cost_usd:,.4f}"
        lines = [
            f"profile builder: {self.builder}",
            f"prompts: {self.prompts} ({self.item_prompts} item + {self.user_prompts} user)",
            f"already cached: {self.cached_item_prompts} item + {self.cached_user_prompts} user",
            f"to request: {self.to_request}",
            f"estimated tokens (uncached): {self.est_prompt_tokens:,} prompt + {self.est_completion_tokens:,} completion",
            f"estimated cost: {cost}",
        ]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


class LLMProfileBuilder:
    name = "llm"

    def __init__(self, cfg: GlomConfig, cache_dir: Path) -> None:
        self.cfg = cfg
        self.pcfg = cfg.profiles
        self.templates: PromptTemplates = load_templates(cfg.profiles)
        self.cache_dir = Path(cache_dir) / "llm_profiles"
        self.model = cfg.profiles.llm_model
        self._client: LLMClient | None = None

    @property
    def label(self) -> str:
        return f"llm:{self.model}"

    @property
    def item_template_id(self) -> str:
        return self.templates.item_template_id

    @property
    def user_template_id(self) -> str:
        return self.templates.user_template_id

    def _client_or_new(self) -> LLMClient:
        if self._client is None:
            self._client = LLMClient.from_config(self.pcfg, seed=self.cfg.seed)
        return self._client

    # -- requests ------------------------------------------------------------------------------------
    def item_requests(self, items: Sequence[ItemInput]) -> dict[str, ChatRequest]:
        out = {}
        for item in items:
            system, prompt = self.templates.item_messages(item, self.pcfg.profile_words)
            out[item.item_id] = ChatRequest(
                cache_key(self.model, self.item_template_id, system, prompt), system, prompt
            )
        return out

    def user_requests(
        self, users: Sequence[UserInput], item_profiles: dict[str, str]
    ) -> dict[str, ChatRequest]:
        out = {}
        for user in users:
            system, prompt = self.templates.user_messages(user, item_profiles, self.pcfg.profile_words)
            out[user.user_id] = ChatRequest(
                cache_key(self.model, self.user_template_id, system, prompt), system, prompt
            )
        return out

    def _resolve(self, requests: dict[str, ChatRequest], desc: str) -> dict[str, str]:
        """Answers for every request: from the cache, or asked for (and cached as each one lands)."""
        with ProfileCache(self.cache_dir) as cache:
            unique = {r.key: r for r in requests.values() if r.key not in cache}
            if unique:
                template_id = self.item_template_id if desc.startswith("item") else self.user_template_id

                def keep(request: ChatRequest, completion: Completion) -> None:
                    cache.put(
                        request.key,
                        completion.text,
                        model=self.model,
                        template_id=template_id,
                        prompt_tokens=completion.prompt_tokens,
                        completion_tokens=completion.completion_tokens,
                    )

                self._client_or_new().complete_many(list(unique.values()), keep, desc=desc)
            return {entity: cache.get(r.key) or "" for entity, r in requests.items()}

    def item_profiles(self, items: Sequence[ItemInput]) -> dict[str, str]:
        return self._resolve(self.item_requests(items), "item profiles (LLM)")

    def user_profiles(
        self, users: Sequence[UserInput], items: Sequence[ItemInput], item_profiles: dict[str, str]
    ) -> dict[str, str]:
        return self._resolve(self.user_requests(users, item_profiles), "user profiles (LLM)")

    # -- dry run -------------------------------------------------------------------------------------
    def dry_run(self, items: Sequence[ItemInput], users: Sequence[UserInput]) -> DryRunReport:
        """Counts and estimates without a single request. User prompts embed item profiles: where an
        item profile is not cached yet, a placeholder of ``profile_words`` words stands in for it."""
        cache = ProfileCache(self.cache_dir)
        item_requests = self.item_requests(items)
        # ~6 characters per English word with its space, like the profiles that will stand there.
        placeholder = " ".join(["lorem"] * self.pcfg.profile_words)
        item_profiles = {iid: cache.get(r.key) or placeholder for iid, r in item_requests.items()}
        user_requests = self.user_requests(users, item_profiles)
        completion_each = min(self.pcfg.llm_max_tokens, math.ceil(self.pcfg.profile_words * 4 / 3))
        pending = [r for r in (*item_requests.values(), *user_requests.values()) if r.key not in cache]
        prompt_tokens = sum(estimate_tokens(r.system) + estimate_tokens(r.prompt) for r in pending)
        completion_tokens = completion_each * len(pending)
        p_in, p_out = self.pcfg.llm_price_prompt_per_1k, self.pcfg.llm_price_completion_per_1k
        cost = None
        if p_in is not None or p_out is not None:
            cost = prompt_tokens / 1000 * (p_in or 0.0) + completion_tokens / 1000 * (p_out or 0.0)
        return DryRunReport(
            builder=self.label,
            item_prompts=len(item_requests),
            user_prompts=len(user_requests),
            cached_item_prompts=sum(r.key in cache for r in item_requests.values()),
            cached_user_prompts=sum(r.key in cache for r in user_requests.values()),
            est_prompt_tokens=prompt_tokens,
            est_completion_tokens=completion_tokens,
            est_cost_usd=cost,
            note="tokens estimated at ~4 characters per token; templates "
            f"{self.item_template_id} / {self.user_template_id}",
        )

"""Prompt templates: f_v, f_u and the guidelines S_v, S_u of §3.2 (P = LLM(M, S)).

Templates are plain files under ``glom_plugin/templates/profiles/`` that a user can copy, edit and
version; ``cfg.profiles.template_dir`` points at the copy (a file missing there falls back to the
packaged one). A template set is identified by ``<domain>@<hash of every file used>``: that id goes
into every LLM cache key and every MLflow run, so editing a template can never reuse stale answers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from string import Template

from glom_plugin.config import ProfileConfig
from glom_plugin.text.profile_inputs import ItemInput, UserInput

PACKAGED_TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates" / "profiles"
_MISSING = "(not available)"


@dataclass(frozen=True)
class PromptTemplates:
    """One resolved template set for a domain: system guidelines and input layouts."""

    domain: str
    item_guideline: str  # S_v
    user_guideline: str  # S_u
    item_input: str  # f_v
    user_input: str  # f_u
    user_item: str  # c_v inside f_u
    item_template_id: str
    user_template_id: str

    def item_messages(self, item: ItemInput, words: int) -> tuple[str, str]:
        """(S_v, M_v) for one item (§3.2.2, Figure 4)."""
        reviews = ", ".join(f'"{r}"' for r in item.reviews)
        prompt = Template(self.item_input).safe_substitute(
            title=item.title or _MISSING,
            categories=str(list(item.categories)) if item.categories else _MISSING,
            attributes="; ".join(item.attributes) if item.attributes else _MISSING,
            reviews=f"[{reviews}]" if reviews else _MISSING,
            description=f'["{item.description}"]' if item.description else _MISSING,
        )
        return Template(self.item_guideline).safe_substitute(words=words), prompt

    def user_messages(self, user: UserInput, item_profiles: dict[str, str], words: int) -> tuple[str, str]:
        """(S_u, M_u) for one user: f_u over c_v = [title, P_v, review] of the sampled items (§3.2.1)."""
        blocks = [
            Template(self.user_item)
            .safe_substitute(
                title=c.title or _MISSING,
                item_profile=item_profiles.get(c.item_id, _MISSING),
                review=f'"{c.review}"' if c.review else _MISSING,
            )
            .strip()
            for c in user.sampled
        ]
        prompt = Template(self.user_input).safe_substitute(items="\n\n".join(blocks))
        return Template(self.user_guideline).safe_substitute(words=words), prompt


def available_domains(template_dir: Path | None = None) -> list[str]:
    dirs = {p.name for p in PACKAGED_TEMPLATE_DIR.iterdir() if (p / "item_guideline.txt").is_file()}
    if template_dir is not None and template_dir.is_dir():
        dirs |= {p.name for p in template_dir.iterdir() if (p / "item_guideline.txt").is_file()}
    return sorted(dirs)


def _read(relative: str, override: Path | None) -> tuple[str, str]:
    """(text, where) — the override copy when it has the file, the packaged one otherwise."""
    for base in (override, PACKAGED_TEMPLATE_DIR):
        if base is not None and (base / relative).is_file():
            return (base / relative).read_text(encoding="utf-8"), str(base / relative)
    raise FileNotFoundError(
        f"prompt template {relative!r} not found in {override} or {PACKAGED_TEMPLATE_DIR}"
    )


def _template_id(domain: str, *texts: str) -> str:
    digest = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()[:12]
    return f"{domain}@{digest}"


def load_templates(cfg: ProfileConfig) -> PromptTemplates:
    """Resolve the template set for ``cfg.domain``; an unknown domain is a clear error listing the known ones."""
    override = Path(cfg.template_dir) if cfg.template_dir else None
    if override is not None and not override.is_dir():
        raise FileNotFoundError(f"profiles.template_dir {override} is not a directory")
    domains = available_domains(override)
    if cfg.domain not in domains:
        raise ValueError(f"profiles.domain={cfg.domain!r} has no templates; available: {', '.join(domains)}")
    item_guideline, _ = _read(f"{cfg.domain}/item_guideline.txt", override)
    user_guideline, _ = _read(f"{cfg.domain}/user_guideline.txt", override)
    item_input, _ = _read("item_input.txt", override)
    user_input, _ = _read("user_input.txt", override)
    user_item, _ = _read("user_item.txt", override)
    return PromptTemplates(
        domain=cfg.domain,
        item_guideline=item_guideline,
        user_guideline=user_guideline,
        item_input=item_input,
        user_input=user_input,
        user_item=user_item,
        item_template_id=_template_id(cfg.domain, item_guideline, item_input, str(cfg.profile_words)),
        user_template_id=_template_id(
            cfg.domain, user_guideline, user_input, user_item, str(cfg.profile_words)
        ),
    )


def estimate_tokens(text: str) -> int:
    """~4 characters per token for English (the usual rule of thumb; no tokenizer is installed offline)."""
    return max(1, (len(text) + 3) // 4)

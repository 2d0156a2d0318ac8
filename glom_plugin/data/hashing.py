"""Salted hashing of user identifiers, done once at ingestion.

Why: an advertiser's seed list and the platform's interaction log must meet on the same key
without either side exposing raw account ids. HMAC-SHA256 with a secret salt (``cfg.id_salt()``,
from ``$GLOM_ID_SALT``) gives a stable pseudonym that cannot be reversed by hashing guessed ids
without the salt. The salt is never logged or written; only the 20-hex-character digests are.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from glom_plugin.storage import atomic_path

HASH_CHARS = 20


def _keyed(salt: str) -> hmac.HMAC:
    if not salt:
        raise ValueError("the id salt is empty; set $GLOM_ID_SALT (or cfg.data.id_salt_env) to a secret value")
    return hmac.new(salt.encode("utf-8"), digestmod=hashlib.sha256)


def hash_user_id(raw: str, salt: str) -> str:
    """HMAC-SHA256(salt, raw) as hex, truncated to 20 characters (80 bits: collision-free in practice
    for up to ~10^9 users)."""
    mac = _keyed(salt)
    mac.update(str(raw).encode("utf-8"))
    return mac.hexdigest()[:HASH_CHARS]


def hash_user_ids(raw_ids: Sequence[str] | np.ndarray | Iterable[str], salt: str) -> np.ndarray:
    """Vectorised ``hash_user_id``: each distinct raw id is hashed once (ids repeat a lot in
    interaction logs), the keyed HMAC state is copied instead of re-keyed. Returns an object array."""
    import pandas as pd

    values = raw_ids if isinstance(raw_ids, (np.ndarray, list, tuple)) else list(raw_ids)
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    base = _keyed(salt)
    hashed = np.empty(len(uniques), dtype=object)
    for i, raw in enumerate(uniques):
        mac = base.copy()
        mac.update(str(raw).encode("utf-8"))
        hashed[i] = mac.hexdigest()[:HASH_CHARS]
    return hashed[codes] if len(codes) else np.empty(0, dtype=object)


def hash_ids_file(in_path: str | Path, out_path: str | Path, salt: str) -> int:
    """Hash a raw seed list (one id per line) the way ingestion hashes users, so an advertiser's
    seeds match the ingested ``user_id`` column. Blank lines are skipped; returns the ids written.
    The output is written atomically (write then rename)."""
    in_path = Path(in_path)
    base = _keyed(salt)
    written = 0
    with open(in_path, encoding="utf-8") as src, atomic_path(out_path) as tmp, open(tmp, "w") as dst:
        for line in src:
            raw = line.strip()
            if not raw:
                continue
            mac = base.copy()
            mac.update(raw.encode("utf-8"))
            dst.write(mac.hexdigest()[:HASH_CHARS] + "\n")
            written += 1
    return written

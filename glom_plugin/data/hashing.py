"""Salted hashing of user identifiers, done once at ingestion.

Why: an advertiser's seed list and the platform's interaction log must meet on the same key
without either side exposing raw account ids. HMAC-SHA256 with a secret salt (``cfg.id_salt()``,
from ``$GLOM_ID_SALT``) gives a stable pseudonym that cannot be reversed by hashing guessed ids
without the salt. The salt is never logged or written; only the 20-hex-character digests are.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from glom_plugin.storage import atomic_path

HASH_CHARS = 20
# Public, in the source: ids hashed with it can be recovered by hashing guesses. Development only.
DEV_SALT = "glom-dev-salt"


def looks_hashed(value: str) -> bool:
    """Whether ``value`` has the shape of ``hash_user_id``'s output (so it is safe to echo)."""
    return len(value) == HASH_CHARS and all(c in "0123456789abcdef" for c in value)


class SaltError(ValueError):
    """The id salt is missing (where it is required) or unusable."""


def resolve_salt(env_name: str, required: bool) -> str:
    """The secret salt from ``$env_name``. Unset: an error when ``required`` (``glom --strict``, the
    service), else the public development salt with a loud warning on stderr, every time, because
    pseudonyms made with it are reversible by anyone who can guess the id pattern. A blank salt is
    always an error (it would be the same for everyone who makes the same mistake)."""
    value = os.environ.get(env_name)
    if value is None:
        if required:
            raise SaltError(
                f"${env_name} is not set: refusing to hash user ids with the public development salt "
                f"(set {env_name} to a secret, the same one for ingestion and `glom hash-ids`)"
            )
        print(
            f"WARNING: ${env_name} is not set; user ids are hashed with the PUBLIC development salt "
            f"and can be recovered by hashing guessed ids. Set {env_name} to a secret for real data "
            "(`glom --strict ...` refuses to run without it).",
            file=sys.stderr,
        )
        return DEV_SALT
    if not value.strip():
        raise SaltError(f"${env_name} is blank; set it to a secret value")
    return value


def _keyed(salt: str) -> hmac.HMAC:
    if not salt:
        raise SaltError("the id salt is empty; set $GLOM_ID_SALT (or cfg.data.id_salt_env) to a secret value")
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
    """Hash a raw seed list the way ingestion hashes users, so an advertiser's seeds match the ingested
    ``user_id`` column. The layout is kept: one id per line stays one hash per line; a CSV keeps its
    header and other columns with only ``user_id`` hashed (``glom expand`` reads both). Returns the ids
    written; the output is written atomically (write then rename)."""
    import csv

    from glom_plugin.data.id_files import read_id_list

    ids = read_id_list(in_path)
    hashed = hash_user_ids(ids.ids, salt)
    with atomic_path(out_path) as tmp, open(tmp, "w", newline="") as dst:
        if ids.is_csv:
            assert ids.header is not None and ids.rows is not None
            col = ids.header.index("user_id")
            writer = csv.writer(dst, lineterminator="\n")
            writer.writerow(ids.header)
            for row, value in zip(ids.rows, hashed, strict=True):
                writer.writerow([value if i == col else cell for i, cell in enumerate(row)])
        else:
            dst.writelines(f"{value}\n" for value in hashed)
    return len(hashed)

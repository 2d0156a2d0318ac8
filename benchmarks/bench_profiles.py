"""Profile-stage throughput (GLoM §3.2 / §3.2.4), measured, not asserted.

1. LLM profiles/s against the loopback OpenAI-protocol server (tests/support/openai_server.py, run as its
   own process) that adds a fixed latency per request, at concurrency 1, 4, 16 — and the cached rerun.
2. Offline builder profiles/s on the real datasets (MovieLens: ratings + titles/genres; Amazon Digital
   Music 2014: review text + metadata), read from $GLOM_DATA_DIR, never copied.
3. Embeddings/s (sentence-transformers, packaged all-MiniLM-L6-v2 unless --model-path) on the offline
   profiles, cold and from the Parquet cache, on CPU (or CUDA when present).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_profiles.py            # writes benchmarks/results/profiles.md
    .venv/bin/python benchmarks/bench_profiles.py --parts embed --embed-n 20000 --out /tmp/x.md

No real LLM endpoint is reachable from this machine, so the quality effect of LLM vs offline profiles is
not measured here (see the results file).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from glom_plugin.config import GlomConfig  # noqa: E402
from glom_plugin.text.profiles import build_profiles  # noqa: E402


def synthetic_catalogue(n_items: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    words = "battery sound bass camera lens zoom cable charger screen bright durable compact cheap".split()
    rows = [
        {
            "user_id": f"u{u}",
            "item_id": f"i{i}",
            "rating_norm": float(rng.integers(0, 5)) / 4,
            "text": " ".join(rng.choice(words, 30)),
            "helpful_votes": int(rng.integers(0, 5)),
        }
        for i in range(n_items)
        for u in rng.choice(200, 5, replace=False)
    ]
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n_items)],
            "title": [f"Product {i}" for i in range(n_items)],
            "categories": [["Electronics", words[i % len(words)]] for i in range(n_items)],
            "description": [" ".join(rng.choice(words, 60)) for _ in range(n_items)],
        }
    )
    return pd.DataFrame(rows), items


def start_server(latency: float, workdir: Path) -> tuple[subprocess.Popen, str]:
    port_file = workdir / "server.port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.openai_server",
            "--port-file",
            str(port_file),
            "--latency",
            str(latency),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    deadline = time.time() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError("loopback server did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text()}/v1"


def bench_llm(n_items: int, latency: float, levels: list[int]) -> list[dict]:
    from glom_plugin.text.llm_builder import LLMProfileBuilder
    from glom_plugin.text.profile_inputs import item_inputs

    interactions, items = synthetic_catalogue(n_items)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(latency, Path(tmp))
        try:
            for c in levels:
                cfg = GlomConfig().with_overrides(
                    **{
                        "profiles.builder": "llm",
                        "profiles.llm_base_url": url,
                        "profiles.llm_concurrency": c,
                        "profiles.llm_model": "loopback",
                    }
                )
                inputs = item_inputs(interactions, items, cfg.profiles)
                cache = Path(tmp) / f"cache-c{c}"
                builder = LLMProfileBuilder(cfg, cache)
                start = time.perf_counter()
                profiles = builder.item_profiles(inputs)
                cold = time.perf_counter() - start
                start = time.perf_counter()
                LLMProfileBuilder(cfg, cache).item_profiles(inputs)
                warm = time.perf_counter() - start
                assert len(profiles) == n_items
                out.append(
                    {
                        "concurrency": c,
                        "profiles": n_items,
                        "cold_s": cold,
                        "cold_per_s": n_items / cold,
                        "cached_s": warm,
                        "cached_per_s": n_items / warm,
                    }
                )
                print(out[-1], flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return out


def movielens(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    ratings = pd.read_csv(data_dir / "movielens-latest-small" / "ratings.csv")
    movies = pd.read_csv(data_dir / "movielens-latest-small" / "movies.csv")
    interactions = pd.DataFrame(
        {
            "user_id": ratings["userId"].astype(str),
            "item_id": ratings["movieId"].astype(str),
            "rating_norm": (ratings["rating"] - 0.5) / 4.5,
            "timestamp_ms": ratings["timestamp"].astype("int64") * 1000,
        }
    )
    items = pd.DataFrame(
        {
            "item_id": movies["movieId"].astype(str),
            "title": movies["title"],
            "categories": [[g for g in s.split("|") if g != "(no genres listed)"] for s in movies["genres"]],
        }
    )
    return interactions, items


def digital_music(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = data_dir / "amazon-digital-music-2014"
    with gzip.open(folder / "reviews_Digital_Music_5.json.gz", "rt") as handle:
        reviews = [json.loads(line) for line in handle if line.strip()]
    interactions = pd.DataFrame(
        {
            "user_id": [r["reviewerID"] for r in reviews],
            "item_id": [r["asin"] for r in reviews],
            "rating_norm": [(float(r["overall"]) - 1) / 4 for r in reviews],
            "text": [r.get("reviewText") for r in reviews],
            "timestamp_ms": [int(r.get("unixReviewTime", 0)) * 1000 for r in reviews],
            "helpful_votes": [int((r.get("helpful") or [0, 0])[0]) for r in reviews],
        }
    )
    wanted = set(interactions["item_id"])
    meta = []
    with gzip.open(folder / "meta_Digital_Music.json.gz", "rt") as handle:
        for line in handle:
            record = ast.literal_eval(line)  # the 2014 release writes Python dict literals
            if record.get("asin") in wanted:
                meta.append(record)
    items = pd.DataFrame(
        {
            "item_id": [m["asin"] for m in meta],
            "title": [m.get("title") for m in meta],
            "categories": [sorted({c for path in m.get("categories", []) for c in path}) for m in meta],
            "description": [m.get("description") for m in meta],
            "price": [m.get("price") for m in meta],
        }
    )
    return interactions, items


def bench_offline(data_dir: Path) -> tuple[list[dict], list[str]]:
    cfg = GlomConfig()
    rows, texts = [], []
    for name, loader in (("movielens-latest-small", movielens), ("amazon-digital-music-2014", digital_music)):
        interactions, items = loader(data_dir)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            tables = build_profiles(interactions, items, cfg, Path(tmp))
            seconds = time.perf_counter() - start
        n = len(tables.item_profiles) + len(tables.user_profiles)
        rows.append(
            {
                "dataset": name,
                "interactions": len(interactions),
                "item_profiles": len(tables.item_profiles),
                "user_profiles": len(tables.user_profiles),
                "seconds": seconds,
                "profiles_per_s": n / seconds,
                "example_item": tables.item_profiles["profile"].iloc[0],
                "example_user": tables.user_profiles["profile"].iloc[0],
            }
        )
        print({k: v for k, v in rows[-1].items() if not k.startswith("example")}, flush=True)
        texts += tables.user_profiles["profile"].tolist() + tables.item_profiles["profile"].tolist()
    return rows, texts


def bench_stability(data_dir: Path, held_out: float = 0.02) -> list[dict]:
    """How many profile texts change when a random ``held_out`` share of interactions is removed — i.e. how
    much of the evaluator's per-split rebuild misses the embedding cache."""
    cfg = GlomConfig()
    rows = []
    for name, loader in (("movielens-latest-small", movielens), ("amazon-digital-music-2014", digital_music)):
        interactions, items = loader(data_dir)
        keep = np.random.default_rng(0).random(len(interactions)) > held_out
        with tempfile.TemporaryDirectory() as tmp:
            full = build_profiles(interactions, items, cfg, Path(tmp))
            split = build_profiles(interactions[keep], items, cfg, Path(tmp))
        for kind, key in (("item_profiles", "item_id"), ("user_profiles", "user_id")):
            a = getattr(full, kind).set_index(key)["profile"]
            b = getattr(split, kind).set_index(key)["profile"]
            common = a.index.intersection(b.index)
            rows.append(
                {
                    "dataset": name,
                    "table": kind,
                    "held_out": held_out,
                    "common": len(common),
                    "changed": int((a[common] != b[common]).sum()),
                }
            )
            print(rows[-1], flush=True)
    return rows


def bench_embed(texts: list[str], n: int, model_path: str | None, batch_size: int) -> dict:
    import torch

    from glom_plugin.text import embeddings as emb

    cfg = GlomConfig().embedding.model_copy(update={"model_path": model_path, "batch_size": batch_size})
    texts = (texts * (n // max(len(texts), 1) + 1))[:n]
    texts = [f"{t} #{i}" for i, t in enumerate(texts)]  # distinct, so the cold pass embeds every one
    device = emb.embedding_device()
    emb._load_model(str(emb.resolve_model_path(cfg)), device)  # load outside the timing
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "emb.parquet"
        start = time.perf_counter()
        vectors = emb.embed_texts(texts, cfg, cache)
        if device == "cuda":
            torch.cuda.synchronize()
        cold = time.perf_counter() - start
        start = time.perf_counter()
        emb.embed_texts(texts, cfg, cache)
        warm = time.perf_counter() - start
    words = float(np.mean([len(t.split()) for t in texts]))
    result = {
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "texts": n,
        "mean_words": words,
        "dim": vectors.shape[1],
        "batch_size": batch_size,
        "cold_s": cold,
        "cold_per_s": n / cold,
        "cached_s": warm,
        "cached_per_s": n / warm,
    }
    print(result, flush=True)
    return result


def write_results(
    path: Path,
    args: argparse.Namespace,
    llm: list[dict],
    offline: list[dict],
    embed: dict | None,
    stability: list[dict] | None = None,
) -> None:
    lines = [
        "# Profiles and profile embeddings (GLoM §3.2, §3.2.4)",
        "",
        f"- command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} .venv/bin/python benchmarks/bench_profiles.py "
        + " ".join(sys.argv[1:])
        + "`",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores visible (shared with other jobs), "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end, no GPU unless stated",
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        "",
    ]
    if llm:
        lines += [
            f"## LLM builder against the loopback OpenAI-protocol server ({args.latency * 1000:.0f} ms added per request)",
            "",
            f"{args.items} item profiles per level; server in its own process on 127.0.0.1; each level starts with an empty cache.",
            "",
            "| concurrency | cold: seconds | cold: profiles/s | cached rerun: seconds | cached rerun: profiles/s |",
            "|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['concurrency']} | {r['cold_s']:.2f} | {r['cold_per_s']:.1f} | {r['cached_s']:.3f} | "
            f"{r['cached_per_s']:.0f} |"
            for r in llm
        ]
        lines += [
            "",
            f"Ideal at concurrency c is c / {args.latency:.3f} s = {1 / args.latency:.0f}·c profiles/s; "
            "the gap is client + server overhead (JSON, HTTP, fsync per cached profile) on shared cores.",
            "",
        ]
    if offline:
        lines += [
            "## Offline builder on the real datasets",
            "",
            "| dataset | interactions | item profiles | user profiles | seconds | profiles/s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['dataset']} | {r['interactions']:,} | {r['item_profiles']:,} | {r['user_profiles']:,} | "
            f"{r['seconds']:.1f} | {r['profiles_per_s']:.0f} |"
            for r in offline
        ]
        lines += (
            [""]
            + [
                f"- {r['dataset']} example item: “{r['example_item']}”\n- {r['dataset']} example user: "
                f"“{r['example_user']}”"
                for r in offline
            ]
            + [""]
        )
    if stability:
        lines += [
            "## Per-split stability of offline profiles",
            "",
            f"Share of profile texts that change when {stability[0]['held_out']:.0%} of interactions are held out "
            "(the part of the evaluator's per-split rebuild that misses the embedding cache).",
            "",
            "| dataset | table | profiles in both | changed |",
            "|---|---|---:|---:|",
        ]
        lines += [
            f"| {r['dataset']} | {r['table']} | {r['common']:,} | {r['changed']:,} |" for r in stability
        ]
        lines += [""]
    if embed:
        where = embed["gpu"] or f"CPU, {embed['torch_threads']} torch threads"
        lines += [
            f"## Embeddings ({where})",
            "",
            f"{embed['texts']:,} distinct offline profiles (mean {embed['mean_words']:.0f} words), dim {embed['dim']}, "
            f"batch {embed['batch_size']}; model load excluded.",
            "",
            "| pass | seconds | texts/s |",
            "|---|---:|---:|",
            f"| cold (encode + write cache) | {embed['cold_s']:.2f} | {embed['cold_per_s']:.0f} |",
            f"| cached (Parquet hit, no model) | {embed['cached_s']:.2f} | {embed['cached_per_s']:.0f} |",
            "",
        ]
    lines += [
        "## Quality: LLM vs offline profiles",
        "",
        "Not measured: no real LLM endpoint is reachable from this machine (network is loopback only), and the",
        "loopback server's answers are digests of the prompt, not profiles, so any quality number from them would",
        "be meaningless. To measure it: set `profiles.builder=llm`, `profiles.llm_base_url` to an OpenAI-compatible",
        "server, run `glom profiles --dry-run` for the cost, then the evaluator with and without profiles",
        "(`pm.use_profiles`) for each builder.",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="llm,offline,embed")
    parser.add_argument("--items", type=int, default=160)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--embed-n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model-path", default=None)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("GLOM_DATA_DIR", REPO_ROOT.parent / "shared" / "data")),
    )
    parser.add_argument(
        "--texts", type=Path, default=None, help="JSON list of texts to embed instead of building them"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "profiles.md")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    llm = bench_llm(args.items, args.latency, args.concurrency) if "llm" in parts else []
    offline, texts = bench_offline(args.data_dir) if "offline" in parts else ([], [])
    stability = bench_stability(args.data_dir) if "stability" in parts else []
    if args.texts is not None:
        texts = json.loads(args.texts.read_text())
    embed = (
        bench_embed(texts, args.embed_n, args.model_path, args.batch_size)
        if "embed" in parts and texts
        else None
    )
    write_results(args.out, args, llm, offline, embed, stability)


if __name__ == "__main__":
    main()

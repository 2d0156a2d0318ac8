"""How the serving index is chosen: recall@k vs search latency vs build time, at 100k and 1M users.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_index.py     # writes benchmarks/results/index.md

Data and campaigns are those of ``bench_serving.py`` (clustered users, d = 64, 20 seeds from one
community, k = 100). For each setting: build seconds (quantiser training + adding every user), one
centroid search's latency on one thread (what a mean-aggregation request costs), the 21-query search of
max / probabilistic, and recall@k of the centroid's neighbours against exact cosine — mean and worst
campaign. The defaults in ``glom_plugin/expand/index.py`` come from this table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_serving import campaign_rows, clustered_embeddings, machine  # noqa: E402
from glom_plugin.expand.aggregation import l2_normalize  # noqa: E402


def _ms(fn, reps: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return 1000 * (time.perf_counter() - start) / reps


def sweep(n: int, args: argparse.Namespace) -> list[dict]:
    import faiss

    emb, labels = clustered_embeddings(n, args.dim, args.clusters, seed=n)
    units = l2_normalize(emb)
    seeds = campaign_rows(labels, args.campaigns, args.seeds, seed=1)
    centroids = l2_normalize(np.stack([units[s].mean(axis=0) for s in seeds]))
    budget = args.k + args.seeds
    truth = []
    for c, s in zip(centroids, seeds, strict=True):
        scores = units @ c
        scores[s] = -np.inf
        truth.append(set(np.argpartition(-scores, args.k)[: args.k].tolist()))
    queries21 = [np.vstack([c[None], units[s]]) for c, s in zip(centroids, seeds, strict=True)]
    rows = []

    def measure(label: str, index, build_s: float, setting: str) -> None:
        faiss.omp_set_num_threads(1)
        one = _ms(lambda: [index.search(c[None], budget) for c in centroids[:16]], 3) / 16
        many = _ms(lambda: [index.search(q, budget) for q in queries21[:8]], 1) / 8
        faiss.omp_set_num_threads(args.threads)
        recalls = []
        for c, s, t in zip(centroids, seeds, truth, strict=True):
            found = index.search(c[None], budget)[1][0]
            found = [i for i in found.tolist() if i >= 0 and i not in set(s.tolist())][: args.k]
            recalls.append(len(set(found) & t) / args.k)
        rows.append({"n": n, "index": label, "setting": setting, "build_s": build_s, "search_ms": one, "search21_ms": many,
                     "recall": float(np.mean(recalls)), "recall_min": float(np.min(recalls))})
        r = rows[-1]
        print(f"  {n:>9,} {label:5s} {setting:28s} build {build_s:6.1f}s  1q {one:6.2f} ms  21q {many:6.2f} ms"
              f"  recall {r['recall']:.4f} / {r['recall_min']:.3f}", flush=True)

    faiss.omp_set_num_threads(args.threads)
    start = time.perf_counter()
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(units)
    measure("flat", flat, time.perf_counter() - start, "exact")
    del flat
    for nlist in sorted({int(2 ** round(np.log2(np.sqrt(n)))) // 2, int(2 ** round(np.log2(np.sqrt(n)))),
                         4 * int(2 ** round(np.log2(np.sqrt(n))))}):
        faiss.omp_set_num_threads(args.threads)
        start = time.perf_counter()
        quantizer = faiss.IndexFlatIP(args.dim)
        ivf = faiss.IndexIVFFlat(quantizer, args.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, size=min(n, 64 * nlist), replace=False)
        ivf.train(units[np.sort(sample)])
        ivf.add(units)
        build_s = time.perf_counter() - start
        for nprobe in (4, 8, 16, 32, 64):
            ivf.nprobe = nprobe
            measure("ivf", ivf, build_s, f"nlist {nlist}, nprobe {nprobe}")
        del ivf, quantizer
    if n <= args.hnsw_max_users:
        start = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(args.dim, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 80
        hnsw.add(units)
        build_s = time.perf_counter() - start
        for ef in (64, 128, 256):
            hnsw.hnsw.efSearch = ef
            measure("hnsw", hnsw, build_s, f"M 32, efSearch {ef}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--campaigns", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2, help="faiss threads while building")
    parser.add_argument("--hnsw-max-users", type=int, default=100_000)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "index.md"))
    args = parser.parse_args()
    started = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip()
    host = machine()
    rows = []
    for n in (int(s) for s in args.sizes.split(",") if s):
        rows += sweep(n, args)
    lines = [
        "# Index choice: recall vs latency vs build time",
        "",
        f"- command: `.venv/bin/python {' '.join(sys.argv)}`",
        f"- date: {started}",
        f"- machine: {host}",
        f"- data: clustered user embeddings ({args.clusters} communities, d = {args.dim}), {args.campaigns} campaigns of "
        f"{args.seeds} seeds from one community, k = {args.k}; searches ask for k + |S| = {args.k + args.seeds} neighbours",
        f"- build on {args.threads} faiss threads (IVF: k-means on 64 sampled users per list, then add all); searches on one thread",
        "- recall@k = |index's top k non-seeds of the centroid ∩ exact top k| / k (mean aggregation's candidates)",
        "",
        "| users | index | setting | build s | 1 query ms | 21 queries ms | recall@k mean | recall@k worst |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['index']} | {r['setting']} | {r['build_s']:.1f} | {r['search_ms']:.2f} | "
                     f"{r['search21_ms']:.2f} | {r['recall']:.4f} | {r['recall_min']:.3f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Machine-readable quality record: one evaluation's summary in the shape the benchmarks index reads.

    python benchmarks/quality_record.py RESULTS_JSON OUT_JSON --command "..." [--wall-s S]

writes ``{"protocol", "models": {name: {"pr_auc", "pr_auc_std", "precision", "recall", "roc_auc",
"recall_at_k", "coverage", "seconds", "runs_ok"}}, "best_glom", "best_other", "ratio_best_glom_to_best_other",
"ratio_best_glom_to_cosine_centroid", "command", "date", "machine"}`` from ``evaluate/results.json``.
GLoM variants are the models whose name starts with ``glom`` (PM alone is not GLoM).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
from datetime import UTC, datetime
from pathlib import Path


def _value(cell: dict) -> float | None:
    mean = cell.get("mean")
    return None if mean is None or (isinstance(mean, float) and math.isnan(mean)) else float(mean)


def record(results: dict, command: str, wall_s: float | None = None) -> dict:
    summary = results["summary"]
    models = {}
    for name, row in summary.items():
        if not row.get("runs_ok"):
            models[name] = {"failed": row.get("failures")}
            continue
        models[name] = {
            "pr_auc": _value(row["pr_auc"]),
            "pr_auc_std": row["pr_auc"].get("std"),
            "precision": _value(row["precision"]),
            "recall": _value(row["recall"]),
            "roc_auc": _value(row["roc_auc"]),
            "recall_at_k": _value(row["recall_at_k"]),
            "coverage": row.get("coverage"),
            "seconds": _value(row["seconds"]),
            "runs_ok": row["runs_ok"],
        }
    scored = {n: m["pr_auc"] for n, m in models.items() if m.get("pr_auc") is not None}
    glom = {n: v for n, v in scored.items() if n.startswith("glom")}
    other = {n: v for n, v in scored.items() if not n.startswith("glom")}
    best_glom = max(glom, key=glom.get) if glom else None
    best_other = max(other, key=other.get) if other else None
    out = {
        "protocol": results.get("protocol", "sampled"),
        "runs": len(results.get("runs", [])),
        "tasks": len(results.get("tasks", [])),
        "models": models,
        "best_glom": best_glom,
        "best_other": best_other,
        "ratio_best_glom_to_best_other": (glom[best_glom] / other[best_other]) if best_glom and best_other else None,
        "ratio_best_glom_to_cosine_centroid": (
            glom[best_glom] / scored["cosine-centroid"] if best_glom and "cosine-centroid" in scored else None
        ),
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, no GPU",
    }
    if wall_s is not None:
        out["wall_s"] = wall_s
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_json", type=Path)
    parser.add_argument("out_json", type=Path)
    parser.add_argument("--command", required=True)
    parser.add_argument("--wall-s", type=float, default=None)
    args = parser.parse_args()
    payload = record(json.loads(args.results_json.read_text()), args.command, args.wall_s)
    tmp = args.out_json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(args.out_json)
    print(f"wrote {args.out_json}: best GLoM {payload['best_glom']} / best other {payload['best_other']} = "
          f"{payload['ratio_best_glom_to_best_other']}")


if __name__ == "__main__":
    main()

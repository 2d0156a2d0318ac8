"""Recorded vs now for ``glom-seedset`` PR-AUC (``benchmarks/train_speed_quality.sh`` runs the evaluations).

"Within noise" here: the difference of the two means is inside the combined standard deviation of the two
figures (sqrt(std_recorded^2 + std_now^2), std over each side's runs); each row says whether it is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "glom-seedset"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--runs", type=int, required=True, help="for the command line recorded")
    parser.add_argument("--tasks", type=int, required=True, help="for the command line recorded")
    parser.add_argument("--command", help="the command(s) that ran the evaluations, when not one invocation")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from quality_record import record  # the recorded figures' own summariser, so both sides read alike

    from glom_plugin.storage import atomic_path, write_json

    walls = dict(line.split() for line in (args.scratch / "wall.txt").read_text().splitlines() if line.strip())
    rows = []
    for name in args.datasets:
        for protocol in ("sampled", "all"):
            recorded = json.loads((RESULTS / f"quality_{name}_{protocol}.json").read_text())["models"][MODEL]
            eval_dir = args.scratch / name / "evaluate"
            path = eval_dir / "results.json" if protocol == "sampled" else eval_dir / f"candidates-{protocol}" / "results.json"
            summary = record(json.loads(path.read_text()), command="")
            now = summary["models"][MODEL]
            noise = math.hypot(recorded["pr_auc_std"], now["pr_auc_std"])
            delta = now["pr_auc"] - recorded["pr_auc"]
            rows.append(
                {
                    "dataset": name,
                    "protocol": protocol,
                    "runs": summary["runs"],
                    "tasks": summary["tasks"],
                    "recorded_pr_auc": recorded["pr_auc"],
                    "recorded_std": recorded["pr_auc_std"],
                    "now_pr_auc": now["pr_auc"],
                    "now_std": now["pr_auc_std"],
                    "delta": delta,
                    "combined_std": noise,
                    "within_noise": abs(delta) <= noise,
                    "now_seconds_per_fit": now.get("seconds"),
                    "recorded_seconds_per_fit": recorded.get("seconds"),
                    "wall_s": float(walls.get(name, "nan")),
                }
            )
    load = os.getloadavg()
    payload = {
        "model": MODEL,
        "rows": rows,
        "command": args.command
        or f"RUNS={args.runs} TASKS={args.tasks} bash benchmarks/train_speed_quality.sh {' '.join(args.datasets)}",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{os.cpu_count()} CPU cores shared with other engineers' jobs; load average at the end "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}",
    }
    write_json(payload, RESULTS / "train_speed_quality.json")
    lines = [
        "# Training speed work: glom-seedset quality against the recorded figures",
        "",
        "Each dataset's evaluation reruns the recorded quality run's training settings (see",
        "`benchmarks/train_speed_quality.sh`) with the current code, same tasks, splits and seeds.",
        "Within noise = |now − recorded| ≤ √(std_recorded² + std_now²) (standard deviations over each side's runs).",
        "s per fit is wall time under each side's machine load (this check's load is on the machine line), not a",
        "speed comparison: `train_<dataset>.md` holds that.",
        "",
        f"- command: `{payload['command']}`",
        f"- machine: {payload['machine']}",
        f"- date: {payload['date']}",
        "",
        "| dataset | protocol | runs × tasks now | recorded PR-AUC | now PR-AUC | Δ | combined std | within noise |"
        " s per fit (recorded → now) |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['protocol']} | {r['runs']} × {r['tasks']} | {r['recorded_pr_auc']:.3f} ± {r['recorded_std']:.3f} | "
            f"{r['now_pr_auc']:.3f} ± {r['now_std']:.3f} | {r['delta']:+.3f} | {r['combined_std']:.3f} | "
            f"{'yes' if r['within_noise'] else 'NO'} | {r['recorded_seconds_per_fit']:.0f} → {r['now_seconds_per_fit']:.0f} |"
        )
    lines.append("")
    with atomic_path(RESULTS / "train_speed_quality.md") as tmp:
        Path(tmp).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

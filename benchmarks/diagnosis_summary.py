"""One table of every diagnosis hypothesis on every shared dataset, made from the diagnosis records.

    python benchmarks/diagnosis_summary.py

``bench_diagnosis.py`` writes one record per invocation (``results/diagnosis_<name>.json``), and a dataset's
rows are spread over several of them (rows were added as machine time allowed). This reads them all and
writes ``results/diagnosis_summary.md`` and ``.json``: per hypothesis and dataset, the change in PR-AUC
against the same model's baseline, under the paper's (sampled) and the realistic (all) protocol.

A Δ is only taken against a baseline measured on the same fits: the baseline row of the same record (its
own or one it reused), else that of another record of the same dataset run with the same run directory and
settings (``--run-dir`` and every model-independent ``--set``, checked on the commands). A hypothesis that
no record of a dataset has is written as "not run", never filled in.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from bench_diagnosis import HYPOTHESES

RESULTS = Path("benchmarks/results")
# dataset -> its diagnosis records, later ones first (a later record's row wins where two have it)
DATASETS: dict[str, list[str]] = {
    "Digital Music": ["digital-music-more", "digital-music"],
    "MovieLens": ["movielens-more", "movielens-pm", "movielens"],
    "MyAnimeList": ["mal-graph", "mal-neg", "mal-rest", "mal-more", "mal"],
}
PROTOCOLS = ("sampled", "all")


def _settings(command: str) -> tuple[str, tuple[str, ...]]:
    """(run directory, sorted --set values other than tracking.*) of a record's command."""
    run_dir = re.search(r"--run-dir (\S+)", command)
    sets = tuple(sorted(s for s in re.findall(r"--set (\S+)", command) if not s.startswith("tracking.")))
    return (run_dir.group(1) if run_dir else "", sets)


def _load(name: str) -> dict | None:
    path = RESULTS / f"diagnosis_{name}.json"
    return {**json.loads(path.read_text()), "name": path.name} if path.exists() else None


def _baseline(model: str, record: dict, others: list[dict]) -> dict | None:
    """The model's baseline row on the same fits as ``record``'s rows."""
    def find(rec: dict) -> dict | None:
        return next((r for r in rec["rows"] if r["model"] == model and r["hypothesis"].endswith("baseline")), None)

    own = find(record)
    if own is not None:
        return {**own, "record": own.get("from", record["name"])}
    same = _settings(record["command"])
    for other in others:
        if other is not record and _settings(other["command"]) == same and (row := find(other)) is not None:
            return {**row, "record": row.get("from", other["name"])}
    return None


def summarise() -> dict:
    """{dataset: {hypothesis: {model, sampled, all (Δ), baseline {protocol: mean ± std}, record}}}."""
    out: dict[str, dict] = {}
    for dataset, names in DATASETS.items():
        records = [(name, rec) for name in names if (rec := _load(name)) is not None]
        cells: dict[str, dict] = {}
        for label, model, _, _ in HYPOTHESES:
            if label == "references" or label.endswith("baseline"):
                continue
            for name, record in records:
                row = next((r for r in record["rows"] if r["hypothesis"] == label and "from" not in r), None)
                if row is None:
                    continue
                base = _baseline(model, record, [rec for _, rec in records])
                if base is None:
                    continue
                cells[label] = {
                    "model": model,
                    "record": f"diagnosis_{name}.json",
                    **{p: row[p]["pr_auc"] - base[p]["pr_auc"] for p in PROTOCOLS},
                    "std": {p: row[p]["pr_auc_std"] for p in PROTOCOLS},
                    "baseline": {p: [base[p]["pr_auc"], base[p]["pr_auc_std"]] for p in PROTOCOLS},
                    "baseline_record": base["record"],
                }
                break
        out[dataset] = cells
    return out


def write(summary: dict) -> None:
    lines = [
        "# Diagnosis: every hypothesis on every shared dataset (issue 11 §3)",
        "",
        f"- made by `python benchmarks/diagnosis_summary.py` from the records it names, "
        f"{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}; each record has its own command, machine and date",
        "- each cell: Δ PR-AUC against the same model's baseline on the same fits, paper's protocol / realistic "
        "protocol (5 runs x 30 tasks each); `not run`: no record of that dataset has the row",
        "",
        "| hypothesis | tests | model | " + " | ".join(DATASETS) + " |",
        "|---|---|---|" + "---:|" * len(DATASETS),
    ]
    for label, model, _, tests in HYPOTHESES:
        if label == "references" or label.endswith("baseline"):
            continue
        cells = []
        for dataset in DATASETS:
            cell = summary[dataset].get(label)
            cells.append("not run" if cell is None else f"{cell['sampled']:+.3f} / {cell['all']:+.3f}")
        lines.append(f"| {label} | {tests} | {model} | " + " | ".join(cells) + " |")
    lines += ["", "Baselines (mean ± std over runs, sampled / all) the Δs are taken against:", ""]
    for dataset, cells in summary.items():
        seen = {}
        for cell in cells.values():
            seen.setdefault((cell["model"], cell["baseline_record"]), cell["baseline"])
        for (model, record), base in seen.items():
            text = " / ".join(f"{m:.3f} ± {s:.3f}" for m, s in (base[p] for p in PROTOCOLS))
            lines.append(f"- {dataset}, {model}: {text} ({record})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    for path, text in ((RESULTS / "diagnosis_summary.md", "\n".join(lines) + "\n"),
                       (RESULTS / "diagnosis_summary.json", json.dumps(summary, indent=2) + "\n")):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)


if __name__ == "__main__":
    write(summarise())

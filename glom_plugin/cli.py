"""`glom` — one sub-command per stage, plus `quickstart` for the whole flow on the generated default.

Every command takes ``--config FILE`` (YAML), ``--run-dir DIR`` and repeated ``--set section.key=value``
overrides; the resolved config is written to the run directory so a run is fully described by it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

for _key, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "True",
    "DGLBACKEND": "pytorch",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "SPARK_LOCAL_IP": "127.0.0.1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)

from glom_plugin import pipeline  # noqa: E402
from glom_plugin.config import GlomConfig, load_config  # noqa: E402


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user causes (bad file, bad setting, missing stage, stale run): one message, no traceback.
    Set GLOM_TRACEBACK=1 to see the traceback anyway."""
    from pydantic import ValidationError

    from glom_plugin.data.hashing import SaltError
    from glom_plugin.data.ingest import IngestError
    from glom_plugin.platform.gx_gate import ValidationFailed
    from glom_plugin.run_integrity import StaleInputError

    return (IngestError, ValidationFailed, StaleInputError, SaltError, ValidationError, FileNotFoundError,
            ValueError, KeyError, UnicodeDecodeError)


class _GlomApp(typer.Typer):
    """The ``glom`` entry point: a user error ends as ``error: <message>`` on stderr and exit status 2."""

    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204 - typer's own signature
        try:
            return super().__call__(*args, **kwargs)
        except Exception as err:
            if os.environ.get("GLOM_TRACEBACK") or not isinstance(err, _user_errors()):
                raise
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            typer.echo(f"error: {message}", err=True)
            raise SystemExit(2) from None


app = _GlomApp(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
_STRICT: dict[str, bool] = {"on": False}


@app.callback()
def _main(
    strict: Annotated[bool, typer.Option("--strict", help="refuse to hash ids without $GLOM_ID_SALT")] = False,
) -> None:
    _STRICT["on"] = strict

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file")]
RunDirOpt = Annotated[str | None, typer.Option("--run-dir", help="run directory (default from config)")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override, e.g. --set pm.dim=32 (repeatable)")]


def _config(config: Path | None, run_dir: str | None, overrides: list[str] | None) -> GlomConfig:
    explicit: dict[str, object] = {"run_dir": run_dir} if run_dir else {}
    if _STRICT["on"]:
        explicit["data.require_salt"] = True
    return load_config(config, overrides or [], **explicit)


def _models(text: str) -> list[str]:
    from glom_plugin.models.registry import available_models

    if text == "all":
        return available_models()
    return [name.strip() for name in text.split(",") if name.strip()]


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="output directory for the Amazon-2023-layout files")],
    reviews: Annotated[int, typer.Option(help="number of reviews")] = 20_000,
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Write the embedded default dataset (Amazon Reviews 2023 layout, planted lookalike communities)."""
    from glom_plugin.data.synthetic import generate_amazon2023

    dataset = generate_amazon2023(out, reviews, seed)
    typer.echo(f"wrote {dataset}")


@app.command()
def ingest(config: ConfigOpt = None, run_dir: RunDirOpt = None, set_: SetOpt = None) -> None:
    """Read raw data in its publisher's layout into normalized Parquet (user ids salted-hashed)."""
    report = pipeline.ingest(_config(config, run_dir, set_))
    typer.echo(str(report))


@app.command()
def validate(config: ConfigOpt = None, run_dir: RunDirOpt = None, set_: SetOpt = None) -> None:
    """Great Expectations gate over the ingested tables; stops with a readable report on failure."""
    report = pipeline.validate(_config(config, run_dir, set_))
    typer.echo(str(report))


@app.command()
def graph(config: ConfigOpt = None, run_dir: RunDirOpt = None, set_: SetOpt = None) -> None:
    """Polarity (§3.3) -> user-user similarity (§3.4) -> GX gate on the edges -> knowledge graph (§3.1)."""
    pipeline.print_json(pipeline.graph(_config(config, run_dir, set_)))


@app.command()
def prepare(config: ConfigOpt = None, run_dir: RunDirOpt = None, set_: SetOpt = None) -> None:
    """ingest + validate + graph."""
    cfg = _config(config, run_dir, set_)
    pipeline.save_stage_log(cfg, pipeline.prepare(cfg))


@app.command()
def profiles(
    config: ConfigOpt = None,
    run_dir: RunDirOpt = None,
    set_: SetOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count prompts, tokens and cost; call nothing")] = False,
) -> None:
    """User and item profiles (§3.2; offline builder by default, any OpenAI-compatible endpoint) + embeddings."""
    result = pipeline.profiles(_config(config, run_dir, set_), dry_run=dry_run)
    typer.echo(str(result))


@app.command()
def features(
    config: ConfigOpt = None,
    run_dir: RunDirOpt = None,
    set_: SetOpt = None,
    online: Annotated[bool, typer.Option(help="also materialize into the online store")] = True,
) -> None:
    """Feast: export this run's feature tables, `feast apply` the feature repo over them, materialize."""
    pipeline.print_json(pipeline.features(_config(config, run_dir, set_), online=online))


ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue a killed run from its last epoch checkpoint")]


@app.command()
def pretrain(config: ConfigOpt = None, run_dir: RunDirOpt = None, set_: SetOpt = None, resume: ResumeOpt = False) -> None:
    """Train the pre-trained model PM (§3.5)."""
    pipeline.print_json(pipeline.pretrain(_config(config, run_dir, set_), resume=resume).summary())


ModelOpt = Annotated[
    str | None, typer.Option("--model", help="registry model (see `glom models`, or module:Class); default train.model")
]


@app.command()
def train(
    config: ConfigOpt = None, run_dir: RunDirOpt = None, set_: SetOpt = None, resume: ResumeOpt = False,
    model: ModelOpt = None,
) -> None:
    """Train any registry model (default train.model: glom-hybrid), save it, log and register it in MLflow."""
    pipeline.print_json(pipeline.train(_config(config, run_dir, set_), resume=resume, model_name=model).summary())


@app.command()
def expand(
    seeds: Annotated[Path, typer.Option(help="seed list: one hashed user id per line, or CSV with user_id")],
    out: Annotated[Path | None, typer.Option(help="output CSV/Parquet (default: run_dir/expand/)")] = None,
    config: ConfigOpt = None,
    run_dir: RunDirOpt = None,
    set_: SetOpt = None,
    model: ModelOpt = None,
) -> None:
    """Expand a seed list into ranked lookalikes with the trained model (any family)."""
    from glom_plugin.stages.expand import run_expand_stage

    cfg = _config(config, run_dir, set_)
    layout = pipeline.layout_for(cfg)
    target = out or layout.expand_dir / f"{seeds.stem}_lookalikes.csv"
    result = run_expand_stage(cfg, layout, seeds, target, model_name=model)
    typer.echo(result.lookalikes.head(10).to_string(index=False))
    pipeline.print_json(result.summary())
    typer.echo(f"lookalikes -> {target}")


@app.command("expand-batch")
def expand_batch(
    campaigns: Annotated[Path, typer.Option(help="JSONL of campaigns ({\"campaign\", \"seed_ids\", \"k\", ...}) or a directory of seed files")],
    out: Annotated[Path | None, typer.Option(help="output Parquet (default: run_dir/expand/<campaigns>_lookalikes.parquet)")] = None,
    config: ConfigOpt = None,
    run_dir: RunDirOpt = None,
    set_: SetOpt = None,
) -> None:
    """Expand many campaigns in one blocked pass over the users; results stream to one Parquet file."""
    from glom_plugin.stages.backends import stage_backend

    cfg = _config(config, run_dir, set_)
    run_expand_batch_stage = stage_backend("expand_batch", cfg.backend)  # local or spark (stages/backends.py)
    layout = pipeline.layout_for(cfg)
    target = out or layout.expand_dir / f"{campaigns.stem}_lookalikes.parquet"
    summary = run_expand_batch_stage(cfg, layout, campaigns, target)
    pipeline.print_json({k: v for k, v in summary.__dict__.items() if k in ("campaigns", "scored", "lookalikes")}
                        | {"errors": len(summary.errors), "with_unknown_seeds": len(summary.unknown_seeds)})
    typer.echo(f"lookalikes -> {target}")


@app.command()
def evaluate(
    models: Annotated[str, typer.Option(help="comma-separated model names, or 'all' (see `glom models`)")] = "",
    runs: Annotated[int | None, typer.Option(help="number of runs (default config: 5)")] = None,
    sweeps: Annotated[bool, typer.Option(help="also recall vs embedding size and vs seed-list size")] = False,
    sweep_models: Annotated[str, typer.Option(help="models for the sweeps (default: the first GLoM variant)")] = "",
    sweep_runs: Annotated[int | None, typer.Option(help="runs per sweep point (default: --runs)")] = None,
    protocols: Annotated[
        str,
        typer.Option(help="comma-separated evaluate.candidates values to report from the same fits, e.g. sampled,all"),
    ] = "",
    config: ConfigOpt = None,
    run_dir: RunDirOpt = None,
    set_: SetOpt = None,
) -> None:
    """The paper's protocol (§4.1): tasks = items, seed:non-seed 1:10, P/R/PR-AUC, mean ± std over runs."""
    cfg = _config(config, run_dir, set_)
    names = _models(models) if models else cfg.evaluate.models
    paths = pipeline.evaluate(
        cfg, names, runs=runs, sweeps=sweeps, sweep_models=_models(sweep_models) if sweep_models else None,
        sweep_runs=sweep_runs, protocols=[p.strip() for p in protocols.split(",") if p.strip()] or None,
    )
    for key in ("table", *(k for k in paths if k.endswith(":table"))):
        if key in paths:
            typer.echo(Path(paths[key]).read_text())
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")


@app.command("bento")
def bento(
    build: Annotated[bool, typer.Option(help="also run `bentoml build` after the import")] = True,
    config: ConfigOpt = None,
    run_dir: RunDirOpt = None,
    set_: SetOpt = None,
) -> None:
    """Import the registry's @champion into the BentoML model store, then `bentoml build`: the Bento
    serves that model with nothing else reachable (no MLflow store, no run directory)."""
    from glom_plugin.platform.bento_store import build_bento, import_champion

    cfg = _config(config, run_dir, set_)
    imported = import_champion(cfg)
    typer.echo(f"imported {imported.source} -> BentoML model {imported.tag}")
    if build:
        typer.echo(f"built Bento {build_bento()}")


@app.command("models")
def list_models() -> None:
    """List the selectable models."""
    from glom_plugin.models.registry import MODEL_REGISTRY

    for name, spec in MODEL_REGISTRY.items():
        typer.echo(f"{name:26s} {spec.description}")


@app.command("hash-ids")
def hash_ids(
    src: Annotated[Path, typer.Argument(help="raw user ids: one per line, or a CSV with a user_id column")],
    dst: Annotated[Path, typer.Argument(help="output file of salted hashes (same layout as the input)")],
    config: ConfigOpt = None,
) -> None:
    """Hash a raw seed list with the deployment's salt ($GLOM_ID_SALT), as ingestion does."""
    from glom_plugin.data.hashing import hash_ids_file

    cfg = _config(config, None, None)
    count = hash_ids_file(src, dst, cfg.id_salt())
    typer.echo(f"hashed {count} ids -> {dst}")


@app.command()
def quickstart(
    run_dir: Annotated[str, typer.Option(help="run directory")] = "runs/quickstart",
    reviews: Annotated[int, typer.Option(help="size of the generated dataset")] = 10_000,
    runs: Annotated[int, typer.Option(help="evaluation runs")] = 2,
    models: Annotated[str, typer.Option(help="models to compare")] = "",
    set_: SetOpt = None,
) -> None:
    """Generated default -> ingest -> validate -> graph -> profiles -> GLoM -> evaluation table -> expansion."""
    from glom_plugin.quickstart import run_quickstart

    run_quickstart(run_dir=run_dir, reviews=reviews, runs=runs, models=_models(models) if models else None,
                   overrides=set_ or [])


if __name__ == "__main__":
    app()

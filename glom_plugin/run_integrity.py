"""Run-directory integrity: each stage's manifest, the stale-input check, orphan clean-up.

Stages read each other's files from the run directory, so a crash or a rerun of one stage can leave
outputs of different runs side by side (a new ``ingest/`` beside an old ``graph/``) that every later
stage would silently combine. Each stage therefore writes ``manifest.json`` beside its outputs: the
content hash of every output, the digests of the upstream manifests it read (so the chain is
checkable), a hash of the config sections that shaped it, row counts and the code version. A stage
first marks its manifest ``running``; only a finished stage marks it ``complete``. A stage that reads
another's outputs calls ``require``: an unfinished, edited or out-of-chain upstream stops it with one
message that says which command to run again. A run directory from before manifests existed (no
manifest at all) is read with a warning, so old runs stay usable.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from glom_plugin.config import GlomConfig
from glom_plugin.layout import RunLayout
from glom_plugin.storage import write_json

MANIFEST = "manifest.json"
RUNNING, COMPLETE = "running", "complete"
ORPHAN_GRACE_S = 3600  # a temp file whose writer cannot be identified is left alone this long


class StaleInputError(RuntimeError):
    """An upstream stage's outputs are unfinished, changed, or from a different run than its neighbours'."""


@dataclass(frozen=True)
class StageSpec:
    """Where a stage writes, which config sections shape it, and the command that redoes it."""

    directory: str  # relative to the run directory
    sections: tuple[str, ...]
    command: str


STAGES: dict[str, StageSpec] = {
    "ingest": StageSpec("ingest", ("data",), "glom prepare"),
    "graph": StageSpec("graph", ("data", "polarity", "similarity", "graph"), "glom prepare"),
    "profiles": StageSpec("profiles", ("profiles", "embedding"), "glom profiles"),
    "pm": StageSpec("models/pm", ("seed", "pm", "graph", "embedding"), "glom pretrain"),
    "glm": StageSpec("models/glm", ("seed", "pm", "glm", "graph", "expand"), "glom train"),
}


def manifest_path(layout: RunLayout, stage: str) -> Path:
    return layout.root / STAGES[stage].directory / MANIFEST


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def config_hash(cfg: GlomConfig, sections: Iterable[str]) -> str:
    dumped = cfg.model_dump()
    picked = {name: dumped.get(name) for name in sections}
    return hashlib.sha256(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_version() -> str:
    """``glom_plugin`` version plus the git commit of the checkout it runs from, when there is one."""
    from glom_plugin import __version__

    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def read_manifest(layout: RunLayout, stage: str) -> dict[str, Any] | None:
    path = manifest_path(layout, stage)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {"stage": stage, "status": "unreadable"}


def begin_stage(layout: RunLayout, stage: str) -> None:
    """Mark ``stage`` as running (until ``finish_stage``): a crash from here on leaves it marked so, and
    every stage that reads it refuses. Orphan temp files of killed runs are removed first."""
    clean_orphans(layout.root)
    write_json({"stage": stage, "status": RUNNING, "pid": os.getpid(), "started_at": _now()},
               manifest_path(layout, stage))


def finish_stage(
    layout: RunLayout,
    stage: str,
    cfg: GlomConfig,
    upstream: Iterable[str],
    rows: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Hash the stage's outputs (every file of its directory but the manifest and hidden temp files) and
    write the ``complete`` manifest, chained to the upstream manifests it read."""
    spec = STAGES[stage]
    directory = layout.root / spec.directory
    outputs = {
        str(path.relative_to(directory)): file_sha256(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST and not any(part.startswith(".") for part in path.relative_to(directory).parts)
        and "validation" not in path.relative_to(directory).parts
    }
    chain = {}
    for name in upstream:
        found = read_manifest(layout, name)
        if found is not None and found.get("status") == COMPLETE:
            chain[name] = found["digest"]
    manifest = {
        "stage": stage,
        "status": COMPLETE,
        "outputs": outputs,
        "inputs": chain,
        "config_hash": config_hash(cfg, spec.sections),
        "rows": rows or {},
        "code_version": code_version(),
        "finished_at": _now(),
    }
    # The stage's identity for the chain: its data, not its reports (which hold timings), so rerunning a
    # stage on the same input does not make every later stage stale.
    data = {name: digest for name, digest in outputs.items() if not name.endswith("report.json")}
    manifest["digest"] = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    write_json(manifest, manifest_path(layout, stage))
    return manifest


def fail_stage(layout: RunLayout, stage: str, err: BaseException) -> None:
    """Mark ``stage`` failed (ingestion refused the input, the gate stopped it, it was interrupted)."""
    write_json({"stage": stage, "status": "failed", "error": type(err).__name__, "finished_at": _now()},
               manifest_path(layout, stage))


def outputs_match(layout: RunLayout, stage: str) -> bool:
    """Whether ``stage`` has a complete manifest whose output hashes are the files on disk now."""
    manifest = read_manifest(layout, stage)
    if manifest is None or manifest.get("status") != COMPLETE:
        return False
    where = layout.root / STAGES[stage].directory
    return all((where / name).is_file() and file_sha256(where / name) == digest
               for name, digest in manifest["outputs"].items())


def require(layout: RunLayout, stage: str, reader: str) -> dict[str, Any] | None:
    """Check that ``stage`` finished, that its outputs are the files it wrote, and that it was built from
    the upstream outputs now on disk. Raises ``StaleInputError`` (one message, with the command to run);
    returns the manifest, or None for a run directory written before manifests (with a warning)."""
    spec = STAGES[stage]
    manifest = read_manifest(layout, stage)
    where = layout.root / spec.directory
    if manifest is None:
        if not where.is_dir() or not any(not p.name.startswith(".") for p in where.iterdir()):
            return None  # the stage never ran here: the reader's own "run glom ... first" says so
        print(f"WARNING: {where} has no {MANIFEST} (written by an older version?); {reader} reads it unchecked",
              file=sys.stderr)
        return None
    again = f"run `{spec.command} --run-dir {layout.root}` again"
    if manifest.get("status") != COMPLETE:
        raise StaleInputError(
            f"{reader}: the {stage} stage in {where} did not finish (status {manifest.get('status')!r}: "
            f"crashed or killed?), so its files may be partial or from an earlier run; {again}"
        )
    for name, expected in manifest["outputs"].items():
        path = where / name
        if not path.is_file() or file_sha256(path) != expected:
            raise StaleInputError(
                f"{reader}: {path} is not the file the {stage} stage wrote "
                f"({'missing' if not path.is_file() else 'changed since'}); {again}"
            )
    for name, digest in manifest.get("inputs", {}).items():
        current = read_manifest(layout, name)
        if current is None or current.get("status") != COMPLETE or current.get("digest") != digest:
            raise StaleInputError(
                f"{reader}: {where} was built from other {name} outputs than the ones now in "
                f"{layout.root / STAGES[name].directory} (mixed runs); {again}"
            )
    return manifest


# --- orphans ------------------------------------------------------------------------------------------

# ``.staging-<pid>-xxxx`` (ingest) and ``.<name>.<pid>.xxxx.tmp`` (storage.atomic_path): the pid says
# whether the writer is still alive.
_PID_NAMES = (re.compile(r"^\.staging-(\d+)-"), re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$"),
              re.compile(r"^\..+\.old-(\d+)$"))
_TEMP_NAMES = (re.compile(r"^\.staging-"), re.compile(r"^\..+\.tmp$"), re.compile(r"^\..+\.old-\d+$"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_orphans(root: Path) -> list[Path]:
    """Remove the temp files and staging folders killed runs left under ``root``: those whose writer
    (the pid in the name) is gone, or, for names without a pid, older than ``ORPHAN_GRACE_S``."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    now = time.time()
    for path in sorted(root.rglob(".*"), key=lambda p: -len(p.parts)):
        name = path.name
        if not any(p.match(name) for p in _TEMP_NAMES):
            continue
        pid = next((int(m.group(1)) for p in _PID_NAMES if (m := p.match(name))), None)
        try:
            stale = not _alive(pid) if pid is not None else now - path.stat().st_mtime > ORPHAN_GRACE_S
        except FileNotFoundError:
            continue
        if not stale:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        print(f"removed {len(removed)} temp file(s) left by killed runs under {root}", file=sys.stderr)
    return removed


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

"""Per-epoch training checkpoints for PM and GLM, so a killed ``glom train`` continues where it stopped.

A checkpoint is everything the next epoch depends on: model and optimizer state, the seeded random
streams (the training device's ``torch.Generator``, torch's global state, GLM's numpy generator), the
training history and the early-stopping state (best weights, patience used). Restored into a run set
up exactly as the uninterrupted one (same seeds, same data, same validation split), the remaining
epochs compute what the uninterrupted run would have: ``glom train --resume`` gives the same model.

The file is replaced atomically after every epoch (write then rename), so a kill at any moment leaves
the previous epoch's checkpoint intact. Its ``fingerprint`` covers the data sizes and every setting
that shapes training except the epoch budget (resuming with more epochs is training longer); a
checkpoint with another fingerprint is ignored, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glom_plugin.storage import atomic_path

log = logging.getLogger(__name__)
STOPPED = sys.maxsize  # "first epoch to run" of a run that had already stopped early


def fingerprint(*parts: Any) -> str:
    """A short hash of JSON-able settings and numpy arrays (e.g. PM's embeddings, GLM's h^0)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


def without_epochs(section: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k != "epochs"}


@dataclass
class EpochCheckpoint:
    """One training run's checkpoint file. ``resume=False`` still writes checkpoints (a later
    ``--resume`` can use them) but starts from epoch 0."""

    path: Path
    fingerprint: str
    resume: bool = False

    def save(self, epoch: int, stopped: bool, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer],
             generator: torch.Generator, history: Any, stopper: Any, rng: np.random.Generator | None = None) -> None:
        state = {
            "fingerprint": self.fingerprint,
            "epoch": epoch,
            "stopped": stopped,
            "model": model.state_dict(),
            "optimizers": [opt.state_dict() for opt in optimizers],
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": rng.bit_generator.state if rng is not None else None,
            "history": asdict(history),
            "stopper": {k: getattr(stopper, k) for k in ("best", "best_state", "best_epoch", "waited")},
        }
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def restore(self, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer], generator: torch.Generator,
                history: Any, stopper: Any, rng: np.random.Generator | None = None) -> int:
        """Load the checkpoint into the freshly set-up run; returns the first epoch still to run (0 when
        there is nothing to resume, ``STOPPED`` when the run had already stopped early)."""
        if not (self.resume and self.path.is_file()):
            return 0
        state = torch.load(self.path, map_location=generator.device, weights_only=False)
        if state.get("fingerprint") != self.fingerprint:
            log.warning("%s was written for other data or settings; training starts from epoch 0", self.path)
            return 0
        model.load_state_dict(state["model"])
        for opt, saved in zip(optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(saved)
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if rng is not None and state["numpy_rng"] is not None:
            rng.bit_generator.state = state["numpy_rng"]
        history.__dict__.update(state["history"])
        for key, value in state["stopper"].items():
            setattr(stopper, key, value)
        print(f"resuming {self.path.stem} after epoch {state['epoch'] + 1} ({self.path})", file=sys.stderr)
        return STOPPED if state["stopped"] else state["epoch"] + 1

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

"""The one place that imports DGL.

PyPI's newest Linux DGL (2.1.0) ships its GraphBolt native library only for torch 2.0–2.2.1, yet
``import dgl`` imports ``dgl.graphbolt`` unconditionally (dgl.dataloading -> dgl.distributed ->
dgl.graphbolt) and fails on newer torch with ``FileNotFoundError: Cannot find DGL C++ graphbolt
library``. The core ``libdgl.so`` does not depend on the torch version, so when (and only when) the
GraphBolt library for the running torch is missing we register an empty stand-in module for
``dgl.graphbolt`` before importing DGL. Heterographs, message passing, ``edge_softmax``, SAGEConv,
neighbour sampling and ``save_graphs``/``load_graphs`` work; ``dgl.sparse`` and GraphBolt do not, and
this project uses neither. The PyPI build is CPU-only: GPU code paths use torch ops instead.

Everything else does ``from glom_plugin.dgl_compat import dgl``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path


def _graphbolt_library_present() -> bool:
    spec = importlib.util.find_spec("dgl")
    if spec is None or spec.origin is None:
        return False
    import torch

    version = torch.__version__.split("+")[0]
    return (Path(spec.origin).parent / "graphbolt" / f"libgraphbolt_pytorch_{version}.so").exists()


def _install_graphbolt_standin() -> None:
    if "dgl.graphbolt" in sys.modules:
        return
    standin = types.ModuleType("dgl.graphbolt")
    standin.__doc__ = "Stand-in registered by glom_plugin.dgl_compat: GraphBolt is unavailable for this torch."
    standin.__path__ = []  # a package, so submodule imports fail clearly instead of oddly

    def __getattr__(name: str):  # noqa: N807 - module-level getattr
        raise AttributeError(
            f"dgl.graphbolt.{name} is unavailable: DGL 2.1.0's GraphBolt library does not exist for this torch "
            "version (see glom_plugin/dgl_compat.py)"
        )

    standin.__getattr__ = __getattr__  # type: ignore[attr-defined]
    sys.modules["dgl.graphbolt"] = standin


def _import_dgl():
    # Keep DGL from writing ~/.dgl/config.json and from guessing a backend.
    os.environ.setdefault("DGLBACKEND", "pytorch")
    if not _graphbolt_library_present():
        _install_graphbolt_standin()
    import dgl as _dgl

    return _dgl


dgl = _import_dgl()

__all__ = ["dgl"]

"""Data flows one way (docs/ARCHITECTURE.md, "Layers"): the core never imports the stages, the platform
adapters or the faces. Checked on the source, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "glom_plugin"
CORE = ("models", "graph", "expand", "text", "evaluate")
ABOVE_CORE = ("glom_plugin.stages", "glom_plugin.platform", "glom_plugin.pipeline", "glom_plugin.serving",
              "glom_plugin.cli", "glom_plugin.quickstart")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", CORE)
def test_the_core_never_imports_stages_platform_or_faces(layer):
    offending = {
        str(path.relative_to(PACKAGE)): sorted(m for m in imported_modules(path) if m.startswith(ABOVE_CORE))
        for path in sorted((PACKAGE / layer).rglob("*.py"))
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_the_checker_sees_lazy_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from glom_plugin.platform.mlflow_registry import x\n")
    assert "glom_plugin.platform.mlflow_registry" in imported_modules(module)

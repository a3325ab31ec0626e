"""The package's layers: data → objectives → models → training → evaluation → stats / analysis → pipeline → cli.

Every ``from ..x import`` (at module level or inside a function) is read from the source with ``ast``;
no import may run up the layers, and no two packages may import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "lmjepa"
BASE = {"config", "errors", "io", "paths", "seeds", "__init__"}  # below every layer; they import no layer
LAYERS = {"data": 0, "objectives": 1, "models": 2, "training": 3, "evaluation": 4, "stats": 5, "analysis": 5, "pipeline": 6,
          "cli": 7}


def package_imports() -> list[tuple[str, str, str]]:
    """(importing package, imported package, file) for every relative import between top-level units."""
    edges = []
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).parts
        unit = parts[0] if len(parts) > 1 else path.stem
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            here = list(parts[:-1])
            base = here[: len(here) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [])
            if not target:  # ``from . import x`` at the top of the package: x is the unit
                target = [alias.name for alias in node.names]
            for name in target[:1]:
                if name != unit:
                    edges.append((unit, name, str(path.relative_to(SRC))))
    return edges


def test_every_unit_is_placed():
    # Python packages only: presets/ holds YAML files (package data), no code
    units = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("__") and any(p.rglob("*.py"))}
    units |= {p.stem for p in SRC.glob("*.py")}
    assert units <= BASE | set(LAYERS), f"place {sorted(units - BASE - set(LAYERS))} in a layer"


def test_no_import_runs_up_the_layers():
    upward = [(a, b, f) for a, b, f in package_imports()
              if (a in BASE and b not in BASE) or (a in LAYERS and b in LAYERS and LAYERS[b] > LAYERS[a])]
    assert not upward, "imports running up the layers: " + "; ".join(f"{f}: {a} → {b}" for a, b, f in upward)


def test_the_cli_reaches_training_only_through_the_pipeline():
    """The CLI parses, calls and prints: what a run, sweep or audit does end to end is in ``pipeline/``."""
    direct = [(b, f) for a, b, f in package_imports() if a == "cli" and b == "training"]
    assert not direct, f"the CLI imports training directly: {direct}"
    assert ("cli", "pipeline") in {(a, b) for a, b, _ in package_imports()}


def test_no_two_packages_import_each_other():
    edges = {(a, b) for a, b, _ in package_imports()}
    mutual = sorted({tuple(sorted(e)) for e in edges if (e[1], e[0]) in edges})
    assert not mutual, f"packages importing each other: {mutual}"


def test_the_check_sees_a_violation(tmp_path, monkeypatch):
    """The checks can fail: a fake package tree with an upward import is caught."""
    fake = tmp_path / "lmjepa"
    for unit in ("data", "evaluation"):
        (fake / unit).mkdir(parents=True)
        (fake / unit / "__init__.py").write_text("")
    (fake / "data" / "x.py").write_text("from ..evaluation import y\n")
    (fake / "evaluation" / "y.py").write_text("from ..data import x\n")
    monkeypatch.setitem(globals(), "SRC", fake)
    assert ("data", "evaluation", "data/x.py") in package_imports()
    edges = {(a, b) for a, b, _ in package_imports()}
    assert ("evaluation", "data") in edges and ("data", "evaluation") in edges


def test_the_architecture_page_names_every_module():
    """docs/architecture.md's one-line-per-module table cannot go stale: every module of src/lmjepa is named."""
    page = (SRC.parents[1] / "docs" / "architecture.md").read_text()
    modules = [p for p in SRC.rglob("*.py") if p.name != "__init__.py"]
    missing = [str(p.relative_to(SRC)) for p in modules if p.name not in page]
    assert not missing, f"docs/architecture.md does not name {missing}"

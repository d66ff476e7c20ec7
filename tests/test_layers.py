"""The package's layers point one way: no module imports a module of a layer above its own.

Read from the source (every import statement, inside functions too), so an upward import fails here before it
makes a cycle. Command modules (`cli`) register subcommands of every layer and sit above all of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom to top. A module belongs to the longest prefix listed; one layer may import its own and those below.
LAYERS: tuple[tuple[str, ...], ...] = (
    # base: errors, atomic outputs, configuration, provenance
    (
        "mlpf",
        "mlpf._version",
        "mlpf.errors",
        "mlpf.atomic",
        "mlpf.progress",
        "mlpf.provenance",
        "mlpf.config",
    ),
    ("mlpf.config_docs", "mlpf.outputs"),  # the config's key reference; the names that key the outputs
    ("mlpf.io",),  # reading EDM4HEP, Zenodo, Key4HEP
    ("mlpf.sim",),  # the fast simulation: generator, detector, baseline PF, EDM4HEP writer
    ("mlpf.data",),  # elements, targets, parquet shards, datasets
    ("mlpf.evaluate",),  # jets, MET, statistics, figures, model card; the fastsim's validation
    ("mlpf.runtime",),  # device, threads, autocast, checkpoint files
    ("mlpf.model",),
    ("mlpf.training",),
    ("mlpf.inference",),
    ("mlpf.hpo",),
    ("mlpf.cli", "mlpf.__main__", "mlpf.config_cli"),  # and every `cli` module: the commands
)
TOP = len(LAYERS) - 1


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of a module: its longest listed prefix; every `cli` module is at the top."""
    if module.rpartition(".")[2] == "cli":
        return TOP
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            below = module.startswith(prefix + ".") and prefix != "mlpf"  # the package itself only
            if (module == prefix or below) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer of tests/test_layers.py")
    return best


def imported_modules(path: Path, module: str) -> set[str]:
    """Every mlpf module `path` imports (absolute or relative, at any depth of the file)."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from mlpf.data import features` imports the module mlpf.data.features
            found.update(f"{base}.{alias.name}" for alias in node.names)
            found.add(base)
    return {name for name in found if name == "mlpf" or name.startswith("mlpf.")}


def _sources() -> list[Path]:
    return sorted((SRC / "mlpf").rglob("*.py"))


def test_every_module_has_a_layer():
    for path in _sources():
        layer_of(module_name(path))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path):
    module = module_name(path)
    own = layer_of(module)
    upward = sorted(
        name for name in imported_modules(path, module) if _is_module(name) and layer_of(name) > own
    )
    assert not upward, f"{module} (layer {LAYERS[own][0]}) imports from layers above it: {', '.join(upward)}"


def _is_module(name: str) -> bool:
    """Whether `name` is a module or package of the source tree (not a function imported from one)."""
    relative = Path(*name.split("."))
    return (SRC / relative).with_suffix(".py").is_file() or (SRC / relative / "__init__.py").is_file()


def test_the_check_sees_an_upward_import(tmp_path: Path):
    # the model importing the training (a real upward arrow) is found, a lazy one inside a function as well
    fake = tmp_path / "mlpf" / "model" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        "def f():\n    from mlpf.training.loop import train\n    from ..training import metrics\n"
    )
    names = imported_modules(fake, "mlpf.model.fake")
    assert {"mlpf.training.loop", "mlpf.training.metrics"} <= names
    assert max(layer_of(n) for n in names) > layer_of("mlpf.model.fake")

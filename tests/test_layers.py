"""worker.py keeps to the layers (issue #12; R33, R35): import-linter cannot take a top-level
module as a root package, so the contracts in pyproject.toml do not see worker.py; this test
holds it to the rule they state for product code (docs/architecture.md): it imports the
product packages, never the dev tools (simulator, starter), the bench or the tests."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = {"sentinel", "workflows", "activities", "channels", "notifiers", "store", "runtime", "gateway"}
NEVER = {"simulator", "starter", "bench", "tests"}


def top_level_imports(source: str) -> set[str]:
    """The first name of every module a source imports, at any depth (also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_worker_imports_product_packages_only():
    ours = top_level_imports((ROOT / "worker.py").read_text(encoding="utf-8")) & (PRODUCT | NEVER)
    assert ours, "worker.py imports none of our packages: the test reads the wrong file"
    assert ours <= PRODUCT, f"worker.py imports {sorted(ours - PRODUCT)}"


def test_the_check_sees_imports_inside_functions():
    """The worker imports its client inside main(): a check blind to that would pass anyway."""
    src = "import os\ndef main():\n    from starter.demo import run\n    import bench.stack\n"
    assert top_level_imports(src) == {"os", "starter", "bench"}


def test_the_contracts_name_every_package_of_ours():
    """A package left out of root_packages would be checked by no contract."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "alembic"}
    assert packages == set(config["root_packages"]) == PRODUCT | NEVER


def test_docs_architecture_draws_the_layers_of_the_contract():
    """docs/architecture.md lists the layers exactly as the layers contract states them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    row = "; ".join(" \\| ".join(f"`{p.strip()}`" for p in layer.split("|")) for layer in layers)
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert f"| layers | the diagram, top to bottom: {row} |" in doc
    for layer in layers:  # and the diagram has a row per layer, in that order
        assert all(f"│ {p.strip()} " in doc for p in layer.split("|")), layer
    positions = [doc.index(f"│ {layer.split('|')[0].strip()} ") for layer in layers]
    assert positions == sorted(positions)

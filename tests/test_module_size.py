"""One concern per module (issue #12 item 4): no module of the product is over 400 lines
(after ``ruff format``). A module that grows past it is split by concern, as
docs/architecture.md describes; tests, benchmarks and migrations are not product code."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = [
    "sentinel",
    "workflows",
    "activities",
    "channels",
    "notifiers",
    "store",
    "runtime",
    "gateway",
    "starter",
    "simulator",
]
LIMIT = 400


def test_no_product_module_is_over_400_lines():
    files = [p for pkg in PRODUCT for p in (ROOT / pkg).rglob("*.py")] + [ROOT / "worker.py"]
    assert len(files) > 100  # the walk found the code
    long = {
        str(p.relative_to(ROOT)): n
        for p in files
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > LIMIT
    }
    assert long == {}, f"split these by concern (docs/architecture.md): {long}"

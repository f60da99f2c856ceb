"""The sandbox's rules, kept by test for the modules it passes through (R33: a workflow must
replay the same way). The workflow's helpers (workflows/review.py, notices.py, state.py) are
imported once outside the sandbox for speed (workflows/withdrawal.py), so the sandbox no
longer stops them from reading the clock, randomness, the environment or files; neither does
it for ``sentinel/``, which every workflow passes through. This reads their source and fails
on any such call (a line may say why it is safe with a ``# sandbox-ok: reason`` comment);
a seeded ``random.Random(seed)`` is deterministic and allowed. The workflow's clock is ``workflow.now()``, its randomness
``workflow.random()``, its ids ``workflow.uuid4()``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.common import ROOT

PASSED_THROUGH_HELPERS = ["workflows/review.py", "workflows/notices.py", "workflows/state.py"]
#: sentinel modules a workflow imports (directly or through another): found from the
#: workflows' imports, so a new one is covered without editing this list
FORBIDDEN_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
    ("time", "sleep"),
    ("uuid", "uuid4"),
    ("uuid", "uuid1"),
    ("os", "getenv"),
    ("os", "urandom"),
    ("secrets", "token_hex"),
    ("secrets", "token_bytes"),
    ("secrets", "token_urlsafe"),
}
FORBIDDEN_MODULES = {"threading", "subprocess", "socket", "httpx", "sqlalchemy", "sqlmodel"}
FORBIDDEN_NAMES = {"open", "input"}


def _workflow_imported_modules() -> list[str]:
    """Every sentinel module the workflows import, followed through sentinel's own imports."""
    todo = [p for p in (ROOT / "workflows").glob("*.py")]
    seen: set[Path] = set()
    found: list[str] = []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sentinel"):
                target = ROOT / (node.module.replace(".", "/") + ".py")
                if target.exists() and target not in seen:
                    todo.append(target)
                    found.append(str(target.relative_to(ROOT)))
    return sorted(set(found))


def _violations(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    out: list[str] = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if line and "# sandbox-ok:" in lines[line - 1]:
            continue
        if isinstance(node, ast.Import):
            out += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
            out.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in FORBIDDEN_NAMES:
                out.append(f"line {node.lineno}: {f.id}()")
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "random":
                if f.attr != "Random" or not (node.args or node.keywords):
                    out.append(f"line {node.lineno}: random.{f.attr}() (only a seeded random.Random(seed))")
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                if (f.value.id, f.attr) in FORBIDDEN_CALLS:
                    out.append(f"line {node.lineno}: {f.value.id}.{f.attr}()")
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Attribute):
                if (f.value.attr, f.attr) in FORBIDDEN_CALLS:
                    out.append(f"line {node.lineno}: ...{f.value.attr}.{f.attr}()")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "os" and node.attr == "environ":
                out.append(f"line {node.lineno}: os.environ")
    return out


WORKFLOW_SIDE = PASSED_THROUGH_HELPERS + _workflow_imported_modules()


def test_the_list_covers_the_lifecycle_and_the_models():
    assert {"sentinel/transitions.py", "sentinel/contracts.py", "sentinel/models.py"} <= set(WORKFLOW_SIDE)


@pytest.mark.parametrize("module", WORKFLOW_SIDE)
def test_passed_through_module_keeps_the_sandbox_rules(module: str):
    assert _violations(ROOT / module) == [], f"{module} does what a workflow must not"


def test_the_check_catches_what_it_looks_for(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import socket\nimport os\nfrom datetime import datetime\n"
        "def f():\n    datetime.now()\n    os.environ['X']\n    open('x')\n    uuid.uuid4()\n"
        "    random.random()\n    random.Random()\n    random.Random(7)\n"
        "    datetime.now()  # sandbox-ok: not on a workflow's path\n"
    )
    found = _violations(bad)
    assert len(found) == 7, found

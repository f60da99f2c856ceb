"""The project carries what it cites (issue #12, item 5): no tracked text file (README, docs,
code, comments, YAML) points at a path outside the repository: a developer's machine
(absolute paths under the work, home or temp folders) or a sibling folder (the shared one).
Research the code relies on lives under docs/reference/ and is cited by relative path.
Relative links in the README and docs lead to files that exist. R26 (the code catalogue's
sources are checkable), R30 (configuration as data, documented)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from sentinel.settings import ROOT

# Built from pieces so that this file does not cite what it forbids.
_ABS = "|".join(("wo" + "rk", "ho" + "me", "t" + "mp", "Us" + "ers", "ro" + "ot"))
OUTSIDE = re.compile(
    r"(?:^|[^A-Za-z0-9_.~/-])/(?:" + _ABS + r")/"  # an absolute path under one of those folders
    r"|(?:\.\./)+" + "sha" + r"red\b"  # the sibling folder, one or more levels up
    r"|(?:^|[^A-Za-z0-9_./-])" + "sha" + r"red/(?:reference|mission)/"  # the sibling cited without its ../
)

#: (file, exact text) -> why it may stay: only a path that is an example of a runtime value
#: and says so where it stands. Keep this small.
ALLOWED: dict[tuple[str, str], str] = {}


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode()
    files = []
    for name in filter(None, out.split("\0")):
        path = ROOT / name
        if not path.is_file():
            continue  # deleted in the working tree, not yet committed
        head = path.read_bytes()[:8192]
        if b"\0" in head:
            continue  # binary (screenshots)
        files.append(path)
    return files


def outside_citations(text: str) -> list[str]:
    return [m.group(0).strip() for m in OUTSIDE.finditer(text)]


def test_scanner_finds_what_it_must():
    """The scan itself can fail: each kind of outside citation is caught, and repository
    paths, URLs and in-container runtime paths are not."""
    bad = [
        "see /" + "work/shared/reference/payout-codes.md",
        "(/" + "home/dev/notes.md)",
        "written to /" + "tmp/sentinel.log",
        "rows of ../" + "sha" + "red/reference/payout-codes.md",
        "`" + "sha" + "red/mission/REQUIREMENTS.md`",
    ]
    for line in bad:
        assert outside_citations(line), line
    good = [
        "docs/reference/payout-codes.md",
        "https://example.com/home/x",
        "/etc/temporal/config (inside the container)",
        "src/work/x.py",
        "tests/sentinel/test_settings_docs.py",
    ]
    for line in good:
        assert not outside_citations(line), line


def test_no_tracked_file_cites_a_path_outside_the_repository():
    hits = []
    for path in tracked_text_files():
        rel = path.relative_to(ROOT).as_posix()
        for no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for found in outside_citations(line):
                if not any(f == rel and text in line for (f, text) in ALLOWED):
                    hits.append(f"{rel}:{no}: {found!r} in {line.strip()[:120]!r}")
    assert not hits, "paths outside the repository (copy the source under docs/reference/):\n" + "\n".join(
        hits
    )


def test_cited_research_is_in_the_repository():
    for name in ("payout-codes.md", "temporal-notes.md"):
        assert (ROOT / "docs" / "reference" / name).is_file(), name


_LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize(
    "doc", sorted(p.relative_to(ROOT).as_posix() for p in [ROOT / "README.md", *ROOT.glob("docs/**/*.md")])
)
def test_relative_links_in_docs_resolve(doc: str):
    """An integrator following the README and docs never lands on a missing file."""
    path = ROOT / doc
    broken = []
    for target in _LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # URLs, mail addresses, anchors on the same page
        file_part = target.split("#", 1)[0]
        resolved = (path.parent / file_part).resolve()
        if not resolved.exists() or not resolved.is_relative_to(ROOT):
            broken.append(target)
    assert not broken, f"{doc}: links to missing files: {broken}"

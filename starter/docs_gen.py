"""Generated documentation (issue #12, item 7): docs/configuration.md from the settings model
(starter/docs_settings.py), the API field tables of docs/gateway.md from the gateway's
OpenAPI schema (starter/docs_api.py), and the dev server's search attributes from the list
the code registers. Tests keep the committed docs equal to what these modules generate;
``python -m starter docs`` rewrites them (``--check`` only compares).

A tool, not product code: it imports the product to read it and writes nothing but docs.
"""

from __future__ import annotations

from pathlib import Path

from starter.docs_api import GATEWAY_MD, gateway_markdown
from starter.docs_settings import CONFIGURATION_MD, settings_markdown

__all__ = ["generated", "settings_markdown", "stale", "write"]


def generated() -> dict[Path, str]:
    return {CONFIGURATION_MD: settings_markdown(), GATEWAY_MD: gateway_markdown()}


def stale() -> list[Path]:
    return [p for p, text in generated().items() if p.read_text(encoding="utf-8") != text]


def write() -> list[Path]:
    changed = []
    for path, text in generated().items():
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed

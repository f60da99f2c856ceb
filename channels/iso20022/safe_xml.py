"""Safe XML for ISO 20022 documents: expat with any DOCTYPE refused (no entity is ever
expanded, no external resource resolved), UTF-8 only, a depth and size bound; and the
namespace-agnostic helpers that walk the tree (public: the simulator's bank reads with them).
"""

from __future__ import annotations

import re
from typing import NoReturn
from xml.etree import ElementTree as ET
from xml.parsers import expat

MAX_BODY_BYTES = 1_000_000
#: a pacs.002 nests about 8 levels deep
MAX_XML_DEPTH = 32
#: the encoding of an XML declaration (``<?xml version="1.0" encoding="GBK"?>``)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\sencoding\s*=\s*["']([^"']*)["']""")


class IsoMessageError(ValueError):
    """The document is unsafe, not well-formed, or not a message this adapter reads."""


# --- safe XML ---------------------------------------------------------------------------


def parse_xml(body: bytes) -> ET.Element:
    """Parse untrusted XML into an ElementTree element, refusing any DOCTYPE (and with it
    every entity declaration) before anything is expanded. Tags are ``{namespace}local``."""
    if len(body) > MAX_BODY_BYTES:
        raise IsoMessageError(f"document larger than {MAX_BODY_BYTES} bytes")
    if body.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in body:
        # (XML has no NUL character: NUL bytes mean UTF-16 or UTF-32)
        raise IsoMessageError("document is UTF-16 or UTF-32; only UTF-8 is accepted")
    declared = _XML_ENCODING.match(body)
    if declared and declared.group(1).decode("latin-1").strip().lower() not in ("utf-8", "utf8"):
        encoding = declared.group(1).decode("latin-1")[:40]
        raise IsoMessageError(f"document declares encoding {encoding!r}; only UTF-8 is accepted")
    builder = ET.TreeBuilder()
    # The encoding is fixed: whatever else the document says, its bytes are read as UTF-8.
    parser = expat.ParserCreate(encoding="UTF-8", namespace_separator="}")
    depth = 0

    def name(raw: str) -> str:
        return "{" + raw if "}" in raw else raw

    def refuse_doctype(*_args: object) -> NoReturn:
        raise IsoMessageError("DOCTYPE is not allowed (no DTDs or entities)")

    def refuse_entity(*_args: object) -> NoReturn:
        raise IsoMessageError("entity declarations are not allowed")

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:
            raise IsoMessageError(f"elements nested deeper than {MAX_XML_DEPTH} levels")
        builder.start(name(tag), {name(k): v for k, v in attrs.items()})

    def end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(name(tag))

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_entity
    parser.UnparsedEntityDeclHandler = refuse_entity
    parser.ExternalEntityRefHandler = refuse_entity
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise IsoMessageError(f"not well-formed XML: {exc}") from None
    except IsoMessageError:
        raise
    except ValueError as exc:  # pragma: no cover - expat refusing an encoding it cannot read
        raise IsoMessageError(f"unreadable XML: {exc}") from None
    try:
        return builder.close()
    except AssertionError:  # pragma: no cover - expat already rejects unbalanced documents
        raise IsoMessageError("not well-formed XML") from None


def xml_local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def xml_ns(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def xml_child(el: ET.Element | None, local: str) -> ET.Element | None:
    if el is None:
        return None
    for c in el:
        if xml_local(c.tag) == local:
            return c
    return None


def xml_children(el: ET.Element | None, local: str) -> list[ET.Element]:
    return [] if el is None else [c for c in el if xml_local(c.tag) == local]


def xml_find(el: ET.Element | None, *path: str) -> ET.Element | None:
    for step in path:
        el = xml_child(el, step)
    return el


def xml_text(el: ET.Element | None, *path: str) -> str | None:
    node = xml_find(el, *path)
    if node is None or node.text is None:
        return None
    text = node.text.strip()
    return text or None

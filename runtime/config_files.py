"""YAML configuration files, re-read when they change on disk (R30: rules change without a
code change or a restart). Validation happens at load: a broken edit is refused and the
last good version stays in force."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)


class HotFile:
    """A parsed YAML file, reloaded when its modification time or size changes."""

    def __init__(self, path: Path, validate: Callable[[dict[str, Any]], Any] | None = None):
        self.path = Path(path)
        self.validate = validate
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._doc: dict[str, Any] | None = None
        self._derived: dict[Callable, tuple[dict[str, Any], Any]] = {}

    def derived(self, build: Callable[[dict[str, Any]], Any]) -> Any:
        """``build(doc)`` for the version in force, built once per version (validating a
        policy on every withdrawal was a measurable share of the worker's CPU)."""
        doc = self.get()
        with self._lock:
            cached = self._derived.get(build)
            if cached is not None and cached[0] is doc:
                return cached[1]
        value = build(doc)
        with self._lock:
            self._derived[build] = (doc, value)
        return value

    def get(self) -> dict[str, Any]:
        try:
            stat = self.path.stat()
        except OSError as exc:
            with self._lock:
                if self._doc is None:
                    raise ValueError(f"{self.path}: {exc}") from exc
                log.error("keeping the previous %s: %s", self.path, exc)
                return self._doc
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    doc = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
                    if not isinstance(doc, dict):
                        raise ValueError("top level must be a mapping")
                    if self.validate:
                        self.validate(doc)
                except Exception as exc:
                    if self._doc is None:
                        raise ValueError(f"{self.path}: {exc}") from exc
                    log.error("keeping the previous %s: the new version is invalid: %s", self.path, exc)
                    self._stamp = stamp
                    return self._doc
                self._doc, self._stamp = doc, stamp
                return doc
            assert self._doc is not None  # the stamp is set only with a document
            return self._doc

"""The data-driven ETA (R24, issue #14 item 4) for the activity the workflow already runs at
the start (``init_tracking``): the arrival-time table of the event record (sentinel/eta.py
``EtaTable``), rebuilt at most every ``refresh`` (config/eta.yaml), and the ``eta_hours`` a
withdrawal's policy carries. No Temporal action is added: the workflow promises arrival
``eta_hours`` after its delay notice, as before, with the figure from the data."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from runtime.config_files import HotFile
from sentinel.eta import EtaConfig, EtaTable, eta_hours
from sentinel.outage import duration_s
from sentinel.tuning import arrivals
from store.incidents import outage_rows

log = logging.getLogger(__name__)


def load_eta_config(doc: dict[str, Any]) -> tuple[bool, EtaConfig, int, int, int]:
    """(enabled, EtaConfig, lookback s, refresh s, max rows) from config/eta.yaml."""
    known = {"version", "enabled", "quantile", "min_samples", "min_eta", "lookback", "refresh", "max_rows"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ValueError(f"unknown settings {unknown}; known: {sorted(known)}")
    cfg = EtaConfig(
        quantile=float(doc.get("quantile", 0.9)),
        min_samples=int(doc.get("min_samples", 30)),
        min_eta_s=duration_s(doc.get("min_eta", "15m")),
    )
    lookback = duration_s(doc.get("lookback", "28d"))
    refresh = duration_s(doc.get("refresh", "10m"))
    max_rows = int(doc.get("max_rows", 200_000))
    if not 3600 <= lookback <= 366 * 86400 or not 10 <= refresh <= 86400 or not 100 <= max_rows <= 10_000_000:
        raise ValueError("eta: lookback 1h..366d, refresh 10s..1d, max_rows 100..10,000,000")
    return bool(doc.get("enabled", True)), cfg, lookback, refresh, max_rows


class EtaSource:
    def __init__(self, engine: Engine, config: HotFile, clock=time.monotonic):
        self.engine = engine
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._table: EtaTable | None = None
        self._built_at: float | None = None

    def table(self, lookback_s: int, refresh_s: int, max_rows: int) -> EtaTable:
        with self._lock:
            if (
                self._table is not None
                and self._built_at is not None
                and self.clock() - self._built_at < refresh_s
            ):
                return self._table
            now = datetime.now(UTC)
            rows = outage_rows(self.engine, now - timedelta(seconds=lookback_s), now, max_rows)
            self._table, self._built_at = EtaTable.build(arrivals(rows)), self.clock()
            return self._table

    def eta_hours(
        self, channel: str, bank: str, started_at: datetime, alarm_after_s: float, fixed: float
    ) -> float:
        """The figure for a withdrawal's policy; the fixed one when disabled, short of data,
        or when the record cannot be read (the start never fails for the ETA)."""
        try:
            enabled, cfg, lookback, refresh, max_rows = self.config.derived(load_eta_config)
            if not enabled:
                return fixed
            table = self.table(lookback, refresh, max_rows)
            return eta_hours(table, channel, bank, started_at, alarm_after_s, fixed, cfg)
        except Exception as exc:  # noqa: BLE001 - an ETA is never worth a failed start
            log.warning("ETA from the event record unavailable (%s): fixed eta_hours used", exc)
            return fixed

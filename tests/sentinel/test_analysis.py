"""The pure analysis of the exception event record (sentinel/analysis.py; R27, R23, R30) on
hand-made rows whose answers are worked out by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sentinel.analysis import EventRow, amount_band, analyse, percentiles, to_markdown

#: Monday 2026-11-30 09:00 UTC
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)
S = timedelta(seconds=1)


def started(wid, at, channel, bank, band, threshold_s=600):
    return EventRow(
        wid,
        "started",
        at,
        key=f"started/{wid}",
        channel=channel,
        bank_code=bank,
        amount_band=band,
        currency="CNY",
        delay_threshold_s=threshold_s,
        status="SUBMITTED",
    )


def status(wid, at, st, category=None, code=None):
    return EventRow(
        wid, "status", at, key=f"status/{wid}/{at}", status=st, category=category, reason_code=code
    )


def notice(wid, at, stage, channel, seq=1, rung=0):
    key = f"{wid}/{stage}/{seq}/{channel}" + (f"/r{rung}" if rung else "")
    return EventRow(
        wid, "notice", at, key=f"notice/{key}", notice_channel=channel, notice_key=key, stage=stage, rung=rung
    )


def read(wid, at, channel, key):
    return EventRow(wid, "read", at, key=f"read/{channel}/{key}", notice_channel=channel, notice_key=key)


def unmapped(wid, at, code):
    return EventRow(
        wid, "unmapped", at, key=f"unmapped/{wid}/{code}", channel="alipay", status="FAIL", reason_code=code
    )


T1 = T0 + timedelta(hours=1)  # Monday 10:00
ROWS = [
    # W1: delayed at 12 min (detect 720 s), told 10 s later on inbox and email, read in the
    # inbox at 15 min (170 s after it), money at 30 min: 17 min 50 s after the notice -> a false alarm
    started("W1", T0, "generic", "ICBC", "1k-10k"),
    status("W1", T0 + M, "PROCESSING"),
    status("W1", T0 + 12 * M, "DELAYED", "BANK_DELAY"),
    notice("W1", T0 + 12 * M + 10 * S, "DELAYED", "inbox"),
    notice("W1", T0 + 12 * M + 20 * S, "DELAYED", "email"),
    read("W1", T0 + 15 * M, "inbox", "W1/DELAYED/1/inbox"),
    status("W1", T0 + 30 * M, "SUCCEEDED"),
    # W2: paid in 5 min, nothing wrong
    started("W2", T0, "generic", "ICBC", "<100"),
    status("W2", T0 + 5 * M, "SUCCEEDED"),
    # W3: failed on AC04 after 30 s, told 10 s later, never read
    started("W3", T1, "alipay", "CMB", "10k-100k"),
    status("W3", T1 + 30 * S, "FAILED", "ACCOUNT_INFO_ERROR", "AC04"),
    notice("W3", T1 + 40 * S, "DETECTED", "inbox"),
    notice("W3", T1 + 40 * S, "DETECTED", "email"),
    # W4: paid after 20 min (threshold 10 min) and nobody told: a missed delay
    started("W4", T1, "alipay", "CMB", "100-1k"),
    status("W4", T1 + 20 * M, "SUCCEEDED"),
    # W5: delayed at 13 min (780 s), told at once (0 s), link opened 1 min later, escalated by
    # email at 42 min (after the read: not read), money at 2 h (not a false alarm)
    started("W5", T0, "generic", "ICBC", ">=100k"),
    status("W5", T0 + 13 * M, "DELAYED", "BANK_DELAY"),
    notice("W5", T0 + 13 * M, "DELAYED", "inbox"),
    read("W5", T0 + 14 * M, "link", "W5/DELAYED/1"),
    notice("W5", T0 + 42 * M, "DELAYED", "email", rung=1),
    status("W5", T0 + 120 * M, "SUCCEEDED"),
    # unmapped codes: two withdrawals on Monday (one outside the population), one on Tuesday
    unmapped("W4", T1 + M, "X9"),
    unmapped("W9", T1 + 2 * M, "X9"),
    unmapped("W4", T1 + timedelta(days=1), "X9"),
    # rows of a withdrawal whose start is not in the period: ignored
    status("W8", T0, "FAILED", "PLATFORM_ERROR", "P1"),
]


def test_amount_bands_in_the_major_unit():
    # R27: the bands are documented in docs/analysis.md; upper bounds are exclusive
    assert [
        amount_band(Decimal(a))
        for a in (
            "0.01",
            "99.99",
            "100",
            "999.9999",
            "1000",
            "9999",
            "10000",
            "99999.99",
            "100000",
            "5000000",
        )
    ] == ["<100", "<100", "100-1k", "100-1k", "1k-10k", "1k-10k", "10k-100k", "10k-100k", ">=100k", ">=100k"]


def test_percentiles_nearest_rank():
    assert percentiles([]) == {"count": 0, "p50": None, "p95": None, "p99": None}
    assert percentiles([5.0]) == {"count": 1, "p50": 5.0, "p95": 5.0, "p99": 5.0}
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentiles(values[::-1]) == {"count": 100, "p50": 50.0, "p95": 95.0, "p99": 99.0}


def test_exception_rates_by_dimension_code_and_category():
    # R27: 3 of 5 withdrawals had an exception (W1, W3, W5)
    r = analyse(ROWS)
    assert r["withdrawals"] == 5
    assert r["outcomes"] == {"FAILED": 1, "SUCCEEDED": 4}
    rates = r["exception_rates"]
    assert (rates["exceptions"], rates["rate"]) == (3, 0.6)
    assert rates["by_channel"] == {
        "alipay": {"withdrawals": 2, "exceptions": 1, "rate": 0.5},
        "generic": {"withdrawals": 3, "exceptions": 2, "rate": 0.6667},
    }
    assert rates["by_bank"]["CMB"] == {"withdrawals": 2, "exceptions": 1, "rate": 0.5}
    assert rates["by_amount_band"][">=100k"] == {"withdrawals": 1, "exceptions": 1, "rate": 1.0}
    assert rates["by_amount_band"]["<100"] == {"withdrawals": 1, "exceptions": 0, "rate": 0.0}
    assert rates["by_hour_of_week"] == {
        "Mon 09": {"withdrawals": 3, "exceptions": 2, "rate": 0.6667},
        "Mon 10": {"withdrawals": 2, "exceptions": 1, "rate": 0.5},
    }
    assert rates["by_code"] == {"AC04": {"withdrawals": 1, "rate": 0.2}}  # W8's P1 is not in the period
    assert rates["by_category"] == {
        "ACCOUNT_INFO_ERROR": {"withdrawals": 1, "rate": 0.2},
        "BANK_DELAY": {"withdrawals": 2, "rate": 0.4},
    }


def test_time_to_detect_and_to_notify():
    # R30: detect [30, 720, 780] s; notify [0, 10, 10] s (nearest rank)
    r = analyse(ROWS)
    assert r["time_to_detect_s"] == {"count": 3, "p50": 720.0, "p95": 780.0, "p99": 780.0}
    assert r["time_to_notify_s"] == {"count": 3, "p50": 10.0, "p95": 10.0, "p99": 10.0}


def test_false_alarm_and_missed_delay_per_bank_and_channel():
    # R23: W1's money came 17 min 50 s after its delay notice (a false alarm at 30 min,
    # not at 15); W4 arrived after its 10 min threshold with no delay notice (missed)
    r = analyse(ROWS)
    fa = r["false_alarms"]
    assert fa["total"] == 1 and fa["margin_s"] == 1800
    assert fa["by_channel"] == {"generic": {"delay_notices": 2, "false_alarms": 1, "rate": 0.5}}
    assert fa["by_bank"] == {"ICBC": {"delay_notices": 2, "false_alarms": 1, "rate": 0.5}}
    md = r["missed_delays"]
    assert md["total"] == 1
    assert md["by_channel"] == {
        "alipay": {"arrived_late": 1, "missed": 1, "rate": 1.0},
        "generic": {"arrived_late": 2, "missed": 0, "rate": 0.0},
    }
    assert md["by_bank"]["CMB"] == {"arrived_late": 1, "missed": 1, "rate": 1.0}
    assert analyse(ROWS, false_alarm_margin=timedelta(minutes=15))["false_alarms"]["total"] == 0
    # a longer threshold: W4's 20 min is no longer late
    slow = [
        started("W4", T1, "alipay", "CMB", "100-1k", threshold_s=1800) if r.key == "started/W4" else r
        for r in ROWS
    ]
    assert analyse(slow)["missed_delays"]["total"] == 0
    assert "alipay" not in analyse(slow)["missed_delays"]["by_channel"]


def test_notice_effectiveness_read_rate_escalations_corrections():
    # R27: inbox 3 sent, 2 read (W1 in the inbox after 170 s, W5 by its link after 60 s);
    # email 3 sent, none read (W5's link was opened before its escalation went out)
    r = analyse(ROWS + [notice("W3", T1 + 50 * M, "CORRECTION", "email", seq=2)])
    inbox, email = r["notices"]["by_channel"]["inbox"], r["notices"]["by_channel"]["email"]
    assert (inbox["sent"], inbox["read"], inbox["read_rate"]) == (3, 2, 0.6667)
    assert inbox["time_to_read_s"] == {"count": 2, "p50": 60.0, "p95": 170.0, "p99": 170.0}
    assert (email["sent"], email["read"], email["read_rate"], email["escalations"]) == (4, 0, 0.0, 1)
    assert (r["notices"]["escalations"], r["notices"]["corrections"]) == (1, 1)


def test_unmapped_codes_by_day_and_markdown():
    r = analyse(ROWS)
    assert r["unmapped_codes"] == [
        {"day": "2026-11-30", "channel": "alipay", "raw_status": "FAIL", "raw_code": "X9", "withdrawals": 2},
        {"day": "2026-12-01", "channel": "alipay", "raw_status": "FAIL", "raw_code": "X9", "withdrawals": 1},
    ]
    text = to_markdown(r)
    assert "| generic | 3 | 2 | 0.6667 |" in text
    assert "| 2026-11-30 | alipay | FAIL | X9 | 2 |" in text
    assert "| inbox | 3 | 2 | 0.6667 | 60.0 | 170.0 | 0 | 0 |" in text


def test_no_rows_no_division_by_zero():
    r = analyse([])
    assert r["withdrawals"] == 0 and r["exception_rates"]["rate"] is None
    assert "(none)" in to_markdown(r)

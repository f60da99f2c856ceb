"""Claims follow facts (issue #10 item 3, R7, R19, R32): every refusal code of every
catalogue is walked through the lifecycle (sentinel/lifecycle.py: the route, the status the
user then sees, the notice and what it says is scheduled) and the renderer, in both locales,
on every text a channel sends (email/inbox, SMS, push, voice). Generated from the catalogue
and the lifecycle, not a hand list. Checked for each:

- a notice sent while the withdrawal is not final never says it failed or that the money
  is back (a manual check, an operations fix, a review, a wait, a resend);
- a final failure says where the money is and promises no resend or check that nothing
  schedules;
- a scheduled resend names its date and time;
- the order number and the support number are there; the card only by its last four
  (the renderer refuses anything else).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from sentinel.catalogue import default_catalogue
from sentinel.lifecycle import SEEN, Route, route_failure
from sentinel.links import make_link
from sentinel.models import Classification, NoticeRequest, TrackingPolicy
from sentinel.render import link_kind_for, load_templates, render_notice, sample_withdrawal
from sentinel.taxonomy import ExceptionCategory, PayoutState, RetryDecision, Severity, Stage, WithdrawalStatus

POLICY = TrackingPolicy(
    version="t",
    delay_threshold_s=600,
    grace_s=120,
    manual_check_s=86400,
    poll_schedule_s=[60],
    unknown_poll_s=15,
    return_watch_s=300,
    review_sla_s=3600,
    documents_wait_s=86400,
    eta_hours=24,
)
NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
LOCALES = ("en-US", "zh-CN")
#: the product channel a catalogue's codes come through (banks' own codes: the generic protocol)
PRODUCT = {"alipay": "alipay", "wechat": "wechat", "stripe": "stripe", "iso20022": "iso20022"}
SUPPORT = "555-0100"
SAYS_FAILED = {
    "en-US": re.compile(r"\bfail(ed|ure)\b|did not go through|is back in your balance", re.I),
    "zh-CN": re.compile(r"失败|已退回"),
}
PROMISES = {
    "en-US": re.compile(r"send it again|we('| a)re checking|we will check|we'll check|\bretry", re.I),
    "zh-CN": re.compile(r"重新发送|正在核实|正在核查"),
}
MONEY_BACK = {"en-US": "back in your balance", "zh-CN": "退回"}


def _walk():
    cat = default_catalogue()
    for source, doc in sorted(cat.sources.items()):
        for entry in doc.codes:
            if entry.retry == RetryDecision.QUERY_FIRST:
                continue  # never a refusal: an unknown answer, queried (R5)
            cls = Classification(
                state=PayoutState.FAILED,
                category=entry.category,
                subtype=entry.subtype,
                retry=entry.retry,
                fixer=entry.fixer,
            )
            decision = route_failure(cls, resends=0, waits=0, policy=POLICY, alert_categories=set(), now=NOW)
            status, stage, variant = SEEN[decision.route]
            told = [] if stage is None else [(status, stage, variant, entry.category)]
            if decision.route == Route.RESEND:  # if the delay threshold passes before the resend succeeds
                told.append(
                    (WithdrawalStatus.DELAYED, Stage.DELAYED, "RETRYING", ExceptionCategory.BANK_DELAY)
                )
            for status, stage, variant, category in told:
                for locale in LOCALES:
                    yield source, entry, decision, status, stage, variant, category, locale


CASES = list(_walk())


def test_the_walk_covers_every_route_and_catalogue():
    assert {c[2].route for c in CASES} >= {
        Route.RESEND,
        Route.WAIT_AND_RESEND,
        Route.OPS_FIX,
        Route.MANUAL_CHECK,
        Route.RISK_REVIEW,
        Route.COMPLIANCE_REVIEW,
        Route.USER_FIX,
        Route.FAILED,
    }
    assert {c[0] for c in CASES} == set(default_catalogue().sources)
    assert len(CASES) > 300


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c[0]}:{c[1].code}:{c[4].value}:{c[5] or '-'}:{c[7]}" for c in CASES]
)
def test_what_the_user_reads_is_what_happens(case):
    source, entry, decision, status, stage, variant, category, locale = case
    w = sample_withdrawal(channel=PRODUCT.get(source, "generic"), locale=locale)
    notice = NoticeRequest(
        key="k",
        channel="sms",
        stage=stage,
        category=category,
        subtype=entry.subtype,
        severity=Severity.HIGH,
        status=status,
        reason_code=entry.code,
        withdrawal=w,
        variant=variant,
        retry_at=decision.at if variant else None,
    )
    link = make_link(
        "https://pay.example/app",
        link_kind_for(notice),
        w.withdrawal_id,
        w.user_id,
        "s",
        int(NOW.timestamp()),
        86400,
    )
    r = render_notice(
        notice,
        reason_text=entry.reason_text(locale),
        action_text=entry.action_text(locale),
        support_phone=SUPPORT,
        support_url="https://pay.example/support",
        link=link,
        now=NOW,
    )
    texts = {"text": r.text, "sms": r.short, "push": f"{r.push_title} {r.push_body}", "voice": r.voice}
    final = status in (WithdrawalStatus.FAILED, WithdrawalStatus.RETURNED)
    for channel, text in texts.items():
        if not final:
            said = SAYS_FAILED[locale].search(text)
            assert said is None, f"{channel} says {said.group(0)!r} while {status.value}: {text}"
    if final:
        assert MONEY_BACK[locale] in r.text, r.text
        promised = PROMISES[locale].search(r.text)
        assert promised is None, f"a final failure promises {promised.group(0)!r}: {r.text}"
    if variant in ("RETRYING", "LIMIT_WAIT"):
        fmt = load_templates(locale).doc.eta_format
        when = decision.at.astimezone(ZoneInfo(w.contact.timezone)).strftime(fmt.split(" (")[0])
        assert when in r.text, (when, r.text)
    assert SUPPORT in r.text and SUPPORT in r.short and SUPPORT in r.push_body
    assert "0100" in r.voice
    assert w.withdrawal_id in r.text and (w.withdrawal_id in r.short or r.sms_order_dropped)

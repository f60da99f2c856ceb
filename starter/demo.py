"""Plays one withdrawal per scenario through the running stack (simulator -> gateway ->
workflow -> notices) and prints each timeline and notice. Scenarios are scripted on the
channel simulator; everything else is the real path.

Most scenarios use the generic bank protocol; four go through the native protocols the
simulator speaks (Alipay, WeChat Pay v3, Stripe, ISO 20022: docs/simulator.md) with the real
adapters, and print how the simulator saw the order (its dialect and callback delivery)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from gateway.page_progress import page_for_link
from runtime.client import SentinelClient
from sentinel.links import make_link
from sentinel.models import Contact, WithdrawalView
from sentinel.settings import get_settings
from sentinel.taxonomy import WithdrawalStatus
from sentinel.user_tokens import make_user_token
from simulator.requests import withdrawal_request
from starter.desk import post_decision


@dataclass(frozen=True)
class Decide:
    """A reviewer's decision, sent through the gateway with a development API key
    (config/api_keys.dev.yaml): the gateway signs it for the workflow."""

    decision: str
    reason: str
    api_key: str = "dev-reviewer-alice-key"


@dataclass
class Scenario:
    name: str
    script: dict
    shows: str
    review: Decide | None = None
    done: Callable[[WithdrawalView], bool] = lambda v: v.status.is_final
    locale: str = "en-US"
    #: request fields other than the defaults of ``play`` (channel, currency, payee_ref, ...)
    request: dict = field(default_factory=dict)

    @property
    def channel(self) -> str:
        return self.request.get("channel", "generic")


#: what each native channel's order looks like on the wire (printed with the scenario)
NATIVE_PROTOCOLS = {
    "alipay": "Alipay open platform: alipay.fund.trans.uni.transfer on /alipay/gateway.do, RSA2-signed notify",
    "wechat": "WeChat Pay v3: POST /wechat/v3/fund-app/mch-transfer/transfer-bills, encrypted MCHTRANSFER.BILL.FINISHED",
    "stripe": "Stripe: POST /stripe/v1/payouts, payout.failed webhook signed with Stripe-Signature",
    "iso20022": "ISO 20022: pacs.008 to /iso20022/payments, pacs.002 RJCT back, HMAC-signed",
}


def _native(channel: str, code: str, name: str, shows: str, locale: str, **request) -> Scenario:
    """A withdrawal over ``channel``'s native protocol, scripted to fail with ISO ``code``
    (the simulator's dialect sends the channel's own code for it)."""
    return Scenario(
        name,
        {"scenario": "account_error", "params": {"after_s": 1, "code": code}},
        shows,
        locale=locale,
        request={"channel": channel, **request},
    )


def scenarios() -> list[Scenario]:
    waiting = lambda v: v.status == WithdrawalStatus.DELAYED  # noqa: E731
    return [
        Scenario("success", {"scenario": "success"}, "happy path: callback decides, no notice"),
        Scenario(
            "bank_delay",
            {"scenario": "bank_delay", "params": {"delay_s": 20}},
            "R1: bank slow (AB08), delay notice after the grace period, then 'arrived'",
        ),
        Scenario(
            "account_error",
            {"scenario": "account_error"},
            "R2: account closed (AC04): failed, funds back, fix-card link",
            locale="zh-CN",
        ),
        Scenario(
            "risk_hold",
            {"scenario": "risk_hold"},
            "R3: risk hold: 'under review', reviewer approves",
            review=Decide("approve", "identity confirmed"),
        ),
        Scenario("limit", {"scenario": "limit"}, "R4: over the single limit (AM02): refused with the reason"),
        Scenario(
            "platform_error",
            {"steps": [{"after_s": 1, "status": "FAILED", "code": "FF01", "callback": True}]},
            "R5: channel integration fault (FF01): manual check, operators alerted, operator rejects",
            review=Decide("reject", "re-run after fix", api_key="dev-operator-key"),
        ),
        # issue #10: what the catalogue decides for a refusal is what happens, and what the user reads
        Scenario(
            "resend",
            {"steps": [{"after_s": 1, "status": "FAILED", "code": "AB08", "callback": True}]},
            "bank offline (RJCT AB08): sent again as the next attempt, arrives; never told 'failed'",
        ),
        Scenario(
            "ops_fix",
            {"steps": [{"after_s": 1, "status": "FAILED", "code": "MS03", "callback": True}]},
            "refused for our own reason (MS03): manual check, operators alerted, user told 'delayed on our "
            "side'",
            done=lambda v: v.status == WithdrawalStatus.MANUAL_CHECK,
        ),
        Scenario(
            "cut_off",
            {"steps": [{"after_s": 1, "status": "FAILED", "code": "TM01", "callback": True}]},
            "past the bank's cut-off (TM01): waits for the next day, the user is told the date",
            done=lambda v: v.status == WithdrawalStatus.DELAYED and bool(v.notices),
        ),
        Scenario(
            "unknown_then_final",
            {"scenario": "system_error_then_final"},
            "R5: channel answered 500: never a failure, queried until the final answer",
        ),
        Scenario(
            "returned",
            {"scenario": "success_then_return"},
            "arrived, then returned by the bank (AC04)",
            done=lambda v: v.status == WithdrawalStatus.RETURNED,
        ),
        Scenario(
            "stuck",
            {"scenario": "bank_delay", "params": {"delay_s": 3600}},
            'stays DELAYED: find it in the UI with WithdrawalStatus="DELAYED"',
            done=waiting,
        ),
        # R2 over each native protocol: the channel's own code, classified ACCOUNT_INFO_ERROR
        _native(
            "alipay",
            "BE01",
            "alipay_native",
            "Alipay: payee name mismatch (BE01 -> FAIL/PAYEE_USER_INFO_ERROR)",
            "zh-CN",
            bank_code="ALIPAY",
            payee_ref="074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5",
        ),
        _native(
            "wechat",
            "BE01",
            "wechat_native",
            "WeChat Pay: real name does not match (BE01 -> FAIL/NAME_NOT_CORRECT)",
            "zh-CN",
            bank_code="WECHAT",
            payee_ref="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        ),
        _native(
            "stripe",
            "AC04",
            "stripe_native",
            "Stripe: bank account closed (AC04 -> failed/account_closed)",
            "en-US",
            bank_code="STRIPE",
            currency="USD",
            amount="125.00",
            payee_ref="ba_1DemoSimExternalAcct",
        ),
        _native(
            "iso20022",
            "AC04",
            "iso20022_native",
            "ISO 20022 bank: account closed (pacs.002 RJCT AC04)",
            "en-US",
            bank_code="COBADEFFXXX",
            currency="EUR",
            amount="980.00",
            payee_ref="vault:tok_iso_demo",
        ),
    ]


def _settled(notice) -> bool:
    """Every channel of the notice is delivered, failed, suppressed, dropped or deferred to
    its send window (quiet hours / legal hours: it goes out later, by itself)."""
    deferred = {d.split("@", 1)[0] for d in notice.deferred}
    done = (
        set(notice.delivered) | set(notice.failed) | set(notice.suppressed) | set(notice.dropped) | deferred
    )
    return set(notice.channels) <= done


async def play(
    sc: Scenario, client: SentinelClient, simulator_url: str, gateway_url: str, run_tag: str
) -> WithdrawalView:
    wid = f"DEMO-{run_tag}-{sc.name}"
    async with httpx.AsyncClient(timeout=10) as http:
        (await http.put(f"{simulator_url}/_sim/scripts/{wid}", json=sc.script)).raise_for_status()
    fields = dict(
        user_id=f"user-{sc.name}",
        amount="1250.00",
        payee_ref=f"vault:tok_{uuid.uuid4().hex[:8]}",
        locale=sc.locale,
        contact=Contact(email=f"{sc.name}@example.com"),
    )
    req = withdrawal_request(**{"withdrawal_id": wid, **fields, **sc.request})
    await client.start_withdrawal(req)
    deadline = time.monotonic() + 90
    reviewed = False
    while True:
        view = await client.status(wid)
        if sc.review and view.needs_review and not reviewed:
            await asyncio.sleep(1)
            await post_decision(gateway_url, sc.review.api_key, wid, sc.review.decision, sc.review.reason)
            reviewed = True
            continue
        settled = all(_settled(n) for n in view.notices)
        if sc.done(view) and (not sc.review or reviewed) and settled:
            return view
        if time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.5)


def render_channel(sc: Scenario, order: dict | None) -> list[str]:
    """How the simulator saw a native order: its dialect, and each callback's delivery."""
    lines = [f"   via {sc.channel}: {NATIVE_PROTOCOLS.get(sc.channel, sc.channel)}"]
    if not order or order.get("status") == "NOT_FOUND":
        return lines + ["   simulator: no such order"]
    lines.append(
        f"   simulator: dialect={order['dialect']}  order {order['status']}/{order.get('code') or '-'}"
        f"  amount={order['amount']} {order['currency']}"
    )
    for cb in order.get("callbacks", []):
        lines.append(
            f"   simulator: callback {cb['status']}/{cb['code'] or '-'} -> {order['callback_url']}"
            f"  {cb['state']} (HTTP {cb['http_status']}, {cb['attempts']} attempt(s))"
        )
    return lines


#: the development accounts of the reviewer console (config/reviewers.dev.yaml keeps their
#: hashes; public, development mode only: docs/pages.md) and the operator's API key
#: (config/api_keys.dev.yaml)
DEV_REVIEWERS = (
    ("alice", "reviewer", "dev-alice-password"),
    ("bob", "reviewer", "dev-bob-password"),
    ("carol", "supervisor", "dev-carol-password"),
)
DEV_OPERATOR_KEY = "dev-operator-key"
#: the operations console's development account (config/reviewers.dev.yaml, role operator)
DEV_OPERATOR = ("dave", "operator", "dev-dave-password")


def progress_url(gateway_url: str, link: str) -> str | None:
    """The gateway's progress page for a notice's signed link (``{app}/withdrawals/track?..``
    -> ``{gateway}/pages/withdrawals/track?..``, docs/pages.md), or None for another link."""
    page = page_for_link(link)
    return gateway_url.rstrip("/") + page if page else None


def pages_help(gateway_url: str, temporal_ui_url: str, example_user: str) -> list[str]:
    """Where the consoles are and how to sign in to each with the development credentials."""
    g = gateway_url.rstrip("/")
    reviewers = ", ".join(f"{name} / {password} ({role})" for name, role, password in DEV_REVIEWERS)
    op_name, op_role, op_password = DEV_OPERATOR
    return [
        "Pages (docs/pages.md):",
        f"  user pages:         {g}/pages/signin  - paste a user token, made with",
        f"                      python -m starter token user {example_user}",
        f"                      then {g}/pages/records and {g}/pages/inbox",
        f"  reviewer console:   {g}/pages/review/signin  - {reviewers}",
        f"  operations console: {g}/pages/ops/signin  - {op_name} / {op_password} ({op_role}),",
        f"                      or {g}/pages/signin?next=/pages/ops  - paste the API key {DEV_OPERATOR_KEY}",
        f"  Temporal UI:        {temporal_ui_url.rstrip('/')}/namespaces/default/workflows",
    ]


def newest_link(inbox: dict) -> str | None:
    """The signed link of the newest inbox message that has one (the notices' own link)."""
    return next((m["link"] for m in inbox.get("messages", []) if m.get("link")), None)


def render(
    sc: Scenario,
    view: WithdrawalView,
    inbox: dict,
    sim_order: dict | None = None,
    progress: str | None = None,
) -> str:
    lines = [
        f"== {sc.name}: {sc.shows}",
        f"   {view.withdrawal_id}  status={view.status.value}  category={view.category.value if view.category else '-'}"
        f"  code={view.reason_code or '-'}  severity={view.severity.value}",
        f"   next: {view.next_step}",
    ]
    if progress:
        lines.append(f"   progress page: {progress}")
    if sc.channel != "generic":
        lines += render_channel(sc, sim_order)
    t0 = view.timeline[0].at if view.timeline else None
    for e in view.timeline:
        offset = (e.at - t0).total_seconds() if t0 else 0
        lines.append(f"   +{offset:5.1f}s  [{e.source:8}] {e.what}" + (f"  ({e.detail})" if e.detail else ""))
    for n in view.notices:
        extra = ""
        if n.deferred:
            extra += f"  deferred={','.join(n.deferred)}"
        if n.suppressed:
            extra += f"  suppressed={','.join(n.suppressed)}"
        if n.escalate_at:
            extra += f"  escalates if unread at {n.escalate_at:%H:%M:%S}"
        lines.append(
            f"   notice {n.stage.value:<18} severity={n.severity.value:<6} via {','.join(n.channels) or '-'}"
            f"  delivered={','.join(n.delivered) or '-'}{extra}"
        )
    messages = inbox.get("messages", [])
    if messages:
        lines.append(f"   inbox (unread {inbox.get('unread')}), newest message:")
        lines += ["     | " + line for line in messages[0]["body"].splitlines() if line.strip()]
    return "\n".join(lines)


async def run_demo(client: SentinelClient, simulator_url: str, gateway_url: str) -> list[WithdrawalView]:
    run_tag = time.strftime("%H%M%S")
    chosen = scenarios()
    views = await asyncio.gather(*(play(sc, client, simulator_url, gateway_url, run_tag) for sc in chosen))
    settings = get_settings()
    secret = settings.user_token_secret
    async with httpx.AsyncClient(timeout=10) as http:
        for sc, view in zip(chosen, views, strict=False):
            # the app reads its user's inbox with a signed user token (docs/gateway.md)
            token = make_user_token(view.user_id, secret, time.time(), 300)
            inbox = (
                await http.get(
                    f"{gateway_url}/v1/users/{view.user_id}/inbox",
                    headers={"Authorization": f"Bearer {token}"},
                )
            ).json()
            sim_order = None
            if sc.channel != "generic":  # what the simulator's native side saw
                sim_order = (await http.get(f"{simulator_url}/_sim/orders/{view.order_id}")).json()
            # the notice's link; a withdrawal without a notice gets one made the same way
            link = newest_link(inbox) or make_link(
                settings.app_base_url,
                "track",
                view.withdrawal_id,
                view.user_id,
                settings.link_secret.get_secret_value(),
                int(time.time()),
                settings.link_ttl_s,
            )
            print(render(sc, view, inbox, sim_order, progress_url(gateway_url, link)), flush=True)
            print(flush=True)
    return views

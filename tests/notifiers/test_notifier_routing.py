"""ProviderChain over real HTTP: region routing by phone prefix, failover on retryable
errors (500, 429, timeout, throttling), no failover on a bad number, per-provider circuit
breakers with an injected clock. The fake providers (which verify signatures and fields)
come from tests/support/fake_providers.py.
"""

from __future__ import annotations

import httpx
import pytest

from notifiers.base import HANDING_OVER, CannotTell, DeliveryError
from notifiers.routing import (
    DEFAULT_SMS_ROUTES,
    AmbiguousDeliveryError,
    CircuitBreaker,
    ProviderChain,
    RouteRule,
    parse_routes,
    route_for,
)
from notifiers.sms_twilio import TwilioSmsNotifier
from sentinel.taxonomy import ExceptionCategory, Stage
from tests.support.fake_providers import (
    CN_PHONE,
    US_PHONE,
    aliyun_sms,
    make_notice,
    render,
    tencent_sms,
    twilio_config,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def sms_chain(aliyun, tencent, twilio, client, **kwargs) -> ProviderChain:
    providers = [
        aliyun_sms(aliyun, client),
        tencent_sms(tencent, client),
        TwilioSmsNotifier(twilio_config(twilio), client=client),
    ]
    return ProviderChain("sms", providers, **kwargs)


async def send(chain: ProviderChain, **notice_kwargs) -> str:
    notice = make_notice(**notice_kwargs)
    return await chain.send(notice, render(notice))


# --------------------------------------------------------------------------- routing


async def test_mainland_number_goes_to_aliyun_first(aliyun, tencent, twilio, client):
    chain = sms_chain(aliyun, tencent, twilio, client)
    message_id = await send(chain, phone=CN_PHONE)
    assert message_id.startswith("aliyun:") and message_id.endswith("^0")
    assert len(aliyun.received) == 1 and tencent.received == [] and twilio.received == []
    assert chain.provider == "aliyun|tencent|twilio"


async def test_other_numbers_go_to_twilio(aliyun, tencent, twilio, client):
    chain = sms_chain(aliyun, tencent, twilio, client)
    message_id = await send(chain, phone=US_PHONE, locale="en-US")
    assert message_id.startswith("twilio:SM")
    assert aliyun.received == [] and tencent.received == [] and len(twilio.received) == 1


async def test_routes_are_data_and_longest_prefix_wins(aliyun, tencent, twilio, client):
    routes = [("+86", ["tencent", "aliyun"]), {"prefix": "+852", "providers": ["twilio"]}, ("", ["twilio"])]
    chain = sms_chain(aliyun, tencent, twilio, client, rules=routes)
    assert (await send(chain, phone=CN_PHONE)).startswith("tencent:")
    assert (await send(chain, phone="+85291234567", locale="en-US")).startswith("twilio:")
    assert route_for("+8613800138000", DEFAULT_SMS_ROUTES) == ("aliyun", "tencent")
    assert route_for(None, DEFAULT_SMS_ROUTES) == ("twilio",)
    assert route_for("+1415", [RouteRule("+86", ("aliyun",))]) == ()


def test_bad_route_data_is_refused(aliyun, tencent, twilio, client):
    with pytest.raises(ValueError, match="not configured"):
        sms_chain(aliyun, tencent, twilio, client, rules=[("+86", ["huawei"])])
    with pytest.raises(ValueError, match="prefix"):
        parse_routes([("86", ["aliyun"])])
    with pytest.raises(ValueError, match="no provider"):
        parse_routes([("+86", [])])


async def test_no_reachable_provider_means_no_reach(aliyun, tencent, twilio, client):
    chain = sms_chain(aliyun, tencent, twilio, client)
    no_template = make_notice(stage=Stage.REJECTED, category=ExceptionCategory.RISK_HOLD)
    assert not chain.can_reach(no_template)  # neither China provider has a template for it
    with pytest.raises(DeliveryError) as err:
        await chain.send(no_template, render(no_template))
    assert not err.value.retryable

    # with Twilio as the last resort for mainland numbers, the notice still goes out
    fallback = sms_chain(aliyun, tencent, twilio, client, rules=[("+86", ["aliyun", "tencent", "twilio"])])
    assert fallback.can_reach(no_template)
    assert (await fallback.send(no_template, render(no_template))).startswith("twilio:")


# --------------------------------------------------------------------------- failover


@pytest.mark.parametrize(
    "failure",
    [
        ("http", 500, {"Code": "InternalError"}),
        ("http", 429, {"Code": "Throttling.User"}),
        ("sleep", 0.6),
        ("code", "isv.BUSINESS_LIMIT_CONTROL"),
    ],
    ids=["500", "429", "timeout", "throttled"],
)
async def test_retryable_failure_fails_over_to_the_next_provider(aliyun, tencent, twilio, failure):
    aliyun.plan.append(failure)
    async with httpx.AsyncClient(timeout=0.3) as short:
        # an ambiguous timeout fails over only when asked to (the default is exactly once)
        chain = sms_chain(aliyun, tencent, twilio, short, failover_on_ambiguous=failure[0] == "sleep")
        notice = make_notice()
        message_id = await chain.send(notice, render(notice))
    assert message_id.startswith("tencent:5000:")
    # the same notice key reached both providers: receipts from either map back to it
    assert aliyun.received[0]["params"]["OutId"] == notice.key
    assert tencent.received[0]["body"]["SessionContext"] == notice.key
    assert twilio.received == []
    assert aliyun.rejected == [] and tencent.rejected == []


@pytest.mark.parametrize("code", ["isv.MOBILE_NUMBER_ILLEGAL", "isv.BLACK_KEY_CONTROL_LIMIT"])
async def test_bad_number_does_not_fail_over(aliyun, tencent, twilio, client, code):
    aliyun.plan.append(("code", code))
    chain = sms_chain(aliyun, tencent, twilio, client)
    with pytest.raises(DeliveryError) as err:
        await send(chain)
    assert not err.value.retryable
    assert code in str(err.value) and str(err.value).startswith("aliyun:")
    assert tencent.received == []
    assert chain.breakers["aliyun"].failures == 0  # the provider answered; not its fault


async def test_every_provider_failing_is_retryable(aliyun, tencent, twilio, client):
    aliyun.plan.append(("http", 503, {"Code": "ServiceUnavailable"}))
    tencent.plan.append(("error", "InternalError.Timeout"))
    chain = sms_chain(aliyun, tencent, twilio, client)
    with pytest.raises(DeliveryError) as err:
        await send(chain)
    assert err.value.retryable
    assert "aliyun:" in str(err.value) and "tencent:" in str(err.value)


async def test_ambiguous_timeout_does_not_fail_over_by_default(aliyun, tencent, twilio):
    aliyun.plan.append(("sleep", 0.6))
    async with httpx.AsyncClient(timeout=0.3) as short:
        chain = sms_chain(aliyun, tencent, twilio, short)
        with pytest.raises(AmbiguousDeliveryError):
            await send(chain)
    assert tencent.received == []


# --------------------------------------------------------------------------- circuit breaker


async def test_breaker_opens_skips_the_provider_then_half_opens(aliyun, tencent, twilio, client):
    clock = FakeClock()
    attempts = []
    chain = sms_chain(
        aliyun,
        tencent,
        twilio,
        client,
        failure_threshold=2,
        cooldown_s=30,
        clock=clock,
        on_attempt=lambda notice, attempt: attempts.append((attempt.provider, attempt.outcome)),
    )
    aliyun.plan += [("http", 500, {"Code": "InternalError"})] * 2

    # two consecutive failures: both notices fail over, the breaker opens
    assert (await send(chain)).startswith("tencent:")
    assert (await send(chain)).startswith("tencent:")
    assert chain.breakers["aliyun"].state == CircuitBreaker.OPEN
    assert len(aliyun.received) == 2

    # open: aliyun is not even called
    assert (await send(chain)).startswith("tencent:")
    assert len(aliyun.received) == 2
    assert attempts[-2:] == [("aliyun", "skipped_open"), ("tencent", "sent")]

    # cool-down over: one trial; it fails, the breaker opens again
    clock.advance(31)
    assert chain.breakers["aliyun"].state == CircuitBreaker.HALF_OPEN
    aliyun.plan.append(("http", 502, {"Code": "BadGateway"}))
    assert (await send(chain)).startswith("tencent:")
    assert len(aliyun.received) == 3
    assert chain.breakers["aliyun"].state == CircuitBreaker.OPEN
    assert (await send(chain)).startswith("tencent:")
    assert len(aliyun.received) == 3

    # next cool-down: the trial succeeds and the breaker closes
    clock.advance(31)
    assert (await send(chain)).startswith("aliyun:")
    assert chain.breakers["aliyun"].state == CircuitBreaker.CLOSED
    assert (await send(chain)).startswith("aliyun:")
    assert aliyun.rejected == [] and tencent.rejected == []


def test_half_open_lets_exactly_one_trial_through():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10, clock=clock)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == CircuitBreaker.OPEN and not breaker.allow()
    clock.advance(10)
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # a concurrent second request waits for the verdict
    breaker.release()  # the trial was cancelled: no verdict
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CircuitBreaker.CLOSED and breaker.allow() and breaker.allow()


def test_breaker_counts_consecutive_failures_only():
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=10, clock=FakeClock())
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == CircuitBreaker.CLOSED
    breaker.record_failure()
    assert breaker.state == CircuitBreaker.OPEN


# --------------------------------------------------------------------------- after a crash (R8)


async def test_each_provider_is_recorded_before_it_is_handed_the_notice(aliyun, tencent, twilio, client):
    """R8: the chain names a provider (HANDING_OVER, the delivery log) before that provider
    is asked to send: after a crash the log knows which providers could have the notice."""
    seen: list[tuple[str, int, int]] = []

    async def record(provider: str) -> None:
        seen.append((provider, len(aliyun.received), len(tencent.received)))

    aliyun.plan.append(("http", 500, {"Code": "InternalError"}))
    token = HANDING_OVER.set(record)
    try:
        message_id = await send(sms_chain(aliyun, tencent, twilio, client))
    finally:
        HANDING_OVER.reset(token)
    assert message_id.startswith("tencent:")
    assert seen == [("aliyun", 0, 0), ("tencent", 1, 0)]  # each named before its request


async def test_find_sent_asks_only_the_providers_the_notice_was_handed_to(aliyun, tencent, twilio, client):
    """R8: after a crash the chain asks the providers the log names: Aliyun alone can be
    asked, so a notice handed only to Aliyun is settled by its answer; one also handed to
    Tencent (which cannot be asked) or to a provider no longer configured stays unknown."""
    chain = sms_chain(aliyun, tencent, twilio, client)
    notice = make_notice()
    assert await chain.find_sent(notice, ("aliyun",)) is None  # not at Aliyun: certainly not sent
    with pytest.raises(CannotTell):
        await chain.find_sent(notice)  # not recorded: Tencent may have it
    with pytest.raises(CannotTell):
        await chain.find_sent(notice, ("aliyun", "tencent"))
    with pytest.raises(CannotTell, match="no longer configured"):
        await chain.find_sent(notice, ("aliyun", "retired-provider"))
    assert tencent.received == [] and twilio.received == []

    await chain.send(notice, render(notice))  # Aliyun accepts it
    assert await chain.find_sent(notice, ("aliyun",)) == f"aliyun:OutId={notice.key} (3)"

"""Routing and resilience for one channel served by several providers.

``ProviderChain`` is itself a :class:`~notifiers.base.Notifier`: the notice activity hands
it a notice like any other channel. For each notice it

1. picks the providers for the recipient's phone number from data (longest matching
   prefix wins; ``""`` is the fallback rule)::

       [("+86", ["aliyun", "tencent"]), ("", ["twilio"])]

2. tries them in that order, skipping a provider that cannot reach the notice (no
   template for it, no device token, wrong country) or whose circuit breaker is open;
3. fails over to the next provider only on a *retryable* :class:`DeliveryError` (5xx,
   429, timeout, throttling, a provider whose account or configuration is broken). A
   non-retryable error (bad number, number on a block list, content refused) is raised at
   once: a bad number is bad everywhere, and a second provider would only bill again;
4. returns ``"<provider>:<provider message id>"`` so the delivery log shows who sent it.

Before it asks a provider to send, the chain names it (``handing_over``: the notice activity
writes ``handed:<provider>`` into the delivery row). After a crash mid-send the takeover
therefore asks only the providers that may have the notice (``find_sent(notice, tried)``),
and sends at once when none was named (docs/reliability.md).

Every provider has a :class:`CircuitBreaker`: it opens after ``failure_threshold``
consecutive retryable failures, lets one trial request through after ``cooldown_s``
(half-open), closes on a success and opens again on a failure. The clock is injectable.

A *timeout after the request was sent* is ambiguous: the provider may have accepted the
message. Failing over then risks a second SMS; not failing over risks none. Exactly once
wins, so by default the chain does not fail over on it: it raises the retryable
:class:`AmbiguousDeliveryError`, the activity retries on the same route, and after
``failure_threshold`` such failures the breaker opens and the next provider takes the
traffic. ``failover_on_ambiguous=True`` fails over at once instead (a duplicate then carries
the same notice key: Aliyun ``OutId``, Tencent ``SessionContext``, Twilio callback URL).

The module also holds the HTTP helpers the provider modules share (``http_request``,
``status_is_retryable``): a timeout, a refused connection, 408/425/429 and 5xx are
retryable everywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from notifiers.base import CannotTell, DeliveryError, Notifier, handing_over
from sentinel.models import NoticeRequest
from sentinel.render import RenderedNotice

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- HTTP helpers

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class AmbiguousDeliveryError(DeliveryError):
    """The request may have reached the provider (read timeout, connection dropped after
    sending). Retryable, but a retry or a failover may deliver twice."""


def status_is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


async def http_request(
    client: httpx.AsyncClient, provider: str, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """``client.request`` with transport failures turned into retryable DeliveryErrors.
    Never logs or returns request headers (they carry credentials)."""
    try:
        return await client.request(method, url, **kwargs)
    except (httpx.ConnectTimeout, httpx.ConnectError, httpx.PoolTimeout) as exc:
        raise DeliveryError(f"{provider}: cannot connect ({type(exc).__name__})", retryable=True) from exc
    except httpx.TimeoutException as exc:
        raise AmbiguousDeliveryError(f"{provider}: timeout ({type(exc).__name__})", retryable=True) from exc
    except httpx.TransportError as exc:
        raise AmbiguousDeliveryError(
            f"{provider}: transport error ({type(exc).__name__})", retryable=True
        ) from exc


def json_body(response: httpx.Response, provider: str) -> dict[str, Any]:
    """The JSON object of a response; a non-JSON answer is the provider's fault (retryable
    if the status says so, else not)."""
    try:
        data = response.json()
    except ValueError:
        raise DeliveryError(
            f"{provider}: HTTP {response.status_code}, not JSON",
            retryable=status_is_retryable(response.status_code),
        ) from None
    if not isinstance(data, dict):
        raise DeliveryError(f"{provider}: HTTP {response.status_code}, unexpected JSON", retryable=True)
    return data


# --------------------------------------------------------------------------- routing rules


@dataclass(frozen=True)
class RouteRule:
    prefix: str  # E.164 prefix such as "+86"; "" matches every number (and no number)
    providers: tuple[str, ...]


DEFAULT_SMS_ROUTES: tuple[RouteRule, ...] = (
    RouteRule("+86", ("aliyun", "tencent")),
    RouteRule("", ("twilio",)),
)
DEFAULT_VOICE_ROUTES: tuple[RouteRule, ...] = (
    RouteRule("+86", ("aliyun", "twilio")),
    RouteRule("", ("twilio",)),
)
# FCM does not reach devices in mainland China; JPush does.
DEFAULT_PUSH_ROUTES: tuple[RouteRule, ...] = (
    RouteRule("+86", ("jpush", "fcm")),
    RouteRule("", ("fcm", "jpush")),
)


def parse_routes(data: Iterable[Any]) -> tuple[RouteRule, ...]:
    """Rules from configuration data: ``[("+86", ["aliyun", "tencent"]), ...]`` or
    ``[{"prefix": "+86", "providers": [...]}, ...]``."""
    rules: list[RouteRule] = []
    for item in data:
        if isinstance(item, RouteRule):
            rule = item
        elif isinstance(item, Mapping):
            rule = RouteRule(str(item.get("prefix", "")), tuple(item["providers"]))
        else:
            prefix, providers = item
            rule = RouteRule(str(prefix), tuple(providers))
        if rule.prefix and not (rule.prefix.startswith("+") and rule.prefix[1:].isdigit()):
            raise ValueError(f"route prefix must look like +86, got {rule.prefix!r}")
        if not rule.providers:
            raise ValueError(f"route {rule.prefix!r} lists no provider")
        rules.append(rule)
    return tuple(rules)


def route_for(phone: str | None, rules: Sequence[RouteRule]) -> tuple[str, ...]:
    """Provider names for a number: the longest matching prefix wins."""
    best: RouteRule | None = None
    for rule in rules:
        if (rule.prefix == "" or (phone or "").startswith(rule.prefix)) and (
            best is None or len(rule.prefix) > len(best.prefix)
        ):
            best = rule
    return best.providers if best else ()


# --------------------------------------------------------------------------- circuit breaker


class CircuitBreaker:
    """closed -> (``failure_threshold`` consecutive failures) -> open -> (``cooldown_s``)
    -> half-open: one trial request; success closes, failure opens again."""

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return self.CLOSED
        if self.clock() - self.opened_at >= self.cooldown_s:
            return self.HALF_OPEN
        return self.OPEN

    def allow(self) -> bool:
        state = self.state
        if state == self.CLOSED:
            return True
        if state == self.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def release(self) -> None:
        """The trial ended without a verdict (cancelled): let the next one through."""
        self._trial_in_flight = False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._trial_in_flight = False
        if self.opened_at is not None:  # the half-open trial failed
            self.opened_at = self.clock()
            return
        self.failures += 1
        if self.failures >= self.failure_threshold:
            self.opened_at = self.clock()


# --------------------------------------------------------------------------- the chain


@dataclass(frozen=True)
class Attempt:
    """One provider try, reported to ``on_attempt`` (metrics, audit trail)."""

    provider: str
    outcome: str  # sent, failed, rejected, skipped_open, skipped_unreachable
    detail: str = ""


class ProviderChain(Notifier):
    records_hand_over = True

    def __init__(
        self,
        channel: str,
        providers: Sequence[Notifier],
        rules: Iterable[Any] = DEFAULT_SMS_ROUTES,
        *,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        failover_on_ambiguous: bool = False,
        on_attempt: Callable[[NoticeRequest, Attempt], None] | None = None,
        on_breaker: Callable[[str, str, CircuitBreaker], None] | None = None,
    ):
        names = [p.provider for p in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names must be unique: {names}")
        for p in providers:
            if p.channel != channel:
                raise ValueError(f"{p.provider} serves channel {p.channel!r}, not {channel!r}")
        self.channel = channel
        self.provider = "|".join(names)[:32]  # the delivery log column is 32 wide
        self.providers = {p.provider: p for p in providers}
        self.rules = parse_routes(rules)
        unknown = sorted({n for r in self.rules for n in r.providers} - set(self.providers))
        if unknown:
            raise ValueError(f"routes name providers that are not configured: {unknown}")
        self.breakers = {n: CircuitBreaker(failure_threshold, cooldown_s, clock) for n in names}
        self.failover_on_ambiguous = failover_on_ambiguous
        self.on_attempt = on_attempt
        #: (channel, provider, breaker) when a provider's breaker opens, re-opens or closes:
        #: the worker keeps a snapshot the operations console reads (store/ops_health.py)
        self.on_breaker = on_breaker

    def candidates(self, notice: NoticeRequest) -> list[Notifier]:
        names = route_for(notice.withdrawal.contact.phone, self.rules)
        return [self.providers[n] for n in names]

    def can_reach(self, notice: NoticeRequest) -> bool:
        return any(p.can_reach(notice) for p in self.candidates(notice))

    def _report(self, notice: NoticeRequest, provider: str, outcome: str, detail: str = "") -> None:
        if self.on_attempt is not None:
            self.on_attempt(notice, Attempt(provider, outcome, detail))

    def _verdict(self, name: str, failed: bool) -> None:
        """Record a provider's verdict on its breaker; report the breaker when its state
        (or its opening time) changed."""
        breaker = self.breakers[name]
        before = breaker.opened_at
        if failed:
            breaker.record_failure()
        else:
            breaker.record_success()
        if breaker.opened_at != before and self.on_breaker is not None:
            try:
                self.on_breaker(self.channel, name, breaker)
            except Exception:  # a snapshot is never worth a notice
                log.exception("breaker snapshot of %s/%s failed", self.channel, name)

    async def send(self, notice: NoticeRequest, rendered: RenderedNotice) -> str:
        candidates = [p for p in self.candidates(notice) if p.can_reach(notice)]
        if not candidates:
            raise DeliveryError(f"{self.channel}: no provider can reach this recipient", retryable=False)
        errors: list[str] = []
        for notifier in candidates:
            name = notifier.provider
            breaker = self.breakers[name]
            if not breaker.allow():
                errors.append(f"{name}: circuit open")
                self._report(notice, name, "skipped_open")
                continue
            await handing_over(name)  # from here this provider may have it (recorded in the log)
            try:
                message_id = await notifier.send(notice, rendered)
            except DeliveryError as exc:
                if not exc.retryable:
                    self._verdict(name, failed=False)  # the provider answered; the recipient is the problem
                    self._report(notice, name, "rejected", str(exc))
                    raise DeliveryError(f"{name}: {exc}", retryable=False) from exc
                self._verdict(name, failed=True)
                errors.append(f"{name}: {exc}")
                self._report(notice, name, "failed", str(exc))
                if isinstance(exc, AmbiguousDeliveryError) and not self.failover_on_ambiguous:
                    raise AmbiguousDeliveryError("; ".join(errors), retryable=True) from exc
                continue
            except Exception as exc:  # a bug or an unexpected answer: the provider's fault, try the next
                self._verdict(name, failed=True)
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                self._report(notice, name, "failed", f"{type(exc).__name__}: {exc}")
                continue
            except BaseException:  # cancelled: no verdict on the provider
                breaker.release()
                raise
            self._verdict(name, failed=False)
            self._report(notice, name, "sent", message_id)
            return f"{name}:{message_id}"
        raise DeliveryError(f"{self.channel}: every provider failed: " + "; ".join(errors), retryable=True)

    async def find_sent(self, notice: NoticeRequest, tried: Collection[str] | None = None) -> str | None:
        """Ask the providers that could have it: those it was handed to (``tried``, from
        the delivery log), else every provider of the route that can reach it. Any of
        them that cannot tell, or that is no longer configured, makes the answer unknown
        (CannotTell); a provider it was never handed to is not asked."""
        if tried is None:
            asked = [p for p in self.candidates(notice) if p.can_reach(notice)]
        else:
            gone = sorted(set(tried) - set(self.providers))
            if gone:
                raise CannotTell(f"{', '.join(gone)} had the notice and is no longer configured: cannot ask")
            asked = [self.providers[n] for n in self.providers if n in tried]
        for notifier in asked:
            found = await notifier.find_sent(notice)
            if found is not None:
                return f"{notifier.provider}:{found}"
        return None

"""The workflow's notice work (R8, R13, R21, R31): a notice the lifecycle decided becomes a
record and one delivery per channel, sent now or deferred to quiet or legal hours (never
dropped); unread past the deadline, the next rung of the ladder; a read receipt stops every
ladder; a delivery given up pages operations. Deterministic: only activities do I/O."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, RetryState
from temporalio.exceptions import TimeoutError as GaveUp

with workflow.unsafe.imports_passed_through():
    from sentinel.contracts import CarriedState, DeferredSend, NoticeAck, NoticeGivenUp
    from sentinel.delivery import DeliveryOutcome, DeliveryResult
    from sentinel.models import NoticeRecord, NoticeRequest, WithdrawalRequest
    from sentinel.notice_policy import NoticePolicy
    from sentinel.taxonomy import Stage
    from sentinel.transition_types import DeliveryGaveUp, Event, NoticeRead, Notify, Transition

from workflows.state import FOLD_DEFERRED, NOTICE_NON_RETRYABLE


class Notices:
    """Mixed into WithdrawalWorkflow: the state and bookkeeping it relies on are its."""

    _req: WithdrawalRequest
    s: CarriedState
    _tasks: list[asyncio.Task[None]]
    _poke: bool
    _sa_dirty: bool
    _progress_dirty: bool

    def _event(self, what: str, source: str, detail: str | None = None) -> None:
        raise NotImplementedError

    def _step(self, event: Event) -> Transition:
        """Run the lifecycle function on ``event`` and carry out what needs no waiting
        (workflows/withdrawal.py)."""
        raise NotImplementedError

    @property
    def _notice_policy(self) -> NoticePolicy:
        assert self.s.notice_policy is not None, "tracking has not started"
        return self.s.notice_policy

    def _reachable(self, channel: str) -> bool:
        contact = self._req.contact
        if channel == "email":
            return bool(contact.email)
        if channel in ("sms", "voice"):
            return bool(contact.phone)
        return True

    def _notify(self, n: Notify) -> None:
        """A notice the lifecycle decided: severity, rung-0 channels, escalation deadline;
        then send or defer each channel's delivery (R13, R21, R31)."""
        s, policy = self.s, self._notice_policy
        severity = policy.severity(n.category, n.stage)
        escalate_after = None
        if n.to_used:
            channels = list(s.channels_used)
        elif n.channels is not None:
            channels = list(n.channels)
        else:
            channels = [c for c in policy.rung(severity, 0, s.available) if c != "ops_email"]
            escalate_after = policy.escalation_after(severity)
        channels = [c for c in channels if c in s.available and self._reachable(c)]
        seq = s.stage_seq.get(n.stage.value, 0) + 1
        s.stage_seq[n.stage.value] = seq
        now = workflow.now()
        record = NoticeRecord(
            key=f"{self._req.withdrawal_id}/{n.stage.value}/{seq}",
            stage=n.stage,
            category=n.category,
            severity=severity,
            status=n.status,
            channels=channels,
            at=now,
            escalate_at=now + timedelta(seconds=escalate_after) if escalate_after else None,
            documents=list(n.documents),
            alert=n.alert,
            variant=n.variant,
            retry_at=n.retry_at,
        )
        s.notices.append(record)
        if n.stage != Stage.OPERATOR_ALERT:
            s.severity = severity
            self._sa_dirty = self._progress_dirty = True
            if n.stage not in (Stage.RESOLVED, Stage.APPROVED):
                for c in channels:
                    if c not in s.channels_used:
                        s.channels_used.append(c)
        for channel in channels:
            self._schedule(record, channel, 0, n)

    def _schedule(self, record: NoticeRecord, channel: str, rung: int, facts: Notify | None = None) -> None:
        """Send now, or defer to the next opening of quiet / legal hours (never dropped).
        ``facts``: what the notice states, as decided; an escalation states today's."""
        s, contact = self.s, self._req.contact
        now = workflow.now()
        at = self._notice_policy.send_at(channel, record.severity, now, contact.timezone, contact.phone)
        notice = NoticeRequest(
            key=f"{record.key}/{channel}" + (f"/r{rung}" if rung else ""),
            channel=channel,
            stage=record.stage,
            category=record.category,
            subtype=facts.subtype if facts else s.subtype,
            severity=record.severity,
            status=record.status,
            reason_code=facts.reason_code if facts else s.reason_code,
            withdrawal=self._req,
            eta=facts.eta if facts else s.eta,
            documents=record.documents,
            rung=rung,
            alert=record.alert,
            variant=record.variant,
            retry_at=record.retry_at,
        )
        if at <= now:
            self._tasks.append(asyncio.create_task(self._deliver(record, notice)))
            return
        record.deferred.append(f"{channel}@{at.isoformat()}")
        self._event(
            f"{record.stage.value} notice via {channel} deferred (quiet or legal hours)",
            "notice",
            at.isoformat(),
        )
        if not workflow.patched(FOLD_DEFERRED):
            self._defer(at, record.key, notice)
            return
        after = self._notice_policy.escalation_after(record.severity)
        if record.escalate_at is not None and after:
            # the ladder counts from when the user can first get the notice, not from the night
            record.escalate_at = max(record.escalate_at, at + timedelta(seconds=after))
        self._hold(record, notice, at)

    def _hold(self, record: NoticeRecord, notice: NoticeRequest, at: datetime) -> None:
        """Wait for ``at``: on a folded channel held as batched in the delivery log (every
        notice of this user released at the same moment goes out as one message), else
        deferred here."""
        fold = self._notice_policy.fold
        if fold is not None and notice.channel in fold.channels:
            held = notice.model_copy(update={"hold_until": at})
            self._tasks.append(asyncio.create_task(self._deliver(record, held)))
        else:
            self._defer(at, record.key, notice)

    def _defer(self, at: datetime, key: str, notice: NoticeRequest) -> None:
        self.s.deferred.append(DeferredSend(at=at, key=key, notice=notice))

    def _record(self, key: str) -> NoticeRecord:
        return next(r for r in self.s.notices if r.key == key)

    def _still_true(self, record: NoticeRecord) -> bool:
        """Re-check before a late send: the withdrawal is still where the notice says and
        nobody has read it yet."""
        return record.read_at is None and (
            record.status == self.s.status or record.stage == Stage.OPERATOR_ALERT
        )

    def _notice_deadlines(self) -> list[datetime]:
        return [d.at for d in self.s.deferred] + [r.escalate_at for r in self.s.notices if r.escalate_at]

    def _notice_timers(self) -> None:
        now = workflow.now()
        due = [d for d in self.s.deferred if d.at <= now]
        for entry in due:
            self.s.deferred.remove(entry)
            notice = entry.notice
            record = self._record(entry.key)
            if not self._still_true(record):
                record.dropped.append(notice.channel)
                self._event(
                    f"deferred {record.stage.value} notice via {notice.channel} dropped: no longer true",
                    "notice",
                    self.s.status.value,
                )
                continue
            contact = self._req.contact
            at = self._notice_policy.send_at(
                notice.channel, record.severity, now, contact.timezone, contact.phone
            )
            if at > now and workflow.patched(FOLD_DEFERRED):
                # a fold window that ended outside quiet or legal hours: wait for the opening,
                # held with the user's other notices released then
                self._event(
                    f"{record.stage.value} notice via {notice.channel} deferred (quiet or legal hours)",
                    "notice",
                    at.isoformat(),
                )
                self._hold(record, notice, at)
                continue
            self._tasks.append(asyncio.create_task(self._deliver(record, notice)))
        for record in self.s.notices:
            if record.escalate_at is not None and record.escalate_at <= now:
                self._escalate(record)

    def _escalate(self, record: NoticeRecord) -> None:
        """Unread past the deadline: the next rung of the ladder (R21), if still true."""
        record.escalate_at = None
        if not self._still_true(record):
            self._event(f"escalation of {record.stage.value} notice cancelled: no longer true", "notice")
            return
        record.rung += 1
        policy, available = self._notice_policy, self.s.available
        channels = [c for c in policy.rung(record.severity, record.rung, available) if self._reachable(c)]
        self._event(
            f"{record.stage.value} notice unread; escalating to rung {record.rung}",
            "notice",
            ", ".join(channels) or "no channel available",
        )
        for channel in channels:
            if channel not in record.channels:
                record.channels.append(channel)
            self._schedule(record, channel, record.rung)
        after = policy.escalation_after(record.severity)
        if after and policy.rung(record.severity, record.rung + 1, available):
            record.escalate_at = workflow.now() + timedelta(seconds=after)

    @workflow.signal
    def notice_read(self, ack: NoticeAck) -> None:
        """The user read or acknowledged a notice on any channel: every pending ladder of
        this withdrawal stops, and deferred copies of what was read are not sent (R21)."""
        key = ack.key
        record = next((r for r in self.s.notices if key == r.key or key.startswith(r.key + "/")), None)
        if record is None:
            self._event("read receipt for an unknown notice ignored", ack.channel, ack.key)
            return
        if record.read_at is None:
            record.read_at = workflow.now()
            self._event(f"{record.stage.value} notice read via {ack.channel}", ack.channel)
        self._step(NoticeRead(record.stage))
        self._poke = True

    def _stop_escalations(self) -> None:
        for r in self.s.notices:
            if r.escalate_at is not None:
                r.escalate_at = None
                self._event(f"escalation of {r.stage.value} notice stopped: the user has read it", "notice")

    async def _deliver(self, record: NoticeRecord, notice: NoticeRequest) -> None:
        retry = self._notice_policy.retry
        give_up_s = retry.give_up_after(notice.channel)
        try:
            result = await workflow.execute_activity(
                "deliver_notice",
                notice,
                result_type=DeliveryResult,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(seconds=give_up_s),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=retry.initial_interval_s),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=retry.max_interval_s),
                    maximum_attempts=0,
                    non_retryable_error_types=NOTICE_NON_RETRYABLE,
                ),
            )
        except ActivityError as err:
            await self._given_up(record, notice, err, give_up_s)
            return
        status = result.status
        if status in (DeliveryOutcome.SENT, DeliveryOutcome.DUPLICATE):
            record.delivered.append(notice.channel)
        elif status == DeliveryOutcome.BATCHED and result.send_at is not None:
            # folding: the user just got a notice about another withdrawal on this channel, or
            # this one waits for the end of quiet or legal hours; it goes out with the user's
            # others released at the same moment (one message)
            self._defer(result.send_at, record.key, notice.model_copy(update={"hold_until": None}))
            if notice.hold_until is None:
                record.deferred.append(f"{notice.channel}@{result.send_at.isoformat()}")
                what = f"{notice.stage.value} notice via {notice.channel}"
                self._event(
                    f"{what} batched to fold with the user's others",
                    "notice",
                    result.send_at.isoformat(),
                )
            self._poke = True
        elif status == DeliveryOutcome.FOLDED:
            record.delivered.append(notice.channel)
            self._event(
                f"{notice.stage.value} notice via {notice.channel} folded into one message",
                "notice",
                result.detail,
            )
        else:
            record.suppressed.append(notice.channel)
            self._event(
                f"{notice.stage.value} notice via {notice.channel} {status.value}", "notice", result.detail
            )

    async def _given_up(
        self, record: NoticeRecord, notice: NoticeRequest, err: ActivityError, give_up_s: float
    ) -> None:
        """A notice could not be delivered: retried until the channel's give-up time, or
        refused for good. The delivery log says so, and operators are alerted (the inbox
        still has the notice)."""
        record.failed.append(notice.channel)
        cause = err.cause
        if isinstance(cause, GaveUp) or err.retry_state == RetryState.TIMEOUT:
            why = (
                f"not delivered within {int(give_up_s // 3600) or 1} h of retries"
                if give_up_s >= 3600
                else f"not delivered within {int(give_up_s)} s of retries"
            )
        else:
            why = f"refused: {cause}" if cause is not None else str(err)
        why = why[:200]
        self._event(f"{notice.stage.value} notice via {notice.channel} given up", "notice", why)
        try:
            await workflow.execute_activity(
                "give_up_notice",
                NoticeGivenUp(key=notice.key, reason=why),
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=20),
            )
        except ActivityError as mark_err:
            self._event(
                "could not mark the notice given up in the delivery log", "notice", str(mark_err.cause)
            )
        if self._step(DeliveryGaveUp(notice.stage, notice.channel, why)).ignored is None:
            self._poke = True

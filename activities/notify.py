"""The notice activity: render the notice from templates, claim its delivery row (unique
key: a retried activity never sends twice), hand it to the channel's notifier, and log
the outcome (R8). Channels plug in through ``notifiers.base.Notifier``.

Folding (``fold`` in config/notice_policy.yaml): an interruptive notice that comes within
the fold window of the user's last one about another withdrawal is *batched*: its row waits
and the workflow calls again when the window ends. The first batched notice called then
leads the digest: it takes every batched row of the user on that channel, leaves out those
no longer true (the withdrawal moved on), and sends ONE message listing the orders; the
others find themselves ``folded`` into it when their own call comes."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notice_preparation import NoticePreparation
from notifiers.base import HANDING_OVER, POINT_OF_NO_RETURN, CannotTell, DeliveryError, Notifier
from sentinel.contracts import NoticeGivenUp
from sentinel.delivery import DeliveryResult, DeliveryRow, DeliveryStatus
from sentinel.models import NoticeRequest
from sentinel.notice_policy import load_notice_policy
from sentinel.render import DigestItem, RenderedNotice, render_digest
from sentinel.taxonomy import Stage
from store.deliveries import (
    COMMITTING,
    claim_delivery,
    delivery_status,
    finish_delivery,
    give_up_delivery,
    handed_providers,
    mark_committing,
    mark_handed,
    record_suppressed,
)
from store.delivery_batches import finish_batch, lead_batch, record_batched, withdrawal_statuses
from store.tables import NoticeDelivery, WithdrawalEvent


def _sent_event(notice: NoticeRequest, at: datetime) -> WithdrawalEvent:
    """The event record's row of a sent notice (R27), written with its delivery row."""
    return WithdrawalEvent(
        key=f"notice/{notice.key}"[:200],
        withdrawal_id=notice.withdrawal.withdrawal_id,
        kind="notice",
        at=at,
        notice_channel=notice.channel,
        notice_key=notice.key[:200],
        stage=notice.stage.value,
        rung=notice.rung,
        status=notice.status.value,
        category=notice.category.value if notice.category else None,
        reason_code=notice.reason_code,
    )


class NotifyActivities(NoticePreparation):
    """The notice activities (deliver, give up); the steps before a send are the base class's."""

    @activity.defn(name="deliver_notice")
    async def deliver_notice(self, notice: NoticeRequest) -> DeliveryResult:
        notifier = self.notifiers.get(notice.channel)
        if notifier is None:
            raise ApplicationError(
                f"no notifier for channel {notice.channel!r}", type="UnknownChannel", non_retryable=True
            )
        if not notifier.can_reach(notice):
            return DeliveryResult(
                key=notice.key, channel=notice.channel, status="skipped", detail="no address"
            )
        if self._may_be_batched(notice) and notice.hold_until is None:
            known = await asyncio.to_thread(delivery_status, self.engine, notice.key)
            if known is not None and known.send_after is not None:  # batched earlier: the fold window is over
                return await self._digest(notice, notifier, known)
        w = notice.withdrawal
        rendered = self._render(notice)
        digest = hashlib.sha256(rendered.text.encode()).hexdigest()
        fold_until: datetime | None
        if notice.hold_until is not None and self._may_be_batched(notice):
            # deferred to the end of quiet or legal hours: held as batched, so the user's
            # notices released at that same moment fold into one message (the inbox is never held)
            reason, policy_version, fold_until = None, self._policy_version(), notice.hold_until
        else:
            reason, policy_version, fold_until = await asyncio.to_thread(self._policy_check, notice)
        row = NoticeDelivery(
            key=notice.key,
            withdrawal_id=w.withdrawal_id,
            user_id=w.user_id,
            channel=notice.channel,
            provider=notifier.provider[:32],
            stage=notice.stage.value,
            category=notice.category.value if notice.category else None,
            severity=notice.severity.value,
            template_id=rendered.template_id,
            policy_version=policy_version,
            text_sha256=digest,
        )
        if reason is not None:
            await asyncio.to_thread(record_suppressed, self.engine, row, reason)
            return DeliveryResult(key=notice.key, channel=notice.channel, status="suppressed", detail=reason)
        if fold_until is not None:
            status = await asyncio.to_thread(
                record_batched, self.engine, row, fold_until, notice.status.value
            )
            if status != DeliveryStatus.BATCHED:  # a retried call: the row went on meanwhile (folded)
                known = await asyncio.to_thread(delivery_status, self.engine, notice.key)
                return self._not_ours(notice, status, known.provider_message_id if known else None)
            return DeliveryResult(
                key=notice.key,
                channel=notice.channel,
                status="batched",
                send_at=fold_until,
                detail=f"folded with the user's other notices at {fold_until.isoformat()}",
            )
        claim = await asyncio.to_thread(claim_delivery, self.engine, row)
        if not claim.send:
            return self._not_ours(notice, claim.status, claim.provider_message_id)
        if activity.info().attempt > 1 and not await asyncio.to_thread(self._still_true, notice):
            # retried while the provider was down, and the withdrawal has moved on meanwhile
            why = "no longer true when the provider could be reached again: not sent"
            await asyncio.to_thread(
                finish_delivery, self.engine, claim.row_id, status=DeliveryStatus.SUPPRESSED, error=why
            )
            return DeliveryResult(key=notice.key, channel=notice.channel, status="suppressed", detail=why)
        if claim.previous in (DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN):
            found = await self._find_sent(notice, notifier, claim.row_id, claim.provider_message_id)
            if found is not None:
                return found
        return await self._send(notice, notifier, rendered, claim.row_id, digest)

    async def _find_sent(
        self, notice: NoticeRequest, notifier: Notifier, row_id: int, marker: str | None
    ) -> DeliveryResult | None:
        """An earlier attempt died after handing the notice over, before the log said so:
        ask the provider before sending again (by the notice key). None: send it."""
        tried = handed_providers(marker)
        if notifier.records_hand_over and not tried:
            # it died before handing the notice to any provider: none can have it
            activity.logger.info(
                "notice %s: earlier attempt died before handing it to a provider; sending", notice.key
            )
            return None
        try:
            message_id = await notifier.find_sent(notice, tried)
        except CannotTell:
            if notifier.marks_point_of_no_return and marker != COMMITTING:
                # it died before the provider could have the notice (SMTP: before DATA)
                activity.logger.info(
                    "notice %s: earlier attempt died before %s could accept it; sending",
                    notice.key,
                    notifier.provider,
                )
                return None
            policy = (
                self.notice_policy.derived(load_notice_policy) if self.notice_policy is not None else None
            )
            if policy is not None and policy.resend_unconfirmed(notice.channel):
                activity.logger.warning(
                    "notice %s: earlier attempt died mid-send and %s cannot tell; sending again "
                    "(at least once)",
                    notice.key,
                    notifier.provider,
                )
                return None
            why = (
                f"an earlier attempt died mid-send and {notifier.provider} cannot tell whether it went out: "
                "not sent again (at most once; the inbox has the notice)"
            )
            await asyncio.to_thread(
                finish_delivery, self.engine, row_id, status=DeliveryStatus.UNCONFIRMED, error=why
            )
            activity.logger.warning("notice %s: %s", notice.key, why)
            return DeliveryResult(key=notice.key, channel=notice.channel, status="unconfirmed", detail=why)
        except DeliveryError as exc:
            await asyncio.to_thread(
                finish_delivery,
                self.engine,
                row_id,
                status=DeliveryStatus.UNKNOWN,
                error=f"could not check whether it was sent: {exc}",
            )
            raise ApplicationError(
                f"{notice.key}: could not check with the provider: {exc}", type="TransientDeliveryError"
            ) from None
        if message_id is None:
            return None
        await asyncio.to_thread(
            finish_delivery,
            self.engine,
            row_id,
            status=DeliveryStatus.SENT,
            provider_message_id=message_id,
            error=None,
        )
        activity.logger.info("notice %s was already sent (%s): not sent again", notice.key, message_id)
        return DeliveryResult(
            key=notice.key,
            channel=notice.channel,
            status="sent",
            provider_message_id=message_id,
            detail="found at the provider after an interrupted attempt",
        )

    def _still_true(self, notice: NoticeRequest) -> bool:
        """The withdrawal is still where the notice says (projection); operator alerts always are."""
        if notice.stage == Stage.OPERATOR_ALERT:
            return True
        wid = notice.withdrawal.withdrawal_id
        current = withdrawal_statuses(self.engine, [wid]).get(wid)
        return current is None or current[0] == notice.status.value

    @activity.defn(name="give_up_notice")
    async def give_up_notice(self, given_up: NoticeGivenUp) -> None:
        """The workflow stopped trying to deliver a notice: the delivery log says so."""
        marked = await asyncio.to_thread(give_up_delivery, self.engine, given_up.key, given_up.reason)
        activity.logger.warning(
            "notice %s given up: %s%s",
            given_up.key,
            given_up.reason,
            "" if marked else " (its row was already final)",
        )

    def _not_ours(
        self, notice: NoticeRequest, status: DeliveryStatus, provider_message_id: str | None
    ) -> DeliveryResult:
        if status == DeliveryStatus.SENDING:
            # another attempt is sending right now: let the retry policy come back later
            raise ApplicationError(
                f"{notice.key} is being sent by another attempt", type="DeliveryInProgress"
            )
        if status == DeliveryStatus.SUPPRESSED:
            return DeliveryResult(
                key=notice.key,
                channel=notice.channel,
                status="suppressed",
                detail="left out of a digest: no longer true",
            )
        if status == DeliveryStatus.UNCONFIRMED:
            return DeliveryResult(
                key=notice.key,
                channel=notice.channel,
                status="unconfirmed",
                detail="an earlier attempt died mid-send; not sent again",
            )
        if status in (DeliveryStatus.FOLDING, DeliveryStatus.FOLDED):
            return DeliveryResult(
                key=notice.key,
                channel=notice.channel,
                status="folded",
                provider_message_id=provider_message_id,
                detail=f"in digest {provider_message_id}",
            )
        return DeliveryResult(
            key=notice.key,
            channel=notice.channel,
            status="duplicate",
            provider_message_id=provider_message_id,
        )

    async def _send(
        self, notice: NoticeRequest, notifier: Notifier, rendered: RenderedNotice, row_id: int, digest: str
    ) -> DeliveryResult:
        passed: list[bool] = []

        async def committing() -> None:
            await asyncio.to_thread(mark_committing, self.engine, row_id)
            passed.append(True)

        async def handing(provider: str) -> None:
            await asyncio.to_thread(mark_handed, self.engine, row_id, provider)

        token, handing_token = POINT_OF_NO_RETURN.set(committing), HANDING_OVER.set(handing)
        try:
            message_id = await notifier.send(notice, rendered)
        except DeliveryError as exc:
            # failed after the provider could have accepted it (SMTP: during DATA): unknown,
            # so the retry settles it like a crash (find_sent, then the policy), never blind
            status = DeliveryStatus.UNKNOWN if passed else DeliveryStatus.FAILED
            await asyncio.to_thread(finish_delivery, self.engine, row_id, status=status, error=str(exc))
            raise ApplicationError(
                str(exc),
                type="TransientDeliveryError" if exc.retryable else "PermanentDeliveryError",
                non_retryable=not exc.retryable,
            ) from None
        finally:
            POINT_OF_NO_RETURN.reset(token)
            HANDING_OVER.reset(handing_token)
        await asyncio.to_thread(
            finish_delivery,
            self.engine,
            row_id,
            status=DeliveryStatus.SENT,
            provider_message_id=message_id,
            template_id=rendered.template_id,
            text_sha256=digest,
            event=_sent_event(notice, self.clock()),
        )
        activity.logger.info("notice %s sent via %s (%s)", notice.key, notice.channel, message_id)
        return DeliveryResult(
            key=notice.key, channel=notice.channel, status="sent", provider_message_id=message_id
        )

    async def _digest(self, notice: NoticeRequest, notifier: Notifier, known: DeliveryRow) -> DeliveryResult:
        """The fold window of a batched notice is over: lead the user's digest on this
        channel, or find this notice already folded into another one."""
        w = notice.withdrawal
        others = await asyncio.to_thread(
            lead_batch, self.engine, notice.key, w.user_id, notice.channel, known.send_after
        )
        if others is None:
            latest = await asyncio.to_thread(delivery_status, self.engine, notice.key)
            assert latest is not None  # the row was there a moment ago
            return self._not_ours(notice, latest.status, latest.provider_message_id)
        current = await asyncio.to_thread(withdrawal_statuses, self.engine, [r.withdrawal_id for r in others])
        keep = [
            r
            for r in others
            if r.withdrawal_id != w.withdrawal_id
            and current.get(r.withdrawal_id, ("",))[0] == r.notice_status
        ]
        dropped = [r.key for r in others if r not in keep]
        row_id = known.row_id
        if known.status in (DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN):
            # taken over from a leader that died mid-send: ask the provider before sending again
            found = await self._find_sent(notice, notifier, row_id, known.provider_message_id)
            if found is not None:
                await asyncio.to_thread(finish_batch, self.engine, notice.key, [r.key for r in keep], dropped)
                return found
        orders = list(dict.fromkeys(r.withdrawal_id for r in reversed(keep)))  # newest first
        if not orders:  # nothing else still true: this notice goes out on its own
            rendered = self._render(notice)
            result = await self._send(
                notice, notifier, rendered, row_id, hashlib.sha256(rendered.text.encode()).hexdigest()
            )
        else:
            items = [DigestItem(w.withdrawal_id, w.card_last4)] + [
                DigestItem(o, current[o][1] or "----") for o in orders
            ]
            rendered = render_digest(
                w.locale,
                items,
                link=self._link(notice),
                support_phone=self.support_phone,
                support_url=self.support_url,
                brand=self.brand,
            )
            folded = notice.model_copy(update={"folded": orders})
            result = await self._send(
                folded, notifier, rendered, row_id, hashlib.sha256(rendered.text.encode()).hexdigest()
            )
            result = result.model_copy(
                update={"detail": f"digest of {1 + len(orders)} withdrawals: {', '.join(orders)}"}
            )
        await asyncio.to_thread(finish_batch, self.engine, notice.key, [r.key for r in keep], dropped)
        return result

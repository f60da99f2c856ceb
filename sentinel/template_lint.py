"""Every notice the templates can produce, rendered: the template lint of the tests and the
provider template check (``notifiers.template_check``) walk these. A sample withdrawal
fills them in; nothing here is used to send a notice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sentinel.links import make_link
from sentinel.locales import template_locale
from sentinel.models import NoticeRequest, WithdrawalRequest
from sentinel.render import RenderedNotice, render_notice
from sentinel.taxonomy import ExceptionCategory, Severity, Stage, WithdrawalStatus
from sentinel.template_files import LOCALES, VARIANTS, link_kind_for, load_templates

_DETECTED_STATUS: dict[ExceptionCategory | None, WithdrawalStatus] = {
    None: WithdrawalStatus.PROCESSING,
    ExceptionCategory.BANK_DELAY: WithdrawalStatus.DELAYED,
    ExceptionCategory.ACCOUNT_INFO_ERROR: WithdrawalStatus.FAILED,
    ExceptionCategory.RISK_HOLD: WithdrawalStatus.UNDER_REVIEW,
    ExceptionCategory.BALANCE_OR_LIMIT: WithdrawalStatus.FAILED,
    ExceptionCategory.PLATFORM_ERROR: WithdrawalStatus.PROCESSING,
    ExceptionCategory.USER_ACCOUNT_RESTRICTED: WithdrawalStatus.FAILED,
    ExceptionCategory.REGULATORY: WithdrawalStatus.FAILED,
    ExceptionCategory.CHANNEL_REJECTED: WithdrawalStatus.FAILED,
    ExceptionCategory.DUPLICATE: WithdrawalStatus.MANUAL_CHECK,
    ExceptionCategory.AWAITING_USER_ACTION: WithdrawalStatus.PROCESSING,
    ExceptionCategory.CANCELLED: WithdrawalStatus.FAILED,
    ExceptionCategory.RETURNED_AFTER_SUCCESS: WithdrawalStatus.RETURNED,
}
_STAGE_STATUS: dict[Stage, WithdrawalStatus] = {
    Stage.DELAYED: WithdrawalStatus.DELAYED,
    Stage.UNDER_REVIEW: WithdrawalStatus.UNDER_REVIEW,
    Stage.DOCUMENTS_REQUESTED: WithdrawalStatus.UNDER_REVIEW,
    Stage.REVIEW_DELAYED: WithdrawalStatus.UNDER_REVIEW,
    Stage.DOCUMENTS_EXPIRED: WithdrawalStatus.FAILED,
    Stage.MANUAL_CHECK: WithdrawalStatus.MANUAL_CHECK,
    Stage.APPROVED: WithdrawalStatus.PROCESSING,
    Stage.REJECTED: WithdrawalStatus.FAILED,
    Stage.RESOLVED: WithdrawalStatus.SUCCEEDED,
    Stage.CORRECTION: WithdrawalStatus.MANUAL_CHECK,
    Stage.RETURNED: WithdrawalStatus.RETURNED,
}


def canonical_status(stage: Stage, category: ExceptionCategory | None) -> WithdrawalStatus:
    """The withdrawal status a notice of this stage and category normally goes out with."""
    if stage in _STAGE_STATUS:
        return _STAGE_STATUS[stage]
    return _DETECTED_STATUS[category]


def sample_withdrawal(**overrides: Any) -> WithdrawalRequest:
    fields: dict[str, Any] = dict(
        withdrawal_id="W1001",
        user_id="u1",
        amount="100.00",
        currency="CNY",
        channel="generic",
        bank_code="ICBC",
        card_last4="1234",
        payee_ref="vault:tok_1",
    )
    fields.update(overrides)
    return WithdrawalRequest(**fields)


def render_all_combinations(
    withdrawal: WithdrawalRequest | None = None,
    *,
    locales: Iterable[str] = LOCALES,
    stages: Iterable[Stage] = tuple(Stage),
    statuses: Iterable[WithdrawalStatus] | None = None,
    support_phone: str = "555-0100",
    support_url: str = "https://pay.example/support",
    base_url: str = "https://pay.example/app",
    link_secret: str = "lint-only-secret",
    now: datetime = datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
    eta: datetime | None = datetime(2026, 11, 28, 8, 0, tzinfo=UTC),
    documents: tuple[str, ...] = ("id_photo", "transaction_proof"),
    reason_code: str | None = "LINT_CODE",
) -> Iterator[tuple[NoticeRequest, RenderedNotice]]:
    """Render every locale x stage x category (and no category) x variant (what the
    workflow scheduled: none, or each of :data:`VARIANTS` the stage has) with the canonical
    status (or, with ``statuses``, every one of those statuses) for the template lint."""
    base = withdrawal or sample_withdrawal()
    for locale in locales:
        w = base.model_copy(update={"locale": locale})
        entries = load_templates(template_locale(locale)).doc.stages
        for stage in stages:
            variants = (None, *(v for v in VARIANTS if v in entries[stage]))
            for category, variant in ((c, v) for c in (None, *ExceptionCategory) for v in variants):
                for status in statuses or (canonical_status(stage, category),):
                    notice = NoticeRequest(
                        key=f"{w.withdrawal_id}:{stage.value}:{category.value if category else '-'}:{status.value}"
                        + (f":{variant}" if variant else ""),
                        channel="inbox",
                        stage=stage,
                        category=category,
                        severity=Severity.MEDIUM,
                        status=status,
                        reason_code=reason_code,
                        withdrawal=w,
                        eta=eta,
                        documents=list(documents) if stage is Stage.DOCUMENTS_REQUESTED else [],
                        variant=variant,
                        retry_at=now + timedelta(hours=6) if variant in ("RETRYING", "LIMIT_WAIT") else None,
                    )
                    link = make_link(
                        base_url,
                        link_kind_for(notice),
                        w.withdrawal_id,
                        w.user_id,
                        link_secret,
                        int(now.timestamp()),
                        86400,
                    )
                    yield (
                        notice,
                        render_notice(
                            notice,
                            reason_text=None,
                            action_text=None,
                            support_phone=support_phone,
                            support_url=support_url,
                            link=link,
                            now=now,
                        ),
                    )

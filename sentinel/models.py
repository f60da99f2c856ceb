"""Domain model (pydantic v2), shared by the workflow, the activities, the starter client
and the simulator. Pure: no I/O.

Money is a ``Decimal`` (serialised as a string), never a float. Card numbers never enter
the system: only the last four digits (``card_last4``) and an opaque ``payee_ref`` that the
platform's card vault resolves when the payout is sent (R22).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from sentinel.locales import normalise_locale
from sentinel.pan import REFUSAL, has_card_number, refuse_card_number
from sentinel.taxonomy import (
    ExceptionCategory,
    Fixer,
    PayoutState,
    RetryDecision,
    Severity,
    Stage,
    WithdrawalStatus,
)

#: any language tag, normalised (sentinel/locales.py): kept as the user asked; notices fall
#: back to zh-CN / en-US (``template_locale``), an unsupported locale is never refused
Locale = Annotated[str, BeforeValidator(normalise_locale)]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"

#: refuses a value that holds a card number (sentinel/pan.py); the 422 names the field
NoCard = AfterValidator(refuse_card_number)
#: an id we are handed (withdrawal, user, reviewer, order): the id pattern, and no card number
Id = Annotated[str, Field(pattern=ID_PATTERN), NoCard]

#: documents a reviewer may ask for and a user may upload (R18); the risk rules and the
#: notice templates name the same ones
DocumentKind = Literal["id_photo", "transaction_proof", "bank_statement", "address_proof"]
DOCUMENT_KINDS = frozenset(get_args(DocumentKind))


def reject_card_numbers(value: str, field: str) -> str:
    """Raise if a value holds a card number (sentinel/pan.py)."""
    if has_card_number(value):
        raise ValueError(f"{field} {REFUSAL}")
    return value


class _Model(BaseModel):
    # hide_input_in_errors: a refused value (it may be a card number) never reaches a log
    # line through the text of a validation error
    model_config = ConfigDict(extra="forbid", frozen=False, use_enum_values=False, hide_input_in_errors=True)


class Contact(_Model):
    """Where the user can be reached. Stays out of search attributes and memos."""

    email: Annotated[str | None, NoCard] = Field(
        default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    )
    #: not checked for card numbers: an E.164 number has at most 15 digits and one in ten
    #: would pass Luhn; its pattern is its check
    phone: str | None = Field(default=None, pattern=r"^\+[1-9]\d{6,14}$", description="E.164")
    timezone: Annotated[str, NoCard] = Field(
        default="Asia/Shanghai",
        max_length=64,
        description="IANA zone of the user: quiet hours and legal SMS/voice hours are in it (R13)",
    )


class WithdrawalRequest(_Model):
    """What the payment service hands over when a withdrawal starts (R34)."""

    withdrawal_id: Id = Field(description="the platform's withdrawal order number")
    user_id: Id = Field(description="the platform's user id; the user token's subject for the app endpoints")
    amount: Decimal = Field(
        gt=0,
        max_digits=18,
        decimal_places=4,
        description='decimal string, e.g. "100.00" (a JSON number with a fraction is refused as a float)',
    )
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. CNY")
    channel: Annotated[str, NoCard] = Field(
        pattern=r"^[a-z][a-z0-9_]{1,31}$", description="payout channel, e.g. generic, alipay"
    )
    bank_code: Annotated[str, NoCard] = Field(
        pattern=r"^[A-Z0-9_]{2,16}$",
        description="the payee bank's code, e.g. ICBC (delay thresholds per bank, operator filters)",
    )
    card_last4: str = Field(
        pattern=r"^\d{4}$",
        description="last four digits of the card or account: the only part of a number ever stored",
    )
    payee_ref: Annotated[str, NoCard] = Field(
        min_length=1,
        max_length=128,
        description="opaque reference the card vault resolves; never a card number",
    )
    locale: Locale = Field("zh-CN", description="language of the notices: zh-CN or en-US")
    contact: Contact = Field(
        default_factory=Contact, description="where the user is reached besides the in-app inbox"
    )
    created_at: datetime = Field(
        default_factory=lambda: datetime.now(UTC),  # sandbox-ok: the API fills it; a workflow receives it set
        description="when the user asked (default: when the request arrives); with a time zone",
    )
    card_added_at: datetime | None = Field(
        default=None, description="when the user bound this card (risk rules)"
    )

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float(cls, v: object) -> object:
        if isinstance(v, float):
            raise ValueError("amount must be a decimal string or integer, never a float")
        return v

    @field_validator("created_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("created_at needs a time zone")
        return v

    @property
    def workflow_id(self) -> str:
        return workflow_id_for(self.withdrawal_id)

    @property
    def card_mask(self) -> str:
        return f"**** {self.card_last4}"


def workflow_id_for(withdrawal_id: str) -> str:
    return f"withdrawal-{withdrawal_id}"


class Classification(_Model):
    """A channel's (status, code) translated into our terms (R26)."""

    state: PayoutState
    category: ExceptionCategory | None = None
    subtype: str | None = None
    retry: RetryDecision | None = None
    fixer: Fixer | None = None
    mapped: bool = True  # False: the code is not in the catalogue


class Observation(_Model):
    """One thing we learned about the payout, from a callback or a poll (R10, R11)."""

    order_id: Id = Field(description="the channel order number")
    source: Literal["callback", "poll", "submit", "review", "timer"]
    channel: str
    raw_status: str = Field(max_length=64)
    raw_code: str | None = Field(default=None, max_length=64)
    classification: Classification
    event_id: str | None = Field(
        default=None, max_length=128, description="the channel's delivery id, if any"
    )
    observed_at: datetime

    @property
    def dedup_key(self) -> str:
        return f"{self.order_id}|{self.raw_status}|{self.raw_code or ''}"


class ReviewDecision(_Model):
    """A reviewer's decision on a RISK_HOLD or MANUAL_CHECK case (R29)."""

    decision: Literal["approve", "reject", "request_documents"]
    reviewer: Id
    reason: Annotated[str, NoCard] = Field(min_length=1, max_length=500)
    documents: list[DocumentKind] = Field(
        default_factory=list, description="with request_documents: e.g. id_photo"
    )
    token: str | None = Field(
        None,
        max_length=2048,
        description="the gateway's signed proof of who decided (sentinel/decision_tokens.py); required by the "
        "workflow, kept out of its views",
    )

    @model_validator(mode="after")
    def _documents_listed(self) -> ReviewDecision:
        if self.decision == "request_documents" and not self.documents:
            raise ValueError("request_documents needs the list of documents")
        return self


class RiskHit(_Model):
    """A risk rule the withdrawal hit, with the rule set's version (R12)."""

    rule_id: str
    rule_version: str
    description: str
    documents: list[str] = Field(default_factory=list)
    detail: str


class TimelineEvent(_Model):
    at: datetime = Field(description="when it happened (UTC)")
    what: str = Field(description="what happened, in words")
    source: str = Field(description="who said so: workflow, timer, submit, poll, callback, review or notice")
    detail: str | None = Field(None, description="the raw code or answer, when there is one")


class NoticeRecord(_Model):
    """A notice the workflow asked for, as shown in the status query (R8)."""

    key: str
    stage: Stage
    category: ExceptionCategory | None
    severity: Severity
    status: WithdrawalStatus | None = Field(default=None, description="the withdrawal's status when decided")
    channels: list[str]
    delivered: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    suppressed: list[str] = Field(default_factory=list, description="skipped, folded or inhibited")
    dropped: list[str] = Field(default_factory=list, description="deferred, then no longer true")
    deferred: list[str] = Field(
        default_factory=list, description="channel@time for sends held to quiet/legal hours"
    )
    documents: list[str] = Field(default_factory=list)
    rung: int = 0
    escalate_at: datetime | None = None
    read_at: datetime | None = None
    at: datetime
    alert: str | None = Field(default=None, max_length=300, description="operator alerts: what went wrong")
    variant: str | None = Field(
        None, description="what was scheduled when it was decided (RETRYING, LIMIT_WAIT, OPS_FIX)"
    )
    retry_at: datetime | None = Field(None, description="when the payout is sent again, if that is scheduled")


class TrackingPolicy(_Model):
    """Timers and polling for one withdrawal, resolved from configuration (R23, R10)."""

    version: str
    delay_threshold_s: float = Field(gt=0, description="after this a payout not yet final counts as delayed")
    grace_s: float = Field(ge=0, description="a delay must last this long before anyone is told (R23)")
    manual_check_s: float = Field(gt=0, description="after this an unfinished payout goes to MANUAL_CHECK")
    poll_schedule_s: list[float] = Field(
        min_length=1, description="waits between polls; the last one repeats"
    )
    unknown_poll_s: float = Field(gt=0, description="wait before re-querying an UNKNOWN answer")
    return_watch_s: float = Field(ge=0, description="how long a success is watched for a return")
    review_sla_s: float = Field(gt=0, description="a review case older than this is escalated")
    documents_wait_s: float = Field(gt=0, description="how long requested documents are waited for")
    eta_hours: float = Field(gt=0, description="expected arrival told to the user in a delay notice")
    auto_retry_s: list[float] = Field(
        default_factory=lambda: [60.0, 300.0, 900.0, 1800.0, 3600.0],
        description="waits before each automatic resend after a passing refusal (bank offline); their count bounds it",
    )
    rate_limit_retry_s: list[float] = Field(
        default_factory=lambda: [30.0, 120.0, 600.0],
        description="waits before each resend after a rate limit",
    )
    limit_reset_at: str = Field(
        "00:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="when the channel's daily limits reset, local time of limit_reset_tz",
    )
    limit_reset_tz: str = Field(
        "Asia/Shanghai", description="the channel's own zone for daily limits and cut-offs"
    )
    max_limit_waits: int = Field(
        3, ge=0, le=30, description="days a withdrawal waits for a limit before a manual check"
    )
    max_history_events: int = Field(
        5000,
        ge=100,
        le=40000,
        description="past this many history events the workflow continues as new, carrying its whole state "
        "(also when Temporal suggests it)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> TrackingPolicy:
        if self.manual_check_s <= self.delay_threshold_s:
            raise ValueError("manual_check must be later than delay_threshold")
        return self


class WithdrawalView(_Model):
    """The answer of the workflow's ``status`` query: everything a person asks about one
    withdrawal (R16, R34)."""

    withdrawal_id: str = Field(description="the platform's withdrawal order number")
    user_id: str = Field(description="the platform's user id")
    amount: Decimal = Field(description="decimal string")
    currency: str = Field(description="ISO 4217 code")
    channel: str = Field(description="payout channel")
    bank_code: str = Field(description="the payee bank's code")
    card_last4: str = Field(description="last four digits of the card or account")
    status: WithdrawalStatus = Field(description="where the withdrawal stands")
    category: ExceptionCategory | None = Field(
        None, description="the kind of trouble, when there is one (R1-R5 and the added categories)"
    )
    subtype: str | None = Field(
        None, description="a finer kind within the category, e.g. rate or payee-quota for BALANCE_OR_LIMIT"
    )
    severity: Severity = Field(Severity.INFO, description="how urgently the user is told")
    reason_code: str | None = Field(
        None, description="the channel's code the category comes from (docs/error-codes.md)"
    )
    order_id: str
    attempt: int = 1
    needs_review: bool = Field(False, description="a person must decide (UNDER_REVIEW or MANUAL_CHECK)")
    next_step: str = Field(description="what happens next or what the user should do, in words")
    eta: datetime | None = Field(None, description="when the money is expected, when known")
    timeline: list[TimelineEvent] = Field(default_factory=list, description="every event, oldest first")
    notices: list[NoticeRecord] = Field(
        default_factory=list,
        description="every notice asked for, with its channels, deliveries and read time",
    )
    decisions: list[ReviewDecision] = Field(default_factory=list, description="review decisions applied")
    risk_hits: list[RiskHit] = Field(
        default_factory=list, description="risk rules that held the withdrawal (R12)"
    )
    four_eyes: bool = False
    approvals: list[str] = Field(default_factory=list, description="reviewers who approved so far")
    awaiting_documents: list[str] = Field(
        default_factory=list, description="documents the user is asked to upload (R18)"
    )
    review_since: datetime | None = Field(
        None, description="when the withdrawal started waiting for a person"
    )
    policy_version: str | None = Field(
        None, description="version of config/delays.yaml in force for this withdrawal"
    )


class NoticeRequest(_Model):
    """What the workflow asks a notice channel to deliver. Rendering happens in the
    activity from templates (data); the workflow only decides *what* to say and where."""

    key: str = Field(description="idempotency key: withdrawal + stage + channel + rung")
    channel: str
    stage: Stage
    category: ExceptionCategory | None = None
    subtype: str | None = None
    severity: Severity
    status: WithdrawalStatus
    reason_code: str | None = None
    withdrawal: WithdrawalRequest
    eta: datetime | None = None
    documents: list[str] = Field(default_factory=list)
    rung: int = 0
    folded: list[str] = Field(
        default_factory=list,
        description="set by the notice activity for a digest: the other orders it folds in",
    )
    alert: str | None = Field(default=None, max_length=300, description="operator alerts: what went wrong")
    variant: str | None = Field(
        None,
        description="what the workflow has scheduled, when it decides the text: RETRYING, LIMIT_WAIT, OPS_FIX",
    )
    retry_at: datetime | None = Field(
        None, description="RETRYING / LIMIT_WAIT: when the payout is sent again"
    )
    hold_until: datetime | None = Field(
        None,
        description="deferred to this moment (quiet or legal hours): the activity records it as batched, so the "
        "user's notices released at the same moment fold into one message",
    )

"""The progress page's story of one withdrawal (R16, R18, R20): the parcel-tracker steps,
where the money is, and the one next step the user can take. Pure: no I/O, no words (the
page has them in zh-CN and en-US, keyed by the names used here).

Steps: ``submitted`` -> ``bank`` (or ``review`` while a person checks it) -> the outcome
(``arrived``, ``failed``, ``returned``). Each step is ``done``, ``current``, ``todo``,
``warn`` (current, but slower or held) or ``problem`` (the outcome went wrong).
"""

from __future__ import annotations

from dataclasses import dataclass

from sentinel.taxonomy import ExceptionCategory, WithdrawalStatus

S = WithdrawalStatus

#: the categories whose cure is a corrected card (R18 one-click fix)
FIX_CARD = frozenset({ExceptionCategory.ACCOUNT_INFO_ERROR, ExceptionCategory.USER_ACCOUNT_RESTRICTED})


@dataclass(frozen=True)
class Step:
    name: str  # submitted, bank, review, check, arrived, failed, returned
    state: str  # done, current, todo, warn, problem


def steps(status: WithdrawalStatus) -> list[Step]:
    """The tracker's steps for ``status``, first to last."""
    if status == S.SUBMITTED:
        return [Step("submitted", "current"), Step("bank", "todo"), Step("arrived", "todo")]
    if status == S.PROCESSING:
        return [Step("submitted", "done"), Step("bank", "current"), Step("arrived", "todo")]
    if status == S.DELAYED:
        return [Step("submitted", "done"), Step("bank", "warn"), Step("arrived", "todo")]
    if status == S.UNDER_REVIEW:
        return [
            Step("submitted", "done"),
            Step("review", "warn"),
            Step("bank", "todo"),
            Step("arrived", "todo"),
        ]
    if status == S.MANUAL_CHECK:
        return [
            Step("submitted", "done"),
            Step("bank", "done"),
            Step("check", "warn"),
            Step("arrived", "todo"),
        ]
    if status == S.SUCCEEDED:
        return [Step("submitted", "done"), Step("bank", "done"), Step("arrived", "done")]
    if status == S.FAILED:
        return [Step("submitted", "done"), Step("bank", "done"), Step("failed", "problem")]
    if status == S.RETURNED:
        return [
            Step("submitted", "done"),
            Step("bank", "done"),
            Step("arrived", "done"),
            Step("returned", "problem"),
        ]
    raise ValueError(f"no steps for status {status!r}")


def money_at(status: WithdrawalStatus) -> str:
    """Where the money is now: ``with_us`` (held by the platform while we check),
    ``on_the_way`` (sent to the bank), ``card`` (arrived), ``balance`` (back in the user's
    platform balance)."""
    if status in (S.SUBMITTED, S.UNDER_REVIEW):
        return "with_us"
    if status in (S.PROCESSING, S.DELAYED, S.MANUAL_CHECK):
        return "on_the_way"
    if status == S.SUCCEEDED:
        return "card"
    return "balance"  # FAILED, RETURNED: the funds came back


def next_action(
    status: WithdrawalStatus, category: ExceptionCategory | None, awaiting_documents: list[str]
) -> str:
    """The one thing the user can do: ``upload_documents`` (a reviewer asked for them),
    ``fix_card`` (the payout failed or came back on the card details), or ``none``."""
    if awaiting_documents:
        return "upload_documents"
    if status in (S.FAILED, S.RETURNED) and (category in FIX_CARD or status == S.RETURNED):
        return "fix_card"
    return "none"

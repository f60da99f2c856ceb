"""Translate a channel's (raw status, reason code) into our terms (R26).

Pure: no I/O, no clock. The catalogue is passed in (``sentinel.catalogue``), so workflow
code can call this deterministically. It decides on the status and the code, never on
free text (a channel's message or sub_msg is for humans).

Rules, in order:

1. **State** comes from the channel's ``states`` map. A raw status that is not mapped (or
   an unknown channel) gives state UNKNOWN, category PLATFORM_ERROR, subtype
   ``unmapped-status`` (``unknown-channel`` for a channel without a catalogue), retry
   QUERY_FIRST, fixer OPERATIONS, ``mapped=False``. Nothing else is looked at.
2. A code that is not catalogued but equals a mapped raw status of the channel is treated
   as no code. Channels such as UnionPay and ChinaPay report one field that is both the
   status and the reason (``00``, ``05``, stat ``6``); adapters may pass it twice.
3. **Code present and known**: category, subtype, retry and fixer come from the entry.
   Then:

   - retry QUERY_FIRST -> state UNKNOWN (a timeout / system-error answer is never a
     failure: query before anything else).

   A refusal stays a refusal: RJCT AB08 (bank offline) is state FAILED with retry
   AUTO_SAME_ORDER, and the lifecycle (``sentinel/lifecycle.py``) sends the payout again;
   it is never shown as "with the bank" while nothing is in flight.

4. **Code present but unknown**: the status-derived state stays, category PLATFORM_ERROR,
   subtype ``unmapped``, fixer OPERATIONS, retry QUERY_FIRST when the state is UNKNOWN
   else AFTER_OPS_FIX, ``mapped=False``. The workflow sends unmapped failures to
   MANUAL_CHECK and operators then add the code to the catalogue.
5. **No code**, by state:

   - SUCCEEDED, PROCESSING, SUBMITTED -> no category;
   - UNKNOWN -> PLATFORM_ERROR, subtype ``unknown``, retry QUERY_FIRST, fixer NOBODY;
   - FAILED -> PLATFORM_ERROR, subtype ``no-code``, retry AFTER_OPS_FIX, fixer OPERATIONS,
     ``mapped=False`` (a failure without a reason goes to a manual check);
   - HELD -> RISK_HOLD, retry AFTER_OPS_FIX (a reviewer decides), fixer OPERATIONS;
   - RETURNED -> RETURNED_AFTER_SUCCESS, retry AFTER_USER_FIX, fixer USER (a return is
     usually a wrong card or name);
   - AWAITING_USER -> AWAITING_USER_ACTION, retry WAIT, fixer USER;
   - CANCELLED -> CANCELLED, retry NO_RETRY, fixer NOBODY.

With a known code the state is kept otherwise: RETURNED + AC04 is RETURNED with category
ACCOUNT_INFO_ERROR (the cause), HELD + FR01 is HELD with RISK_HOLD.
"""

from __future__ import annotations

from sentinel.catalogue import Catalogue
from sentinel.models import Classification
from sentinel.taxonomy import ExceptionCategory, Fixer, PayoutState, RetryDecision

_C = ExceptionCategory
_S = PayoutState
_R = RetryDecision
_F = Fixer

# Rule 5: a state without a code.
_NO_CODE: dict[PayoutState, Classification] = {
    _S.SUCCEEDED: Classification(state=_S.SUCCEEDED),
    _S.PROCESSING: Classification(state=_S.PROCESSING),
    _S.SUBMITTED: Classification(state=_S.SUBMITTED),
    _S.UNKNOWN: Classification(
        state=_S.UNKNOWN, category=_C.PLATFORM_ERROR, subtype="unknown", retry=_R.QUERY_FIRST, fixer=_F.NOBODY
    ),
    _S.FAILED: Classification(
        state=_S.FAILED,
        category=_C.PLATFORM_ERROR,
        subtype="no-code",
        retry=_R.AFTER_OPS_FIX,
        fixer=_F.OPERATIONS,
        mapped=False,
    ),
    _S.HELD: Classification(
        state=_S.HELD, category=_C.RISK_HOLD, retry=_R.AFTER_OPS_FIX, fixer=_F.OPERATIONS
    ),
    _S.RETURNED: Classification(
        state=_S.RETURNED, category=_C.RETURNED_AFTER_SUCCESS, retry=_R.AFTER_USER_FIX, fixer=_F.USER
    ),
    _S.AWAITING_USER: Classification(
        state=_S.AWAITING_USER, category=_C.AWAITING_USER_ACTION, retry=_R.WAIT, fixer=_F.USER
    ),
    _S.CANCELLED: Classification(
        state=_S.CANCELLED, category=_C.CANCELLED, retry=_R.NO_RETRY, fixer=_F.NOBODY
    ),
}


def classify(catalogue: Catalogue, channel: str, raw_status: str, code: str | None) -> Classification:
    """The channel's (status, code) in our terms. See the module docstring for the rules."""
    raw_status = (raw_status or "").strip()
    code = (code or "").strip() or None

    # Rule 1: the status.
    state = catalogue.state(channel, raw_status)
    if state is None:
        subtype = "unmapped-status" if channel in catalogue.sources else "unknown-channel"
        return Classification(
            state=_S.UNKNOWN,
            category=_C.PLATFORM_ERROR,
            subtype=subtype,
            retry=_R.QUERY_FIRST,
            fixer=_F.OPERATIONS,
            mapped=False,
        )

    entry = catalogue.lookup(channel, code)

    # Rule 2: a status repeated as the code.
    if code is not None and entry is None and catalogue.state(channel, code) is not None:
        code = None

    if code is None:
        # Rule 5.
        return _NO_CODE[state].model_copy()

    if entry is None:
        # Rule 4.
        return Classification(
            state=state,
            category=_C.PLATFORM_ERROR,
            subtype="unmapped",
            retry=_R.QUERY_FIRST if state == _S.UNKNOWN else _R.AFTER_OPS_FIX,
            fixer=_F.OPERATIONS,
            mapped=False,
        )

    # Rule 3.
    if entry.retry == _R.QUERY_FIRST:
        state = _S.UNKNOWN
    return Classification(
        state=state,
        category=entry.category,
        subtype=entry.subtype,
        retry=entry.retry,
        fixer=entry.fixer,
    )

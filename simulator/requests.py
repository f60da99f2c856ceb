"""One factory of withdrawal requests for everything that plays withdrawals without being
the product: the tests, the benchmarks (bench/) and the demo (starter/demo.py). Product
code never imports it (the simulator is not part of the product).

Each caller states only what its scenario needs; the rest is the one sample withdrawal
below (the shape of the template lint's ``sentinel.template_lint.sample_withdrawal``, the
product's own check sample, which cannot import this module).
"""

from __future__ import annotations

from typing import Any

from sentinel.models import WithdrawalRequest

#: the sample withdrawal: every field a request needs, none that decides a scenario
DEFAULTS: dict[str, Any] = {
    "withdrawal_id": "W1001",
    "user_id": "u1",
    "amount": "100.00",
    "currency": "CNY",
    "channel": "generic",
    "bank_code": "ICBC",
    "card_last4": "1234",
    "payee_ref": "vault:tok_1",
}


def withdrawal_request(withdrawal_id: str | None = None, **fields: Any) -> WithdrawalRequest:
    """A valid request: :data:`DEFAULTS`, then ``withdrawal_id``, then ``fields`` (any
    ``WithdrawalRequest`` field; validated as the gateway validates a real request)."""
    values = {**DEFAULTS, **fields}
    if withdrawal_id is not None:
        values["withdrawal_id"] = withdrawal_id
    return WithdrawalRequest(**values)

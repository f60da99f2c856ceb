"""Review decisions from tools (the CLI, the demo) go through the gateway's HTTP API with
the reviewer's own API key, never straight to Temporal: the gateway knows who the key
belongs to and signs the decision for the workflow (issue #11, docs/gateway.md)."""

from __future__ import annotations

import httpx


class DeskRefused(Exception):
    """The gateway answered with an error (the status, its error and detail)."""

    def __init__(self, status: int, error: str, detail: object):
        super().__init__(f"{error}: {detail}" if detail else error)
        self.status, self.error, self.detail = status, error, detail


async def post_decision(
    base_url: str,
    api_key: str,
    withdrawal_id: str,
    decision: str,
    reason: str,
    documents: list[str] | None = None,
    *,
    timeout: float = 60.0,
) -> dict:
    """POST /v1/reviews/{id}/decision as the owner of ``api_key``; the gateway's answer
    (withdrawal_id, decision, reviewer, status), or :class:`DeskRefused`."""
    body = {"decision": decision, "reason": reason, "documents": list(documents or [])}
    async with httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout) as http:
        resp = await http.post(
            f"/v1/reviews/{withdrawal_id}/decision", json=body, headers={"Authorization": f"Bearer {api_key}"}
        )
    if resp.status_code == 200:
        return resp.json()
    try:
        answer = resp.json()
    except ValueError:
        answer = {}
    error = answer.get("error") if isinstance(answer, dict) else None
    detail = answer.get("detail") if isinstance(answer, dict) else None
    raise DeskRefused(resp.status_code, error or f"HTTP {resp.status_code}", detail or resp.text[:300])

"""The typed Python client the payment service, reviewers and tools use (R34): start a
withdrawal, report a channel callback, send a review decision, read the status."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from runtime.codec import converter_for
from runtime.telemetry import interceptors, setup_tracing
from sentinel.contracts import DocumentsUpload, NoticeAck
from sentinel.models import Observation, ReviewDecision, WithdrawalRequest, WithdrawalView, workflow_id_for
from sentinel.settings import Settings, get_settings
from sentinel.taxonomy import WithdrawalStatus
from workflows import search_attributes as sa
from workflows.withdrawal import WithdrawalWorkflow


def tls_config(settings: Settings) -> TLSConfig | bool:
    """How this process shows itself to the Temporal frontend: mutual TLS with its client
    certificate (SENTINEL_TEMPORAL_TLS_CERT and _KEY, the frontend's CA in _CA), server-only
    TLS with just the CA, or a plain connection (False) when none is set (development). A
    certificate without its key, or the other way round, is refused (ValueError)."""
    cert, key, ca = settings.temporal_tls_cert, settings.temporal_tls_key, settings.temporal_tls_ca
    if (cert is None) != (key is None):
        raise ValueError("SENTINEL_TEMPORAL_TLS_CERT and SENTINEL_TEMPORAL_TLS_KEY are set together")
    if cert is None and ca is None:
        return False
    return TLSConfig(
        server_root_ca_cert=ca.read_bytes() if ca else None,
        client_cert=cert.read_bytes() if cert else None,
        client_private_key=key.read_bytes() if key else None,
        domain=settings.temporal_tls_server_name,
    )


async def connect(settings: Settings | None = None, service_name: str = "withdrawal-sentinel") -> Client:
    settings = settings or get_settings()
    setup_tracing(service_name, settings.otlp_endpoint, settings.otel_console)
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=converter_for(settings),  # payloads encrypted (runtime/codec.py)
        interceptors=interceptors(),
        tls=tls_config(settings),  # mutual TLS in production (docs/deployment.md)
    )


class NotAwaitingReview(Exception):
    """The withdrawal is not waiting for a review decision."""


class FourEyesViolation(Exception):
    """The same reviewer tried to give the second approval."""


class DecisionRefused(Exception):
    """The decision's token does not prove it (sentinel/decision_tokens.py): missing,
    forged, expired, used, or for another withdrawal or decision."""


class SentinelClient:
    def __init__(self, client: Client, task_queue: str):
        self.client = client
        self.task_queue = task_queue

    @classmethod
    async def connect(cls, settings: Settings | None = None) -> SentinelClient:
        settings = settings or get_settings()
        return cls(await connect(settings), settings.task_queue)

    def handle(self, withdrawal_id: str) -> WorkflowHandle:
        return self.client.get_workflow_handle(workflow_id_for(withdrawal_id))

    async def start_withdrawal(self, req: WithdrawalRequest) -> WorkflowHandle:
        """Start tracking. Idempotent: a repeated start returns the existing workflow, even
        after it has finished (the withdrawal id is never reused)."""
        attrs = TypedSearchAttributes(
            [
                # The workflow submits the payout at once: it starts as PROCESSING, which saves
                # an upsert (a billed action) on every withdrawal.
                SearchAttributePair(sa.WITHDRAWAL_STATUS, WithdrawalStatus.PROCESSING.value),
                SearchAttributePair(sa.CHANNEL, req.channel),
                SearchAttributePair(sa.BANK_CODE, req.bank_code),
                SearchAttributePair(sa.SEVERITY, "INFO"),
                SearchAttributePair(sa.NEEDS_REVIEW, False),
            ]
        )
        try:
            return await self.client.start_workflow(
                WithdrawalWorkflow.run,
                req,
                id=req.workflow_id,
                task_queue=self.task_queue,
                search_attributes=attrs,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"withdrawal {req.withdrawal_id} via {req.channel}/{req.bank_code}",
            )
        except WorkflowAlreadyStartedError:
            return self.handle(req.withdrawal_id)

    async def report_callback(self, withdrawal_id: str, obs: Observation) -> None:
        """Signal a verified, classified callback to the running workflow. Raises
        temporalio.service.RPCError (NOT_FOUND) when no running workflow has this id."""
        await self.handle(withdrawal_id).signal(WithdrawalWorkflow.bank_callback, obs)

    async def review(self, withdrawal_id: str, decision: ReviewDecision) -> str:
        """Send a reviewer's decision, signed by the gateway (``decision.token``); returns the
        status after it. Raises NotAwaitingReview when the withdrawal is not waiting for one,
        DecisionRefused when the token does not prove the decision."""
        try:
            return await self.handle(withdrawal_id).execute_update(WithdrawalWorkflow.review, decision)
        except WorkflowUpdateFailedError as err:
            kind = getattr(err.cause, "type", None)
            if kind == "NotAwaitingReview":
                raise NotAwaitingReview(str(err.cause)) from None
            if kind == "SameReviewer":
                raise FourEyesViolation(str(err.cause)) from None
            if kind == "InvalidDecisionToken":
                raise DecisionRefused(str(err.cause)) from None
            raise
        except RPCError as err:
            # A finished workflow takes no updates: it exists, but awaits no review.
            if err.status == RPCStatusCode.NOT_FOUND:
                desc = await self.handle(withdrawal_id).describe()
                raise NotAwaitingReview(
                    f"withdrawal {withdrawal_id} is closed ({desc.status.name if desc.status else 'unknown'})"
                ) from None
            raise

    async def upload_documents(self, withdrawal_id: str, upload: DocumentsUpload) -> None:
        """The user uploaded the documents a reviewer asked for (R18)."""
        await self.handle(withdrawal_id).signal(WithdrawalWorkflow.documents_uploaded, upload)

    async def notice_read(self, withdrawal_id: str, ack: NoticeAck) -> None:
        """The user read or acknowledged a notice: pending escalation ladders stop (R21)."""
        await self.handle(withdrawal_id).signal(WithdrawalWorkflow.notice_read, ack)

    async def status(self, withdrawal_id: str, timeout: timedelta | None = None) -> WithdrawalView:
        """The workflow's status query. A worker answers it: with none polling, it waits up to
        ``timeout`` (the server's own limit when None) and raises RPCError."""
        return await self.handle(withdrawal_id).query(WithdrawalWorkflow.status, rpc_timeout=timeout)

    async def result(self, withdrawal_id: str) -> WithdrawalView:
        handle = self.client.get_workflow_handle_for(WithdrawalWorkflow.run, workflow_id_for(withdrawal_id))
        return await handle.result()

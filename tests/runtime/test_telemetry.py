"""OpenTelemetry: with an exporter configured, one withdrawal produces the Temporal spans
(client start, workflow run, activity start/run) on the exporter; without one, nothing
is installed. The process-wide tracer provider can be set only once, so these tests use
their own provider (passed to the TracingInterceptor) and never touch the global one.
Requirement IDs in the comments."""

from __future__ import annotations

import asyncio
import uuid

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import Worker

import runtime.telemetry as telemetry
from activities.registry import build_activities
from runtime.client import SentinelClient
from sentinel.taxonomy import WithdrawalStatus
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import make_request, make_settings
from workflows.withdrawal import WithdrawalWorkflow


async def test_one_withdrawal_exports_temporal_spans(ts_env, tmp_path, smtp_server, unique_id):
    # R34, R35: operators trace a payout; client, workflow and activity spans reach the exporter.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = TracingInterceptor(provider.get_tracer("withdrawal-sentinel-test"))
    config = ts_env.client.config()
    # Keep the test environment's interceptors (time skipping) and add tracing.
    client = Client(**{**config, "interceptors": [*config["interceptors"], tracing]})

    settings = make_settings(tmp_path, smtp_server.port)
    channel = ScriptedChannel(submit=("SUCCEEDED", None))
    task_queue = f"tq-otel-{uuid.uuid4().hex[:8]}"
    activities = build_activities(settings, channels={"generic": channel})
    # A worker built on the client inherits its interceptors (activity and workflow spans).
    async with Worker(client, task_queue=task_queue, workflows=[WithdrawalWorkflow], activities=activities):
        sentinel = SentinelClient(client, task_queue)
        handle = await sentinel.start_withdrawal(make_request(unique_id))
        try:
            view = await asyncio.wait_for(handle.result(), 60)
        finally:
            # Never leave a workflow without its worker on the shared time-skipping server.
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test finished")
    provider.force_flush()
    assert view.status == WithdrawalStatus.SUCCEEDED

    spans = exporter.get_finished_spans()
    names = {s.name for s in spans}
    expected = {
        "StartWorkflow:WithdrawalWorkflow",
        "RunWorkflow:WithdrawalWorkflow",
        "StartActivity:submit_payout",
        "RunActivity:submit_payout",
        "RunActivity:init_tracking",  # a local activity
        "CompleteWorkflow:WithdrawalWorkflow",
    }
    assert expected <= names, sorted(names)
    # Everything hangs under the client's start: one trace per withdrawal.
    start = next(s for s in spans if s.name == "StartWorkflow:WithdrawalWorkflow")
    assert dict(start.attributes)["temporalWorkflowID"] == f"withdrawal-{unique_id}"
    wanted = [s for s in spans if s.name in expected]
    assert {s.context.trace_id for s in wanted} == {start.context.trace_id}
    run = next(s for s in spans if s.name == "RunActivity:submit_payout")
    assert run.kind == trace.SpanKind.SERVER and run.parent is not None
    provider.shutdown()


def test_setup_tracing_without_exporter_installs_nothing(monkeypatch):
    # Without an exporter nothing is installed: tracing costs nothing when not wanted.
    installed = []
    monkeypatch.setattr(telemetry, "_configured", False)
    monkeypatch.setattr(telemetry.trace, "set_tracer_provider", installed.append)
    before = trace.get_tracer_provider()
    assert telemetry.setup_tracing("withdrawal-sentinel", None) is None
    assert telemetry.setup_tracing("withdrawal-sentinel", "", console=False) is None
    assert installed == []
    assert telemetry._configured is False
    assert trace.get_tracer_provider() is before


def test_setup_tracing_with_an_exporter_installs_a_provider_once(monkeypatch):
    # An exporter configured: a provider named after the service, installed once per process.
    installed = []
    monkeypatch.setattr(telemetry, "_configured", False)
    monkeypatch.setattr(telemetry.trace, "set_tracer_provider", installed.append)
    exporter = InMemorySpanExporter()
    provider = telemetry.setup_tracing("withdrawal-sentinel-worker", None, extra_exporter=exporter)
    assert isinstance(provider, TracerProvider)
    assert installed == [provider]
    assert provider.resource.attributes["service.name"] == "withdrawal-sentinel-worker"
    with provider.get_tracer("t").start_as_current_span("probe"):
        pass
    provider.force_flush()
    assert [s.name for s in exporter.get_finished_spans()] == ["probe"]
    # A second call (e.g. the gateway and the worker in one process) installs nothing more.
    assert telemetry.setup_tracing("again", None, extra_exporter=InMemorySpanExporter()) is None
    assert installed == [provider]
    provider.shutdown()

"""OpenTelemetry: a tracer provider that exports spans when an exporter is configured
(OTLP/HTTP endpoint or the console), and the Temporal tracing interceptor for clients
(workers built from such a client inherit it)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from temporalio.contrib.opentelemetry import TracingInterceptor

_configured = False


def setup_tracing(
    service_name: str,
    otlp_endpoint: str | None,
    console: bool = False,
    extra_exporter: SpanExporter | None = None,
) -> TracerProvider | None:
    """Install a global tracer provider once. Without any exporter nothing is installed,
    so tracing costs nothing when it is not wanted."""
    global _configured
    exporters: list[SpanExporter] = []
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter(endpoint=otlp_endpoint))
    if console:
        exporters.append(ConsoleSpanExporter())
    if extra_exporter is not None:
        exporters.append(extra_exporter)
    if not exporters or _configured:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True
    return provider


def interceptors() -> list:
    return [TracingInterceptor()]

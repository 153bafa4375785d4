"""OpenTelemetry traces: off unless the standard OTEL_* variables switch them on.

With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or
`OTEL_TRACES_EXPORTER=otlp|console`) set, each server and worker process installs the
SDK's tracer provider (service name from `OTEL_SERVICE_NAME`, else `decisiongraph-<role>`),
exports in batches, and instruments asyncpg and redis; servers add Litestar's own
OpenTelemetry middleware. Without them the API is a no-op and costs nothing.

One decision is one trace across processes: the W3C `traceparent` of the span that
appended travels in the Redis notice and in the catch-up job it enqueues; the worker's
projection runs as its child and stamps its own context on the health notice it
publishes; a server pushing to a subscriber opens the push span under the context of the
notice that woke it (docs/observability.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator: Final = TraceContextTextMapPropagator()
_configured = False


def tracer() -> trace.Tracer:
    return trace.get_tracer("decisiongraph")


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").lower()
    if exporter in ("otlp", "console"):
        return True
    if exporter == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def setup(role: str) -> bool:
    """Install the SDK for this process if the environment asks for it (idempotent)."""
    global _configured
    if _configured or not enabled():
        return _configured
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    name = os.environ.get("OTEL_SERVICE_NAME") or f"decisiongraph-{role}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    exporter: SpanExporter
    if os.environ.get("OTEL_TRACES_EXPORTER", "").lower() == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument()
    _configured = True
    return True


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, if there is one. Called on every append
    (the announcer's notes): with tracing off there is no span, and nothing is encoded."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: str | None) -> otel_context.Context | None:
    """A context whose parent is `traceparent` (None: the current one)."""
    if not traceparent:
        return None
    return _propagator.extract({"traceparent": traceparent})


@contextmanager
def pushed(field: str, tenant: str, cause: str | None) -> Iterator[None]:
    """A span for one subscription push, child of the notice's trace. Not made current:
    it is held across a generator's yield, where the context that resumes it may not be
    the one that suspended it. A push no traced notice caused (tracing off, a sweep, a
    periodic re-read) gets none: this runs once per subscriber per message."""
    if cause is None:
        yield
        return
    span = tracer().start_span(
        f"dg.push {field}",
        context=context_of(cause),
        kind=trace.SpanKind.PRODUCER,
        attributes={"dg.tenant": tenant, "graphql.subscription": field},
    )
    try:
        yield
    finally:
        span.end()

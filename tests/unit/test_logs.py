"""Structured logs: JSON lines carrying the request id and the current trace."""

from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from server.observability.logs import REQUEST_ID, ContextFilter, JsonFormatter, log_format


def _line(record: logging.LogRecord) -> dict[str, object]:
    ContextFilter().filter(record)
    return dict(json.loads(JsonFormatter().format(record)))


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("dg.test", logging.WARNING, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_line_is_one_json_object_with_the_request_and_its_extras() -> None:
    token = REQUEST_ID.set("req-42")
    try:
        line = _line(_record("append refused", tenant="acme", events=3))
    finally:
        REQUEST_ID.reset(token)
    assert line["message"] == "append refused"
    assert (line["level"], line["logger"], line["request_id"]) == ("warning", "dg.test", "req-42")
    assert (line["tenant"], line["events"]) == ("acme", 3)
    assert "trace_id" not in line  # no span is current


def test_the_current_span_names_its_trace() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        line = _line(_record("inside"))
        context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"


def test_the_format_is_chosen_by_the_environment() -> None:
    assert log_format({"DG_LOG_FORMAT": "json"}) == "json"
    assert log_format({"DG_LOG_FORMAT": "text"}) == "text"

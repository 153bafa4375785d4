"""Frozen process settings, read from the environment exactly once (spec/api.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from server.core.rate_limit import RateLimits
from server.core.validation import Limits


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".dg")
    host: str = "127.0.0.1"
    http_port: int = 8000
    http_workers: int = 1
    worker_processes: int = 1
    simulation_inline_cases: int = 5000
    metrics_token: str | None = None
    ui_port: int = 8080
    namespace: str = "dg"
    api_url: str | None = None
    public_api_url: str | None = None
    log_level: str = "info"
    limits: Limits = field(default_factory=Limits)
    db_pool_size: int = 10
    worker_poll_delay: float = 0.5
    sweep_interval: float = 1.0
    projection_batch_size: int = 1000
    rate_limits: RateLimits = field(default_factory=RateLimits)
    read_wait_seconds: float = 5.0
    slow_consumer_seconds: float = 30.0
    access_log: bool = False
    ui_secret: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        defaults = Limits()
        budgets = RateLimits()
        limits = Limits(
            max_payload_bytes=_int(environ, "DG_MAX_PAYLOAD_BYTES", defaults.max_payload_bytes),
            max_batch_events=_int(environ, "DG_MAX_BATCH_EVENTS", defaults.max_batch_events),
        )
        return cls(
            database_url=environ.get("DG_DATABASE_URL") or None,
            redis_url=environ.get("DG_REDIS_URL") or None,
            data_dir=Path(environ.get("DG_DATA_DIR") or ".dg"),
            host=environ.get("DG_HOST") or "127.0.0.1",
            http_port=_int(environ, "DG_HTTP_PORT", 8000),
            http_workers=_int(environ, "DG_HTTP_WORKERS", 1),
            worker_processes=_int(environ, "DG_WORKER_PROCESSES", 1),
            simulation_inline_cases=_int(environ, "DG_SIMULATION_INLINE_CASES", 5000),
            metrics_token=environ.get("DG_METRICS_TOKEN") or None,
            ui_port=_int(environ, "DG_UI_PORT", 8080),
            namespace=environ.get("DG_NAMESPACE") or "dg",
            api_url=environ.get("DG_API_URL") or None,
            public_api_url=environ.get("DG_PUBLIC_API_URL") or None,
            log_level=(environ.get("DG_LOG_LEVEL") or "info").lower(),
            limits=limits,
            db_pool_size=_int(environ, "DG_DB_POOL_SIZE", 10),
            worker_poll_delay=_float(environ, "DG_WORKER_POLL_DELAY", 0.5),
            sweep_interval=_float(environ, "DG_SWEEP_INTERVAL", 1.0),
            projection_batch_size=_int(environ, "DG_PROJECTION_BATCH_SIZE", 1000),
            rate_limits=RateLimits(
                read=_int(environ, "DG_RATE_LIMIT_READ", budgets.read),
                write=_int(environ, "DG_RATE_LIMIT_WRITE", budgets.write),
                admin=_int(environ, "DG_RATE_LIMIT_ADMIN", budgets.admin),
            ),
            read_wait_seconds=_float(environ, "DG_READ_WAIT_SECONDS", 5.0),
            slow_consumer_seconds=_float(environ, "DG_SLOW_CONSUMER_SECONDS", 30.0),
            access_log=environ.get("DG_ACCESS_LOG", "") in ("1", "true", "yes"),
            ui_secret=environ.get("DG_UI_SECRET") or None,
        )

    def with_services(self, database_url: str, redis_url: str) -> Settings:
        return replace(self, database_url=database_url, redis_url=redis_url)

    @property
    def graphql_url(self) -> str:
        """Where the console and local tools reach the API."""
        return self.api_url or f"http://{self.host}:{self.http_port}/graphql"

    @property
    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError("database_url is not resolved; call server.embedded.resolve first")
        return self.database_url

    @property
    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise RuntimeError("redis_url is not resolved; call server.embedded.resolve first")
        return self.redis_url

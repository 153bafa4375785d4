"""The `decisiongraph` command line (spec/api.md "Processes, commands, configuration").

stdout carries command results only (`keys create` prints just the token); logs go to
stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from server import embedded
from server.auth.principal import Role
from server.core.errors import DecisionGraphError
from server.settings import Settings
from server.startup import create_key, migrate_database, resolve_services

_log = logging.getLogger("decisiongraph")


def _setup_logging(settings: Settings) -> None:
    from server.observability import logs

    logs.setup(settings.log_level)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    settings = resolve_services(settings)
    migrate_database(settings)
    _log.info("migrations applied")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app

    settings = resolve_services(settings)
    migrate_database(settings)
    workers = max(1, args.workers or settings.http_workers)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each server process counts its own work; /metrics, whichever process answers,
        # sums them from these files (server/observability/metrics.py).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="dg-metrics-")
    # One process serves the app object; several need the import string.
    target = create_app(settings) if workers == 1 else "server.asgi:app"
    uvicorn.run(
        target,
        host=settings.host,
        port=settings.http_port,
        workers=workers if workers > 1 else None,
        log_level=settings.log_level,
        lifespan="on",
        proxy_headers=True,
        access_log=settings.access_log,
        log_config=None,  # our handlers (server/observability/logs.py), JSON or text
        # Subscription messages are small and fanned out to many sockets: compressing
        # each one per subscriber cost more CPU than it saved bandwidth.
        ws_per_message_deflate=False,
    )
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from jobs.supervisor import supervise
    from jobs.worker import run

    settings = resolve_services(settings)
    migrate_database(settings)
    processes = max(1, args.processes or settings.worker_processes)
    if processes == 1:
        from server.observability import tracing

        tracing.setup("worker")
        run(settings)
        return 0
    return supervise(settings, processes, _worker_child)


def _worker_child(settings: Settings) -> None:
    """One of `worker --processes N` (spawned: logging and tracing are set up afresh)."""
    from jobs.worker import run
    from server.observability import tracing

    _setup_logging(settings)
    tracing.setup("worker")
    run(settings)


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    settings = resolve_services(settings)
    migrate_database(settings)
    print(asyncio.run(create_key(settings, args.name, args.tenant, args.role)))
    return 0


def cmd_services(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "stop":
        stopped = embedded.stop(settings)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    else:
        for name, running in embedded.running(settings).items():
            print(f"{name}: {'running' if running else 'stopped'}")
    return 0


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    """Re-check an audit bundle offline: no database, no network."""
    import json

    from server.core.audit_bundle import verify_bundle

    try:
        bundle = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(bundle, dict):
        print(f"{args.file} is not an audit bundle", file=sys.stderr)
        return 2
    problems = verify_bundle(bundle)
    if problems:
        for problem in problems:
            print(f"FAIL {problem}")
        print(f"{args.file}: {len(problems)} problem(s)")
        return 1
    summary = bundle.get("audit_summary", {})
    print(
        f"OK {args.file}: {summary.get('event_count')} events, "
        f"{summary.get('workflow_count')} workflows, {summary.get('action_count')} actions; "
        "every hash, sequence, digest and workflow state checks out"
    )
    return 0


def cmd_demo_seed(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from server.demo.seed import scored_precedent_lines, seed_release_demo, summary_lines

    settings = resolve_services(settings)
    migrate_database(settings)
    report = asyncio.run(seed_release_demo(settings, args.tenant))
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print("\n".join(summary_lines(report)))
    print("\n".join(asyncio.run(scored_precedent_lines(settings, args.tenant))))
    return 0


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    from server.backup import BackupError, backup

    settings = resolve_services(settings)
    try:
        counts = asyncio.run(backup(settings.require_database_url, Path(args.file)))
    except BackupError as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    rows = ", ".join(f"{table} {count}" for table, count in counts.items())
    print(f"backup written to {args.file}: {rows}")
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    from server.backup import BackupError, restore

    settings = resolve_services(settings)
    try:
        tenants = asyncio.run(restore(settings.require_database_url, Path(args.file)))
    except BackupError as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 1
    print(f"restored {args.file}: {len(tenants)} tenant(s), projections rebuilt")
    for tenant in tenants:
        print(
            f"  {tenant.tenant_id}: log at {tenant.last_log_seq}, "
            f"full_projection {tenant.digests.get('full_projection')}, "
            f"workflows {tenant.digests.get('workflows')}"
        )
    return 0


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 when PostgreSQL and Redis answer (and, with --worker, a worker heartbeat is
    fresh): a health check for containers and scripts."""
    import asyncpg

    from server.pubsub.channels import Channels
    from server.pubsub.connection import redis_client
    from server.pubsub.queue import JobQueue

    settings = resolve_services(settings)

    async def probe() -> dict[str, bool]:
        results = {}
        try:
            conn = await asyncpg.connect(settings.require_database_url, timeout=5)
            results["database"] = await conn.fetchval("SELECT 1") == 1
            await conn.close()
        except Exception:
            results["database"] = False
        redis = redis_client(settings.require_redis_url)
        try:
            results["redis"] = bool(await redis.ping())
            if args.worker:
                queue = JobQueue(redis, Channels(settings.namespace))
                results["worker"] = await queue.worker_heartbeats()
        except Exception:
            results["redis"] = False
            if args.worker:
                results["worker"] = False
        finally:
            await redis.aclose()
        return results

    results = asyncio.run(probe())
    for name, ok in results.items():
        print(f"{name}: {'ok' if ok else 'FAILING'}")
    return 0 if all(results.values()) else 1


def cmd_ui(settings: Settings, args: argparse.Namespace) -> int:
    from ui.app import run

    run()
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from server.supervisor import run_platform

    return run_platform(settings, with_ui=not args.no_ui, with_demo=not args.no_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="decisiongraph", description="DecisionGraph: decision operations for AI agents."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the whole platform in the foreground")
    up.add_argument("--no-ui", action="store_true", help="do not start the console")
    up.add_argument("--no-demo", action="store_true", help="do not seed the release demo")
    up.set_defaults(handler=cmd_up)

    serve = commands.add_parser("serve", help="the GraphQL server only")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes (default: DG_HTTP_WORKERS, else 1)",
    )
    serve.set_defaults(handler=cmd_serve)
    worker = commands.add_parser("worker", help="an arq worker (projections, replays, SLA timers)")
    worker.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes, supervised (default: DG_WORKER_PROCESSES, else 1)",
    )
    worker.set_defaults(handler=cmd_worker)
    commands.add_parser("ui", help="the operator console only").set_defaults(handler=cmd_ui)
    commands.add_parser("migrate", help="apply migrations (idempotent)").set_defaults(
        handler=cmd_migrate
    )

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create an API key; prints only the token")
    create.add_argument(
        "--tenant",
        action="append",
        required=True,
        help="tenant id, or '*' for every tenant (repeatable)",
    )
    create.add_argument(
        "--role",
        action="append",
        required=True,
        choices=[role.value for role in Role],
        help="role (repeatable)",
    )
    create.add_argument("--name", default=None, help="a label for the key")
    create.set_defaults(handler=cmd_keys_create)

    demo = commands.add_parser("demo", help="the release demo").add_subparsers(
        dest="demo_command", required=True
    )
    seed = demo.add_parser("seed", help="seed the release demo (idempotent)")
    seed.add_argument("--tenant", default="release-demo", help="tenant to seed")
    seed.add_argument("--output", default=None, help="write the report JSON here")
    seed.set_defaults(handler=cmd_demo_seed)

    audit = commands.add_parser("audit", help="audit bundles").add_subparsers(
        dest="audit_command", required=True
    )
    verify = audit.add_parser("verify", help="re-check an auditExport bundle offline")
    verify.add_argument("file", help="the bundle (JSON) to check")
    verify.set_defaults(handler=cmd_audit_verify)

    dump = commands.add_parser(
        "backup", help="dump the log, journal, keys and audit log (pg_dump custom format)"
    )
    dump.add_argument("file", help="where to write the dump")
    dump.set_defaults(handler=cmd_backup)
    load = commands.add_parser(
        "restore", help="load a backup into an empty database and rebuild every projection"
    )
    load.add_argument("file", help="a file written by `decisiongraph backup`")
    load.set_defaults(handler=cmd_restore)

    check = commands.add_parser("check", help="health check: database, Redis (and a worker)")
    check.add_argument("--worker", action="store_true", help="also require a worker heartbeat")
    check.set_defaults(handler=cmd_check)

    services = commands.add_parser("services", help="embedded PostgreSQL and Redis")
    services.add_argument("action", choices=["stop", "status"])
    services.set_defaults(handler=cmd_services)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env(os.environ)
    settings = replace(settings, data_dir=Path(settings.data_dir).resolve())
    _setup_logging(settings)
    try:
        code: int = args.handler(settings, args)
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise
    except DecisionGraphError as exc:  # a clean message, not a traceback, for operators
        _log.error("%s", exc)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())

"""The Projections port on PostgreSQL: each call takes a connection (and a transaction
where it writes) from the pool and delegates to projection_writer / projection_reads."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, Final

import asyncpg

from server.core import native_projection as native
from server.core.bulk_projection import BulkOutcome, BulkProjector, ScratchDigests
from server.core.graph import EdgeRow, NodeRow
from server.core.graph_query import EdgeCursor, EdgeRef
from server.core.native_projection import NativeProjector
from server.core.precedent_query import PrecedentHit, PrecedentQuery
from server.core.projection_batch import PROJECTIONS, BatchReport, FailureRecord
from server.core.replay import ALL_PROJECTIONS
from server.core.trace_summary import SummaryRow
from server.core.workflow import WORKFLOWS
from server.store import bulk_rebuild as bulk
from server.store import projection_reads as reads
from server.store import projection_writer as writer
from server.store.database import translate, translated
from server.store.workflows import PostgresWorkflows

_log = logging.getLogger(__name__)
_HAS_PARTITIONS: Final = (
    "SELECT to_regclass(dg_projection_partition('dg_cg_nodes', $1)) IS NOT NULL"
)


def _merged(first: BatchReport, second: BatchReport) -> BatchReport:
    return BatchReport(
        first.projections + second.projections,
        max(first.applied, second.applied),
        first.cursors | second.cursors,
        first.more or second.more,
        first.failure or second.failure,
        first.busy + second.busy,
    )


@translated
class PostgresProjections:
    """The three projections of spec §6 (projection_writer) and the workflow projection
    (store/workflows.py), behind one port."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        batch_size: int = 1000,
        verify_in_memory: int = 100_000,
        small_table: int = bulk.SMALL_TABLE,
        native_pass: bool = True,
    ) -> None:
        self._pool = pool
        self._batch_size = batch_size
        self.workflows = PostgresWorkflows(pool, batch_size)
        self._partitioned: set[str] = set()
        # A VERIFY of at most this many events digests its rows in memory (~1.5 KB an
        # event at the peak) instead of loading, sorting and reading back scratch tables.
        self._verify_in_memory = verify_in_memory
        self._small_table = small_table  # REBUILD: rows a table keeps in memory, not a shadow
        self._native = native_pass  # the native pass where it can (tests turn it off)

    async def _ensure_partitions(self, scope: str) -> None:
        """The scope's projection partitions exist before its first write (migration 7)."""
        if scope not in self._partitioned:
            async with self._pool.acquire() as conn:
                await bulk.ensure_partitions(conn, scope)
            self._partitioned.add(scope)

    async def catch_up(
        self,
        tenant_id: str,
        scope: str | None = None,
        projections: Sequence[str] = ALL_PROJECTIONS,
        until: int | None = None,
        batch_size: int | None = None,
    ) -> BatchReport:
        """One batch, one transaction per kind; `scope` defaults to the tenant's own."""
        spec = tuple(p for p in projections if p != WORKFLOWS)
        report = BatchReport((), 0, {}, more=False)
        target = scope or tenant_id

        async def batch() -> BatchReport:
            async with self._pool.acquire() as conn, conn.transaction():
                return await writer.catch_up_batch(
                    conn, tenant_id, target, spec, batch_size or self._batch_size, until
                )

        try:
            if spec:
                await self._ensure_partitions(target)
                try:
                    report = await batch()
                except asyncpg.CheckViolationError as exc:
                    if "no partition" not in str(exc):
                        raise
                    # A row found no partition of a scope this adapter had made sure of
                    # (seen once in a full test run, not explained yet): make sure again,
                    # in a new transaction, and retry the batch once; it was rolled back.
                    _log.warning("catch-up of %s found no partition; ensuring it again", target)
                    self._partitioned.discard(target)
                    await self._ensure_partitions(target)
                    report = await batch()
            if WORKFLOWS in projections:
                flows = await self.workflows.catch_up(tenant_id, scope, until)
                report = _merged(report, flows)
        except Exception as exc:
            raise translate(exc) from exc
        return report

    async def rebuild_workflows(self, tenant_id: str) -> BatchReport:
        """The workflow projection cleared and replayed in one transaction (it is small;
        store/workflows.py)."""
        try:
            return await self.workflows.rebuild(tenant_id)
        except Exception as exc:
            raise translate(exc) from exc

    async def reset(self, scope: str, projections: Sequence[str]) -> None:
        spec = tuple(p for p in projections if p != WORKFLOWS)
        if spec:
            async with self._pool.acquire() as conn, conn.transaction():
                await writer.lock_projections(conn, scope, spec)
                await writer.reset(conn, scope, spec)
        if WORKFLOWS in projections:
            await self.workflows.reset(scope)

    async def rebuild(
        self,
        tenant_id: str,
        projections: Sequence[str],
        progress: bulk.Progress,
    ) -> BulkOutcome:
        """Rebuild these spec projections of a tenant from its whole log and swap them in
        atomically (store/bulk_rebuild.py), stopping at a failing event as catch-up does.
        False from `progress` cancels. The native pass does it where it can; an event it
        leaves to Python has the whole pass done again by the Python projector."""

        async def run(projector: bulk.Projector) -> BulkOutcome:
            return await self._rebuild(tenant_id, projections, progress, projector)

        return await self._native_first(
            run,
            native.handles(projections),
            lambda: NativeProjector(tenant_id),
            lambda: BulkProjector(projections),
        )

    async def _native_first(
        self,
        run: Callable[[bulk.Projector], Awaitable[BulkOutcome]],
        handles: bool,
        by_native: Callable[[], NativeProjector],
        by_python: Callable[[], BulkProjector],
    ) -> BulkOutcome:
        """`run` with the native pass where it handles the job, and again with the Python
        projector if the native pass leaves an event to it (or cannot stand in)."""
        if self._native and handles:
            try:
                return dataclasses.replace(await run(by_native()), native=True)
            except native.Unsupported:
                pass
        return await run(by_python())

    async def _rebuild(
        self,
        tenant_id: str,
        projections: Sequence[str],
        progress: bulk.Progress,
        projector: bulk.Projector,
    ) -> BulkOutcome:
        await self._ensure_partitions(tenant_id)
        tables = bulk.shadows(tenant_id, projections, self._small_table)
        swapped = False
        try:
            async with self._pool.acquire() as conn:
                await bulk.prepare(conn, tables)
            position = 0
            while projector.failure is None:
                async with self._pool.acquire() as conn:
                    end = await bulk.log_end(conn, tenant_id)
                if end - position <= bulk.TAIL:
                    break
                position, going = await bulk.load(
                    self._pool, tenant_id, tables, projector, position, end, progress
                )
                if not going:
                    return BulkOutcome(cancelled=True)
            await bulk.build_indexes(self._pool, tables)
            async with self._pool.acquire() as conn, conn.transaction():
                await bulk.swap(conn, tenant_id, tables, projector, projections)
            swapped = True
        finally:
            if not swapped:  # swapped shadows are the live partitions now
                async with self._pool.acquire() as conn:
                    await bulk.drop(conn, tables)
        return BulkOutcome(projector.failure)

    async def scratch_digests(
        self,
        tenant_id: str,
        projections: Sequence[str],
        limits: dict[str, int],
        progress: bulk.Progress,
    ) -> BulkOutcome:
        """Digests of these spec projections rebuilt in scratch state up to `limits` (in
        memory for a small log, shadow tables otherwise), without touching the live ones;
        none when it stopped at a failure or a cancel. Native where it can, as rebuild."""

        async def run(projector: bulk.Projector) -> BulkOutcome:
            return await self._scratch_digests(tenant_id, projections, progress, projector)

        return await self._native_first(
            run,
            native.handles(projections, limits),
            lambda: NativeProjector(tenant_id, limits),
            lambda: BulkProjector(projections, limits),
        )

    async def _scratch_digests(
        self,
        tenant_id: str,
        projections: Sequence[str],
        progress: bulk.Progress,
        projector: bulk.Projector,
    ) -> BulkOutcome:
        if projector.end <= self._verify_in_memory:
            scratch = ScratchDigests(native.digest_graph)

            async def keep(rows: bulk.Chunk) -> None:
                scratch.add(rows)

            _, going = await bulk.stream(
                self._pool, tenant_id, projector, 0, projector.end, progress, keep
            )
            if not going or projector.failure is not None:
                return BulkOutcome(projector.failure, cancelled=not going)
            scratch.add(projector.close())
            return BulkOutcome(digests=scratch.digests(projections))
        tables = bulk.shadows(tenant_id, projections)
        try:
            async with self._pool.acquire() as conn:
                await bulk.prepare(conn, tables)
            _, going = await bulk.load(  # every table shadowed: digested from the tables
                self._pool, tenant_id, tables, projector, 0, projector.end, progress,
                create_all=True,
            )  # fmt: skip
            if not going or projector.failure is not None:
                return BulkOutcome(projector.failure, cancelled=not going)
            async with self._pool.acquire() as conn:
                await bulk.copy(conn, tables, projector.close(), final=True)
            names = {t.parent: t.name for t in tables}
            async with self._pool.acquire() as conn, conn.transaction(readonly=True):
                digests = {
                    p: await reads.compute_digest(conn, tenant_id, p, names) for p in projections
                }
        finally:
            async with self._pool.acquire() as conn:
                await bulk.drop(conn, tables)
        return BulkOutcome(digests=digests)

    async def cursors(self, scope: str) -> dict[str, int]:
        async with self._pool.acquire() as conn:
            return await reads.cursors(conn, scope)

    async def digests(
        self, scope: str, *, use_cache: bool = True, only: Collection[str] | None = None
    ) -> tuple[dict[str, int], dict[str, str]]:
        return await reads.digests(self._pool, scope, use_cache=use_cache, only=only)

    async def failures(self, scope: str) -> list[FailureRecord]:
        async with self._pool.acquire() as conn:
            return await reads.open_failures(conn, scope)

    async def summary(self, scope: str, trace_id: str) -> SummaryRow | None:
        async with self._pool.acquire() as conn:
            return await reads.summary(conn, scope, trace_id)

    async def recent(
        self,
        scope: str,
        *,
        before: tuple[int, str] | None = None,
        limit: int = 20,
        search: str | None = None,
        workflow: str | None = None,
        status: str | None = None,
    ) -> list[SummaryRow]:
        async with self._pool.acquire() as conn:
            return await reads.recent_summaries(
                conn,
                scope,
                before=before,
                limit=limit,
                search=search,
                workflow=workflow,
                status=status,
            )

    async def edges_touching(
        self, scope: str, node_ids: Sequence[str], edge_types: Sequence[str] | None
    ) -> list[EdgeRef]:
        async with self._pool.acquire() as conn:
            return await reads.edges_touching(conn, scope, node_ids, edge_types)

    async def nodes(self, scope: str, ids: Sequence[str]) -> list[NodeRow]:
        async with self._pool.acquire() as conn:
            return await reads.nodes_by_id(conn, scope, ids)

    async def edges(self, scope: str, ids: Sequence[str]) -> list[EdgeRow]:
        async with self._pool.acquire() as conn:
            return await reads.edges_by_id(conn, scope, ids)

    async def node_edges(
        self, scope: str, key: str, direction: str, cursor: EdgeCursor | None, limit: int
    ) -> tuple[list[EdgeRow], bool]:
        async with self._pool.acquire() as conn:
            return await reads.node_edges(conn, scope, key, direction, cursor, limit)

    async def precedents(self, scope: str, query: PrecedentQuery) -> list[PrecedentHit]:
        async with self._pool.acquire() as conn:
            return await reads.precedents(conn, scope, query)

    async def drop_scope(self, scope: str) -> None:
        """Remove every row of a scratch scope (a finished or abandoned VERIFY)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await writer.lock_projections(conn, scope, PROJECTIONS)
            # A VERIFY's scratch scope holds workflow rows only (its spec projections are
            # digested in memory or in shadows) and so has no partitions: no DELETE to plan
            # against every tenant's partitions, twice per run.
            if await conn.fetchval(_HAS_PARTITIONS, scope):
                await writer.reset(conn, scope, PROJECTIONS)
            await conn.execute("DELETE FROM dg_projection_cursors WHERE scope = $1", scope)
            await conn.execute("DELETE FROM dg_projection_digests WHERE scope = $1", scope)
        await self.workflows.drop_scope(scope)

    async def tenant_status(self, scope: str) -> dict[str, Any]:
        async with self._pool.acquire() as conn:
            return await reads.tenant_status(conn, scope)

    async def lagging_tenants(self) -> list[tuple[str, int]]:
        """Tenants whose slowest projection is behind their log: (tenant, last_log_seq). A
        projection without a cursor row is at 0, not left out of the minimum: a REBUILD of
        some projections writes their cursors alone."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT t.tenant_id, t.last_log_seq FROM dg_tenants t
                   WHERE t.last_log_seq > 0 AND t.last_log_seq > (
                       SELECT min(coalesce(c.last_log_seq, 0)) FROM unnest($1::text[]) AS p
                       LEFT JOIN dg_projection_cursors c
                         ON c.scope = t.tenant_id AND c.projection = p)""",
                list(ALL_PROJECTIONS),
            )
        return [(r["tenant_id"], r["last_log_seq"]) for r in rows]

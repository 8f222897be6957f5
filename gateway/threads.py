"""Threads, as the public API sees them (plain Python; the servicer converts).

Records (metadata, status) are the gateway's to read and write. A thread's checkpoints
are not: update_state, delete, copy and prune run on the runtime that owns the thread,
under its lease and fence (``RuntimeClient``), like a run's own writes.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from gateway._runtime import RuntimeClient, StateMessage
from gateway.ids import check_id, check_ids, check_page
from mesh_core.adapters.redis.records import RecordStore, ThreadRecord, scoped_thread_id
from mesh_core.adapters.redis.schedule import Schedule
from mesh_core.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
)

__all__ = ["ThreadsEngine"]

MAX_HISTORY = 1000


class ThreadsEngine:
    def __init__(
        self,
        records: RecordStore,
        runtime: RuntimeClient,
        runs: Any,
        expiries: Schedule,
        *,
        default_ttl: float = 0.0,
    ) -> None:
        """``runs``: the RunsEngine (a thread's active run is cancelled before it goes).
        ``expiries``: the schedule on which a thread with a TTL waits for its deletion (a
        runtime deletes it, as its owner, once it went ``ttl`` seconds without an update).
        """
        self.records = records
        self.runtime = runtime
        self.runs = runs
        self.expiries = expiries
        self.default_ttl = default_ttl

    async def _expire_after(self, rec: ThreadRecord, ttl: float) -> None:
        if ttl < 0 or ttl != ttl:
            raise InvalidArgumentError(
                "ttl_seconds must not be negative", [FieldViolation("ttl_seconds", ">= 0")]
            )
        if ttl:
            await self.records.update_thread(rec.tenant_id, rec.thread_id, ttl=ttl)
            await self.expiries.add(
                rec.scoped_id,
                time.time() + ttl,
                {"tenant_id": rec.tenant_id, "thread_id": rec.thread_id},
            )

    async def get(self, tenant: str, thread_id: str) -> ThreadRecord:
        check_id(thread_id, "thread_id")
        rec = await self.records.get_thread(tenant, thread_id)
        if rec is None:
            raise NotFoundError(
                f"thread {thread_id!r} not found", metadata={"thread_id": thread_id}
            )
        return rec

    async def create(
        self,
        tenant: str,
        thread_id: str = "",
        metadata: dict[str, Any] | None = None,
        *,
        if_exists_return: bool = False,
        graph_id: str = "",
        ttl: float = 0.0,
    ) -> ThreadRecord:
        check_id(thread_id, "thread_id", required=False)
        if graph_id:
            await self.runtime.graph(graph_id)
        rec = await self.records.create_thread(
            tenant,
            thread_id or str(uuid.uuid4()),
            metadata or {},
            if_exists_return=if_exists_return,
            assistant_id=graph_id,
            graph_id=graph_id,
        )
        ttl = ttl or self.default_ttl
        if ttl and not rec.ttl:
            await self._expire_after(rec, ttl)
            return await self.get(tenant, rec.thread_id)
        return rec

    async def update(
        self, tenant: str, thread_id: str, metadata: dict[str, Any] | None, *, ttl: float = 0.0
    ) -> ThreadRecord:
        """Merge ``metadata`` into the thread's (a key whose value is None goes); a ``ttl``
        replaces the thread's."""
        rec = await self.get(tenant, thread_id)
        if metadata:
            merged = {**rec.metadata, **metadata}
            merged = {k: v for k, v in merged.items() if v is not None}
            await self.records.update_thread(tenant, thread_id, metadata=merged)
        if ttl:
            await self._expire_after(rec, ttl)
        return await self.get(tenant, thread_id)

    async def search(
        self,
        tenant: str,
        *,
        metadata: dict[str, Any] | None = None,
        status: str = "",
        ids: list[str] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[ThreadRecord]:
        limit, offset = check_page(limit, offset)
        if ids:
            out = []
            for tid in check_ids(ids, "ids"):
                rec = await self.records.get_thread(tenant, tid)
                if rec is None or (status and rec.status != status):
                    continue
                if metadata and any(rec.metadata.get(k) != v for k, v in metadata.items()):
                    continue
                out.append(rec)
            return out[offset : offset + limit]
        return await self.records.search_threads(
            tenant, metadata or {}, status, limit=limit, offset=offset
        )

    async def count(
        self, tenant: str, *, metadata: dict[str, Any] | None = None, status: str = ""
    ) -> int:
        recs = await self.records.search_threads(
            tenant, metadata or {}, status, limit=1 << 30, offset=0
        )
        return len(recs)

    # -- state -------------------------------------------------------------------------
    async def _graph_of(self, rec: ThreadRecord) -> str:
        return rec.graph_id or rec.assistant_id

    async def state(
        self,
        tenant: str,
        thread_id: str,
        *,
        checkpoint_id: str = "",
        checkpoint_ns: str = "",
        subgraphs: bool = False,
    ) -> StateMessage | None:
        """The thread's state (None: it never ran and has no checkpoint)."""
        rec = await self.get(tenant, thread_id)
        graph_id = await self._graph_of(rec)
        if not graph_id:
            if checkpoint_id:
                raise NotFoundError(
                    f"checkpoint {checkpoint_id!r} not found",
                    metadata={"checkpoint_id": checkpoint_id},
                )
            return None
        return await self.runtime.state(
            rec.scoped_id,
            tenant,
            thread_id,
            graph_id,
            checkpoint_id=checkpoint_id,
            checkpoint_ns=checkpoint_ns,
            subgraphs=subgraphs,
        )

    async def history(
        self,
        tenant: str,
        thread_id: str,
        *,
        limit: int = 10,
        before: str = "",
        metadata: dict[str, Any] | None = None,
        checkpoint_ns: str = "",
        checkpoint_id: str = "",
    ) -> list[StateMessage]:
        limit, _ = check_page(limit, 0)
        if limit > MAX_HISTORY:
            raise InvalidArgumentError(
                f"limit may be at most {MAX_HISTORY}",
                [FieldViolation("limit", f"at most {MAX_HISTORY}")],
            )
        rec = await self.get(tenant, thread_id)
        graph_id = await self._graph_of(rec)
        if not graph_id:
            return []
        return await self.runtime.history(
            rec.scoped_id,
            tenant,
            thread_id,
            graph_id,
            limit=limit,
            before=before,
            metadata=metadata or {},
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
        )

    async def update_state(
        self,
        tenant: str,
        thread_id: str,
        values: Any,
        *,
        as_node: str = "",
        checkpoint_id: str = "",
        checkpoint_ns: str = "",
    ) -> tuple[str, str]:
        rec = await self.get(tenant, thread_id)
        graph_id = await self._graph_of(rec)
        if not graph_id:
            raise FailedPreconditionError(
                f"thread {thread_id!r} has no graph yet: run it once, or create it with a graph_id",
                reason="THREAD_HAS_NO_GRAPH",
                metadata={"thread_id": thread_id},
            )
        return await self.runtime.update_state(
            rec.scoped_id,
            tenant,
            thread_id,
            graph_id,
            values,
            as_node=as_node,
            checkpoint_id=checkpoint_id,
            checkpoint_ns=checkpoint_ns,
        )

    # -- whole threads -------------------------------------------------------------------
    async def delete(self, tenant: str, thread_id: str) -> None:
        rec = await self.get(tenant, thread_id)
        await self.runs.stop_active(tenant, rec)
        await self.runtime.delete_thread(rec.scoped_id, tenant, thread_id)

    async def copy(self, tenant: str, thread_id: str) -> ThreadRecord:
        src = await self.get(tenant, thread_id)
        target = await self.records.create_thread(
            tenant,
            str(uuid.uuid4()),
            dict(src.metadata),
            assistant_id=src.assistant_id,
            graph_id=src.graph_id,
        )
        if src.graph_id or src.assistant_id:
            await self.runtime.copy_thread(
                scoped_thread_id(tenant, target.thread_id), tenant, thread_id, target.thread_id
            )
        return target

    async def prune(self, tenant: str, thread_ids: list[str], strategy: str) -> int:
        if strategy not in ("keep_latest", "delete"):
            raise InvalidArgumentError(
                f"unknown prune strategy {strategy!r}",
                [FieldViolation("strategy", "keep_latest or delete")],
            )
        pruned = 0
        for tid in check_ids(thread_ids, "thread_ids"):
            rec = await self.records.get_thread(tenant, tid)
            if rec is None:
                continue
            if strategy == "delete":
                await self.delete(tenant, tid)
            else:
                await self.runtime.prune_thread(rec.scoped_id, tenant, tid)
            pruned += 1
        return pruned

"""The owner role: take a thread's lease, drive its runs through LangGraph, emit events.

One :class:`RunManager` per runtime process. A run is recorded in Redis before anything
else; it runs with the mesh checkpointer (durability "sync"), fenced with the thread's
lease token; its events go to local subscribers (the gateway's ExecuteRun stream) and to
the run's JetStream subject. If the runtime loses the thread or drains, the run is left
as "running" for another runtime to resume from the last checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from langgraph._internal._constants import CONFIG_KEY_CHECKPOINTER
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel
from langgraph.types import Command

from mesh_core.adapters.redis.records import ACTIVE_STATUSES, RecordStore, RunRecord
from mesh_core.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    MeshError,
    NotFoundError,
    StaleOwnerError,
    UnavailableError,
)
from mesh_core.jsonvalue import to_jsonable
from runtime_svc.fencing import FencedCheckpointer
from runtime_svc.graphs import GraphRegistry
from runtime_svc.runs import Event, RunHandle, RunLostError, RunRequest

__all__ = ["RunManager", "RunManagerSettings"]

log = logging.getLogger(__name__)

RUN_ID_KEY = "lgmesh_run_id"


class ThreadLeaseLike(Protocol):
    token: int

    def check(self) -> None: ...


class LeasesLike(Protocol):
    async def try_acquire(self, thread_id: str) -> Any: ...

    async def acquire(self, thread_id: str, timeout: float | None = None) -> Any: ...

    async def release(self, lease: Any) -> Any: ...


EventSink = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True)
class RunManagerSettings:
    runtime_id: str
    capacity: int = 64
    # How long a resumed run waits for the previous owner's lease to expire.
    acquire_timeout: float = 15.0
    drain_timeout: float = 30.0
    extra_configurable: dict[str, Any] = field(default_factory=dict)


@dataclass
class _HeldLease:
    lease: Any
    users: int = 0


class RunManager:
    def __init__(
        self,
        settings: RunManagerSettings,
        graphs: GraphRegistry,
        checkpointer: BaseCheckpointSaver[Any],
        records: RecordStore,
        leases: LeasesLike,
        sink: EventSink,
        *,
        last_seq: Callable[[str], Awaitable[int]],
        bump_fence: Callable[[str, int], Awaitable[None]],
        remote: Any = None,
        remote_mode: str = "send",
    ) -> None:
        """``remote``: a RemoteExecutor (runtime_svc.remote) that sends remote-eligible
        tasks (``remote_mode``: "send" = Send tasks, "all" = every task) to workers."""
        self.settings = settings
        self.graphs = graphs
        self.checkpointer = checkpointer
        self.records = records
        self.leases = leases
        self.sink = sink
        self._last_seq = last_seq
        self._bump_fence = bump_fence
        self.remote = remote
        self.remote_mode = remote_mode
        self.runs: dict[str, RunHandle] = {}
        self._held: dict[str, _HeldLease] = {}
        self._lease_locks: dict[str, asyncio.Lock] = {}
        self._thread_locks: dict[str, asyncio.Lock] = {}
        self.draining = False

    @property
    def running(self) -> int:
        return sum(1 for h in self.runs.values() if not h.finished)

    # -- entry points ------------------------------------------------------------------
    async def submit(self, req: RunRequest, *, wait_for_lease: bool = True) -> RunHandle:
        """Start (or, with ``req.resume``, take over) a run; returns its handle at once.

        ``wait_for_lease=False`` (the sweeper) gives up at once if the thread is owned.
        """
        existing = self.runs.get(req.run_id)
        if existing is not None and not existing.finished:
            return existing
        if self.draining:
            raise UnavailableError("runtime is draining", reason="DRAINING")
        if self.running >= self.settings.capacity:
            raise UnavailableError("runtime is at capacity", reason="AT_CAPACITY")
        graph = self.graphs.get_graph(req.assistant_id)
        if req.multitask_strategy == "rollback":
            raise InvalidArgumentError(
                "multitask_strategy ROLLBACK is not supported; use REJECT, ENQUEUE or INTERRUPT",
                reason="UNSUPPORTED_STRATEGY",
            )
        if req.resume:
            return await self._start_resume(req, graph, wait_for_lease)
        return await self._start_fresh(req, graph)

    async def _start_fresh(self, req: RunRequest, graph: Pregel) -> RunHandle:
        thread = await self.records.get_thread(req.tenant_id, req.thread_id)
        if thread is None:
            raise NotFoundError(
                f"thread {req.thread_id!r} not found", metadata={"thread_id": req.thread_id}
            )
        if req.command and "resume" in req.command and thread.status != "interrupted":
            raise FailedPreconditionError(
                f"thread {req.thread_id!r} has no pending interrupt to resume",
                reason="NO_INTERRUPT",
                metadata={"thread_id": req.thread_id, "thread_status": thread.status},
            )
        if req.multitask_strategy == "reject" and thread.active_run:
            active = await self.records.get_run(req.tenant_id, req.thread_id, thread.active_run)
            if active is not None and active.status in ACTIVE_STATUSES:
                raise FailedPreconditionError(
                    f"thread {req.thread_id!r} is busy with run {active.run_id}",
                    reason="THREAD_BUSY",
                    metadata={"thread_id": req.thread_id, "active_run_id": active.run_id},
                )
        record = RunRecord(
            run_id=req.run_id,
            tenant_id=req.tenant_id,
            thread_id=req.thread_id,
            assistant_id=req.assistant_id,
            status="pending",
            spec=to_jsonable(req.to_spec()),
            metadata=to_jsonable(req.metadata),
            multitask_strategy=req.multitask_strategy,
            owner=self.settings.runtime_id,
        )
        active_id = await self.records.begin_run(record)
        handle = RunHandle(req, record, req.after_seq)
        self.runs[req.run_id] = handle
        waiting_for = None if active_id == req.run_id else active_id
        handle.task = asyncio.create_task(self._drive(handle, graph, waiting_for=waiting_for))
        return handle

    async def _start_resume(
        self, req: RunRequest, graph: Pregel, wait_for_lease: bool
    ) -> RunHandle:
        record = await self.records.get_run(req.tenant_id, req.thread_id, req.run_id)
        if record is None:
            raise NotFoundError(f"run {req.run_id!r} not found", metadata={"run_id": req.run_id})
        last = await self._last_seq(req.run_id)
        if not wait_for_lease:
            # Take the lease before promising anything, so exactly one runtime adopts.
            await self._lease_for(req.scoped_thread, wait=False)
        handle = RunHandle(req, record, max(last, req.after_seq))
        self.runs[req.run_id] = handle
        handle.task = asyncio.create_task(
            self._drive(handle, graph, waiting_for=None, lease_held=not wait_for_lease)
        )
        return handle

    async def cancel(self, run_id: str, action: str = "interrupt") -> bool:
        handle = self.runs.get(run_id)
        if handle is None or handle.finished or handle.task is None:
            return False
        handle.cancel_action = action
        handle.task.cancel()
        return True

    # -- leases ------------------------------------------------------------------------
    async def _lease_for(self, scoped: str, *, wait: bool) -> Any:
        lock = self._lease_locks.setdefault(scoped, asyncio.Lock())
        async with lock:
            held = self._held.get(scoped)
            if held is not None:
                try:
                    held.lease.check()
                except StaleOwnerError:
                    self._held.pop(scoped, None)
                    held = None
            if held is None:
                if wait:
                    lease = await self.leases.acquire(scoped, timeout=self.settings.acquire_timeout)
                else:
                    lease = await self.leases.try_acquire(scoped)
                    if lease is None:
                        raise UnavailableError(
                            "thread is owned by another runtime", reason="THREAD_OWNED_ELSEWHERE"
                        )
                await self._bump_fence(scoped, lease.token)
                held = self._held[scoped] = _HeldLease(lease)
            held.users += 1
            return held.lease

    async def _lease_done(self, scoped: str, *, release: bool = True) -> None:
        lock = self._lease_locks.setdefault(scoped, asyncio.Lock())
        async with lock:
            held = self._held.get(scoped)
            if held is None:
                return
            held.users -= 1
            if held.users <= 0:
                self._held.pop(scoped, None)
                if release:
                    with contextlib.suppress(Exception):
                        await self.leases.release(held.lease)

    # -- driving a run -----------------------------------------------------------------
    async def _emit(self, handle: RunHandle, ev: Event) -> None:
        await handle.append(ev)
        await self.sink(ev)

    async def _lifecycle(self, handle: RunHandle, kind: str, status: str, **extra: Any) -> None:
        lc = {"kind": kind, "status": status, "runtime_id": self.settings.runtime_id, **extra}
        await self._emit(handle, handle.next_event("lifecycle", lifecycle=lc))

    async def _drive(
        self, handle: RunHandle, graph: Pregel, *, waiting_for: str | None, lease_held: bool = False
    ) -> None:
        req, record = handle.req, handle.record
        scoped = req.scoped_thread
        lost: RunLostError | None = None
        lease_taken = lease_held
        try:
            if waiting_for is not None:
                await self._lifecycle(handle, "queued", "pending", waiting_for=waiting_for)
                if req.multitask_strategy == "interrupt":
                    await self.cancel(waiting_for, "interrupt")
            if lease_held:
                lease = self._held[scoped].lease
            else:
                lease = await self._lease_for(scoped, wait=True)
                lease_taken = True
            handle.lease = lease
            lock = self._thread_locks.setdefault(scoped, asyncio.Lock())
            async with lock:
                if waiting_for is not None:
                    await self._wait_thread_free(record)
                if req.resume:
                    fresh = await self.records.get_run(req.tenant_id, req.thread_id, req.run_id)
                    if fresh is None or fresh.status not in ACTIVE_STATUSES:
                        return  # it ended meanwhile (another runtime finished it)
                    record = handle.record = fresh
                if req.resume or waiting_for is not None:  # a fresh run was recorded as running
                    await self.records.update_run(
                        record,
                        status="running",
                        owner=self.settings.runtime_id,
                        attempts=record.attempts + (1 if req.resume else 0),
                    )
                await self._lifecycle(handle, "resumed" if req.resume else "started", "running")
                await self._execute(handle, graph, lease)
        except asyncio.CancelledError:
            if handle.handover:
                lost = RunLostError("run handed over: the runtime is draining")
            else:
                try:
                    await asyncio.shield(self._end(handle, "cancelled"))
                except StaleOwnerError:
                    lost = RunLostError(
                        "run moved to another runtime: this one lost the thread's lease"
                    )
                except Exception:  # the run is cancelled either way; the record may lag
                    log.warning("run %s: could not record its cancellation", req.run_id)
        except StaleOwnerError as exc:
            log.warning("run %s: lost thread ownership (%s)", req.run_id, exc.message)
            lost = RunLostError("run moved to another runtime: this one lost the thread's lease")
        except MeshError as exc:
            if isinstance(exc, UnavailableError) and exc.reason in ("THREAD_OWNED_ELSEWHERE",):
                lost = RunLostError(exc.message)
            else:
                lost = await self._end_or_lose(handle, exc, exc.message)
        except TimeoutError:
            lost = RunLostError("thread is still owned by another runtime")
        except Exception as exc:
            log.exception("run %s failed in the runtime", req.run_id)
            lost = await self._end_or_lose(handle, exc, str(exc))
        finally:
            await handle.close(lost)
            self.runs.pop(req.run_id, None)
            if lease_taken:
                await self._lease_done(scoped, release=lost is None or handle.handover)

    async def _end_or_lose(
        self, handle: RunHandle, exc: BaseException, message: str
    ) -> RunLostError | None:
        try:
            await self._end(handle, "error", error={"type": type(exc).__name__, "message": message})
        except StaleOwnerError:
            return RunLostError("run moved to another runtime: this one lost the thread's lease")
        return None

    async def _wait_thread_free(self, record: RunRecord) -> None:
        delay = 0.02
        while True:
            active = await self.records.claim_thread(record)
            if active == record.run_id:
                return
            other = self.runs.get(active)
            if other is not None and other.task is not None and not other.task.done():
                with contextlib.suppress(BaseException):
                    await asyncio.shield(other.task)
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _config(self, req: RunRequest, lease: ThreadLeaseLike) -> dict[str, Any]:
        user = dict(req.config)
        conf = dict(user.pop("configurable", None) or {})
        conf.update(self.settings.extra_configurable)
        conf["thread_id"] = req.scoped_thread
        conf["checkpoint_ns"] = ""
        conf[CONFIG_KEY_CHECKPOINTER] = FencedCheckpointer(self.checkpointer, lease)
        metadata = {**(user.pop("metadata", None) or {}), **req.metadata}
        metadata[RUN_ID_KEY] = req.run_id
        metadata["lgmesh_tenant"] = req.tenant_id
        # Workers rebuild tasks with this configurable: subgraph checkpoints they write are fenced too.
        conf["fencing_token"] = lease.token
        return {**user, "configurable": conf, "metadata": metadata}

    async def _graph_input(self, req: RunRequest, graph: Pregel, config: dict[str, Any]) -> Any:
        if req.resume:
            latest = await self.checkpointer.aget_tuple(
                {"configurable": {"thread_id": req.scoped_thread, "checkpoint_ns": ""}}
            )
            if latest is not None and latest.metadata.get(RUN_ID_KEY) == req.run_id:
                return None  # continue from this run's last checkpoint
        if req.command:
            cmd = req.command
            kwargs: dict[str, Any] = {}
            if "resume" in cmd:
                kwargs["resume"] = cmd["resume"]
            if cmd.get("update") is not None:
                kwargs["update"] = cmd["update"]
            if cmd.get("goto"):
                kwargs["goto"] = cmd["goto"]
            return Command(**kwargs)
        return req.input

    async def _execute(self, handle: RunHandle, graph: Pregel, lease: ThreadLeaseLike) -> None:
        req = handle.req
        config = self._config(req, lease)
        graph_input = await self._graph_input(req, graph, config)
        if self.remote is None or self.remote_mode == "off":
            await self._stream(handle, graph, lease, config, graph_input)
            return
        async with self.remote.run(
            config, graph_id=req.assistant_id, run_id=req.run_id, remote=self.remote_mode
        ) as remote_config:
            await self._stream(handle, graph, lease, remote_config, graph_input)

    async def _stream(
        self,
        handle: RunHandle,
        graph: Pregel,
        lease: ThreadLeaseLike,
        config: Any,
        graph_input: Any,
    ) -> None:
        req = handle.req
        wanted = {
            m for m in req.stream_modes if m in ("values", "updates", "custom", "messages", "debug")
        }
        # "values" and "updates" are always streamed: the last values are the run's output
        # and an "__interrupt__" update says the run paused (no extra state read at the end).
        modes = sorted(wanted | {"values", "updates"})
        stream = graph.astream(  # type: ignore[call-overload]
            graph_input,
            config,
            stream_mode=modes,
            subgraphs=req.stream_subgraphs,
            durability="sync",
            context=req.context or None,
            interrupt_before=list(req.interrupt_before) or None,
            interrupt_after=list(req.interrupt_after) or None,
        )
        values: Any = None
        interrupts: list[Any] = []
        paused = False
        try:
            async for item in stream:
                # (ns, mode, chunk) with subgraphs; (mode, chunk) without. Events of
                # @task calls carry their task's namespace either way.
                ns, mode, chunk = item if len(item) == 3 else ((), *item)
                if not ns:
                    if mode == "values":
                        values = chunk
                    elif mode == "updates" and isinstance(chunk, dict) and "__interrupt__" in chunk:
                        paused = True
                        interrupts.extend(chunk["__interrupt__"])
                if mode not in wanted:
                    continue
                lease.check()
                if mode == "messages":
                    msg, meta = chunk
                    data: Any = [to_jsonable(msg), to_jsonable(meta)]
                else:
                    data = to_jsonable(chunk)
                await self._emit(handle, handle.next_event(mode, data, namespace=tuple(ns)))
        except Exception as exc:
            if isinstance(exc, StaleOwnerError):
                raise
            log.info(
                "run %s ended with %s",
                req.run_id,
                type(exc).__name__,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            await self._end(
                handle, "error", error={"type": type(exc).__name__, "message": str(exc)}
            )
            return
        if interrupts:  # the run's output, as Pregel.ainvoke gives it
            values = (
                {**values, "__interrupt__": interrupts}
                if isinstance(values, dict)
                else {"__interrupt__": interrupts}
            )
        lease.check()
        await self._end(
            handle,
            "interrupted" if paused else "success",
            interrupts=[to_jsonable(i) for i in interrupts],
            values=to_jsonable(values),
        )

    async def _end(
        self,
        handle: RunHandle,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        interrupts: list[Any] | None = None,
        values: Any = None,
    ) -> None:
        fields: dict[str, Any] = {}
        if error is not None:
            fields["error"] = error
        if interrupts:
            fields["interrupts"] = interrupts
        owner = ""
        if handle.lease is not None:
            # A runtime that lost the thread (paused past its TTL) must not end the run:
            # its new owner does. Self-fencing first, then the record's owner in Redis.
            handle.lease.check()
            owner = self.settings.runtime_id
        if not await self.records.finish_run(handle.record, status, owner=owner, **fields):
            raise StaleOwnerError("the run belongs to another runtime now", reason="STALE_OWNER")
        lc: dict[str, Any] = {"interrupts": interrupts or []}
        if error is not None:
            lc["error"] = error
        ev = handle.next_event(
            "lifecycle",
            values,
            lifecycle={
                "kind": "ended",
                "status": status,
                "runtime_id": self.settings.runtime_id,
                **lc,
            },
        )
        await self._emit(handle, ev)

    # -- shutdown ----------------------------------------------------------------------
    async def drain(self, timeout: float | None = None) -> None:
        """Stop taking runs, let in-flight ones finish, hand the rest over."""
        self.draining = True
        pending = [h.task for h in self.runs.values() if h.task is not None and not h.task.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout or self.settings.drain_timeout)
            for handle in list(self.runs.values()):
                if handle.task is not None and handle.task in still:
                    handle.handover = True
                    handle.task.cancel()
            if still:
                await asyncio.wait(still, timeout=5)
        for scoped, held in list(self._held.items()):
            self._held.pop(scoped, None)
            with contextlib.suppress(Exception):
                await self.leases.release(held.lease)

    def stats(self) -> dict[str, float]:
        return {"running": self.running, "time": time.time()}

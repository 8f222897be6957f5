"""The owner role: take a thread's lease, admit its runs, drive them through LangGraph.

One :class:`RunManager` per runtime process. The rules that keep a thread consistent:

* **A runtime drives a thread's runs only while it holds the thread's lease.** It takes
  the lease before it admits a run, so every pending or running run of a thread it
  holds is either driven here or orphaned by a dead runtime, and then adopted here.
* **Admission is one Redis script** (busy check + begin or queue, per multitask
  strategy); a queued run waits for its turn without holding any lock, woken when a
  run of its thread ends here (or by a short poll).
* **Only the graph's own errors fail a run.** A lost lease, a lost etcd session, a
  backend that stayed away past the retry budget, a drain: the run is handed over
  (left ``running`` for whoever takes the thread next), never recorded as failed.
* **Nothing starts on a runtime that lost the thread.** The lease is checked before
  each superstep's tasks start (LangGraph's ``tasks`` stream event comes right
  before them), before every checkpoint write, and the event log is fenced too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel
from langgraph.types import Command

from mesh_core.adapters.redis.records import (
    ACTIVE_STATUSES,
    FinishOutcome,
    RecordStore,
    RunRecord,
)
from mesh_core.errors import (
    BackendUnavailableError,
    DeadlineExceededError,
    FailedPreconditionError,
    MeshError,
    NotFoundError,
    QuotaExceededError,
    SessionLostError,
    StaleOwnerError,
    UnavailableError,
)
from mesh_core.fairshare import FairSlots, share_cap
from mesh_core.jsonvalue import to_jsonable
from mesh_core.limits import LimitsTable
from mesh_core.reasons import Reason
from mesh_core.security import CONFIG_KEY_TENANT_TOKEN
from runtime_svc.fencing import FencedCheckpointer
from runtime_svc.graphs import GraphRegistry
from runtime_svc.langgraph_api import CONFIG_KEY_CHECKPOINTER, PUSH
from runtime_svc.outputs import output_ref, run_output
from runtime_svc.runs import Event, EventLogPort, RunHandle, RunLostError, RunRequest, wait_any
from runtime_svc.threads import require_checkpoint
from runtime_svc.visibility import SCRUBBED_MODES, public_payload

__all__ = ["RUN_ID_KEY", "RunManager", "RunManagerSettings"]

log = logging.getLogger(__name__)

RUN_ID_KEY = "run_id"  # LangGraph's (and Agent Server's) checkpoint metadata key
_STREAMED = frozenset({"values", "updates", "custom", "messages", "debug", "tasks", "checkpoints"})


class ThreadLeaseLike(Protocol):
    token: int

    @property
    def valid(self) -> bool: ...

    def check(self) -> None: ...


class LeasesLike(Protocol):
    async def try_acquire(self, thread_id: str) -> Any: ...

    async def acquire(self, thread_id: str, timeout: float | None = None) -> Any: ...

    async def release(self, lease: Any) -> Any: ...


def share_retry_after(waiting: int, cap: int, share_wait: float) -> float:
    """RetryInfo for a run refused past its tenant's runtime share: a slot of the tenant
    did not free within ``share_wait`` while ``waiting`` more of its runs queue here for
    ``cap`` slots, so the queue moves by about ``cap`` runs per ``share_wait``. At least
    1 s, at most 30, with jitter: runs that queued together and timed out together do not
    come back together (a fixed delay made them return as one wave, each wave a burst
    of admissions and refusals the tenants next to them waited behind)."""
    queue = max(1.0, share_wait * waiting / max(1, cap))
    return min(30.0, queue) * random.uniform(1.0, 1.5)


@dataclass(frozen=True)
class RunManagerSettings:
    runtime_id: str
    capacity: int = 64
    # How long a tenant's new run waits for a slot within its runtime_share of capacity.
    share_wait: float = 2.0
    # How long a run waits for another runtime's lease on its thread to go.
    acquire_timeout: float = 15.0
    drain_timeout: float = 30.0
    extra_configurable: dict[str, Any] = field(default_factory=dict)
    # How often a queued run re-checks its turn when nothing woke it.
    turn_poll: float = 0.5
    # How long a thread's lease is kept after its last run here: the next run of a hot
    # thread (a conversation) skips the etcd transaction and the fence bump. 0: release
    # at once. Gateways route a thread's runs to the runtime that holds it.
    lease_idle: float = 2.0
    # Checkpoints kept per thread namespace (None: all). The owner prunes once about
    # half as many again have been written, so retention costs one call per K/2.
    checkpoint_keep: int | None = 100
    # Per-tenant limits (mesh_core.limits): concurrent runs and creation rate at
    # admission, run duration, Send tasks per superstep, thread state size.
    limits: LimitsTable = field(default_factory=LimitsTable)


@dataclass
class _HeldLease:
    lease: Any
    users: int = 0
    release_timer: asyncio.TimerHandle | None = None
    written: int = 0  # checkpoints written since the last retention pass


def _is_handover(exc: BaseException) -> bool:
    """Errors that are not the graph's: the run goes on elsewhere."""
    return isinstance(
        exc, StaleOwnerError | SessionLostError | BackendUnavailableError | RunLostError
    ) or (isinstance(exc, UnavailableError) and exc.reason in (Reason.THREAD_OWNED_ELSEWHERE,))


class RunManager:
    def __init__(
        self,
        settings: RunManagerSettings,
        graphs: GraphRegistry,
        checkpointer: BaseCheckpointSaver[Any],
        records: RecordStore,
        leases: LeasesLike,
        eventlog: EventLogPort,
        *,
        remote: Any = None,
        remote_mode: str = "send",
        not_accepting: Callable[[], str | None] = lambda: None,
        on_ended: Callable[[RunHandle], Awaitable[None]] | None = None,
    ) -> None:
        """``remote``: a RemoteExecutor (runtime_svc.remote) that sends remote-eligible
        tasks (``remote_mode``: "send" = Send tasks, "all" = every task) to workers.
        ``not_accepting()`` says why this runtime takes no runs now (None: it does).
        ``on_ended(handle)`` is awaited once a run ended here (its webhook is due)."""
        self.settings = settings
        self.graphs = graphs
        self.checkpointer = checkpointer
        self.records = records
        self.leases = leases
        self.eventlog = eventlog
        self.remote = remote
        self.remote_mode = remote_mode
        self._not_accepting = not_accepting
        self._on_ended = on_ended
        self.runs: dict[str, RunHandle] = {}
        # run id -> the submit taking it here now (a second submit of the same run waits
        # for it: the gateway's resume and the sweeper's adoption may race)
        self._starting: dict[str, asyncio.Future[RunHandle]] = {}
        self._held: dict[str, _HeldLease] = {}
        self._lease_locks: dict[str, asyncio.Lock] = {}
        self._wakeups: dict[str, asyncio.Event] = {}
        self._fenced: dict[str, FencedCheckpointer] = {}  # run id -> its checkpointer view
        self._shares = FairSlots(settings.capacity)  # fresh runs, fair between tenants
        self._share_holders: set[asyncio.Task[None]] = set()
        self.draining = False

    @property
    def running(self) -> int:
        return sum(1 for h in self.runs.values() if not h.finished)

    # -- entry points ------------------------------------------------------------------
    async def submit(self, req: RunRequest, *, wait_for_lease: bool = True) -> RunHandle:
        """Start (or, with ``req.resume``, take over) a run; returns its handle once the
        run is admitted here. ``wait_for_lease=False`` (the sweeper, adoption) gives up
        at once if another runtime holds the thread."""
        existing = self.runs.get(req.run_id)
        if existing is not None and not existing.finished:
            return existing
        starting = self._starting.get(req.run_id)
        if starting is not None:
            # Taken here by a submit still under way: one handle, one drive. Two drives
            # of a run on one runtime share its lease and fencing token, so the fence
            # could not tell their commits apart.
            return await asyncio.shield(starting)
        taking: asyncio.Future[RunHandle] = asyncio.get_running_loop().create_future()
        taking.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._starting[req.run_id] = taking
        try:
            handle = await self._submit_once(req, wait_for_lease=wait_for_lease)
        except asyncio.CancelledError:
            taking.cancel()
            raise
        except BaseException as exc:
            taking.set_exception(exc)
            raise
        finally:
            self._starting.pop(req.run_id, None)
        taking.set_result(handle)
        return handle

    async def _submit_once(self, req: RunRequest, *, wait_for_lease: bool) -> RunHandle:
        if self.draining:
            raise UnavailableError("runtime is draining", reason=Reason.DRAINING)
        why = self._not_accepting()
        if why:
            raise UnavailableError(f"runtime takes no runs now: {why}", reason=Reason.NOT_SERVING)
        if self.running >= self.settings.capacity:
            raise UnavailableError("runtime is at capacity", reason=Reason.AT_CAPACITY)
        if req.resume:  # a run taken over was accepted already: it goes on
            return await self._start_here(req, wait_for_lease)
        await self._take_share(req.tenant_id)
        try:
            handle = await self._start_here(req, wait_for_lease)
        except BaseException:
            self._shares.release(req.tenant_id)
            raise
        task = asyncio.create_task(self._hold_share(handle, req.tenant_id))
        self._share_holders.add(task)
        task.add_done_callback(self._share_holders.discard)
        return handle

    async def _start_here(self, req: RunRequest, wait_for_lease: bool) -> RunHandle:
        graph = self.graphs.get_graph(req.graph_id)
        try:
            lease = await self._lease_for(req.scoped_thread, wait=wait_for_lease)
        except (StaleOwnerError, SessionLostError, BackendUnavailableError) as exc:
            raise RunLostError(f"run not taken here: {_describe(exc)}") from exc
        try:
            if req.resume:
                return await self._start_resume(req, graph, lease)
            return await self._start_fresh(req, graph, lease)
        except BaseException as exc:
            await self._lease_done(req.scoped_thread)
            if isinstance(exc, StaleOwnerError | SessionLostError | BackendUnavailableError):
                # This runtime lost the thread or a backend before the run got going: it
                # goes on (or starts) on a runtime that can drive it.
                raise RunLostError(f"run not taken here: {_describe(exc)}") from exc
            raise

    async def _take_share(self, tenant: str) -> None:
        """A slot of this runtime within the tenant's ``runtime_share`` of its capacity:
        one tenant's burst waits in turn (mesh_core.fairshare) and leaves room for the
        others' runs; past ``share_wait`` it is refused with RESOURCE_EXHAUSTED, told to
        come back after about as long as the tenant's queue here takes to move
        (:func:`share_retry_after`)."""
        share = self.settings.limits.for_tenant(tenant).runtime_share
        cap = share_cap(self.settings.capacity, share)
        try:
            await self._shares.acquire(tenant, cap, self.settings.share_wait)
        except TimeoutError:
            retry = share_retry_after(self._shares.waiting(tenant), cap, self.settings.share_wait)
            raise QuotaExceededError(
                f"tenant runs its share of this runtime ({cap} of {self.settings.capacity} "
                "concurrent runs); retry",
                tenant=tenant,
                limit="runtime_share",
                value=cap,
                retry_after=retry,
            ) from None
        if self.draining:
            self._shares.release(tenant)
            raise UnavailableError("runtime is draining", reason=Reason.DRAINING)

    async def _hold_share(self, handle: RunHandle, tenant: str) -> None:
        try:
            await handle.done.wait()
        finally:
            self._shares.release(tenant)

    async def _start_fresh(self, req: RunRequest, graph: Pregel, lease: Any) -> RunHandle:
        lease.check()
        if req.checkpoint_id:
            await require_checkpoint(self.checkpointer, req.scoped_thread, req.checkpoint_id)
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
        resuming = req.command is not None and "resume" in req.command
        adm = await self.records.admit_run(
            record,
            req.multitask_strategy,
            resumes_interrupt=resuming,
            limits=self.settings.limits.for_tenant(req.tenant_id),
            abort=lease.check,
        )
        log.debug(
            "run %s on %s: %s (active %s, superseded %s)",
            req.run_id,
            req.scoped_thread,
            adm.outcome,
            adm.active_run or "-",
            ",".join(adm.superseded) or "-",
        )
        if adm.outcome == "rejected":
            raise FailedPreconditionError(
                f"thread {req.thread_id!r} is busy with run {adm.active_run}",
                reason=Reason.THREAD_BUSY,
                metadata={"thread_id": req.thread_id, "active_run_id": adm.active_run},
            )
        if adm.outcome == "no_thread":
            raise NotFoundError(
                f"thread {req.thread_id!r} not found", metadata={"thread_id": req.thread_id}
            )
        if adm.outcome == "no_interrupt":
            raise FailedPreconditionError(
                f"thread {req.thread_id!r} has no pending interrupt to resume",
                reason=Reason.NO_INTERRUPT,
                metadata={"thread_id": req.thread_id, "thread_status": adm.active_run},
            )
        if adm.outcome == "existing":  # admitted by an earlier try: continue it
            return await self._start_resume(req, graph, lease)
        handle = self._new_handle(req, record, _fresh_position())
        self.runs[req.run_id] = handle
        self._wake(req.scoped_thread)  # superseded runs here end at once
        if adm.active_run and req.multitask_strategy in ("interrupt", "rollback"):
            await self.cancel(adm.active_run, req.multitask_strategy)
        handle.task = asyncio.create_task(
            self._drive(handle, graph, lease, has_turn=adm.outcome == "running")
        )
        return handle

    async def _start_resume(self, req: RunRequest, graph: Pregel, lease: Any) -> RunHandle:
        record = await self.records.get_run(
            req.tenant_id, req.thread_id, req.run_id, abort=lease.check
        )
        if record is None:
            raise NotFoundError(f"run {req.run_id!r} not found", metadata={"run_id": req.run_id})
        position = await self.eventlog.position(req.run_id, abort=lease.check)
        handle = self._new_handle(req, record, position)
        self.runs[req.run_id] = handle
        handle.task = asyncio.create_task(self._drive(handle, graph, lease, has_turn=False))
        return handle

    def _new_handle(self, req: RunRequest, record: RunRecord, position: Any) -> RunHandle:
        handle: RunHandle

        def publish_failed(exc: BaseException) -> None:
            # The log refused (another runtime drives the run) or NATS stayed away:
            # stop the run here; whoever has the thread continues it.
            log.warning("run %s: event log: %s; handing over", req.run_id, type(exc).__name__)
            handle.stop(handover=True)

        handle = RunHandle(req, record, self.eventlog, position, on_publish_failure=publish_failed)
        return handle

    async def cancel(self, run_id: str, action: str = "interrupt", *, tenant: str = "") -> bool:
        """Stop a run driven here (interrupt, or rollback: forget it and its checkpoints);
        ``tenant``: only a run of this tenant (another tenant's run is not "found")."""
        handle = self.runs.get(run_id)
        if handle is None or handle.finished or (tenant and handle.req.tenant_id != tenant):
            return False
        handle.stop(cancel=action)
        return True

    # -- leases ------------------------------------------------------------------------
    async def _lease_for(self, scoped: str, *, wait: bool) -> Any:
        lock = self._lease_locks.setdefault(scoped, asyncio.Lock())
        async with lock:
            held = self._held.get(scoped)
            if held is not None and held.release_timer is not None:
                held.release_timer.cancel()  # a hot thread: its next run keeps the lease
                held.release_timer = None
            if held is not None and not held.lease.valid:
                self._held.pop(scoped, None)
                held = None
            if held is None:
                if wait:
                    try:
                        lease = await self.leases.acquire(
                            scoped, timeout=self.settings.acquire_timeout
                        )
                    except DeadlineExceededError as exc:
                        raise UnavailableError(
                            "thread is owned by another runtime",
                            reason=Reason.THREAD_OWNED_ELSEWHERE,
                        ) from exc
                else:
                    lease = await self.leases.try_acquire(scoped)
                    if lease is None:
                        raise UnavailableError(
                            "thread is owned by another runtime",
                            reason=Reason.THREAD_OWNED_ELSEWHERE,
                        )
                try:
                    # A new owner stores its token first: a zombie is fenced off even
                    # before this owner's first checkpoint.
                    await FencedCheckpointer(self.checkpointer, lease).abump_fence(scoped)
                except BaseException:
                    with contextlib.suppress(Exception):
                        await self.leases.release(lease)
                    raise
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
            if held.users > 0:
                return
            keep = release and self.settings.lease_idle > 0 and not self.draining
            if keep and held.lease.valid:
                loop = asyncio.get_running_loop()
                held.release_timer = loop.call_later(
                    self.settings.lease_idle,
                    lambda: loop.create_task(self._release_idle(scoped, held)),
                )
                return
            await self._drop_lease(scoped, held, release=release)

    async def _release_idle(self, scoped: str, held: _HeldLease) -> None:
        lock = self._lease_locks.setdefault(scoped, asyncio.Lock())
        async with lock:
            if self._held.get(scoped) is held and held.users == 0:
                await self._drop_lease(scoped, held, release=True)

    async def _drop_lease(self, scoped: str, held: _HeldLease, *, release: bool) -> None:
        self._held.pop(scoped, None)
        self._lease_locks.pop(scoped, None)
        self._wakeups.pop(scoped, None)
        if held.release_timer is not None:
            held.release_timer.cancel()
            held.release_timer = None
        if release and held.lease.valid:
            try:
                await self.leases.release(held.lease)
            except Exception as exc:  # the key goes with the session lease at the latest
                log.info("releasing thread %s: %s", scoped, type(exc).__name__)

    # -- waiting for a thread's turn -----------------------------------------------------
    def _wake(self, scoped: str) -> None:
        ev = self._wakeups.get(scoped)
        if ev is not None:
            ev.set()

    async def _wait_turn(self, handle: RunHandle, other: str) -> None:
        """Wait until ``other`` (the run that has the thread or is ahead) may be done."""
        scoped = handle.req.scoped_thread
        handle.lease.check()
        ahead = self.runs.get(other)
        if ahead is None:
            # We hold the lease, so nobody else drives the thread's runs: adopt it.
            rec = await self.records.get_run_scoped(scoped, other, abort=handle.lease.check)
            if rec is not None and rec.status in ACTIVE_STATUSES:
                log.info("run %s: adopting orphaned run %s ahead of it", handle.run_id, other)
                with contextlib.suppress(MeshError):
                    await self.submit(RunRequest.from_record(rec), wait_for_lease=False)
                ahead = self.runs.get(other)
        wake = self._wakeups.setdefault(scoped, asyncio.Event())
        wake.clear()
        waits: list[Any] = [wake.wait()]
        if ahead is not None:
            waits.append(ahead.done.wait())
        await wait_any(*waits, timeout=self.settings.turn_poll)

    # -- driving a run -----------------------------------------------------------------
    async def _lifecycle(self, handle: RunHandle, kind: str, status: str, **extra: Any) -> None:
        lc = {"kind": kind, "status": status, "runtime_id": self.settings.runtime_id, **extra}
        await handle.emit(handle.next_event("lifecycle", lifecycle=lc))

    async def _drive(self, handle: RunHandle, graph: Pregel, lease: Any, *, has_turn: bool) -> None:
        req = handle.req
        scoped = req.scoped_thread
        handle.lease = lease
        handle.started = True
        lost: RunLostError | None = None
        release = True
        try:
            if handle.handover:  # asked before this task first ran
                raise asyncio.CancelledError
            if handle.cancel_action:
                await self._cancelled(handle, handle.cancel_action)
                return
            if not has_turn:
                announced = False
                while True:
                    state, other = await self.records.claim_turn(
                        handle.record,
                        owner=self.settings.runtime_id,
                        add_attempt=req.resume,
                        abort=lease.check,
                    )
                    log.debug("run %s: turn %s (%s)", req.run_id, state, other or "-")
                    if state == "running":
                        break
                    if state != "waiting":  # ended meanwhile (cancelled, finished elsewhere)
                        await self._already_ended(handle, state)
                        return
                    if not announced:
                        announced = True
                        await self._lifecycle(handle, "queued", "pending", waiting_for=other)
                    await self._wait_turn(handle, other)
                if req.resume:
                    fresh = await self.records.get_run_scoped(scoped, req.run_id, abort=lease.check)
                    if fresh is not None:
                        handle.record = fresh
            if handle.record.cancel_action:
                await self._cancelled(handle, handle.record.cancel_action)
                return
            if req.resume or req.stream_modes:
                # A run waited for (WaitRun: no stream modes) logs no "started" event: its
                # waiter needs none (ExecuteRun tells the gateway the run was taken here)
                # and followers see its end. One JetStream append less per run.
                await self._lifecycle(handle, "resumed" if req.resume else "started", "running")
            await self._execute(handle, graph, lease)
            await self._retain(handle)
            await self._ended_here(handle)
        except asyncio.CancelledError:
            if handle.handover:
                lost = RunLostError("run handed over: this runtime stopped driving it")
            else:
                try:
                    await asyncio.shield(self._cancelled(handle, handle.cancel_action or ""))
                except Exception as exc:
                    if _is_handover(exc):
                        lost = RunLostError("run moved to another runtime while being cancelled")
                    else:
                        log.warning("run %s: could not record its cancellation", req.run_id)
        except Exception as exc:
            if _is_handover(exc):
                log.warning("run %s: handing over (%s)", req.run_id, _describe(exc))
                lost = RunLostError(f"run handed over: {_describe(exc)}")
                release = not isinstance(exc, StaleOwnerError | SessionLostError)
            else:
                log.exception("run %s failed in the runtime", req.run_id)
                lost = await self._end_or_lose(handle, "error", exc)
        finally:
            self._fenced.pop(req.run_id, None)
            log.debug("run %s: done here (%s)", req.run_id, "lost" if lost else "ended")
            await handle.close(lost)
            self.runs.pop(req.run_id, None)
            await self._lease_done(scoped, release=release)
            self._wake(scoped)

    async def _retain(self, handle: RunHandle) -> None:
        """Checkpoint retention, after the run's final event (nobody waits for it)."""
        keep = self.settings.checkpoint_keep
        fenced = self._fenced.get(handle.run_id)
        held = self._held.get(handle.req.scoped_thread)
        if keep is None or fenced is None or held is None:
            return
        held.written += fenced.puts
        fenced.puts = 0
        if held.written < max(1, keep // 2):
            return
        held.written = 0
        try:
            dropped = await fenced.aprune_keep_last(handle.req.scoped_thread, keep)
        except Exception as exc:  # retention is housekeeping: the next run tries again
            log.info("checkpoint retention of %s: %s", handle.req.scoped_thread, _describe(exc))
            return
        log.debug("checkpoint retention of %s: %d dropped", handle.req.scoped_thread, dropped)

    async def _already_ended(self, handle: RunHandle, state: str) -> None:
        """The run ended without us (cancelled while queued, ended by another owner):
        tell its followers, unless its log says so already."""
        if state == "missing" or handle.position.final:
            return  # nothing to tell, or the log has the run's final event already
        rec = await self.records.get_run_scoped(handle.req.scoped_thread, handle.run_id)
        await self._emit_end(handle, state, error=rec.error if rec is not None else None)

    async def _end_or_lose(
        self, handle: RunHandle, status: str, exc: BaseException
    ) -> RunLostError | None:
        try:
            await self._end(handle, status, error=_error_of(exc))
        except Exception as inner:
            if _is_handover(inner):
                return RunLostError(f"run handed over: {_describe(inner)}")
            raise
        return None

    async def _cancelled(self, handle: RunHandle, action: str) -> None:
        if action == "rollback":
            await self._roll_back(handle)
        else:
            await self._end(handle, "cancelled")

    async def _roll_back(self, handle: RunHandle) -> None:
        """Forget the run: its checkpoints (the thread goes back to before it) and record."""
        lease = handle.lease
        lease.check()
        scoped = handle.req.scoped_thread
        delete = getattr(self.checkpointer, "adelete_run_checkpoints", None)
        if delete is not None:
            await delete(scoped, [handle.run_id], token=lease.token)
        lease.check()
        if not await self.records.delete_run(
            handle.record, owner=self.settings.runtime_id, abort=lease.check
        ):
            raise StaleOwnerError("the run belongs to another runtime now", reason="STALE_OWNER")
        await self._emit_end(
            handle,
            "cancelled",
            error={"type": "RolledBack", "message": "a newer run on the thread replaced this run"},
        )

    def _config(self, req: RunRequest, lease: ThreadLeaseLike) -> dict[str, Any]:
        user = dict(req.config)
        conf = dict(user.pop("configurable", None) or {})
        conf.update(self.settings.extra_configurable)
        conf["thread_id"] = req.scoped_thread
        conf["checkpoint_ns"] = ""
        conf[CONFIG_KEY_CHECKPOINTER] = FencedCheckpointer(
            self.checkpointer,
            lease,
            tenant=req.tenant_id,
            max_state_bytes=self.settings.limits.for_tenant(req.tenant_id).max_state_bytes,
        )
        self._fenced[req.run_id] = conf[CONFIG_KEY_CHECKPOINTER]
        metadata = {**(user.pop("metadata", None) or {}), **req.metadata}
        metadata[RUN_ID_KEY] = req.run_id
        metadata["lgmesh_tenant"] = req.tenant_id
        if req.tenant_token:
            # mesh_client sends it with every LLM and tool call of the run (also from
            # workers); its "__" key keeps it out of checkpoint metadata, and
            # runtime_svc.visibility keeps it from clients
            conf[CONFIG_KEY_TENANT_TOKEN] = req.tenant_token
        # Workers rebuild tasks with this configurable: subgraph checkpoints they write are fenced too.
        conf["fencing_token"] = lease.token
        return {**user, "configurable": conf, "metadata": metadata}

    async def _continues(self, req: RunRequest) -> bool:
        """Whether a resumed run continues from a checkpoint it wrote itself."""
        if not req.resume:
            return False
        latest = await self.checkpointer.aget_tuple(
            {"configurable": {"thread_id": req.scoped_thread, "checkpoint_ns": ""}}
        )
        return latest is not None and latest.metadata.get(RUN_ID_KEY) == req.run_id

    def _graph_input(self, req: RunRequest) -> Any:
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
        continuing = await self._continues(req)
        graph_input = None if continuing else self._graph_input(req)
        if req.checkpoint_id and not continuing:  # time travel / fork from that checkpoint
            config["configurable"]["checkpoint_id"] = req.checkpoint_id
        if self.remote is None or self.remote_mode == "off":
            await self._stream(handle, graph, lease, config, graph_input)
            return
        async with self.remote.run(
            config, graph_id=req.graph_id, run_id=req.run_id, remote=self.remote_mode
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
        wanted = {m for m in req.stream_modes if m in _STREAMED}
        # "values" and "updates" are always streamed: the last values are the run's output
        # and an "__interrupt__" update says the run paused (no extra state read at the end).
        # "tasks" comes right before each superstep's tasks start: the lease is checked there.
        modes = sorted(wanted | {"values", "updates", "tasks"})
        stream = graph.astream(  # type: ignore[call-overload]
            graph_input,
            config,
            stream_mode=modes,
            subgraphs=req.stream_subgraphs,
            durability=req.durability or "sync",
            context=req.context or None,
            interrupt_before=list(req.interrupt_before) or None,
            interrupt_after=list(req.interrupt_after) or None,
        )
        values: Any = None
        interrupts: list[Any] = []
        paused = False
        limits = self.settings.limits.for_tenant(req.tenant_id)
        sends = _SendCounter(req.tenant_id, limits.max_sends_per_step)
        deadline = asyncio.timeout(limits.max_run_seconds)
        try:
            async with deadline:
                async for item in stream:
                    # (ns, mode, chunk) with subgraphs; (mode, chunk) without. Events of
                    # @task calls carry their task's namespace either way.
                    ns, mode, chunk = item if len(item) == 3 else ((), *item)
                    if mode == "tasks":
                        sends.see(tuple(ns), chunk)
                    if not ns:
                        if mode == "tasks":
                            if "result" not in chunk and "error" not in chunk:
                                lease.check()  # a task starts: only while we own the thread
                        elif mode == "values":
                            values = chunk
                        elif (
                            mode == "updates"
                            and isinstance(chunk, dict)
                            and "__interrupt__" in chunk
                        ):
                            paused = True
                            interrupts.extend(chunk["__interrupt__"])
                    if mode not in wanted:
                        continue
                    if mode == "messages":
                        msg, meta = chunk
                        meta = public_payload(
                            to_jsonable(meta), req.thread_id, req.scoped_thread, metadata=True
                        )
                        data: Any = [to_jsonable(msg), meta]
                    else:
                        data = to_jsonable(chunk)
                        if mode in SCRUBBED_MODES:
                            data = public_payload(data, req.thread_id, req.scoped_thread)
                    await handle.emit(handle.next_event(mode, data, namespace=tuple(ns)))
        except Exception as exc:
            if _is_handover(exc):
                raise
            if isinstance(exc, TimeoutError) and deadline.expired():
                log.info("run %s ran past its tenant's time limit", req.run_id)
                err = QuotaExceededError(
                    f"the run took longer than its tenant's limit of {limits.max_run_seconds:g}s",
                    tenant=req.tenant_id,
                    limit="max_run_seconds",
                    value=int(limits.max_run_seconds),
                )
                await self._end(handle, "timeout", error=_error_of(err))
                return
            log.info(
                "run %s ended with %s",
                req.run_id,
                type(exc).__name__,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            await self._end(handle, "error", error=_error_of(exc))
            return
        await self._end(
            handle,
            "interrupted" if paused else "success",
            interrupts=[to_jsonable(i) for i in interrupts],
            values=to_jsonable(run_output(values, interrupts)),
            output=(
                None
                if handle.req.on_completion == "delete"  # the thread goes with the run
                else output_ref(self._fenced.get(handle.run_id), graph, handle.req.graph_id, values)
            ),
        )

    async def _end(
        self,
        handle: RunHandle,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        interrupts: list[Any] | None = None,
        values: Any = None,
        output: dict[str, str] | None = None,
    ) -> None:
        fields: dict[str, Any] = {}
        if error is not None:
            fields["error"] = error
        if interrupts:
            fields["interrupts"] = interrupts
        # A runtime that lost the thread (paused past its TTL) must not end the run:
        # its new owner does. Self-fencing first, then the record's owner in Redis.
        if handle.lease is not None:
            handle.lease.check()
        await handle.flush()  # every event before the final one is in the log
        abort = handle.lease.check if handle.lease is not None else None
        outcome = await self.records.finish_run(
            handle.record, status, owner=self.settings.runtime_id, abort=abort, **fields
        )
        if outcome is FinishOutcome.NOT_OWNER:
            raise StaleOwnerError("the run belongs to another runtime now", reason="STALE_OWNER")
        if outcome is FinishOutcome.ALREADY_ENDED:
            rec = await self.records.get_run_scoped(handle.req.scoped_thread, handle.run_id)
            if rec is not None:
                status, error, values, output = rec.status, rec.error, None, None
        await self._emit_end(
            handle, status, error=error, interrupts=interrupts, values=values, output=output
        )

    async def _emit_end(
        self,
        handle: RunHandle,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        interrupts: list[Any] | None = None,
        values: Any = None,
        output: dict[str, str] | None = None,
    ) -> None:
        """The run's final event: its output in ``values`` and, when a checkpoint holds
        it, that checkpoint in ``output`` (the log may keep only the reference)."""
        lc: dict[str, Any] = {"interrupts": interrupts or []}
        if error is not None:
            lc["error"] = error
        if output is not None:
            lc["output"] = output
        handle.output = values
        ev: Event = handle.next_event(
            "lifecycle",
            values,
            lifecycle={
                "kind": "ended",
                "status": status,
                "runtime_id": self.settings.runtime_id,
                **lc,
            },
        )
        await handle.emit(ev)
        await handle.flush()

    # -- writes outside a run ------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def holding(self, scoped: str) -> AsyncIterator[Any]:
        """The thread's lease (shared with this runtime's runs on it) for a write outside
        a run: update_state, delete, copy, prune go through its fence like a run's."""
        if self.draining:
            raise UnavailableError("runtime is draining", reason=Reason.DRAINING)
        why = self._not_accepting()
        if why:
            raise UnavailableError(f"runtime takes no writes now: {why}", reason=Reason.NOT_SERVING)
        try:
            lease = await self._lease_for(scoped, wait=True)
        except (StaleOwnerError, SessionLostError, BackendUnavailableError) as exc:
            raise UnavailableError(
                f"thread not writable here: {_describe(exc)}",
                reason=Reason.THREAD_OWNED_ELSEWHERE,
            ) from exc
        try:
            yield lease
        finally:
            await self._lease_done(scoped)
            self._wake(scoped)

    async def _ended_here(self, handle: RunHandle) -> None:
        """After a run ended here (a stateless run's thread goes, its webhook is due)."""
        if self._on_ended is None:
            return
        try:
            await self._on_ended(handle)
        except Exception as exc:  # the run has ended: the sweepers finish what is left
            log.warning("run %s: after its end: %s", handle.run_id, _describe(exc))

    # -- shutdown ----------------------------------------------------------------------
    async def drain(self, timeout: float | None = None) -> None:
        """Stop taking runs, let in-flight ones finish, hand the rest over."""
        self.draining = True
        pending = [h.task for h in self.runs.values() if h.task is not None and not h.task.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout or self.settings.drain_timeout)
            for handle in list(self.runs.values()):
                if handle.task is not None and handle.task in still:
                    handle.stop(handover=True)
            if still:
                await asyncio.wait(still, timeout=5)
        for scoped, held in list(self._held.items()):
            self._held.pop(scoped, None)
            if held.release_timer is not None:
                held.release_timer.cancel()
            with contextlib.suppress(Exception):
                await self.leases.release(held.lease)

    async def hand_over_all(self, why: str) -> None:
        """Stop driving every run now (their threads go to other runtimes)."""
        for handle in list(self.runs.values()):
            if handle.stop(handover=True):
                log.warning("run %s: handing over (%s)", handle.run_id, why)

    def stats(self) -> dict[str, float]:
        return {"running": self.running, "time": time.time()}


def _fresh_position() -> Any:
    from mesh_core.adapters.nats.eventlog import LogPosition

    return LogPosition()


def _error_of(exc: BaseException) -> dict[str, Any]:
    message = exc.message if isinstance(exc, MeshError) else str(exc)
    out: dict[str, Any] = {"type": type(exc).__name__, "message": message}
    if isinstance(exc, QuotaExceededError):  # the gateway answers RESOURCE_EXHAUSTED
        out["quota"] = {"tenant": exc.tenant, "limit": exc.limit, "value": exc.value}
    return out


class _SendCounter:
    """Send tasks per superstep, per graph namespace: past the tenant's limit the run
    stops before the step runs (the "tasks" events of a step all come before any of its
    results, so a start after a result begins the next step)."""

    def __init__(self, tenant: str, limit: int) -> None:
        self.tenant = tenant
        self.limit = limit
        self._steps: dict[tuple[str, ...], list[int]] = {}  # ns -> [sends, in results]

    def see(self, ns: tuple[str, ...], chunk: Any) -> None:
        if not isinstance(chunk, dict):
            return
        step = self._steps.setdefault(ns, [0, 0])
        if "result" in chunk or "error" in chunk:
            step[1] = 1
            return
        if step[1]:
            step[0], step[1] = 0, 0
        if PUSH in (chunk.get("triggers") or ()):
            step[0] += 1
            if step[0] > self.limit:
                raise QuotaExceededError(
                    f"a superstep creates more than the tenant's limit of {self.limit} Send tasks",
                    tenant=self.tenant,
                    limit="max_sends_per_step",
                    value=self.limit,
                )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

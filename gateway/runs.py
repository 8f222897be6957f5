"""Runs, as the public API sees them (plain Python; the servicer converts).

A run is checked here before anything happens (assistant, input against the graph's
schema, config, nodes of interrupt_before/after, webhook host, the thread's graph when
it waits on an interrupt), laid over its assistant's config and context, then:

* started now: dispatched to the thread's owner (``RunDispatcher``), which admits it
  under the thread's lease with the multitask strategy's one script;
* delayed (``after_seconds``): recorded as ``scheduled`` and put on the delayed-run
  schedule in one Redis script; a runtime's scheduler admits it when due;
* stateless (no thread id): on a new thread that its runtime deletes when the run ends,
  unless ``on_completion="keep"``.

A webhook is put on its schedule before the client hears of the run (nothing lost).
Events travel as the runtime made them (opaque here): the engine only reads the last.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import random
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from gateway import _convert
from gateway._runtime import RuntimeClient
from gateway.assistants import AssistantsEngine, merge_config
from gateway.dispatch import RunDispatcher
from gateway.ids import check_id, check_ids, check_page
from mesh_core.adapters.nats.eventlog import RunEventLog, is_final_event
from mesh_core.adapters.redis.records import (
    ACTIVE_STATUSES,
    SCHEDULED,
    TERMINAL_STATUSES,
    RecordStore,
    RunRecord,
    ThreadRecord,
    scoped_thread_id,
)
from mesh_core.adapters.redis.schedule import Schedule
from mesh_core.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    MeshError,
    NotFoundError,
    QuotaExceededError,
    ResourceExhaustedError,
)
from mesh_core.limits import LimitsTable
from mesh_core.validation import validate_config, validate_input
from mesh_core.webhooks import check_webhook

__all__ = ["RunOutcome", "RunSpec", "RunsEngine"]

#: at most this far ahead (a delayed run is a promise the mesh keeps in Redis)
MAX_AFTER_SECONDS = 30 * 24 * 3600.0


@dataclass
class RunSpec:
    """A run request as the API takes it."""

    thread_id: str = ""
    assistant_id: str = ""
    input: Any = None
    has_input: bool = False
    #: the input as it came on the wire (sent on to the runtime without re-encoding it)
    input_wire: bytes = b""
    #: a large request: decoded and checked off the event loop
    large: bool = False
    command: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    stream_modes: tuple[str, ...] = ()
    multitask_strategy: str = "reject"
    interrupt_before: tuple[str, ...] = ()
    interrupt_after: tuple[str, ...] = ()
    stream_subgraphs: bool = False
    if_not_exists_create: bool = False
    checkpoint_id: str = ""
    durability: str = "sync"
    after_seconds: float = 0.0
    webhook: str = ""
    on_completion: str = ""
    #: events of the run's lifecycle only (WaitRun: the end carries the output)
    lifecycle_only: bool = False
    #: the assistant's graph (set by ``prepare``)
    graph_id: str = ""


@dataclass
class RunOutcome:
    """A run that ended: its record (as far as known) and its output."""

    run: RunRecord
    values: Any = None


def _raise_if_quota(tenant: str, ev: Any) -> None:
    """After the final event of a run a tenant limit stopped: RESOURCE_EXHAUSTED with
    QuotaFailure, as for a limit met at admission (the events came first)."""
    if not is_final_event(ev):
        return
    _, error, _, _ = _convert.outcome_of(ev)
    quota = (error or {}).get("quota")
    if quota:
        raise QuotaExceededError(
            str(error.get("message", "")) if error else "",
            tenant=tenant,
            limit=str(quota["limit"]),
            value=int(quota["value"]),
        )


class RunsEngine:
    def __init__(
        self,
        records: RecordStore,
        runtime: RuntimeClient,
        dispatcher: RunDispatcher,
        eventlog: RunEventLog,
        assistants: AssistantsEngine,
        delayed: Schedule,
        webhooks: Schedule,
        *,
        webhook_allow_hosts: tuple[str, ...] = (),
        limits: LimitsTable | None = None,
    ) -> None:
        self.limits = limits or LimitsTable()
        self._open_streams: dict[str, int] = {}
        self._refusals = _Backpressure()
        self.records = records
        self.runtime = runtime
        self.dispatcher = dispatcher
        self.eventlog = eventlog
        self.assistants = assistants
        self.delayed = delayed
        self.webhooks = webhooks
        self.webhook_allow_hosts = webhook_allow_hosts

    # -- checking and preparing a run ----------------------------------------------------
    async def _validated(self, tenant: str, spec: RunSpec) -> RunSpec:
        check_id(spec.assistant_id, "run.assistant_id")
        check_id(spec.thread_id, "run.thread_id", required=False)
        assistant = await self.assistants.get(tenant, spec.assistant_id)
        graph = await self.runtime.graph(assistant.graph_id)
        if spec.has_input and spec.command is not None:
            raise InvalidArgumentError(
                "set either input or command, not both",
                [FieldViolation("run.command", "cannot be combined with run.input")],
            )
        if spec.has_input:
            if spec.large:  # keep the event loop free
                await asyncio.to_thread(validate_input, spec.input, graph.input_schema)
            else:
                validate_input(spec.input, graph.input_schema)
        config = dict(spec.config)
        conf = config.get("configurable")
        checkpoint_id = spec.checkpoint_id
        if isinstance(conf, dict) and "checkpoint_id" in conf:
            conf = dict(conf)
            checkpoint_id = checkpoint_id or str(conf.pop("checkpoint_id") or "")
            config["configurable"] = conf
        validate_config(config)
        self._check_recursion_limit(tenant, config)
        for name in [*spec.interrupt_before, *spec.interrupt_after]:
            if name != "*" and name not in graph.nodes:
                raise InvalidArgumentError(
                    f"unknown node {name!r} in interrupt_before/after",
                    [
                        FieldViolation(
                            "run.interrupt_before", f"{name!r} is not a node of the graph"
                        )
                    ],
                )
        if spec.webhook:
            check_webhook(spec.webhook, self.webhook_allow_hosts)
        if spec.after_seconds > MAX_AFTER_SECONDS:
            raise InvalidArgumentError(
                "after_seconds is too far ahead",
                [FieldViolation("run.after_seconds", f"at most {MAX_AFTER_SECONDS:.0f}")],
            )
        if spec.on_completion and spec.thread_id:
            raise InvalidArgumentError(
                "on_completion applies to stateless runs (no thread_id) only",
                [FieldViolation("run.on_completion", "leave unset when thread_id is set")],
            )
        return replace(
            spec,
            config=merge_config(assistant.config, config),
            context={**assistant.context, **spec.context},
            checkpoint_id=checkpoint_id,
            graph_id=assistant.graph_id,
        )

    def _check_recursion_limit(self, tenant: str, config: dict[str, Any]) -> None:
        most = self.limits.for_tenant(tenant).max_recursion_limit
        asked = config.get("recursion_limit")
        if isinstance(asked, int) and not isinstance(asked, bool) and asked > most:
            raise QuotaExceededError(
                f"config.recursion_limit {asked} is above the tenant's limit of {most}",
                tenant=tenant,
                limit="max_recursion_limit",
                value=most,
            )

    @contextlib.contextmanager
    def _stream_slot(self, tenant: str) -> Iterator[None]:
        """One of the tenant's concurrent StreamRun/WaitRun/JoinRun calls on this gateway."""
        most = self.limits.for_tenant(tenant).concurrent_streams
        held = self._open_streams.get(tenant, 0)
        if held >= most:
            raise QuotaExceededError(
                f"the tenant has {held} runs streamed, waited for or joined on this gateway, "
                "its limit; retry when one ends",
                tenant=tenant,
                limit="concurrent_streams",
                value=most,
                retry_after=self._refusals.retry_after(tenant, most),
            )
        self._open_streams[tenant] = held + 1
        try:
            yield
        finally:
            left = self._open_streams[tenant] - 1
            if left:
                self._open_streams[tenant] = left
            else:
                del self._open_streams[tenant]

    async def _thread_for(self, tenant: str, spec: RunSpec) -> tuple[RunSpec, bool]:
        """The spec with its thread id (a new thread for a stateless run), and whether
        the thread was just made."""
        if not spec.thread_id:
            rec = await self.records.create_thread(
                tenant,
                str(uuid.uuid4()),
                {},
                assistant_id=spec.assistant_id,
                graph_id=spec.graph_id,
            )
            return (
                replace(
                    spec, thread_id=rec.thread_id, on_completion=spec.on_completion or "delete"
                ),
                True,
            )
        thread = await self.records.get_thread(tenant, spec.thread_id)
        if thread is None:
            if not spec.if_not_exists_create:
                raise NotFoundError(
                    f"thread {spec.thread_id!r} not found", metadata={"thread_id": spec.thread_id}
                )
            thread = await self.records.create_thread(
                tenant,
                spec.thread_id,
                {},
                if_exists_return=True,
                assistant_id=spec.assistant_id,
                graph_id=spec.graph_id,
            )
        self._check_graph(thread, spec)
        if thread.assistant_id != spec.assistant_id or thread.graph_id != spec.graph_id:
            await self.records.update_thread(
                tenant, spec.thread_id, assistant_id=spec.assistant_id, graph_id=spec.graph_id
            )
        return spec, False

    @staticmethod
    def _check_graph(thread: ThreadRecord, spec: RunSpec) -> None:
        """A thread waiting on an interrupt continues with its own graph only."""
        current = thread.graph_id or thread.assistant_id
        if not current or current == spec.graph_id:
            return
        resuming = spec.command is not None and "resume" in spec.command
        if resuming or thread.status == "interrupted":
            raise FailedPreconditionError(
                f"thread {thread.thread_id!r} is interrupted in graph {current!r}: resume it "
                f"with an assistant of that graph, not of {spec.graph_id!r}",
                reason="THREAD_GRAPH_MISMATCH",
                metadata={"thread_id": thread.thread_id, "thread_graph_id": current},
            )

    async def _arm_webhook(self, tenant: str, spec: RunSpec, run_id: str) -> None:
        if spec.webhook:
            # due once the run can have ended; the runtime ending it makes it due at once
            await self.webhooks.add(
                run_id,
                time.time() + spec.after_seconds + 1.0,
                {
                    "url": spec.webhook,
                    "scoped": scoped_thread_id(tenant, spec.thread_id),
                    "created": time.time(),
                },
            )

    async def prepare(self, tenant: str, spec: RunSpec) -> tuple[str, RunSpec, bool]:
        """(run id, the checked spec on its thread, whether the thread is new)."""
        spec = await self._validated(tenant, spec)
        spec, fresh = await self._thread_for(tenant, spec)
        run_id = str(uuid.uuid4())
        await self._arm_webhook(tenant, spec, run_id)
        return run_id, spec, fresh

    async def _schedule(self, tenant: str, run_id: str, spec: RunSpec) -> RunRecord:
        rec = RunRecord(
            run_id=run_id,
            tenant_id=tenant,
            thread_id=spec.thread_id,
            assistant_id=spec.assistant_id,
            metadata=dict(spec.metadata),
            multitask_strategy=spec.multitask_strategy,
        )
        payload = {
            "scoped": rec.scoped_thread,
            "graph_id": spec.graph_id,
            "spec": base64.b64encode(_convert.spec_to_pb(spec).SerializeToString()).decode(),
            # the runtime that fires it calls the LLM gateway and tools with this token
            "tenant_token": self.dispatcher.tokens.run_token(
                tenant, run_id, delay=spec.after_seconds
            ),
        }
        done = await self.records.schedule_run(
            rec,
            time.time() + spec.after_seconds,
            self.delayed.key,
            self.delayed.data_key,
            self.delayed.pack(run_id, payload),
        )
        if done == 0:
            raise NotFoundError(
                f"thread {spec.thread_id!r} not found", metadata={"thread_id": spec.thread_id}
            )
        return rec

    # -- starting runs ---------------------------------------------------------------------
    async def stream(self, tenant: str, spec: RunSpec) -> AsyncGenerator[Any, None]:
        with self._stream_slot(tenant):
            run_id, spec, fresh = await self.prepare(tenant, spec)
            async for ev in self._events(tenant, run_id, spec, fresh):
                yield ev

    async def _events(
        self, tenant: str, run_id: str, spec: RunSpec, fresh: bool
    ) -> AsyncGenerator[Any, None]:
        if spec.after_seconds > 0:
            await self._schedule(tenant, run_id, spec)
            async for ev in self.dispatcher.follow_log(tenant, spec.thread_id, run_id, 0):
                if is_final_event(ev):
                    ev = await self.runtime.complete_output(tenant, spec.thread_id, ev)
                yield ev
                _raise_if_quota(tenant, ev)
            return
        started = False
        try:
            async for ev in self.dispatcher.execute(tenant, run_id, spec, new_thread=fresh):
                started = True
                if is_final_event(ev):  # from the log after a failover: maybe without output
                    ev = await self.runtime.complete_output(tenant, spec.thread_id, ev)
                yield ev
                _raise_if_quota(tenant, ev)
        except Exception as exc:
            if not started and spec.webhook:  # never admitted (rejected, bad input): no POST
                with contextlib.suppress(Exception):
                    await self.webhooks.done(run_id)
            if not started:
                await self._drop_refused(tenant, spec, fresh, exc)
            raise

    async def wait(self, tenant: str, spec: RunSpec) -> RunOutcome:
        with self._stream_slot(tenant):
            run_id, spec, fresh = await self.prepare(tenant, replace(spec, lifecycle_only=True))
            last: Any = None
            resumed = 0
            events = self._events(tenant, run_id, spec, fresh)
            try:
                async for ev in events:
                    last = ev
                    resumed += int(ev.mode == "lifecycle" and ev.lifecycle.kind == 2)
            finally:
                await events.aclose()
            return await self._outcome(tenant, spec.thread_id, run_id, last, spec, resumed)

    async def _outcome(
        self,
        tenant: str,
        thread_id: str,
        run_id: str,
        last: Any,
        spec: RunSpec | None,
        resumed: int,
    ) -> RunOutcome:
        found = await self.records.get_run(tenant, thread_id, run_id) if run_id else None
        rec = found or RunRecord(
            run_id=run_id,
            tenant_id=tenant,
            thread_id=thread_id,
            assistant_id=spec.assistant_id if spec else "",
            metadata=dict(spec.metadata) if spec else {},
            multitask_strategy=spec.multitask_strategy if spec else "reject",
            attempts=resumed,
        )
        if last is None or not is_final_event(last):
            return RunOutcome(rec)
        status, error, interrupts, output = _convert.outcome_of(last)
        rec = replace(rec, status=status, error=error, interrupts=interrupts)
        if not rec.updated_at:
            rec.updated_at = last.time.ToNanoseconds() / 1e9
        return RunOutcome(rec, output if status not in ("error", "cancelled", "timeout") else None)

    async def _drop_refused(self, tenant: str, spec: RunSpec, fresh: bool, exc: Exception) -> None:
        """The thread made for a stateless run goes again when the tenant's limits refused
        the run (before admission): a burst of refused runs leaves no threads behind."""
        refused = isinstance(exc, MeshError) and exc.code == ResourceExhaustedError.code
        if not (fresh and refused and spec.on_completion == "delete"):
            return
        with contextlib.suppress(Exception):
            rec = await self.records.get_thread(tenant, spec.thread_id)
            if rec is not None and not rec.active_run:
                await self.records.delete_thread(tenant, spec.thread_id)

    async def create(self, tenant: str, spec: RunSpec) -> RunRecord:
        run_id, spec, fresh = await self.prepare(tenant, spec)
        if spec.after_seconds > 0:
            return await self._schedule(tenant, run_id, spec)
        events = self.dispatcher.execute(tenant, run_id, spec, new_thread=fresh)
        try:
            await anext(events)  # the run is recorded once its first event exists
        except Exception as exc:
            await self._drop_refused(tenant, spec, fresh, exc)
            raise
        finally:
            await events.aclose()  # the run goes on in its runtime
        rec = await self.records.find_run(tenant, run_id)
        if rec is None:
            raise NotFoundError("run vanished right after it was created")
        return rec

    # -- existing runs ---------------------------------------------------------------------
    async def get(self, tenant: str, thread_id: str, run_id: str) -> RunRecord:
        check_id(run_id, "run_id")
        check_id(thread_id, "thread_id", required=False)
        rec = (
            await self.records.get_run(tenant, thread_id, run_id)
            if thread_id
            else await self.records.find_run(tenant, run_id)
        )
        if rec is None:
            raise NotFoundError(f"run {run_id!r} not found", metadata={"run_id": run_id})
        return rec

    async def list(
        self, tenant: str, thread_id: str, *, status: str = "", limit: int = 10, offset: int = 0
    ) -> builtins.list[RunRecord]:
        check_id(thread_id, "thread_id")
        limit, offset = check_page(limit, offset)
        if await self.records.get_thread(tenant, thread_id) is None:
            raise NotFoundError(
                f"thread {thread_id!r} not found", metadata={"thread_id": thread_id}
            )
        return await self.records.list_runs(tenant, thread_id, status, limit=limit, offset=offset)

    async def cancel(
        self, tenant: str, rec: RunRecord, *, wait: bool = False, action: str = "interrupt"
    ) -> RunRecord:
        """Recorded first (a queued or scheduled run ends at once; a running one at its
        driver's next step, or when whoever resumes it sees the request), then the runtime
        driving it is told directly. With ``wait``, until it has ended."""
        if rec.status in TERMINAL_STATUSES:
            return rec
        status = await self.records.request_cancel(rec, action)
        if status == "running":
            await self.runtime.cancel_run(
                rec.scoped_thread, tenant, rec.thread_id, rec.run_id, action
            )
        if wait:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    async for _ev in self.dispatcher.follow_log(
                        tenant, rec.thread_id, rec.run_id, 0
                    ):
                        pass
        return await self.records.get_run(tenant, rec.thread_id, rec.run_id) or rec

    async def cancel_many(
        self,
        tenant: str,
        *,
        thread_id: str = "",
        run_ids: builtins.list[str] | None = None,
        status: str = "all",
        action: str = "interrupt",
    ) -> builtins.list[RunRecord]:
        if run_ids:
            recs = [await self.get(tenant, thread_id, rid) for rid in check_ids(run_ids, "run_ids")]
        else:
            if not thread_id:
                raise InvalidArgumentError(
                    "set run_ids, or a thread_id with a status",
                    [FieldViolation("thread_id", "required without run_ids")],
                )
            wanted = {"pending": {"pending", SCHEDULED}, "running": {"running"}}.get(
                status, {*ACTIVE_STATUSES, SCHEDULED}
            )
            recs = [
                r for r in await self.list(tenant, thread_id, limit=1 << 30) if r.status in wanted
            ]
        return [await self.cancel(tenant, r, action=action) for r in recs]

    async def delete(self, tenant: str, thread_id: str, run_id: str) -> None:
        rec = await self.get(tenant, thread_id, run_id)
        if rec.status not in TERMINAL_STATUSES:
            raise FailedPreconditionError(
                f"run {run_id!r} is {rec.status}: cancel it before deleting it",
                reason="RUN_ACTIVE",
                metadata={"run_id": run_id, "status": rec.status},
            )
        await self.records.delete_run(rec)

    async def join(
        self, tenant: str, thread_id: str, run_id: str, after_seq: int, modes: set[str]
    ) -> AsyncIterator[Any]:
        with self._stream_slot(tenant):
            rec = await self.get(tenant, thread_id, run_id)
            # A run that already ended is replayed as far as its (bounded) log goes; a
            # live one is followed until its final event.
            follow = rec.status not in TERMINAL_STATUSES
            async for ev in self.eventlog.replay(rec.run_id, after_seq, follow=follow):
                if modes and ev.mode != "lifecycle" and ev.mode not in modes:
                    continue
                if is_final_event(ev):
                    ev = await self.runtime.complete_output(tenant, rec.thread_id, ev)
                yield ev

    async def wait_for(self, tenant: str, thread_id: str, run_id: str) -> RunOutcome:
        """Wait for an existing run to end (langgraph_sdk's ``runs.join``)."""
        with self._stream_slot(tenant):
            rec = await self.get(tenant, thread_id, run_id)
            last: Any = None
            async for ev in self.dispatcher.follow_log(tenant, rec.thread_id, rec.run_id, 0):
                last = ev
                _raise_if_quota(tenant, ev)
            if last is not None and is_final_event(last):
                last = await self.runtime.complete_output(tenant, rec.thread_id, last)
            return await self._outcome(tenant, rec.thread_id, rec.run_id, last, None, rec.attempts)

    async def stop_active(self, tenant: str, thread: ThreadRecord) -> None:
        """Cancel the thread's active run and wait until it has stopped (its thread goes)."""
        if thread.active_run:
            run = await self.records.get_run(tenant, thread.thread_id, thread.active_run)
            if run is not None and run.status in ACTIVE_STATUSES:
                await self.cancel(tenant, run, wait=True)


class _Backpressure:
    """RetryInfo for a tenant refused for its streams: 1 s, longer the more often it is
    refused — refusals in the last second over what the gateway lets a tenant cost it
    (a twentieth of its stream limit a second, at least 5) — with jitter, up to 30 s. A
    tenant that keeps many more calls than its limit in flight is told to come back
    later instead of costing the gateway (and the tenants next to it) a refusal per call
    per second: with W calls waiting, they come back every ~sqrt(W / allowed) seconds.
    The price: an over-limit tenant whose runs are short waits longer than its slots
    take to free (bench/noisy_neighbor.py measures the other side)."""

    def __init__(self) -> None:
        self._window: dict[str, tuple[float, int]] = {}  # tenant -> (second, refusals)

    def retry_after(self, tenant: str, most: int) -> float:
        now = time.monotonic()
        start, n = self._window.get(tenant, (now, 0))
        if now - start >= 1.0:
            start, n = now, 0
        self._window[tenant] = (start, n + 1)
        if len(self._window) > 10_000:  # forget tenants refused long ago
            self._window = {t: w for t, w in self._window.items() if now - w[0] < 1.0}
        allowed = max(5.0, most / 20)
        return min(30.0, max(1.0, n / allowed)) * random.uniform(1.0, 1.5)

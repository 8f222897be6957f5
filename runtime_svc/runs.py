"""Runs on one runtime: plain Python types for what to run and what it emits.

A :class:`RunHandle` owns the run's event order. Events are appended to the run's
event log one after the other, each after the previous one's ack and fenced by it
(``Nats-Expected-Last-Subject-Sequence``); only an event the log has accepted goes to
live followers (the gateway's ExecuteRun stream). So a client never sees an event the
log does not have, sequence numbers are gap-free and never reused across owners, and
a runtime that lost the run cannot append after the one that took it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mesh_core.adapters.nats.eventlog import EventLogConflictError, LogPosition
from mesh_core.adapters.redis.records import RunRecord, scoped_thread_id
from mesh_core.errors import UnavailableError
from mesh_core.reasons import Reason

__all__ = ["Event", "EventLogPort", "RunHandle", "RunLostError", "RunRequest"]

STREAM_MODES = ("values", "updates", "custom", "messages", "debug", "tasks", "checkpoints")
DEFAULT_MAX_PENDING_EVENTS = 256


@dataclass(frozen=True)
class RunRequest:
    """A run as the runtime sees it (built from the gateway's RunSpec)."""

    tenant_id: str
    run_id: str
    thread_id: str
    assistant_id: str
    input: Any = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    stream_modes: tuple[str, ...] = ("values",)
    multitask_strategy: str = "reject"
    interrupt_before: tuple[str, ...] = ()
    interrupt_after: tuple[str, ...] = ()
    stream_subgraphs: bool = False
    resume: bool = False
    after_seq: int = 0
    #: the graph to run (an assistant's graph); empty: the assistant id names the graph
    graph: str = ""
    #: start from this checkpoint (time travel / fork)
    checkpoint_id: str = ""
    #: LangGraph durability: sync (the default), async or exit
    durability: str = "sync"
    #: "delete": the thread goes once the run ends (a stateless run), else ""
    on_completion: str = ""
    #: POSTed the run when it ends (its delivery job is on the webhook schedule)
    webhook: str = ""
    #: the gateway's tenant token for this run (mesh_core.security): it travels with the
    #: run (its record, its config, remote tasks) so the LLM gateway and the tool service
    #: can verify the tenant of every call the run makes; "" without internal security
    tenant_token: str = field(default="", repr=False)

    @property
    def scoped_thread(self) -> str:
        return scoped_thread_id(self.tenant_id, self.thread_id)

    @property
    def graph_id(self) -> str:
        return self.graph or self.assistant_id

    def to_spec(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "command": self.command,
            "config": self.config,
            "context": self.context,
            "stream_modes": list(self.stream_modes),
            "interrupt_before": list(self.interrupt_before),
            "interrupt_after": list(self.interrupt_after),
            "stream_subgraphs": self.stream_subgraphs,
            "graph_id": self.graph_id,
            "checkpoint_id": self.checkpoint_id,
            "durability": self.durability,
            "on_completion": self.on_completion,
            "webhook": self.webhook,
            "tenant_token": self.tenant_token,
        }

    @classmethod
    def from_record(cls, rec: RunRecord, *, resume: bool = True, after_seq: int = 0) -> RunRequest:
        spec = rec.spec
        return cls(
            tenant_id=rec.tenant_id,
            run_id=rec.run_id,
            thread_id=rec.thread_id,
            assistant_id=rec.assistant_id,
            input=spec.get("input"),
            command=spec.get("command"),
            config=spec.get("config") or {},
            context=spec.get("context") or {},
            metadata=rec.metadata,
            stream_modes=tuple(spec.get("stream_modes") or ("values",)),
            multitask_strategy=rec.multitask_strategy,
            interrupt_before=tuple(spec.get("interrupt_before") or ()),
            interrupt_after=tuple(spec.get("interrupt_after") or ()),
            stream_subgraphs=bool(spec.get("stream_subgraphs")),
            resume=resume,
            after_seq=after_seq,
            graph=str(spec.get("graph_id") or ""),
            checkpoint_id=str(spec.get("checkpoint_id") or ""),
            durability=str(spec.get("durability") or "sync"),
            on_completion=str(spec.get("on_completion") or ""),
            webhook=str(spec.get("webhook") or ""),
            tenant_token=str(spec.get("tenant_token") or ""),
        )


@dataclass
class Event:
    """One run event. ``seq`` is set when the event log accepts it."""

    run_id: str
    mode: str
    data: Any = None
    namespace: tuple[str, ...] = ()
    lifecycle: dict[str, Any] | None = None
    time: float = field(default_factory=time.time)
    seq: int = 0
    #: the event as the log adapter put it on the wire (reused for live followers)
    wire: Any = field(default=None, repr=False, compare=False)

    @property
    def final(self) -> bool:
        return self.mode == "lifecycle" and (self.lifecycle or {}).get("kind") == "ended"


class EventLogPort(Protocol):
    """The run event log as a runtime uses it (adapted from ``RunEventLog``).

    ``abort`` is called before each retry of a call waiting out a NATS outage."""

    async def position(
        self, run_id: str, *, abort: Callable[[], None] | None = None
    ) -> LogPosition: ...

    async def append(
        self, event: Event, *, expected: int, abort: Callable[[], None] | None = None
    ) -> int: ...


class RunLostError(UnavailableError):
    """This runtime stopped driving the run (lost the thread or a backend, or drained).

    The run goes on elsewhere; a caller should re-dispatch it as a resume.
    """

    reason = Reason.RUN_HANDED_OVER


class RunHandle:
    """A run this runtime is driving: its accepted events, and a way to follow them."""

    def __init__(
        self,
        req: RunRequest,
        record: RunRecord,
        log: EventLogPort,
        start: LogPosition,
        *,
        on_publish_failure: Callable[[BaseException], None] | None = None,
        max_pending: int = DEFAULT_MAX_PENDING_EVENTS,
    ) -> None:
        self.req = req
        self.record = record
        self.position = start
        self.events: list[Event] = []
        self._log = log
        self._cond = asyncio.Condition()
        self._queue: asyncio.Queue[Event] = asyncio.Queue(max_pending)
        self._publisher: asyncio.Task[None] | None = None
        self._first = True
        self._on_publish_failure = on_publish_failure
        self.publish_error: BaseException | None = None
        self.finished = False
        self.lost: RunLostError | None = None
        self.task: asyncio.Task[None] | None = None
        self.cancel_action: str | None = None
        self.handover = False
        self.lease: Any = None
        self.done = asyncio.Event()
        self.started = False
        #: the run's output (the data of its final event), once it ended here
        self.output: Any = None

    def stop(self, *, cancel: str | None = None, handover: bool = False) -> bool:
        """Ask the run to stop: cancelled (``cancel``: interrupt or rollback) or handed
        over. The first request wins. A task cancelled before it ran would never run its
        clean-up, so a run that has not started sees the request when it does."""
        if self.finished or self.cancel_action is not None or self.handover:
            return False
        if cancel is not None:
            self.cancel_action = cancel
        self.handover = handover
        if self.started and self.task is not None and not self.task.done():
            self.task.cancel()
        return True

    @property
    def run_id(self) -> str:
        return self.req.run_id

    def next_event(self, mode: str, data: Any = None, **kw: Any) -> Event:
        return Event(self.run_id, mode, data, **kw)

    async def emit(self, ev: Event) -> None:
        """Queue ``ev`` for the log (waits while too many are queued)."""
        if self.publish_error is not None:
            raise self.publish_error
        if self._publisher is None:
            self._publisher = asyncio.create_task(
                self._publish_loop(), name=f"events-{self.run_id}"
            )
        await self._queue.put(ev)

    async def flush(self) -> None:
        """Wait until every queued event is in the log; raise what stopped publishing."""
        if self._publisher is not None and self.publish_error is None:
            done = asyncio.ensure_future(self._queue.join())
            try:
                await asyncio.wait({done, self._publisher}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                done.cancel()
        if self.publish_error is not None:
            raise self.publish_error

    async def _publish_loop(self) -> None:
        while True:
            ev = await self._queue.get()
            try:
                await self._publish_one(ev)
            except BaseException as exc:
                self.publish_error = exc
                self._queue.task_done()
                while not self._queue.empty():  # nothing after a failed event may go out
                    self._queue.get_nowait()
                    self._queue.task_done()
                if self._on_publish_failure is not None and not isinstance(
                    exc, asyncio.CancelledError
                ):
                    self._on_publish_failure(exc)
                return
            self._queue.task_done()

    async def _publish_one(self, ev: Event) -> None:
        while True:
            ev.seq = self.position.seq + 1
            abort = self.lease.check if self.lease is not None else None
            try:
                stream_seq = await self._log.append(
                    ev, expected=self.position.stream_seq, abort=abort
                )
                break
            except EventLogConflictError:
                if not self._first:
                    raise  # another runtime appended after us: it drives the run now
                # A previous owner's last event landed after we read the position.
                self.position = await self._log.position(self.run_id, abort=abort)
        self._first = False
        self.position = LogPosition(stream_seq, ev.seq, ev.final)
        async with self._cond:
            self.events.append(ev)
            self._cond.notify_all()

    async def close(self, lost: RunLostError | None = None) -> None:
        if lost is None:
            with contextlib.suppress(Exception):
                await self.flush()
        if self._publisher is not None and not self._publisher.done():
            self._publisher.cancel()
            with contextlib.suppress(BaseException):
                await self._publisher
        async with self._cond:
            self.finished = True
            self.lost = lost
            self._cond.notify_all()
        self.done.set()

    async def follow(self, after_seq: int = 0) -> AsyncIterator[Event]:
        """This run's accepted events with seq > after_seq, live, until it ends here."""
        idx = 0
        while True:
            async with self._cond:
                while idx >= len(self.events) and not self.finished:
                    await self._cond.wait()
                batch = self.events[idx:]
                idx = len(self.events)
                finished, lost = self.finished, self.lost
            for ev in batch:
                if ev.seq > after_seq:
                    yield ev
                if ev.final:
                    return
            if finished and idx >= len(self.events):
                if lost is not None:
                    raise lost
                return


async def wait_any(*aws: Awaitable[Any], timeout: float | None = None) -> None:
    """Wait until any of ``aws`` completes (or ``timeout``); cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()

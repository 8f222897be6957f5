"""Runs on one runtime: plain Python types for what to run and what it emits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from mesh_core.adapters.redis.records import RunRecord, scoped_thread_id
from mesh_core.errors import UnavailableError

__all__ = ["Event", "RunHandle", "RunLostError", "RunRequest"]

STREAM_MODES = ("values", "updates", "custom", "messages", "debug")


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

    @property
    def scoped_thread(self) -> str:
        return scoped_thread_id(self.tenant_id, self.thread_id)

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
        )


@dataclass
class Event:
    run_id: str
    seq: int
    mode: str
    data: Any = None
    namespace: tuple[str, ...] = ()
    lifecycle: dict[str, Any] | None = None
    time: float = field(default_factory=time.time)

    @property
    def final(self) -> bool:
        return self.mode == "lifecycle" and (self.lifecycle or {}).get("kind") == "ended"


class RunLostError(UnavailableError):
    """This runtime stopped driving the run (lost the thread, or handed it over on drain).

    The run goes on elsewhere; a caller should re-dispatch it as a resume.
    """

    reason = "RUN_HANDED_OVER"


class RunHandle:
    """A run this runtime is driving: its events so far, and a way to follow them."""

    def __init__(self, req: RunRequest, record: RunRecord, first_seq: int) -> None:
        self.req = req
        self.record = record
        self.seq = first_seq
        self.events: list[Event] = []
        self._cond = asyncio.Condition()
        self.finished = False
        self.lost: RunLostError | None = None
        self.task: asyncio.Task[None] | None = None
        self.cancel_action: str | None = None
        self.handover = False
        self.lease: Any = None

    @property
    def run_id(self) -> str:
        return self.req.run_id

    def next_event(self, mode: str, data: Any = None, **kw: Any) -> Event:
        self.seq += 1
        return Event(self.run_id, self.seq, mode, data, **kw)

    async def append(self, ev: Event) -> None:
        async with self._cond:
            self.events.append(ev)
            self._cond.notify_all()

    async def close(self, lost: RunLostError | None = None) -> None:
        async with self._cond:
            self.finished = True
            self.lost = lost
            self._cond.notify_all()

    async def follow(self, after_seq: int = 0) -> AsyncIterator[Event]:
        """This run's events with seq > after_seq, live, until it ends here."""
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

"""Worker side of a remote task's stream: send its events to the owner as they happen.

Events of one task delivery go out in order, as ``TaskEvents`` batches published to the
owner's reply subject by one sender coroutine, and are flushed before the task's reply
(same connection, same subject: NATS keeps them in order).

``@task`` calls a remote node makes travel the same way (in call order, which fixes
their call index): the owner's Pregel loop schedules each call exactly as for a local
node (cached result on resume, its own task, its events) and sends the outcome to the
worker's call inbox (``TaskCalls``), where the node's call future resolves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.config import get_config
from langgraph.errors import GraphInterrupt

from runtime_svc.langgraph_api import (
    CONF,
    CONFIG_KEY_SCRATCHPAD,
)
from runtime_svc.remote._errors import RemoteTaskError
from runtime_svc.remote._rebuild import EventSink, null_resume_left
from runtime_svc.remote._wire import (
    EventChannel,
    TaskEvents,
    TaskRequest,
    decode_call_result,
    encode_events,
    error_from_info,
)

__all__ = ["EventForwarder", "TaskCalls"]

log = logging.getLogger(__name__)

_EVENT_BATCH = 256


class EventForwarder:
    """Sends one task delivery's stream events to its owner, in order, as they happen.

    ``emit`` may be called from the event loop or from a thread (sync nodes); one sender
    coroutine publishes whatever is queued as one ``TaskEvents`` batch at a time.
    """

    def __init__(
        self,
        serde: SerializerProtocol,
        send: Callable[[str, bytes], Awaitable[None]],
        req: TaskRequest,
        deliveries: int,
    ) -> None:
        self._serde = serde
        self._send = send
        self._req = req
        self._deliveries = deliveries
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[EventChannel, tuple[str, ...], str, Any] | None] = (
            asyncio.Queue()
        )
        self._seq = 0
        self._sender: asyncio.Task[None] | None = None
        self._on_close: list[Callable[[], None]] = []
        self.emit: EventSink = self._emit

    def on_close(self, fn: Callable[[], None]) -> None:
        self._on_close.append(fn)

    def _emit(self, channel: EventChannel, ns: tuple[str, ...], mode: str, payload: Any) -> None:
        item = (channel, ns, mode, payload)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._put(item)
        else:
            self._loop.call_soon_threadsafe(self._put, item)

    def _put(self, item: tuple[EventChannel, tuple[str, ...], str, Any] | None) -> None:
        self._queue.put_nowait(item)
        if self._sender is None:
            self._sender = self._loop.create_task(self._send_loop())

    async def _send_loop(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            done = False
            while not self._queue.empty() and len(batch) < _EVENT_BATCH:
                nxt = self._queue.get_nowait()
                if nxt is None:
                    done = True
                    break
                batch.append(nxt)
            await self._publish(batch)
            if done:
                return

    async def _publish(self, batch: list[tuple[EventChannel, tuple[str, ...], str, Any]]) -> None:
        serde = self._serde
        req = self._req

        def encode(items: list[tuple[EventChannel, tuple[str, ...], str, Any]]) -> bytes:
            return encode_events(
                serde,
                TaskEvents(req.task_id, req.invocation_id, self._seq, items, self._deliveries),
            )

        try:
            data = encode(batch)
        except Exception:
            # drop what can't be encoded (the rest still goes), never the task
            ok = []
            for item in batch:
                try:
                    encode([item])
                except Exception:
                    log.warning(
                        "task %s: a %r stream event could not be encoded and was dropped",
                        req.task_id,
                        item[2],
                    )
                else:
                    ok.append(item)
            if not ok:
                return
            data = encode(ok)
        self._seq += 1
        try:
            await self._send(req.reply_subject, data)
        except Exception:
            log.warning("task %s: stream events could not be sent", req.task_id, exc_info=True)

    async def flush(self) -> None:
        """Send everything emitted so far (before the reply goes out)."""
        # events a thread (a sync node) emitted are scheduled already: let them queue
        await asyncio.sleep(0)
        if self._sender is None:
            return
        self._queue.put_nowait(None)
        sender, self._sender = self._sender, None
        await sender

    def close(self) -> None:
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
        for fn in self._on_close:
            fn()


class TaskCalls:
    """The ``@task`` calls of a worker's running tasks, waiting for their owners.

    ``hook(forwarder)`` is what a rebuilt task gets as LangGraph's call hook
    (``CONFIG_KEY_CALL``); ``on_result`` takes what owners send to ``inbox``.
    """

    def __init__(self, serde: SerializerProtocol, inbox: str, *, timeout: float) -> None:
        self.serde = serde
        self.inbox = inbox
        self.timeout = timeout
        # call id -> (future, @task name, the calling node's scratchpad)
        self._pending: dict[str, tuple[concurrent.futures.Future[Any], str, Any]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    def hook(self, forwarder: EventForwarder, req: TaskRequest) -> Callable[..., Any]:
        loop = asyncio.get_running_loop()
        mine: set[str] = set()
        forwarder.on_close(lambda: self._drop(mine))

        def call(func: Callable[..., Any], input: Any, **_options: Any) -> Any:
            # the options (retry, cache, timeout) are the @task's own: the owner looks
            # the @task up by name and uses its options, as a local call would
            module = getattr(func, "__module__", None)
            qualname = getattr(func, "__qualname__", None)
            name = getattr(func, "__name__", repr(func))
            if not module or not qualname or "<locals>" in qualname:
                raise RemoteTaskError(
                    f"@task {name!r} called in a remote node is not a module-level @task: "
                    "the owner can't look it up; define it at module level or give the "
                    'node metadata {"lgmesh_remote": False}'
                )
            try:
                self.serde.dumps_typed(input)
            except Exception as exc:
                raise RemoteTaskError(
                    f"@task {name!r}: its arguments can't be sent to the run's owner ({exc})"
                ) from None
            # the run's null resume (a scalar Command(resume=...)) is one value for the
            # node and its calls: say whether the node took it, learn whether a call did
            scratchpad = get_config()[CONF].get(CONFIG_KEY_SCRATCHPAD)
            taken = req.null_resume is not None and null_resume_left(scratchpad) is False
            call_id = uuid.uuid4().hex
            fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
            self._pending[call_id] = (fut, name, scratchpad)
            mine.add(call_id)
            loop.call_soon_threadsafe(self._arm_timeout, loop, call_id)
            body = {
                "call_id": call_id,
                "module": module,
                "qualname": qualname,
                "input": input,
                "respond_to": self.inbox,
                "null_resume_consumed": taken,
            }
            forwarder.emit("call", (), "call", body)
            try:
                in_async = asyncio.current_task() is not None
            except RuntimeError:
                in_async = False
            return asyncio.wrap_future(fut) if in_async else fut

        return call

    def _arm_timeout(self, loop: asyncio.AbstractEventLoop, call_id: str) -> None:
        def expire() -> None:
            self._timers.pop(call_id, None)
            entry = self._pending.pop(call_id, None)
            if entry is not None and not entry[0].done():
                entry[0].set_exception(
                    RemoteTaskError(
                        f"@task {entry[1]!r}: no result from the run's owner within {self.timeout}s"
                    )
                )

        if call_id in self._pending:
            self._timers[call_id] = loop.call_later(self.timeout, expire)

    def on_result(self, raw: bytes) -> None:
        try:
            result = decode_call_result(self.serde, raw)
        except Exception:
            log.warning("undecodable @task call result dropped")
            return
        self._cancel_timer(result.call_id)
        entry = self._pending.pop(result.call_id, None)
        if entry is None or entry[0].done():
            return  # its task ended (cancelled, timed out)
        fut, name, scratchpad = entry
        if result.null_resume_consumed and scratchpad is not None:
            scratchpad.get_null_resume(True)  # before the node sees the result
        if result.status == "ok":
            fut.set_result(result.value)
        elif result.status == "interrupt":
            fut.set_exception(GraphInterrupt(tuple(result.interrupts)))
        elif result.error is not None:
            where = "Raised in a @task call run by the run's owner"
            fut.set_exception(
                error_from_info(result.error, task_name=name, worker_id="", where=where)
            )
        else:
            fut.set_exception(RemoteTaskError(f"@task {name!r} failed on the run's owner"))

    def _cancel_timer(self, call_id: str) -> None:
        timer = self._timers.pop(call_id, None)
        if timer is not None:
            timer.cancel()

    def _drop(self, call_ids: set[str]) -> None:
        for call_id in call_ids:
            self._cancel_timer(call_id)
            entry = self._pending.pop(call_id, None)
            if entry is not None and not entry[0].done():
                entry[0].cancel()

"""Worker side: pull tasks from the shared queue, rebuild, run, reply.

Every worker of a mesh binds to one durable pull consumer on the work-queue stream,
so each task goes to one worker at a time. A worker fetches at most as many tasks as
it has free slots, sends in-progress acks while a task runs and acks only after the
reply is published; a worker that dies leaves its tasks unacked and JetStream
redelivers them after ``ack_wait``. The delivery after ``max_deliveries`` doesn't
run the task: it goes to the dead-letter stream and the owner gets
``TaskDeadLetteredError`` for it.

While a task runs, its stream events (custom events, messages-mode chunks, events of
its subgraphs when the run streams them) go to the owner as they happen: core NATS
publishes of ``TaskEvents`` batches to the owner's reply subject, from one sender per
task, flushed before the reply; one connection and one subject keep them in order.
Each delivery runs in a ``lgmesh.task <node>`` span (kind CONSUMER) continuing the
trace context the owner put in the task message's headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import nats
import nats.errors
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.errors import GraphInterrupt
from langgraph.pregel import Pregel
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind

from mesh_core.adapters.nats import NatsNames
from mesh_core.config import InfraSettings
from mesh_core.retry import Backoff
from mesh_core.security import inbox_prefix
from mesh_core.security._codec import SealedDataError
from mesh_core.telemetry import current_tracing
from runtime_svc.langgraph_api import (
    arun_with_retry,
)
from runtime_svc.remote._errors import RemoteTaskError, TaskDeadLetteredError
from runtime_svc.remote._forward import EventForwarder, TaskCalls
from runtime_svc.remote._metrics import (
    WORKER_INFLIGHT,
    WORKER_QUEUE_PENDING,
    WORKER_TASK_SECONDS,
    WORKER_TASKS,
)
from runtime_svc.remote._queue import TaskQueueSettings, ensure_task_queue
from runtime_svc.remote._rebuild import (
    CheckpointMissingError,
    load_checkpoint,
    rebuild_task,
    saved_output,
)
from runtime_svc.remote._wire import (
    ErrorInfo,
    TaskReply,
    TaskRequest,
    decode_request,
    encode_reply,
    error_info,
)

__all__ = ["TaskWorker"]

log = logging.getLogger(__name__)

_CHECKPOINT_CACHE = 32
_CANCEL_MEMORY = 4096
_CANCEL_TTL = 600.0
DEFAULT_CALL_TIMEOUT = 3600.0


class TaskWorker:
    """Runs remote tasks of the given graphs (``graph_id -> compiled graph``).

    The graphs must be built from the same code as the owners' (the task id checksum
    refuses anything else); ``checkpointer`` must read the owners' checkpoints.
    """

    def __init__(
        self,
        settings: InfraSettings,
        graphs: Mapping[str, Pregel[Any, Any, Any, Any]],
        checkpointer: BaseCheckpointSaver[Any],
        *,
        concurrency: int = 4,
        worker_id: str,
        queue: TaskQueueSettings | None = None,
        serde: SerializerProtocol | None = None,
        pending_poll_interval: float = 5.0,
        nc: NATS | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        create_queue: bool = True,
    ) -> None:
        """``nc``: an open NATS connection to share (left open by ``stop``).
        ``create_queue``: make the task queue if it is missing (a runtime in both roles);
        a worker-only process waits for an owner to make it (its NATS user may not).
        ``call_timeout``: seconds a task waits for its owner to answer a ``@task`` call
        (a task whose owner died in between doesn't hold its slot for ever)."""
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.settings = settings
        self.names = NatsNames(settings.prefix)
        self.graphs = dict(graphs)
        self.checkpointer = checkpointer
        self.concurrency = concurrency
        self.worker_id = worker_id
        self.queue = queue or TaskQueueSettings()
        self.serde: SerializerProtocol = serde or JsonPlusSerializer()
        self.pending_poll_interval = pending_poll_interval
        self.create_queue = create_queue
        self._nc: NATS | None = nc
        self._own_nc = nc is None
        self._js: JetStreamContext | None = None
        self._subs: list[Any] = []
        self._loops: list[asyncio.Task[None]] = []
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._stopping = False
        self._owner_cancelled: set[tuple[str, str]] = set()
        self._cancelled: OrderedDict[str, tuple[float, set[str] | None]] = OrderedDict()
        self._checkpoints: OrderedDict[tuple[str, str], asyncio.Future[CheckpointTuple]] = (
            OrderedDict()
        )
        self._inflight = WORKER_INFLIGHT.labels(worker_id)
        self.calls = TaskCalls(self.serde, f"_lgmesh_calls.{worker_id}", timeout=call_timeout)

    async def _attach_queue(self, js: JetStreamContext) -> None:
        """The task queue, made here or (worker-only) waited for until an owner makes it."""
        backoff = Backoff(0.1, 2.0)
        attempt = 0
        while True:
            try:
                await ensure_task_queue(js, self.names, self.queue, create=self.create_queue)
                return
            except NotFoundError:
                if attempt == 0:
                    log.info(
                        "worker %s waits for an owner to create the task queue", self.worker_id
                    )
            attempt += 1
            await asyncio.sleep(backoff.delay(attempt))

    @property
    def inflight(self) -> int:
        return len(self._handlers)

    async def start(self) -> None:
        if self._nc is None:
            self._own_nc = True
            self._nc = await nats.connect(
                self.settings.nats_url,
                name=f"lgmesh-worker-{self.worker_id}",
                max_reconnect_attempts=-1,
                inbox_prefix=inbox_prefix("worker").encode(),
            )
        self._js = self._nc.jetstream()
        await self._attach_queue(self._js)
        psub = await self._js.pull_subscribe_bind(
            durable=self.names.tasks_consumer, stream=self.names.tasks_stream
        )
        cancel_sub = await self._nc.subscribe(self.names.task_cancel_wildcard, cb=self._on_cancel)
        # answers to the @task calls of this worker's tasks (a unique inbox per process)
        self.calls.inbox = self._nc.new_inbox()
        call_sub = await self._nc.subscribe(self.calls.inbox, cb=self._on_call_result)
        self._subs = [psub, cancel_sub, call_sub]
        self._loops = [
            asyncio.create_task(self._fetch_loop(psub), name="lgmesh-worker-fetch"),
            asyncio.create_task(self._pending_loop(), name="lgmesh-worker-pending"),
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Stop fetching; let running tasks finish for ``grace`` seconds, then give the
        rest back to the queue (nak) so other workers pick them up right away."""
        self._stopping = True
        for t in self._loops:
            t.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._handlers:
            _done, pending = await asyncio.wait(set(self._handlers), timeout=grace)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs = []
        if self._nc is not None and self._own_nc:
            # not drain(): it waits out the pull subscription's pending fetch
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._nc = self._js = None

    async def __aenter__(self) -> TaskWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def queue_pending(self) -> int:
        """Tasks in the queue not yet delivered to any worker (the scaling signal)."""
        assert self._js is not None
        info = await self._js.consumer_info(self.names.tasks_stream, self.names.tasks_consumer)
        pending = int(info.num_pending or 0)
        WORKER_QUEUE_PENDING.set(pending)
        return pending

    # -- loops -----------------------------------------------------------------------
    async def _fetch_loop(self, psub: JetStreamContext.PullSubscription) -> None:
        while not self._stopping:
            free = self.concurrency - len(self._handlers)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                msgs = await psub.fetch(min(free, self.queue.fetch_batch), timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except Exception:
                if self._stopping:
                    return
                log.exception("fetching tasks failed; retrying")
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                handler = asyncio.create_task(self._handle(msg))
                self._handlers.add(handler)
                self._inflight.inc()
                handler.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self._handlers.discard(task)
        self._inflight.dec()
        self._slot_freed.set()

    async def _pending_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(Exception):
                await self.queue_pending()
            await asyncio.sleep(self.pending_poll_interval)

    # -- one delivery ----------------------------------------------------------------
    async def _handle(self, msg: Msg) -> None:
        started = time.monotonic()
        deliveries = msg.metadata.num_delivered
        try:
            req = decode_request(self.serde, msg.data)
        except Exception as exc:  # a sealed one says why (no key material in it)
            why = exc.message if isinstance(exc, SealedDataError) else type(exc).__name__
            log.error("undecodable task message dead-lettered (%s)", why)
            await self._dead_letter(msg, None, "undecodable task message", deliveries)
            await msg.ack()
            return
        key = (req.invocation_id, req.task_id)
        if self._is_cancelled(key):
            WORKER_TASKS.labels(self.worker_id, "cancelled").inc()
            await msg.ack()
            return
        if deliveries > self.queue.max_deliveries:
            await self._give_up(msg, req, deliveries)
            return
        if await self._owner_fenced_off(req):
            # The owner that sent this lost the thread (it died or paused past its
            # lease) and its successor bumped the fence: nobody waits for this reply,
            # and the new owner sends the task again if it still needs it.
            WORKER_TASKS.labels(self.worker_id, "stale_owner").inc()
            await msg.ack()
            return
        heartbeat = asyncio.create_task(self._heartbeat(msg))
        current = asyncio.current_task()
        assert current is not None
        self._running[key] = current
        attributes: dict[str, str | int | float | bool] = {
            "lgmesh.task_id": req.task_id,
            "lgmesh.run_id": req.run_id,
            "lgmesh.graph_id": req.graph_id,
            "lgmesh.deliveries": deliveries,
        }
        try:
            with current_tracing().start_span(
                f"lgmesh.task {req.task_name}",
                parent_headers=dict(msg.headers or {}),
                kind=SpanKind.CONSUMER,
                attributes=attributes,
            ):
                reply = await self._execute(req, deliveries)
        except asyncio.CancelledError:
            if key in self._owner_cancelled:
                # the owner stopped waiting: done with it, don't redeliver
                self._owner_cancelled.discard(key)
                WORKER_TASKS.labels(self.worker_id, "cancelled").inc()
                with contextlib.suppress(Exception):
                    await msg.ack()
                return
            # worker stopping: hand it back right away
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        except CheckpointMissingError as exc:
            log.warning("task %s: %s; redelivering", req.task_id, exc)
            WORKER_TASKS.labels(self.worker_id, "retry").inc()
            await msg.nak(delay=min(1.0, self.queue.ack_wait))
            return
        except Exception:
            # infrastructure trouble (Redis, NATS): let another delivery try
            log.exception("task %s could not run; redelivering", req.task_id)
            WORKER_TASKS.labels(self.worker_id, "retry").inc()
            with contextlib.suppress(Exception):
                await msg.nak(delay=min(1.0, self.queue.ack_wait))
            return
        finally:
            heartbeat.cancel()
            self._running.pop(key, None)
        await self._send(req.reply_subject, encode_reply(self.serde, reply))
        await msg.ack()
        WORKER_TASKS.labels(self.worker_id, "skipped" if reply.skipped else reply.status).inc()
        WORKER_TASK_SECONDS.observe(time.monotonic() - started)

    async def _owner_fenced_off(self, req: TaskRequest) -> bool:
        token = req.configurable.get("fencing_token")
        aget_fence = getattr(self.checkpointer, "aget_fence", None)
        if not isinstance(token, int) or aget_fence is None:
            return False
        stored = await aget_fence(req.thread_id)
        return stored is not None and stored > token

    async def _send(self, subject: str, data: bytes) -> None:
        """Publish to an owner's reply subject (replies and event batches)."""
        assert self._nc is not None, "TaskWorker is stopped"
        await self._nc.publish(subject, data)

    async def _on_call_result(self, msg: Msg) -> None:
        self.calls.on_result(msg.data)

    async def _heartbeat(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self.queue.heartbeat_interval)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _execute(self, req: TaskRequest, deliveries: int) -> TaskReply:
        def reply(status: Any, **kw: Any) -> TaskReply:
            return TaskReply(
                task_id=req.task_id,
                invocation_id=req.invocation_id,
                status=status,
                worker_id=f"{self.worker_id}/{os.getpid()}",
                deliveries=deliveries,
                **kw,
            )

        graph = self.graphs.get(req.graph_id)
        if graph is None:
            err = RemoteTaskError(f"graph {req.graph_id!r} is not loaded on this worker")
            return reply("error", error=error_info(self.serde, err))
        saved = await self._checkpoint(req, fresh=deliveries > 1)
        if (done := saved_output(saved, req.task_id)) is not None:
            return reply("ok", writes=done, skipped=True)
        forwarder = EventForwarder(self.serde, self._send, req, deliveries)
        try:
            try:
                task = await rebuild_task(
                    graph,
                    self.checkpointer,
                    saved,
                    req,
                    events=forwarder.emit,
                    call=self.calls.hook(forwarder, req),
                )
            except RemoteTaskError as exc:
                return reply("error", error=error_info(self.serde, exc))
            try:
                await arun_with_retry(task, None)
            except GraphInterrupt as exc:
                interrupts = list(exc.args[0]) if exc.args else []
                await forwarder.flush()
                return reply("interrupt", writes=list(task.writes), interrupts=interrupts)
            except Exception as exc:
                await forwarder.flush()
                return reply("error", writes=list(task.writes), error=error_info(self.serde, exc))
            await forwarder.flush()
            return reply("ok", writes=list(task.writes))
        finally:
            forwarder.close()

    async def _checkpoint(self, req: TaskRequest, *, fresh: bool) -> CheckpointTuple:
        """The task's checkpoint; concurrent tasks of one step share one load."""
        key = (req.thread_id, req.checkpoint_id)
        fut = None if fresh else self._checkpoints.get(key)
        if fut is None or (fut.done() and fut.exception() is not None):
            fut = asyncio.ensure_future(load_checkpoint(self.checkpointer, req))
            self._checkpoints[key] = fut
            while len(self._checkpoints) > _CHECKPOINT_CACHE:
                self._checkpoints.popitem(last=False)
        else:
            self._checkpoints.move_to_end(key)
        return await asyncio.shield(fut)

    async def _give_up(self, msg: Msg, req: TaskRequest, deliveries: int) -> None:
        runs = deliveries - 1
        text = (
            f"task {req.task_name!r} ({req.task_id}) was dead-lettered after {runs} "
            f"deliveries: its worker died or stopped responding every time"
        )
        log.error("%s", text)
        await self._dead_letter(msg, req, text, deliveries)
        info = ErrorInfo(
            module=TaskDeadLetteredError.__module__,
            qualname=TaskDeadLetteredError.__qualname__,
            message=text,
            args=[text],
        )
        reply = TaskReply(
            task_id=req.task_id,
            invocation_id=req.invocation_id,
            status="dead",
            error=info,
            worker_id=f"{self.worker_id}/{os.getpid()}",
            deliveries=deliveries,
        )
        await self._send(req.reply_subject, encode_reply(self.serde, reply))
        await msg.ack()
        WORKER_TASKS.labels(self.worker_id, "dead").inc()

    async def _dead_letter(
        self, msg: Msg, req: TaskRequest | None, reason: str, deliveries: int
    ) -> None:
        assert self._js is not None
        seq = msg.metadata.sequence.stream
        headers = {
            "Nats-Msg-Id": f"dead:{seq}",
            "Lgmesh-Reason": reason,
            "Lgmesh-Deliveries": str(deliveries),
            "Lgmesh-Worker": self.worker_id,
        }
        if req is not None:
            headers.update(
                {
                    "Lgmesh-Task-Id": req.task_id,
                    "Lgmesh-Task-Name": req.task_name,
                    "Lgmesh-Run-Id": req.run_id,
                    "Lgmesh-Graph-Id": req.graph_id,
                    "Lgmesh-Thread-Id": req.thread_id,
                }
            )
        await self._js.publish(
            self.names.dead_letter_subject,
            msg.data,
            stream=self.names.dead_letter_stream,
            headers=headers,
        )

    # -- cancellation ----------------------------------------------------------------
    async def _on_cancel(self, msg: Msg) -> None:
        invocation_id = msg.subject.rsplit(".", 1)[-1]
        try:
            body = json.loads(msg.data or b"{}")
            ids = body.get("task_ids")
            task_ids: set[str] | None = set(map(str, ids)) if ids is not None else None
        except (ValueError, AttributeError):
            return
        now = time.monotonic()
        prev = self._cancelled.pop(invocation_id, None)
        if prev is not None and prev[1] is not None and task_ids is not None:
            task_ids = prev[1] | task_ids
        elif prev is not None and prev[1] is None:
            task_ids = None
        self._cancelled[invocation_id] = (now, task_ids)
        while self._cancelled and (
            len(self._cancelled) > _CANCEL_MEMORY
            or next(iter(self._cancelled.values()))[0] < now - _CANCEL_TTL
        ):
            self._cancelled.popitem(last=False)
        for key, task in list(self._running.items()):
            if self._is_cancelled(key):
                self._owner_cancelled.add(key)
                task.cancel()

    def _is_cancelled(self, key: tuple[str, str]) -> bool:
        entry = self._cancelled.get(key[0])
        if entry is None:
            return False
        return entry[1] is None or key[1] in entry[1]

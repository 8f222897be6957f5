"""Owner side: send a run's remote-eligible tasks to the task queue, hand results back.

LangGraph's ``PregelRunner`` takes its task submitter from
``config["configurable"][CONFIG_KEY_RUNNER_SUBMIT]`` (a zero-argument callable that
returns the submit function). ``RemoteExecutor.configure`` installs a ``RemoteRun``
there. For each task the runner submits, ``RemoteRun.submit`` either

* runs it on the owner, as LangGraph's ``AsyncBackgroundExecutor`` would (an asyncio
  task on the loop; a thread for sync runs), or
* publishes a ``TaskRequest`` to the work queue and returns a future that resolves
  from the worker's ``TaskReply``: the writes go into ``task.writes`` (the runner then
  commits them exactly as for a local task), and an interrupt or the node's exception
  is raised.

While the task runs, its stream events arrive as ``TaskEvents`` (ahead of the reply,
in order) and are re-emitted into the owner's LangGraph stream where the same event of
a local task would go: custom events through the run's stream writer (with the
namespace they were written in), messages-mode chunks through the run's
``StreamMessagesHandler`` (metadata as the worker's handler built it: the same keys a
local task's chunks carry), and subgraph events through the parent stream
(``CONFIG_KEY_STREAM``) when the run streams subgraphs. The request carries what
LangGraph hands down from the run to a task's subgraphs (resume map, resuming flag,
durability, stream modes), so subgraphs of a remote task interrupt, resume (also with
a resume map), raise ``Command.PARENT`` and fail exactly as in-process. A task that
runs again (redelivery after a worker died, a retry) emits its events again, as
LangGraph's own retries do.

Which tasks go remote: by default every ``Send`` (PUSH) task of the root graph; a node
opts in or out with node metadata ``{"lgmesh_remote": True/False}``; ``remote="all"``
sends every root-graph node (functional API ``entrypoint`` nodes too), ``remote="none"``
none. Always on the owner: tasks of subgraphs (their checkpoint lives under the parent
task, which runs them), ``@task`` calls and error handlers (the owner's loop schedules
them).

``@task`` calls made by a remote node: the worker sends each call (in call order, with
the task's events) to the owner, which runs it through the call hook LangGraph's runner
gave the task (``CONFIG_KEY_CALL``), exactly as for a local node: the loop registers the
call as a task of the step, returns its saved result on resume instead of running it
again, runs it (on the owner) and streams its ``updates``; the outcome (value,
interrupt, error) goes back to the worker, where the node's call future resolves. The
``@task`` is found on the owner by module and qualified name, so it must be defined at
module level (a nested one fails the call with ``RemoteTaskError``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextvars import copy_context
from dataclasses import dataclass
from typing import Any, Literal

import nats
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.constants import TAG_HIDDEN
from langgraph.errors import GraphInterrupt
from langgraph.types import PregelExecutableTask
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from mesh_core.adapters.nats import NatsNames
from mesh_core.config import InfraSettings
from mesh_core.security import CONFIG_KEY_TENANT_TOKEN, inbox_prefix
from mesh_core.telemetry import inject_nats_headers
from runtime_svc.langgraph_api import (
    CONF,
    CONFIG_KEY_CALL,
    CONFIG_KEY_CHECKPOINT_ID,
    CONFIG_KEY_CHECKPOINT_MAP,
    CONFIG_KEY_CHECKPOINT_NS,
    CONFIG_KEY_RUNNER_SUBMIT,
    CONFIG_KEY_THREAD_ID,
    NS_SEP,
    PULL,
    PUSH,
)
from runtime_svc.remote._errors import RemoteTaskError, TaskDeadLetteredError
from runtime_svc.remote._metrics import REMOTE_TASKS
from runtime_svc.remote._queue import TaskQueueSettings, ensure_task_queue
from runtime_svc.remote._rebuild import checkpoint_config
from runtime_svc.remote._relay import (
    emit_events,
    null_writes,
    run_call,
    task_request,
    task_step,
)
from runtime_svc.remote._wire import (
    TaskCallResult,
    TaskEvents,
    TaskReply,
    TaskRequest,
    decode_message,
    encode_call_result,
    encode_request,
    error_from_info,
    error_info,
)

__all__ = ["REMOTE_METADATA_KEY", "RemoteExecutor", "RemoteMode", "RemoteRun", "RunStats"]

log = logging.getLogger(__name__)

REMOTE_METADATA_KEY = "lgmesh_remote"
RemoteMode = Literal["send", "all", "none"]
_CONFIG_SKIP = frozenset(
    (CONFIG_KEY_THREAD_ID, CONFIG_KEY_CHECKPOINT_NS, CONFIG_KEY_CHECKPOINT_ID, "checkpoint_map")
)
_KNOWN_CHECKPOINTS = 256
DEFAULT_SIBLING_GRACE = 5.0


@dataclass
class RunStats:
    """Counts of one run invocation's remote tasks."""

    submitted: int = 0
    ok: int = 0
    skipped: int = 0
    interrupt: int = 0
    error: int = 0
    dead: int = 0
    cancelled: int = 0
    local: int = 0


class RemoteRun:
    """The task submitter of one run invocation (what ``configure`` installs)."""

    def __init__(
        self,
        executor: RemoteExecutor,
        *,
        graph_id: str,
        run_id: str,
        mode: RemoteMode,
        max_concurrency: int | None,
        stream_writer: Callable[[Any], None] | None,
        configurable: dict[str, Any],
        metadata: dict[str, Any],
        recursion_limit: int,
    ) -> None:
        self.executor = executor
        self.graph_id = graph_id
        self.run_id = run_id
        self.invocation_id = uuid.uuid4().hex
        self.mode: RemoteMode = mode
        self.stats = RunStats()
        self._stream_writer = stream_writer
        self._configurable = configurable
        self._metadata = metadata
        self._recursion_limit = recursion_limit
        self._sem = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._tasks: set[asyncio.Task[Any]] = set()
        # tasks run on the owner: a cancelled run ends only once they have stopped
        self._local: set[asyncio.Task[Any]] = set()
        # remote tasks in flight -> their step; those that failed and wait for siblings
        self._step_of: dict[asyncio.Task[Any], int] = {}
        self._failing: set[asyncio.Task[Any]] = set()
        self._cancelled = False
        # whether a task of this invocation went to the queue (then workers may hold some)
        self._sent = False

    # LangGraph calls the configured value to get the submit function (it expects a
    # weakref.WeakMethod there).
    def __call__(self) -> Callable[..., Any]:
        return self.submit

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        __name__: str | None = None,
        __cancel_on_exit__: bool = False,
        __reraise_on_exit__: bool = True,
        __next_tick__: bool = False,
        **kwargs: Any,
    ) -> Any:
        task = args[0] if args and isinstance(args[0], PregelExecutableTask) else None
        if task is not None and asyncio.iscoroutinefunction(fn) and self.is_remote(task):
            hooks = kwargs.get("configurable")
            call_hook = hooks.get(CONFIG_KEY_CALL) if isinstance(hooks, dict) else None
            nulls = null_writes(hooks)
            loop = asyncio.get_running_loop()
            atask = loop.create_task(self._run_remote(task, nulls, call_hook), name=__name__)
            self._tasks.add(atask)
            self._step_of[atask] = task_step(task)
            atask.add_done_callback(self._task_done)
            return atask
        self.stats.local += 1
        if asyncio.iscoroutinefunction(fn):
            loop = asyncio.get_running_loop()
            coro = fn(*args, **kwargs)
            if self._sem is not None:
                coro = _gated(self._sem, coro)
            local = loop.create_task(coro, name=__name__, context=copy_context())
            self._local.add(local)
            local.add_done_callback(self._local.discard)
            return local
        # sync runs (graph.invoke/stream): LangGraph waits on concurrent futures
        ctx = copy_context()
        return self.executor._threads.submit(ctx.run, fn, *args, **kwargs)

    def _task_done(self, atask: asyncio.Task[Any]) -> None:
        self._tasks.discard(atask)
        self._step_of.pop(atask, None)
        self._failing.discard(atask)

    def is_remote(self, task: PregelExecutableTask) -> bool:
        """Whether this task goes to the task queue."""
        if self.mode == "none" or self._cancelled:
            return False
        conf = task.config.get(CONF, {}) if task.config else {}
        ns = conf.get(CONFIG_KEY_CHECKPOINT_NS, "")
        if NS_SEP in ns or "" not in conf.get(CONFIG_KEY_CHECKPOINT_MAP, {}):
            return False  # a subgraph's task: its checkpoint lives under the parent task
        path = task.path
        is_send = len(path) == 3 and path[0] == PUSH and isinstance(path[1], int)
        is_pull = len(path) == 2 and path[0] == PULL
        if not (is_send or is_pull):
            return False  # functional API calls, error handlers
        if TAG_HIDDEN in (task.config.get("tags") or ()):
            return False  # LangGraph's own nodes (__start__ ...)
        flag = (task.config.get("metadata") or {}).get(REMOTE_METADATA_KEY)
        if flag is not None:
            return bool(flag)
        return self.mode == "all" or is_send

    def _request(
        self, task: PregelExecutableTask, null_writes: list[tuple[str, Any]] | None = None
    ) -> TaskRequest:
        return task_request(
            task,
            graph_id=self.graph_id,
            run_id=self.run_id,
            invocation_id=self.invocation_id,
            reply_subject=self.executor.reply_subject,
            configurable=self._configurable,
            recursion_limit=self._recursion_limit,
            null_writes=null_writes,
            serializable=self.executor._serializable,
        )

    async def _run_remote(
        self,
        task: PregelExecutableTask,
        null_writes: list[tuple[str, Any]] | None = None,
        call_hook: Any = None,
    ) -> None:
        ex = self.executor
        key = (self.invocation_id, task.id)
        published = False
        if self._sem is not None:
            await self._sem.acquire()
        try:
            req = self._request(task, null_writes)
            await ex._wait_checkpoint(req.thread_id, req.checkpoint_id)
            fut: asyncio.Future[TaskReply] = asyncio.get_running_loop().create_future()
            ex._pending[key] = fut
            ex._requests[key] = req
            ex._active[key] = (self, task, call_hook)
            self._sent = True  # before the publish: one cut short may still have landed
            await ex._publish(req)
            published = True
            self.stats.submitted += 1
            reply = await fut
        except asyncio.CancelledError:
            self.stats.cancelled += 1
            REMOTE_TASKS.labels(self.graph_id, "cancelled").inc()
            if published:
                ex._cancel_later(self.invocation_id, task.id)
            raise
        finally:
            ex._pending.pop(key, None)
            ex._requests.pop(key, None)
            ex._active.pop(key, None)
            if self._sem is not None:
                self._sem.release()
        if reply.status in ("error", "dead"):
            await self._let_siblings_finish(task_step(task))
        self._apply(task, reply)

    async def _let_siblings_finish(self, step: int) -> None:
        """Before a failed task's error stops the step, give the step's other remote
        tasks up to ``sibling_grace`` seconds to reply, so that their writes are kept.

        In-process, LangGraph starts a step's tasks together and a sibling that doesn't
        wait on I/O has finished (its writes saved) by the time a failing task's error
        is seen; remote siblings run concurrently on workers and their replies race the
        error's. Waiting for them (bounded) keeps what they did instead of cancelling
        finished work; one still running after the grace is cancelled as in-process.
        """
        me = asyncio.current_task()
        if me is None:
            return
        self._failing.add(me)
        others = [
            t
            for t, s in self._step_of.items()
            if s == step and t is not me and not t.done() and t not in self._failing
        ]
        grace = self.executor.sibling_grace
        if others and grace > 0:
            await asyncio.wait(others, timeout=grace)

    def _apply(self, task: PregelExecutableTask, reply: TaskReply) -> None:
        REMOTE_TASKS.labels(self.graph_id, reply.status).inc()
        if reply.status == "dead":
            self.stats.dead += 1
            msg = reply.error.message if reply.error else "dead-lettered"
            raise TaskDeadLetteredError(msg, task_id=task.id)
        task.writes.extend(reply.writes)
        if reply.status == "ok":
            self.stats.ok += 1
            self.stats.skipped += int(reply.skipped)
            return
        if reply.status == "interrupt":
            self.stats.interrupt += 1
            raise GraphInterrupt(tuple(reply.interrupts))
        self.stats.error += 1
        if reply.error is None:
            raise RemoteTaskError(f"task {task.name!r} failed on worker {reply.worker_id}")
        raise error_from_info(reply.error, task_name=task.name, worker_id=reply.worker_id)

    def _emit_events(
        self, task: PregelExecutableTask, events: TaskEvents, call_hook: Any = None
    ) -> None:
        ex = self.executor

        def on_call(body: dict[str, Any]) -> None:
            run_call(task, call_hook, body, ex.serde, ex._answer_call)

        emit_events(task, events, extra_writer=self._stream_writer, on_call=on_call)

    async def cancel(self) -> None:
        """Cancel this invocation's outstanding tasks (local ones, remote futures and
        workers) and wait until the local ones have stopped."""
        self._cancelled = True
        pending = [t for t in (*self._tasks, *self._local) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._sent:  # else no worker has any task of it: no message to every worker
            await self.executor._broadcast_cancel(self.invocation_id, None)


async def _gated(sem: asyncio.Semaphore, coro: Any) -> Any:
    async with sem:
        return await coro


class RemoteExecutor:
    """Owner-process side of remote task execution: one per runtime process.

    ``start()`` connects to NATS, makes sure the task queue exists and subscribes to
    this owner's reply subject; ``configure()`` then prepares each run's config.
    """

    def __init__(
        self,
        settings: InfraSettings,
        checkpointer: BaseCheckpointSaver[Any],
        *,
        owner_id: str | None = None,
        queue: TaskQueueSettings | None = None,
        serde: SerializerProtocol | None = None,
        nc: NATS | None = None,
        sibling_grace: float = DEFAULT_SIBLING_GRACE,
    ) -> None:
        """``nc``: an open NATS connection to share (left open by ``stop``); by
        default ``start`` opens its own to ``settings.nats_url``. ``sibling_grace``:
        seconds a failed remote task waits for its step's other remote tasks before
        its error stops the step (see ``RemoteRun._let_siblings_finish``)."""
        self.settings = settings
        self.sibling_grace = sibling_grace
        self.names = NatsNames(settings.prefix)
        self.owner_id = owner_id or uuid.uuid4().hex[:12]
        self.queue = queue or TaskQueueSettings()
        self.checkpointer = checkpointer
        self.serde: SerializerProtocol = serde or JsonPlusSerializer()
        self.reply_subject = self.names.task_reply(self.owner_id)
        self._nc: NATS | None = nc
        self._own_nc = nc is None
        self._js: JetStreamContext | None = None
        self._sub: Subscription | None = None
        self._pending: dict[tuple[str, str], asyncio.Future[TaskReply]] = {}
        self._requests: dict[tuple[str, str], TaskRequest] = {}
        self._active: dict[tuple[str, str], tuple[RemoteRun, PregelExecutableTask, Any]] = {}
        self._reconnects = 0
        self._watcher: asyncio.Task[None] | None = None
        self._runs: weakref.WeakValueDictionary[str, RemoteRun] = weakref.WeakValueDictionary()
        self._saved: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._saving: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._cancel_batch: dict[str, set[str]] = {}
        self._answers: set[asyncio.Future[None]] = set()
        self._threads = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="lgmesh-local")
        self.dropped_replies = 0

    async def start(self) -> None:
        if self._nc is None:
            self._own_nc = True
            self._nc = await nats.connect(
                self.settings.nats_url,
                name=f"lgmesh-owner-{self.owner_id}",
                max_reconnect_attempts=-1,
                inbox_prefix=inbox_prefix("runtime").encode(),
            )
        self._js = self._nc.jetstream()
        await ensure_task_queue(self._js, self.names, self.queue, create=True)
        self._sub = await self._nc.subscribe(self.reply_subject, cb=self._on_reply)
        self._watcher = asyncio.create_task(self._watch_reconnects(self._nc))

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(BaseException):
                await self._watcher
            self._watcher = None
        for run in list(self._runs.values()):
            with contextlib.suppress(Exception):
                await run.cancel()
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        if self._nc is not None and self._own_nc:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._nc = self._js = self._sub = None
        self._threads.shutdown(wait=False)

    async def __aenter__(self) -> RemoteExecutor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- per run ---------------------------------------------------------------------
    def configure(
        self,
        config: RunnableConfig,
        *,
        graph_id: str,
        run_id: str | None = None,
        remote: RemoteMode = "send",
        max_concurrency: int | None = None,
        stream_writer: Callable[[Any], None] | None = None,
    ) -> RunnableConfig:
        """A copy of ``config`` whose remote-eligible tasks run on workers.

        ``graph_id`` is the key workers find the graph under; ``max_concurrency``
        (default: ``config["max_concurrency"]``) caps this run's in-flight tasks;
        ``stream_writer`` also receives every custom stream event of remote tasks.
        """
        conf = dict(config.get(CONF) or {})
        if CONFIG_KEY_THREAD_ID not in conf:
            raise ValueError("config['configurable']['thread_id'] is required")
        run_id = run_id or str(config.get("run_id") or uuid.uuid4())
        user_conf = {
            k: v
            for k, v in conf.items()
            # the run's tenant token goes along: the task's model and tool calls send it
            if (not k.startswith("__") or k == CONFIG_KEY_TENANT_TOKEN)
            and k not in _CONFIG_SKIP
            and self._serializable(v)
        }
        user_meta = {
            k: v for k, v in (config.get("metadata") or {}).items() if self._serializable(v)
        }
        run = RemoteRun(
            self,
            graph_id=graph_id,
            run_id=run_id,
            mode=remote,
            max_concurrency=max_concurrency or config.get("max_concurrency"),
            stream_writer=stream_writer,
            configurable=user_conf,
            metadata=user_meta,
            recursion_limit=int(config.get("recursion_limit") or 25),
        )
        self._runs[run.invocation_id] = run
        conf[CONFIG_KEY_RUNNER_SUBMIT] = run
        return {**config, CONF: conf}

    @staticmethod
    def run_of(config: RunnableConfig) -> RemoteRun | None:
        """The ``RemoteRun`` that ``configure`` installed in this config."""
        run = (config.get(CONF) or {}).get(CONFIG_KEY_RUNNER_SUBMIT)
        return run if isinstance(run, RemoteRun) else None

    async def cancel_run(self, run_id: str) -> None:
        """Cancel every outstanding remote task of ``run_id`` (all its invocations)."""
        for run in [r for r in self._runs.values() if r.run_id == run_id]:
            await run.cancel()

    @contextlib.asynccontextmanager
    async def run(self, config: RunnableConfig, **kwargs: Any) -> AsyncIterator[RunnableConfig]:
        """``configure`` for the duration of a block; leaving it cancels what is left."""
        cfg = self.configure(config, **kwargs)
        run = self.run_of(cfg)
        try:
            yield cfg
        finally:
            if run is not None:
                await run.cancel()

    # -- internals -------------------------------------------------------------------
    def _serializable(self, value: Any) -> bool:
        try:
            self.serde.dumps_typed(value)
        except Exception:
            return False
        return True

    async def _publish(self, req: TaskRequest, attempt: int = 0) -> None:
        assert self._js is not None, "RemoteExecutor is stopped"
        data = encode_request(self.serde, req)
        # the id is unique per invocation, so a retried publish is de-duplicated but a
        # resume (or a new owner) can send the same task again within the window
        msg_id = f"{req.task_id}:{req.invocation_id}"
        # the trace context of the run goes along: the worker's task span continues it
        headers = inject_nats_headers({"Nats-Msg-Id": f"{msg_id}:{attempt}" if attempt else msg_id})
        await self._js.publish(
            self.names.tasks_subject, data, stream=self.names.tasks_stream, headers=headers
        )

    async def _wait_checkpoint(self, thread_id: str, checkpoint_id: str) -> None:
        """Wait until the checkpoint the task was derived from can be read by workers
        (LangGraph saves it in the background, e.g. the input checkpoint)."""
        key = (thread_id, checkpoint_id)
        if key in self._saved:
            return
        fut = self._saving.get(key)
        if fut is None:
            fut = asyncio.ensure_future(self._poll_checkpoint(thread_id, checkpoint_id))
            self._saving[key] = fut
            fut.add_done_callback(lambda _f: self._saving.pop(key, None))
        await asyncio.shield(fut)

    async def _poll_checkpoint(self, thread_id: str, checkpoint_id: str) -> None:
        deadline = time.monotonic() + self.queue.checkpoint_wait
        delay = 0.002
        cfg = checkpoint_config(thread_id, "", checkpoint_id)
        while True:
            saved = await self.checkpointer.aget_tuple(cfg)
            if saved is not None and saved.checkpoint["id"] == checkpoint_id:
                self._saved[(thread_id, checkpoint_id)] = None
                while len(self._saved) > _KNOWN_CHECKPOINTS:
                    self._saved.popitem(last=False)
                return
            if time.monotonic() > deadline:
                raise RemoteTaskError(
                    f"checkpoint {checkpoint_id} was not saved within "
                    f"{self.queue.checkpoint_wait}s; remote tasks need a checkpointer and "
                    "durability 'sync' or 'async'"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _watch_reconnects(self, nc: NATS) -> None:
        # works for a shared connection too (its reconnect callback isn't ours)
        seen = nc.stats["reconnects"]
        while True:
            await asyncio.sleep(0.2)
            if nc.stats["reconnects"] != seen and nc.is_connected:
                seen = nc.stats["reconnects"]
                await self._on_reconnected()

    async def _on_reconnected(self) -> None:
        """Replies published while this owner was disconnected are lost: send the
        outstanding tasks again (they run again; a late duplicate reply is dropped)."""
        self._reconnects += 1
        for key, req in list(self._requests.items()):
            fut = self._pending.get(key)
            if fut is None or fut.done():
                continue
            try:
                await self._publish(req, attempt=self._reconnects)
            except Exception:
                log.exception("re-sending task %s after reconnect failed", req.task_id)

    async def _on_reply(self, msg: Msg) -> None:
        try:
            reply = decode_message(self.serde, msg.data)
        except Exception:
            log.warning("undecodable task reply on %s dropped", msg.subject)
            self.dropped_replies += 1
            return
        if isinstance(reply, TaskEvents):
            active = self._active.get((reply.invocation_id, reply.task_id))
            if active is not None:  # else: nobody waits for the task any more
                active[0]._emit_events(active[1], reply, active[2])
            return
        fut = self._pending.get((reply.invocation_id, reply.task_id))
        if fut is None or fut.done():
            self.dropped_replies += 1  # nobody waits for it (cancelled, or a duplicate)
            return
        fut.set_result(reply)

    def _answer_call(self, subject: str, result: TaskCallResult) -> None:
        try:
            data = encode_call_result(self.serde, result)
        except Exception as exc:  # the @task's result can't travel
            err = error_info(self.serde, RemoteTaskError(f"@task result not encodable: {exc}"))
            data = encode_call_result(
                self.serde, TaskCallResult(result.call_id, "error", error=err)
            )
        fut = asyncio.ensure_future(self._respond(subject, data))
        self._answers.add(fut)
        fut.add_done_callback(self._answers.discard)

    async def _respond(self, subject: str, data: bytes) -> None:
        if self._nc is None or self._nc.is_closed:
            return
        try:
            await self._nc.publish(subject, data)
        except Exception:
            log.warning("answering a @task call on %s failed", subject, exc_info=True)

    def _cancel_later(self, invocation_id: str, task_id: str) -> None:
        first = not self._cancel_batch
        self._cancel_batch.setdefault(invocation_id, set()).add(task_id)
        if first:
            asyncio.get_running_loop().call_soon(
                lambda: asyncio.ensure_future(self._flush_cancels())
            )

    async def _flush_cancels(self) -> None:
        batch, self._cancel_batch = self._cancel_batch, {}
        for invocation_id, task_ids in batch.items():
            await self._broadcast_cancel(invocation_id, sorted(task_ids))

    async def _broadcast_cancel(self, invocation_id: str, task_ids: list[str] | None) -> None:
        if self._nc is None or self._nc.is_closed:
            return
        body = json.dumps({"task_ids": task_ids}).encode()
        with contextlib.suppress(Exception):
            await self._nc.publish(self.names.task_cancel(invocation_id), body)

"""Owner side of a remote task's stream: re-emit its events into the owner's run.

A remote task's events go where a local task's would: custom events through the run's
stream writer (with the namespace they were written in), messages-mode chunks through
the run's ``StreamMessagesHandler``, subgraph events into the parent stream
(``CONFIG_KEY_STREAM``) when the run streams subgraphs. Also here: what the owner reads
from LangGraph's task and runner objects to describe a task to a worker.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from langchain_core.runnables.config import var_child_runnable_config
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.errors import GraphInterrupt
from langgraph.types import PregelExecutableTask

from runtime_svc.langgraph_api import (
    CONF,
    CONFIG_KEY_CALL,
    CONFIG_KEY_CHECKPOINT_MAP,
    CONFIG_KEY_CHECKPOINT_NS,
    CONFIG_KEY_DURABILITY,
    CONFIG_KEY_RESUME_MAP,
    CONFIG_KEY_RESUMING,
    CONFIG_KEY_RUNTIME,
    CONFIG_KEY_SCRATCHPAD,
    CONFIG_KEY_STREAM,
    CONFIG_KEY_THREAD_ID,
    NS_SEP,
    NULL_TASK_ID,
    PregelScratchpad,
    StreamMessagesHandler,
    _TaskFunction,
)
from runtime_svc.remote._errors import RemoteTaskError
from runtime_svc.remote._rebuild import null_resume_left
from runtime_svc.remote._wire import TaskCallResult, TaskEvents, TaskRequest, error_info

__all__ = [
    "emit_events",
    "messages_handler",
    "null_writes",
    "run_call",
    "task_request",
    "task_step",
]

log = logging.getLogger(__name__)


def emit_events(
    task: PregelExecutableTask,
    events: TaskEvents,
    *,
    extra_writer: Callable[[Any], None] | None = None,
    on_call: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Re-emit a remote task's stream events where a local task's would go."""
    conf = task.config[CONF]
    for channel, ns, mode, payload in events.items:
        try:
            if channel == "call":
                if on_call is not None:
                    on_call(payload)
            elif channel == "custom":
                _emit_custom(task, ns, payload, extra_writer)
            elif channel == "messages":
                handler = messages_handler(task)
                if handler is not None:
                    msg, meta = payload
                    if getattr(msg, "id", None) is not None:
                        handler.seen.add(msg.id)
                    handler.stream((ns, "messages", (msg, _tuples(meta))))
            elif (stream := conf.get(CONFIG_KEY_STREAM)) is not None:
                stream((ns, mode, payload))
        except Exception:
            log.warning("re-emitting a %r event of task %s failed", mode, task.id, exc_info=True)


def _emit_custom(
    task: PregelExecutableTask,
    ns: tuple[str, ...],
    event: Any,
    extra_writer: Callable[[Any], None] | None,
) -> None:
    runtime = task.config[CONF].get(CONFIG_KEY_RUNTIME)
    writer = getattr(runtime, "stream_writer", None)
    # LangGraph's writer reads the namespace from the config context var: give it one
    # whose parent namespace is where the worker's writer was called
    conf = {**task.config[CONF], CONFIG_KEY_CHECKPOINT_NS: NS_SEP.join((*ns, task.name))}
    token = var_child_runnable_config.set({**task.config, CONF: conf})
    try:
        if writer is not None:
            writer(event)
        if extra_writer is not None:
            extra_writer(event)
    finally:
        var_child_runnable_config.reset(token)


def task_request(
    task: PregelExecutableTask,
    *,
    graph_id: str,
    run_id: str,
    invocation_id: str,
    reply_subject: str,
    configurable: dict[str, Any],
    recursion_limit: int,
    null_writes: list[tuple[str, Any]] | None,
    serializable: Callable[[Any], bool],
) -> TaskRequest:
    """What a worker needs to rebuild ``task`` and run it as the owner's loop would."""
    conf = task.config[CONF]
    scratchpad: PregelScratchpad = conf[CONFIG_KEY_SCRATCHPAD]
    runtime = conf.get(CONFIG_KEY_RUNTIME)
    stream = conf.get(CONFIG_KEY_STREAM)
    handler = messages_handler(task)
    resuming = conf.get(CONFIG_KEY_RESUMING)
    # the task's metadata (the run's plus what LangGraph added, such as configurable
    # values) without its own langgraph_* keys, which the worker adds again
    meta = {
        k: v
        for k, v in (task.config.get("metadata") or {}).items()
        if not k.startswith("langgraph_")
    }
    if not serializable(meta):
        meta = {k: v for k, v in meta.items() if serializable(v)}
    return TaskRequest(
        graph_id=graph_id,
        thread_id=str(conf[CONFIG_KEY_THREAD_ID]),
        checkpoint_ns="",
        checkpoint_id=conf[CONFIG_KEY_CHECKPOINT_MAP][""],
        step=scratchpad.step,
        stop=scratchpad.stop,
        task_id=task.id,
        task_name=task.name,
        task_path=list(task.path[:2]),
        run_id=run_id,
        invocation_id=invocation_id,
        reply_subject=reply_subject,
        resume=list(scratchpad.resume),
        null_resume=scratchpad.get_null_resume(False),
        context=getattr(runtime, "context", None),
        configurable=configurable,
        metadata=meta,
        recursion_limit=recursion_limit,
        null_writes=null_writes,
        resume_map=conf.get(CONFIG_KEY_RESUME_MAP) or None,
        resuming=bool(resuming) if resuming is not None else None,
        durability=conf.get(CONFIG_KEY_DURABILITY),
        stream_modes=sorted(getattr(stream, "modes", ()) or ()),
        messages=handler is not None,
        messages_subgraphs=bool(handler.subgraphs) if handler is not None else False,
        messages_parent_ns=(
            list(handler.parent_ns)
            if handler is not None and handler.parent_ns is not None
            else None
        ),
    )


def messages_handler(task: PregelExecutableTask) -> StreamMessagesHandler | None:
    """The run's messages-mode handler among the task's callbacks, if it streams messages."""
    callbacks = task.config.get("callbacks") if task.config else None
    handlers = getattr(callbacks, "handlers", None)
    if handlers is None and isinstance(callbacks, list):
        handlers = callbacks
    for h in handlers or ():
        if isinstance(h, StreamMessagesHandler):
            return h
    return None


def null_writes(configurable: Any) -> list[tuple[str, Any]] | None:
    """The null-task writes the owner's loop holds for the step's checkpoint (a
    ``Command``'s update/goto/resume): applied to the channels before the step's tasks
    were prepared, and saved in the background, so maybe not readable yet.

    The runner hands each task its ``@task`` call hook, a partial whose
    ``schedule_task`` is the loop's ``aaccept_push``: the loop is its ``__self__``.
    ``None`` when that can't be found (the worker then reads the saved writes).
    """
    call = (configurable or {}).get(CONFIG_KEY_CALL) if isinstance(configurable, dict) else None
    schedule = getattr(call, "keywords", {}).get("schedule_task")
    pending = getattr(getattr(schedule, "__self__", None), "checkpoint_pending_writes", None)
    if not isinstance(pending, list):
        return None
    return [(c, v) for tid, c, v in pending if tid == NULL_TASK_ID]


def _tuples(meta: Any) -> Any:
    """LangGraph's metadata as a local task's chunk carries it (the wire makes lists of
    the path and trigger tuples)."""
    if not isinstance(meta, dict):
        return meta
    out = dict(meta)
    for key in ("langgraph_path", "langgraph_triggers"):
        if isinstance(out.get(key), list):
            out[key] = _deep_tuple(out[key])
    return out


def _deep_tuple(value: Any) -> Any:
    return tuple(_deep_tuple(v) for v in value) if isinstance(value, list) else value


def task_step(task: PregelExecutableTask) -> int:
    scratchpad = (task.config.get(CONF) or {}).get(CONFIG_KEY_SCRATCHPAD)
    return int(getattr(scratchpad, "step", -1))


def run_call(
    task: PregelExecutableTask,
    call_hook: Any,
    body: dict[str, Any],
    serde: SerializerProtocol,
    answer: Callable[[str, TaskCallResult], None],
) -> None:
    """Run a ``@task`` call a remote task made through the owner's call hook for that
    task (what LangGraph's runner gave it), as if the node had made it here: the loop
    gives the call its index and task id, returns a saved result on resume, runs it and
    streams its events. ``answer(respond_to, result)`` gets the outcome."""
    call_id, respond_to = str(body["call_id"]), str(body["respond_to"])
    # the run's null resume is one value for the node and its calls (see _forward)
    scratchpad = task.config[CONF].get(CONFIG_KEY_SCRATCHPAD)
    if scratchpad is not None and body.get("null_resume_consumed"):
        scratchpad.get_null_resume(True)
    had_null_resume = null_resume_left(scratchpad) is True

    def reply(status: Any, **kw: Any) -> None:
        taken = had_null_resume and null_resume_left(scratchpad) is False
        answer(respond_to, TaskCallResult(call_id, status, null_resume_consumed=taken, **kw))

    target = _task_function(str(body["module"]), str(body["qualname"]))
    if call_hook is None or target is None:
        why = "is not a @task the owner has imported" if target is None else "has no call hook"
        err = RemoteTaskError(f"@task {body['module']}.{body['qualname']} {why}")
        reply("error", error=error_info(serde, err))
        return
    try:
        fut = call_hook(
            target.func,
            body["input"],
            retry_policy=target.retry_policy,
            cache_policy=target.cache_policy,
            callbacks=task.config.get("callbacks"),
            timeout=target.timeout,
        )
    except Exception as exc:
        reply("error", error=error_info(serde, exc))
        return

    def done(f: Any) -> None:
        if f.cancelled():
            reply("error", error=error_info(serde, RemoteTaskError("@task call cancelled")))
            return
        exc = f.exception()
        if isinstance(exc, GraphInterrupt):
            reply("interrupt", interrupts=list(exc.args[0]) if exc.args else [])
        elif exc is not None:
            reply("error", error=error_info(serde, exc))
        else:
            reply("ok", value=f.result())

    fut.add_done_callback(done)


def _task_function(module: str, qualname: str) -> _TaskFunction[Any, Any] | None:
    # only what the owner already imported (its graphs' modules): a call never makes
    # the owner import code
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        if obj is None:
            return None
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, _TaskFunction) else None

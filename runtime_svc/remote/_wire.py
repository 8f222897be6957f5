"""What travels between an owner and the workers: task requests, task replies, task
events, errors.

Both messages are plain dataclasses encoded with LangGraph's serde (``JsonPlusSerializer``,
msgpack, no pickle), so channel values, ``Send`` packets, ``Interrupt`` objects and
messages round-trip the same way they do through the checkpointer.

A node's exception can't be encoded as an object (serde stores exceptions as their
repr), so it travels as ``ErrorInfo`` (module, qualified name, message, args) and
the owner rebuilds the same type when that type's module is already imported there.

While a task runs, the worker sends its stream events (custom events, messages-mode
chunks, subgraph events) as ``TaskEvents`` batches to the owner's reply subject, in
order, before the ``TaskReply``; ``decode_message`` tells the two apart.

With a payload codec (``--payload-keys``) every message is sealed (:class:`SealedSerde`):
task requests and dead letters sit in a JetStream stream, and all of them carry state.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from langgraph.checkpoint.serde.base import SerializerProtocol

from mesh_core.security._codec import PayloadCodec, open_payload, seal_payload
from runtime_svc.remote._errors import RemoteTaskError

__all__ = [
    "ErrorInfo",
    "EventChannel",
    "SealedSerde",
    "TaskCallResult",
    "TaskEvents",
    "TaskReply",
    "TaskRequest",
    "decode_call_result",
    "decode_message",
    "decode_reply",
    "decode_request",
    "encode_call_result",
    "encode_events",
    "encode_reply",
    "encode_request",
    "error_from_info",
    "error_info",
]

ReplyStatus = Literal["ok", "interrupt", "error", "dead"]
#: where the owner re-emits an event: "custom" -> the run's stream writer, "messages" ->
#: the run's messages-mode handler, "stream" -> the parent stream subgraphs write to;
#: "call": not an event but a ``@task`` call the task made, for the owner's loop to run
EventChannel = Literal["custom", "messages", "stream", "call"]
CallStatus = Literal["ok", "interrupt", "error"]
_SEP = b"\x00"


@dataclass
class TaskRequest:
    """One task the owner wants run: enough for a worker to rebuild it from the checkpoint."""

    graph_id: str
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    step: int
    stop: int
    task_id: str
    task_name: str
    task_path: list[Any]
    run_id: str
    invocation_id: str
    reply_subject: str
    # values the owner's scratchpad holds for this task (resume answers, null resume)
    resume: list[Any] = field(default_factory=list)
    null_resume: Any = None
    context: Any = None
    # user values of config["configurable"] (the private "__pregel_*" keys are dropped)
    configurable: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    recursion_limit: int = 25
    # LangGraph's per-run values of the owner's task config that subgraphs of the task
    # read: resume map (interrupt id -> value), resuming flag (None: not set), durability
    resume_map: dict[str, Any] | None = None
    # the null-task writes (a Command's update/goto) the owner's loop applied to the
    # step's checkpoint before preparing the task (None: read the saved ones)
    null_writes: list[tuple[str, Any]] | None = None
    resuming: bool | None = None
    durability: str | None = None
    # what the owner's run streams: the modes subgraphs stream to (empty: subgraph
    # events not streamed), and whether/how messages-mode chunks are collected
    stream_modes: list[str] = field(default_factory=list)
    messages: bool = False
    messages_subgraphs: bool = False
    messages_parent_ns: list[str] | None = None


@dataclass
class ErrorInfo:
    module: str
    qualname: str
    message: str
    args: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class TaskReply:
    task_id: str
    invocation_id: str
    status: ReplyStatus
    writes: list[tuple[str, Any]] = field(default_factory=list)
    interrupts: list[Any] = field(default_factory=list)
    error: ErrorInfo | None = None
    worker_id: str = ""
    deliveries: int = 1
    skipped: bool = False


#: what a remote task message is bound to (its run and thread are inside it)
_TASK_PLACE = "remote-task"


class SealedSerde:
    """``inner`` whose bytes are sealed with ``codec`` (None: ``inner`` as it is)."""

    def __init__(self, inner: SerializerProtocol, codec: PayloadCodec | None) -> None:
        self.inner = inner
        self.codec = codec

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        kind, data = self.inner.dumps_typed(obj)
        return kind, seal_payload(self.codec, data, _TASK_PLACE)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        kind, raw = data
        return self.inner.loads_typed(
            (kind, open_payload(self.codec, raw, "a remote task message", _TASK_PLACE))
        )


def _pack(serde: SerializerProtocol, obj: dict[str, Any]) -> bytes:
    kind, data = serde.dumps_typed(obj)
    return kind.encode() + _SEP + data


def _unpack(serde: SerializerProtocol, raw: bytes) -> dict[str, Any]:
    kind, sep, data = raw.partition(_SEP)
    if not sep:
        raise ValueError("not a task message")
    obj = serde.loads_typed((kind.decode(), data))
    if not isinstance(obj, dict):
        raise ValueError("not a task message")
    return obj


def encode_request(serde: SerializerProtocol, req: TaskRequest) -> bytes:
    # shallow: asdict() deep-copies every value, which costs more than the encoding
    return _pack(serde, {f.name: getattr(req, f.name) for f in fields(TaskRequest)})


def decode_request(serde: SerializerProtocol, raw: bytes) -> TaskRequest:
    obj = _unpack(serde, raw)
    return TaskRequest(**obj)


def encode_reply(serde: SerializerProtocol, reply: TaskReply) -> bytes:
    obj = {
        "task_id": reply.task_id,
        "invocation_id": reply.invocation_id,
        "status": reply.status,
        "writes": [[c, v] for c, v in reply.writes],
        "interrupts": list(reply.interrupts),
        "error": asdict(reply.error) if reply.error is not None else None,
        "worker_id": reply.worker_id,
        "deliveries": reply.deliveries,
        "skipped": reply.skipped,
    }
    return _pack(serde, obj)


def decode_reply(serde: SerializerProtocol, raw: bytes) -> TaskReply:
    return _reply(_unpack(serde, raw))


def _reply(obj: dict[str, Any]) -> TaskReply:
    err = obj.get("error")
    return TaskReply(
        task_id=obj["task_id"],
        invocation_id=obj["invocation_id"],
        status=obj["status"],
        writes=[(str(c), v) for c, v in obj.get("writes") or []],
        interrupts=list(obj.get("interrupts") or []),
        error=ErrorInfo(**err) if err else None,
        worker_id=obj.get("worker_id", ""),
        deliveries=int(obj.get("deliveries", 1)),
        skipped=bool(obj.get("skipped", False)),
    )


@dataclass
class TaskEvents:
    """Stream events of a running task, in the order the task emitted them.

    ``items``: ``(channel, namespace, mode, payload)``; ``seq`` numbers the batches of
    one delivery (``deliveries``) of the task from 0.
    """

    task_id: str
    invocation_id: str
    seq: int
    items: list[tuple[EventChannel, tuple[str, ...], str, Any]]
    deliveries: int = 1


def encode_events(serde: SerializerProtocol, events: TaskEvents) -> bytes:
    obj = {
        "kind": "events",
        "task_id": events.task_id,
        "invocation_id": events.invocation_id,
        "seq": events.seq,
        "deliveries": events.deliveries,
        "items": [[c, list(ns), m, p] for c, ns, m, p in events.items],
    }
    return _pack(serde, obj)


def decode_message(serde: SerializerProtocol, raw: bytes) -> TaskReply | TaskEvents:
    """A message of the owner's reply subject: a task's reply or a batch of its events."""
    obj = _unpack(serde, raw)
    if obj.get("kind") != "events":
        return _reply(obj)
    return TaskEvents(
        task_id=obj["task_id"],
        invocation_id=obj["invocation_id"],
        seq=int(obj["seq"]),
        deliveries=int(obj.get("deliveries", 1)),
        items=[(c, tuple(str(x) for x in ns), str(m), p) for c, ns, m, p in obj["items"]],
    )


@dataclass
class TaskCallResult:
    """The outcome of a ``@task`` call a remote task made, run by the owner's loop."""

    call_id: str
    status: CallStatus
    value: Any = None
    interrupts: list[Any] = field(default_factory=list)
    error: ErrorInfo | None = None
    #: the call took the run's null resume value (a scalar ``Command(resume=...)``),
    #: so the calling node must not take it again
    null_resume_consumed: bool = False


def encode_call_result(serde: SerializerProtocol, result: TaskCallResult) -> bytes:
    obj = {
        "kind": "call_result",
        "call_id": result.call_id,
        "status": result.status,
        "value": result.value,
        "interrupts": list(result.interrupts),
        "error": asdict(result.error) if result.error is not None else None,
        "null_resume_consumed": result.null_resume_consumed,
    }
    return _pack(serde, obj)


def decode_call_result(serde: SerializerProtocol, raw: bytes) -> TaskCallResult:
    obj = _unpack(serde, raw)
    if obj.get("kind") != "call_result":
        raise ValueError("not a call result")
    err = obj.get("error")
    return TaskCallResult(
        call_id=str(obj["call_id"]),
        status=obj["status"],
        value=obj.get("value"),
        interrupts=list(obj.get("interrupts") or []),
        error=ErrorInfo(**err) if err else None,
        null_resume_consumed=bool(obj.get("null_resume_consumed", False)),
    )


def error_info(serde: SerializerProtocol, exc: BaseException) -> ErrorInfo:
    cls = type(exc)
    args: list[Any] = []
    try:
        serde.dumps_typed(list(exc.args))
        args = list(exc.args)
    except Exception:
        args = [str(a) for a in exc.args]
    return ErrorInfo(
        module=cls.__module__,
        qualname=cls.__qualname__,
        message=str(exc),
        args=args,
        notes=[str(n) for n in getattr(exc, "__notes__", ())],
    )


def _lookup_class(module: str, qualname: str) -> type[BaseException] | None:
    # Only types whose module the owner already imported: a reply never makes the
    # owner import code.
    mod = sys.modules.get(module)
    if mod is None:
        return None
    obj: Any = mod
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if isinstance(obj, type) and issubclass(obj, Exception):
        return obj
    return None


def error_from_info(
    info: ErrorInfo, *, task_name: str, worker_id: str, where: str | None = None
) -> BaseException:
    """The node's exception, rebuilt as the same type when possible (``where``: the
    note saying where it was raised; default: the remote worker)."""
    exc: BaseException | None = None
    cls = _lookup_class(info.module, info.qualname)
    if cls is not None:
        try:
            exc = cls(*info.args)
        except Exception:
            try:
                exc = cls.__new__(cls)
                exc.args = tuple(info.args)
            except Exception:
                exc = None
    if exc is None:
        exc = RemoteTaskError(
            f"task {task_name!r} failed on worker {worker_id}: {info.qualname}: {info.message}",
            error_type=f"{info.module}.{info.qualname}",
        )
    for note in info.notes:
        exc.add_note(note)
    exc.add_note(where or f"Raised on remote worker {worker_id}")
    return exc

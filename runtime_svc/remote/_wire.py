"""What travels between an owner and the workers: task requests, task replies, errors.

Both messages are plain dataclasses encoded with LangGraph's serde (``JsonPlusSerializer``,
msgpack, no pickle), so channel values, ``Send`` packets, ``Interrupt`` objects and
messages round-trip the same way they do through the checkpointer.

A node's exception can't be encoded as an object (serde stores exceptions as their
repr), so it travels as ``ErrorInfo`` (module, qualified name, message, args) and
the owner rebuilds the same type when that type's module is already imported there.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from langgraph.checkpoint.serde.base import SerializerProtocol

from runtime_svc.remote._errors import RemoteTaskError

__all__ = [
    "ErrorInfo",
    "TaskReply",
    "TaskRequest",
    "decode_reply",
    "decode_request",
    "encode_reply",
    "encode_request",
    "error_from_info",
    "error_info",
]

ReplyStatus = Literal["ok", "interrupt", "error", "dead"]
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
    custom: list[Any] = field(default_factory=list)
    interrupts: list[Any] = field(default_factory=list)
    error: ErrorInfo | None = None
    worker_id: str = ""
    deliveries: int = 1
    skipped: bool = False


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
        "custom": list(reply.custom),
        "interrupts": list(reply.interrupts),
        "error": asdict(reply.error) if reply.error is not None else None,
        "worker_id": reply.worker_id,
        "deliveries": reply.deliveries,
        "skipped": reply.skipped,
    }
    return _pack(serde, obj)


def decode_reply(serde: SerializerProtocol, raw: bytes) -> TaskReply:
    obj = _unpack(serde, raw)
    err = obj.get("error")
    return TaskReply(
        task_id=obj["task_id"],
        invocation_id=obj["invocation_id"],
        status=obj["status"],
        writes=[(str(c), v) for c, v in obj.get("writes") or []],
        custom=list(obj.get("custom") or []),
        interrupts=list(obj.get("interrupts") or []),
        error=ErrorInfo(**err) if err else None,
        worker_id=obj.get("worker_id", ""),
        deliveries=int(obj.get("deliveries", 1)),
        skipped=bool(obj.get("skipped", False)),
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


def error_from_info(info: ErrorInfo, *, task_name: str, worker_id: str) -> BaseException:
    """The node's exception, rebuilt as the same type when possible."""
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
    exc.add_note(f"Raised on remote worker {worker_id}")
    return exc

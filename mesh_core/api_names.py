"""Names <-> protobuf enum values of the public API, in one table for every side.

The gateway, the runtime and the client each turn the API's enums into the names
LangGraph and ``langgraph_sdk`` use ("updates", "rollback", "interrupted", ...) and back.
They all read this module, so a value added to a ``.proto`` enum is named once. It lives
in the shared core (which already speaks the API's types, e.g. in the event log) rather
than in a service, so the client and both services import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping

from lgmesh.api.v1 import runs_pb2, threads_pb2, types_pb2

__all__ = [
    "CANCEL_ACTION",
    "CANCEL_RUNS_STATUS",
    "DURABILITY",
    "LIFECYCLE_KIND",
    "MULTITASK_STRATEGY",
    "ON_COMPLETION",
    "PRUNE_STRATEGY",
    "RUN_STATUS",
    "STREAM_MODE",
    "THREAD_STATUS",
    "name_of",
    "value_of",
]

#: stream mode name -> enum value ("messages-tuple" is langgraph_sdk's name for "messages":
#: the mesh streams every message chunk as a [message, metadata] pair)
STREAM_MODE: Mapping[str, int] = {
    "values": types_pb2.STREAM_MODE_VALUES,
    "updates": types_pb2.STREAM_MODE_UPDATES,
    "custom": types_pb2.STREAM_MODE_CUSTOM,
    "messages": types_pb2.STREAM_MODE_MESSAGES,
    "messages-tuple": types_pb2.STREAM_MODE_MESSAGES,
    "debug": types_pb2.STREAM_MODE_DEBUG,
    "tasks": types_pb2.STREAM_MODE_TASKS,
    "checkpoints": types_pb2.STREAM_MODE_CHECKPOINTS,
}
MULTITASK_STRATEGY: Mapping[str, int] = {
    "reject": types_pb2.MULTITASK_STRATEGY_REJECT,
    "enqueue": types_pb2.MULTITASK_STRATEGY_ENQUEUE,
    "interrupt": types_pb2.MULTITASK_STRATEGY_INTERRUPT,
    "rollback": types_pb2.MULTITASK_STRATEGY_ROLLBACK,
}
RUN_STATUS: Mapping[str, int] = {
    "pending": types_pb2.RUN_STATUS_PENDING,
    "running": types_pb2.RUN_STATUS_RUNNING,
    "success": types_pb2.RUN_STATUS_SUCCESS,
    "error": types_pb2.RUN_STATUS_ERROR,
    "interrupted": types_pb2.RUN_STATUS_INTERRUPTED,
    "cancelled": types_pb2.RUN_STATUS_CANCELLED,
}
THREAD_STATUS: Mapping[str, int] = {
    "idle": types_pb2.THREAD_STATUS_IDLE,
    "busy": types_pb2.THREAD_STATUS_BUSY,
    "interrupted": types_pb2.THREAD_STATUS_INTERRUPTED,
    "error": types_pb2.THREAD_STATUS_ERROR,
}
LIFECYCLE_KIND: Mapping[str, int] = {
    "started": types_pb2.LIFECYCLE_KIND_STARTED,
    "resumed": types_pb2.LIFECYCLE_KIND_RESUMED,
    "ended": types_pb2.LIFECYCLE_KIND_ENDED,
    "queued": types_pb2.LIFECYCLE_KIND_QUEUED,
}
CANCEL_ACTION: Mapping[str, int] = {
    "interrupt": types_pb2.CANCEL_ACTION_INTERRUPT,
    "rollback": types_pb2.CANCEL_ACTION_ROLLBACK,
}
DURABILITY: Mapping[str, int] = {
    "sync": types_pb2.DURABILITY_SYNC,
    "async": types_pb2.DURABILITY_ASYNC,
    "exit": types_pb2.DURABILITY_EXIT,
}
ON_COMPLETION: Mapping[str, int] = {
    "delete": types_pb2.ON_COMPLETION_DELETE,
    "keep": types_pb2.ON_COMPLETION_KEEP,
}
PRUNE_STRATEGY: Mapping[str, int] = {
    "keep_latest": threads_pb2.PRUNE_STRATEGY_KEEP_LATEST,
    "delete": threads_pb2.PRUNE_STRATEGY_DELETE,
}
CANCEL_RUNS_STATUS: Mapping[str, int] = {
    "pending": runs_pb2.CANCEL_RUNS_STATUS_PENDING,
    "running": runs_pb2.CANCEL_RUNS_STATUS_RUNNING,
    "all": runs_pb2.CANCEL_RUNS_STATUS_ALL,
}

_REVERSE: dict[int, dict[int, str]] = {}


def name_of(table: Mapping[str, int], value: int, default: str = "") -> str:
    """The name of ``value`` in ``table`` (its first name), ``default`` if unset/unknown."""
    rev = _REVERSE.get(id(table))
    if rev is None:
        rev = {}
        for name, v in table.items():
            rev.setdefault(v, name)
        _REVERSE[id(table)] = rev
    return rev.get(value, default)


def value_of(table: Mapping[str, int], name: str, what: str) -> int:
    """The enum value named ``name``; ValueError naming ``what`` and the known names if none."""
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r} (known: {', '.join(table)})") from None

"""Records -> public API messages (with servicer.py, the only gateway modules touching *_pb2)."""

from __future__ import annotations

from lgmesh.api.v1 import types_pb2

from mesh_core.adapters.redis.records import RunRecord, ThreadRecord
from mesh_core.jsonvalue import to_struct, to_value

RUN_STATUS = {
    "pending": types_pb2.RUN_STATUS_PENDING,
    "running": types_pb2.RUN_STATUS_RUNNING,
    "success": types_pb2.RUN_STATUS_SUCCESS,
    "error": types_pb2.RUN_STATUS_ERROR,
    "interrupted": types_pb2.RUN_STATUS_INTERRUPTED,
    "cancelled": types_pb2.RUN_STATUS_CANCELLED,
}
RUN_STATUS_NAMES = {v: k for k, v in RUN_STATUS.items()}
THREAD_STATUS = {
    "idle": types_pb2.THREAD_STATUS_IDLE,
    "busy": types_pb2.THREAD_STATUS_BUSY,
    "interrupted": types_pb2.THREAD_STATUS_INTERRUPTED,
    "error": types_pb2.THREAD_STATUS_ERROR,
}
THREAD_STATUS_NAMES = {v: k for k, v in THREAD_STATUS.items()}
STRATEGY = {
    "reject": types_pb2.MULTITASK_STRATEGY_REJECT,
    "enqueue": types_pb2.MULTITASK_STRATEGY_ENQUEUE,
    "interrupt": types_pb2.MULTITASK_STRATEGY_INTERRUPT,
    "rollback": types_pb2.MULTITASK_STRATEGY_ROLLBACK,
}


def _ts(t: float) -> object:
    from google.protobuf import timestamp_pb2

    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(t * 1e9))
    return ts


def thread_to_pb(rec: ThreadRecord) -> types_pb2.Thread:
    return types_pb2.Thread(
        thread_id=rec.thread_id,
        metadata=to_struct(rec.metadata),
        created_at=_ts(rec.created_at),
        updated_at=_ts(rec.updated_at),
        status=THREAD_STATUS.get(rec.status, types_pb2.THREAD_STATUS_UNSPECIFIED),
    )


def run_to_pb(rec: RunRecord) -> types_pb2.Run:
    pb = types_pb2.Run(
        run_id=rec.run_id,
        thread_id=rec.thread_id,
        assistant_id=rec.assistant_id,
        status=RUN_STATUS.get(rec.status, types_pb2.RUN_STATUS_UNSPECIFIED),
        metadata=to_struct(rec.metadata),
        created_at=_ts(rec.created_at),
        updated_at=_ts(rec.updated_at),
        multitask_strategy=STRATEGY.get(
            rec.multitask_strategy, types_pb2.MULTITASK_STRATEGY_REJECT
        ),
        attempts=rec.attempts,
    )
    for i in rec.interrupts:
        pb.interrupts.append(
            types_pb2.Interrupt(id=str(i.get("id", "")), value=to_value(i.get("value")))
        )
    if rec.error:
        pb.error.CopyFrom(
            types_pb2.RunError(
                type=str(rec.error.get("type", "")), message=str(rec.error.get("message", ""))
            )
        )
    return pb


def final_event_from_record(rec: RunRecord, seq: int) -> types_pb2.RunEvent:
    """The final lifecycle event of a run whose log lacks one, made from its record
    (deterministic: every gateway makes the same one)."""
    ev = types_pb2.RunEvent(run_id=rec.run_id, seq=seq, mode="lifecycle")
    ev.time.CopyFrom(_ts(rec.updated_at))
    ev.lifecycle.kind = types_pb2.LIFECYCLE_KIND_ENDED
    ev.lifecycle.status = RUN_STATUS.get(rec.status, types_pb2.RUN_STATUS_UNSPECIFIED)
    if rec.error:
        ev.lifecycle.error.type = str(rec.error.get("type", ""))
        ev.lifecycle.error.message = str(rec.error.get("message", ""))
    return ev

"""Protobuf <-> runtime types. With servicer.py, the only runtime module that touches *_pb2."""

from __future__ import annotations

from typing import Any

from google.protobuf import timestamp_pb2
from lgmesh.api.v1 import types_pb2

from mesh_core.errors import FieldViolation, InvalidArgumentError
from mesh_core.jsonvalue import from_struct, from_value, to_struct, to_value
from mesh_core.validation import validate_config
from runtime_svc.graphs import GraphEntry
from runtime_svc.runs import Event, RunRequest
from runtime_svc.visibility import public_metadata

MODE_NAMES = {
    types_pb2.STREAM_MODE_VALUES: "values",
    types_pb2.STREAM_MODE_UPDATES: "updates",
    types_pb2.STREAM_MODE_CUSTOM: "custom",
    types_pb2.STREAM_MODE_MESSAGES: "messages",
    types_pb2.STREAM_MODE_DEBUG: "debug",
}
STRATEGY_NAMES = {
    types_pb2.MULTITASK_STRATEGY_UNSPECIFIED: "reject",
    types_pb2.MULTITASK_STRATEGY_REJECT: "reject",
    types_pb2.MULTITASK_STRATEGY_ENQUEUE: "enqueue",
    types_pb2.MULTITASK_STRATEGY_INTERRUPT: "interrupt",
    types_pb2.MULTITASK_STRATEGY_ROLLBACK: "rollback",
}
STATUS_VALUES = {
    "pending": types_pb2.RUN_STATUS_PENDING,
    "running": types_pb2.RUN_STATUS_RUNNING,
    "success": types_pb2.RUN_STATUS_SUCCESS,
    "error": types_pb2.RUN_STATUS_ERROR,
    "interrupted": types_pb2.RUN_STATUS_INTERRUPTED,
    "cancelled": types_pb2.RUN_STATUS_CANCELLED,
}
LIFECYCLE_VALUES = {
    "started": types_pb2.LIFECYCLE_KIND_STARTED,
    "resumed": types_pb2.LIFECYCLE_KIND_RESUMED,
    "ended": types_pb2.LIFECYCLE_KIND_ENDED,
    "queued": types_pb2.LIFECYCLE_KIND_QUEUED,
}


def command_from_pb(cmd: types_pb2.Command) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    if cmd.HasField("resume"):
        out["resume"] = from_value(cmd.resume)
        if cmd.resume_map and not isinstance(out["resume"], dict):
            raise InvalidArgumentError(
                "command.resume must be an object of interrupt id -> value when resume_map is set",
                [FieldViolation("run.command.resume", "expected a JSON object")],
            )
    if cmd.HasField("update"):
        out["update"] = from_value(cmd.update)
    if cmd.goto:
        out["goto"] = list(cmd.goto)
    return out or None


def request_from_pb(
    tenant_id: str,
    run_id: str,
    spec: types_pb2.RunSpec,
    *,
    resume: bool = False,
    after_seq: int = 0,
) -> RunRequest:
    config = from_struct(spec.config) if spec.HasField("config") else {}
    validate_config(config)
    if list(spec.stream_modes) == [types_pb2.STREAM_MODE_UNSPECIFIED]:
        modes: tuple[str, ...] = ()  # lifecycle events only (WaitRun: the end carries the output)
    else:
        modes = tuple(MODE_NAMES[m] for m in spec.stream_modes if m in MODE_NAMES) or ("values",)
    return RunRequest(
        tenant_id=tenant_id,
        run_id=run_id,
        thread_id=spec.thread_id,
        assistant_id=spec.assistant_id,
        input=from_value(spec.input) if spec.HasField("input") else None,
        command=command_from_pb(spec.command) if spec.HasField("command") else None,
        config=config,
        context=from_struct(spec.context) if spec.HasField("context") else {},
        metadata=from_struct(spec.metadata) if spec.HasField("metadata") else {},
        stream_modes=modes,
        multitask_strategy=STRATEGY_NAMES.get(spec.multitask_strategy, "reject"),
        interrupt_before=tuple(spec.interrupt_before),
        interrupt_after=tuple(spec.interrupt_after),
        stream_subgraphs=spec.stream_subgraphs,
        resume=resume,
        after_seq=after_seq,
    )


def timestamp(t: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(t * 1e9))
    return ts


def interrupt_to_pb(i: Any) -> types_pb2.Interrupt:
    if isinstance(i, dict):
        return types_pb2.Interrupt(id=str(i.get("id", "")), value=to_value(i.get("value")))
    return types_pb2.Interrupt(id=str(getattr(i, "id", "")), value=to_value(getattr(i, "value", i)))


def error_to_pb(err: dict[str, Any] | None) -> types_pb2.RunError | None:
    if not err:
        return None
    return types_pb2.RunError(type=str(err.get("type", "")), message=str(err.get("message", "")))


def event_to_pb(ev: Event) -> types_pb2.RunEvent:
    pb = types_pb2.RunEvent(
        run_id=ev.run_id, seq=ev.seq, mode=ev.mode, namespace=list(ev.namespace)
    )
    pb.time.CopyFrom(timestamp(ev.time))
    if ev.data is not None:
        pb.data.CopyFrom(to_value(ev.data))
    if ev.lifecycle is not None:
        lc = ev.lifecycle
        pb.lifecycle.kind = LIFECYCLE_VALUES.get(
            lc.get("kind", ""), types_pb2.LIFECYCLE_KIND_UNSPECIFIED
        )
        pb.lifecycle.status = STATUS_VALUES.get(
            lc.get("status", ""), types_pb2.RUN_STATUS_UNSPECIFIED
        )
        pb.lifecycle.runtime_id = str(lc.get("runtime_id", ""))
        pb.lifecycle.interrupts.extend(interrupt_to_pb(i) for i in lc.get("interrupts") or [])
        err = error_to_pb(lc.get("error"))
        if err is not None:
            pb.lifecycle.error.CopyFrom(err)
    return pb


def state_to_pb(state: Any) -> types_pb2.ThreadState:
    cfg = state.config.get("configurable", {}) if state.config else {}
    parent = (state.parent_config or {}).get("configurable", {}) if state.parent_config else {}
    pb = types_pb2.ThreadState(
        values=to_value(state.values),
        next=list(state.next),
        checkpoint_id=str(cfg.get("checkpoint_id", "")),
        parent_checkpoint_id=str(parent.get("checkpoint_id", "")),
        metadata=to_struct(public_metadata(state.metadata or {})),
    )
    if state.created_at:
        from datetime import datetime

        pb.created_at.FromDatetime(datetime.fromisoformat(state.created_at))
    for t in state.tasks:
        task = types_pb2.ThreadTask(id=t.id, name=t.name)
        task.interrupts.extend(interrupt_to_pb(i) for i in t.interrupts)
        if t.error:
            task.error.CopyFrom(
                types_pb2.RunError(type=type(t.error).__name__, message=str(t.error))
            )
        pb.tasks.append(task)
    pb.interrupts.extend(interrupt_to_pb(i) for i in state.interrupts)
    return pb


def assistant_to_pb(entry: GraphEntry) -> types_pb2.Assistant:
    return types_pb2.Assistant(
        assistant_id=entry.graph_id,
        graph_id=entry.graph_id,
        description=entry.description,
        input_schema=to_struct(entry.schemas.input),
        output_schema=to_struct(entry.schemas.output),
        context_schema=to_struct(entry.schemas.context),
        nodes=[n for n in entry.graph.nodes if not n.startswith("__")],
    )

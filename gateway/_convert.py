"""Plain records <-> public API messages. With the servicers, ``dispatch`` and ``_runtime``,
the only gateway modules touching *_pb2; enum names come from ``mesh_core.api_names``."""

from __future__ import annotations

from typing import Any

from google.protobuf import timestamp_pb2
from lgmesh.api.v1 import types_pb2

from mesh_core import api_names as names
from mesh_core.adapters.redis.assistants import AssistantRecord
from mesh_core.adapters.redis.records import SCHEDULED, RunRecord, ThreadRecord
from mesh_core.errors import FieldViolation, InvalidArgumentError
from mesh_core.jsonvalue import LARGE_MESSAGE_BYTES, from_struct, from_value, to_struct, to_value

__all__ = [
    "assistant_to_pb",
    "final_event_from_record",
    "outcome_of",
    "run_to_pb",
    "spec_from_pb",
    "spec_to_pb",
    "thread_to_pb",
]


def _ts(t: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(t * 1e9))
    return ts


def thread_to_pb(rec: ThreadRecord) -> types_pb2.Thread:
    return types_pb2.Thread(
        thread_id=rec.thread_id,
        metadata=to_struct(rec.metadata),
        created_at=_ts(rec.created_at),
        updated_at=_ts(rec.updated_at),
        status=names.THREAD_STATUS.get(rec.status, 0),
        graph_id=rec.graph_id or rec.assistant_id,
        ttl_seconds=rec.ttl,
    )


def _error(err: dict[str, Any] | None) -> types_pb2.RunError | None:
    if not err:
        return None
    return types_pb2.RunError(type=str(err.get("type", "")), message=str(err.get("message", "")))


def run_to_pb(rec: RunRecord) -> types_pb2.Run:
    status = "pending" if rec.status == SCHEDULED else rec.status
    pb = types_pb2.Run(
        run_id=rec.run_id,
        thread_id=rec.thread_id,
        assistant_id=rec.assistant_id,
        status=names.RUN_STATUS.get(status, 0),
        metadata=to_struct(rec.metadata),
        created_at=_ts(rec.created_at),
        updated_at=_ts(rec.updated_at),
        multitask_strategy=names.MULTITASK_STRATEGY.get(
            rec.multitask_strategy, types_pb2.MULTITASK_STRATEGY_REJECT
        ),
        attempts=rec.attempts,
    )
    for i in rec.interrupts:
        pb.interrupts.append(
            types_pb2.Interrupt(id=str(i.get("id", "")), value=to_value(i.get("value")))
        )
    err = _error(rec.error)
    if err is not None:
        pb.error.CopyFrom(err)
    return pb


def assistant_to_pb(
    rec: AssistantRecord, *, schemas: dict[str, Any] | None = None, nodes: tuple[str, ...] = ()
) -> types_pb2.Assistant:
    pb = types_pb2.Assistant(
        assistant_id=rec.assistant_id,
        graph_id=rec.graph_id,
        description=rec.description,
        nodes=list(nodes),
        config=to_struct(rec.config),
        context=to_struct(rec.context),
        metadata=to_struct(rec.metadata),
        version=rec.version,
        name=rec.name,
    )
    if rec.created_at:
        pb.created_at.CopyFrom(_ts(rec.created_at))
        pb.updated_at.CopyFrom(_ts(rec.updated_at or rec.created_at))
    if schemas:
        for field in ("input_schema", "output_schema", "context_schema"):
            if isinstance(schemas.get(field), dict):
                getattr(pb, field).CopyFrom(to_struct(schemas[field]))
    return pb


def final_event_from_record(rec: RunRecord, seq: int) -> types_pb2.RunEvent:
    """The final lifecycle event of a run whose log lacks one, made from its record
    (deterministic: every gateway makes the same one)."""
    ev = types_pb2.RunEvent(run_id=rec.run_id, seq=seq, mode="lifecycle")
    ev.time.CopyFrom(_ts(rec.updated_at))
    ev.lifecycle.kind = types_pb2.LIFECYCLE_KIND_ENDED
    ev.lifecycle.status = names.RUN_STATUS.get(rec.status, 0)
    err = _error(rec.error)
    if err is not None:
        ev.lifecycle.error.CopyFrom(err)
    return ev


def outcome_of(ev: types_pb2.RunEvent) -> tuple[str, dict[str, Any] | None, list[Any], Any]:
    """(status, error, interrupts, output) of a run's final event."""
    lc = ev.lifecycle
    error = {"type": lc.error.type, "message": lc.error.message} if lc.HasField("error") else None
    interrupts = [{"id": i.id, "value": from_value(i.value)} for i in lc.interrupts]
    output = from_value(ev.data) if ev.HasField("data") else None
    return names.name_of(names.RUN_STATUS, lc.status), error, interrupts, output


# -- run specs ------------------------------------------------------------------------------
def _command_from_pb(cmd: types_pb2.Command) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if cmd.HasField("resume"):
        out["resume"] = from_value(cmd.resume, "run.command.resume")
        if cmd.resume_map:
            if not isinstance(out["resume"], dict):
                raise InvalidArgumentError(
                    "command.resume must be an object of interrupt id -> value when "
                    "resume_map is set",
                    [FieldViolation("run.command.resume", "expected a JSON object")],
                )
            out["resume_map"] = True
    if cmd.HasField("update"):
        out["update"] = from_value(cmd.update, "run.command.update")
    if cmd.goto:
        out["goto"] = list(cmd.goto)
    return out


def spec_from_pb(pb: types_pb2.RunSpec) -> Any:
    from gateway.runs import RunSpec

    if pb.after_seconds < 0 or pb.after_seconds != pb.after_seconds:
        raise InvalidArgumentError(
            "after_seconds must not be negative", [FieldViolation("run.after_seconds", ">= 0")]
        )
    modes = [names.name_of(names.STREAM_MODE, m) for m in pb.stream_modes]
    return RunSpec(
        thread_id=pb.thread_id,
        assistant_id=pb.assistant_id,
        input=from_value(pb.input, "run.input") if pb.HasField("input") else None,
        has_input=pb.HasField("input"),
        input_wire=pb.input.SerializeToString() if pb.HasField("input") else b"",
        large=pb.ByteSize() > LARGE_MESSAGE_BYTES,
        command=_command_from_pb(pb.command) if pb.HasField("command") else None,
        config=from_struct(pb.config, "run.config") if pb.HasField("config") else {},
        context=from_struct(pb.context, "run.context") if pb.HasField("context") else {},
        metadata=from_struct(pb.metadata, "run.metadata") if pb.HasField("metadata") else {},
        stream_modes=tuple(m for m in modes if m),
        multitask_strategy=names.name_of(names.MULTITASK_STRATEGY, pb.multitask_strategy, "reject"),
        interrupt_before=tuple(pb.interrupt_before),
        interrupt_after=tuple(pb.interrupt_after),
        stream_subgraphs=pb.stream_subgraphs,
        if_not_exists_create=pb.if_not_exists_create,
        checkpoint_id=pb.checkpoint_id,
        durability=names.name_of(names.DURABILITY, pb.durability, "sync"),
        after_seconds=pb.after_seconds,
        webhook=pb.webhook,
        on_completion=names.name_of(names.ON_COMPLETION, pb.on_completion),
    )


def spec_to_pb(spec: Any) -> types_pb2.RunSpec:
    """The RunSpec a runtime executes (config and context already merged, checkpoint_id
    moved out of the configurable)."""
    pb = types_pb2.RunSpec(
        thread_id=spec.thread_id,
        assistant_id=spec.assistant_id,
        multitask_strategy=names.MULTITASK_STRATEGY.get(spec.multitask_strategy, 0),
        interrupt_before=list(spec.interrupt_before),
        interrupt_after=list(spec.interrupt_after),
        stream_subgraphs=spec.stream_subgraphs,
        checkpoint_id=spec.checkpoint_id,
        durability=names.DURABILITY.get(spec.durability, 0),
        webhook=spec.webhook,
        on_completion=names.ON_COMPLETION.get(spec.on_completion, 0),
    )
    if spec.lifecycle_only:
        pb.stream_modes.append(types_pb2.STREAM_MODE_UNSPECIFIED)
    else:
        pb.stream_modes.extend(names.STREAM_MODE[m] for m in spec.stream_modes)
    if spec.input_wire:
        pb.input.MergeFromString(spec.input_wire)
    elif spec.has_input:
        pb.input.CopyFrom(to_value(spec.input))
    if spec.command is not None:
        cmd = spec.command
        if "resume" in cmd:
            pb.command.resume.CopyFrom(to_value(cmd["resume"]))
            pb.command.resume_map = bool(cmd.get("resume_map"))
        if "update" in cmd:
            pb.command.update.CopyFrom(to_value(cmd["update"]))
        pb.command.goto.extend(cmd.get("goto") or [])
        pb.command.SetInParent()
    if spec.config:
        pb.config.CopyFrom(to_struct(spec.config))
    if spec.context:
        pb.context.CopyFrom(to_struct(spec.context))
    if spec.metadata:
        pb.metadata.CopyFrom(to_struct(spec.metadata))
    return pb

"""Protobuf <-> runtime types. With servicer.py, the only runtime module that touches *_pb2."""

from __future__ import annotations

import ast
import re
from typing import Any

from google.protobuf import timestamp_pb2
from lgmesh.api.v1 import types_pb2

from mesh_core import api_names as names
from mesh_core.errors import FieldViolation, InvalidArgumentError
from mesh_core.jsonvalue import from_struct, from_value, to_jsonable, to_struct, to_value
from mesh_core.validation import validate_config
from runtime_svc.graphs import GraphEntry
from runtime_svc.runs import Event, RunRequest
from runtime_svc.visibility import public_metadata

#: a final event's output up to this size stays in the event log (a reference is no cheaper)
INLINE_OUTPUT_BYTES = 4096
_TASK_ERROR = re.compile(r"^([A-Za-z_][\w.]*)\((.*)\)$", re.DOTALL)


def command_from_pb(cmd: types_pb2.Command) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    if cmd.HasField("resume"):
        out["resume"] = from_value(cmd.resume, "run.command.resume")
        if cmd.resume_map and not isinstance(out["resume"], dict):
            raise InvalidArgumentError(
                "command.resume must be an object of interrupt id -> value when resume_map is set",
                [FieldViolation("run.command.resume", "expected a JSON object")],
            )
    if cmd.HasField("update"):
        out["update"] = from_value(cmd.update, "run.command.update")
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
    graph_id: str = "",
    tenant_token: str = "",
) -> RunRequest:
    config = from_struct(spec.config, "run.config") if spec.HasField("config") else {}
    validate_config(config)
    if list(spec.stream_modes) == [types_pb2.STREAM_MODE_UNSPECIFIED]:
        modes: tuple[str, ...] = ()  # lifecycle events only (WaitRun: the end carries the output)
    else:
        named = (names.name_of(names.STREAM_MODE, m) for m in spec.stream_modes)
        modes = tuple(dict.fromkeys(n for n in named if n)) or ("values",)
    return RunRequest(
        tenant_id=tenant_id,
        run_id=run_id,
        thread_id=spec.thread_id,
        assistant_id=spec.assistant_id,
        input=from_value(spec.input, "run.input") if spec.HasField("input") else None,
        command=command_from_pb(spec.command) if spec.HasField("command") else None,
        config=config,
        context=from_struct(spec.context, "run.context") if spec.HasField("context") else {},
        metadata=from_struct(spec.metadata, "run.metadata") if spec.HasField("metadata") else {},
        stream_modes=modes,
        multitask_strategy=names.name_of(
            names.MULTITASK_STRATEGY, spec.multitask_strategy, "reject"
        ),
        interrupt_before=tuple(spec.interrupt_before),
        interrupt_after=tuple(spec.interrupt_after),
        stream_subgraphs=spec.stream_subgraphs,
        resume=resume,
        after_seq=after_seq,
        graph=graph_id,
        checkpoint_id=spec.checkpoint_id,
        durability=names.name_of(names.DURABILITY, spec.durability, "sync"),
        # the gateway sets "delete" on a stateless run (it made the thread for it)
        on_completion=names.name_of(names.ON_COMPLETION, spec.on_completion),
        webhook=spec.webhook,
        tenant_token=tenant_token,
    )


def request_from_bytes(
    tenant_id: str, run_id: str, spec: bytes, graph_id: str, tenant_token: str = ""
) -> RunRequest:
    """A delayed run's request, from the RunSpec (and the run's tenant token) the gateway
    put on the schedule."""
    return request_from_pb(
        tenant_id,
        run_id,
        types_pb2.RunSpec.FromString(spec),
        graph_id=graph_id,
        tenant_token=tenant_token,
    )


def timestamp(t: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(t * 1e9))
    return ts


def interrupt_to_pb(i: Any) -> types_pb2.Interrupt:
    if isinstance(i, dict):
        return types_pb2.Interrupt(id=str(i.get("id", "")), value=to_value(i.get("value")))
    return types_pb2.Interrupt(id=str(getattr(i, "id", "")), value=to_value(getattr(i, "value", i)))


error_to_pb = names.run_error_to_pb


def interrupts_from_pb(pbs: Any) -> list[dict[str, Any]]:
    """Interrupts as a run's output carries them (``to_jsonable`` of LangGraph's)."""
    return [{"id": i.id, "value": from_value(i.value)} for i in pbs]


def event_to_pb(ev: Event) -> types_pb2.RunEvent:
    pb = types_pb2.RunEvent(
        run_id=ev.run_id, seq=ev.seq, mode=ev.mode, namespace=list(ev.namespace)
    )
    pb.time.CopyFrom(timestamp(ev.time))
    if ev.data is not None:
        pb.data.CopyFrom(to_value(ev.data))
    if ev.lifecycle is not None:
        lc = ev.lifecycle
        pb.lifecycle.kind = names.LIFECYCLE_KIND.get(lc.get("kind", ""), 0)
        pb.lifecycle.status = names.RUN_STATUS.get(lc.get("status", ""), 0)
        pb.lifecycle.runtime_id = str(lc.get("runtime_id", ""))
        pb.lifecycle.interrupts.extend(interrupt_to_pb(i) for i in lc.get("interrupts") or [])
        err = error_to_pb(lc.get("error"))
        if err is not None:
            pb.lifecycle.error.CopyFrom(err)
        out = lc.get("output")
        if out:
            pb.lifecycle.output.graph_id = out["graph_id"]
            pb.lifecycle.output.checkpoint_id = out["checkpoint_id"]
            pb.lifecycle.output.checkpoint_ns = out["checkpoint_ns"]
    return pb


def logged_event(ev: Event) -> tuple[types_pb2.RunEvent, bytes]:
    """(the event for live followers, the bytes the run event log keeps).

    The log leaves out a final event's output larger than ``INLINE_OUTPUT_BYTES`` when
    the event names the checkpoint that holds it (see ``runtime_svc.outputs``)."""
    pb = event_to_pb(ev)
    if (
        ev.data is not None
        and pb.lifecycle.HasField("output")
        and pb.data.ByteSize() > INLINE_OUTPUT_BYTES
    ):
        short = types_pb2.RunEvent(
            run_id=pb.run_id,
            seq=pb.seq,
            mode=pb.mode,
            namespace=pb.namespace,
            lifecycle=pb.lifecycle,
            time=pb.time,
        )
        return pb, short.SerializeToString()
    return pb, pb.SerializeToString()


def task_error(error: Any) -> types_pb2.RunError:
    """A task's error as LangGraph keeps it: an exception, or after a checkpoint round
    trip its repr (``"ValueError('boom')"``): the type is the exception's class name."""
    if isinstance(error, BaseException):
        return types_pb2.RunError(type=type(error).__name__, message=str(error))
    text = str(error)
    m = _TASK_ERROR.match(text)
    if m is None:
        return types_pb2.RunError(type="Exception", message=text)
    args: tuple[Any, ...]
    try:
        args = tuple(ast.literal_eval(f"({m.group(2)},)")) if m.group(2) else ()
    except (ValueError, SyntaxError):
        args = (m.group(2),)
    message = str(args[0]) if len(args) == 1 else ", ".join(map(str, args))
    return types_pb2.RunError(type=m.group(1).rsplit(".", 1)[-1], message=message)


def _checkpoint_of(config: Any) -> dict[str, Any]:
    return (config or {}).get("configurable", {}) if config else {}


def state_to_pb(state: Any) -> types_pb2.ThreadState:
    cfg = _checkpoint_of(state.config)
    parent = _checkpoint_of(state.parent_config)
    pb = types_pb2.ThreadState(
        values=to_value(to_jsonable(state.values)),
        next=list(state.next),
        checkpoint_id=str(cfg.get("checkpoint_id", "")),
        parent_checkpoint_id=str(parent.get("checkpoint_id", "")),
        metadata=to_struct(to_jsonable(public_metadata(state.metadata or {}))),
        checkpoint_ns=str(cfg.get("checkpoint_ns", "")),
    )
    if state.created_at:
        from datetime import datetime

        pb.created_at.FromDatetime(datetime.fromisoformat(state.created_at))
    for t in state.tasks:
        task = types_pb2.ThreadTask(id=t.id, name=t.name)
        task.interrupts.extend(interrupt_to_pb(i) for i in t.interrupts)
        if t.error:
            task.error.CopyFrom(task_error(t.error))
        sub = getattr(t, "state", None)
        if sub is not None and not isinstance(sub, dict):  # a snapshot, not a config
            task.state.CopyFrom(state_to_pb(sub))
        result = getattr(t, "result", None)
        if result is not None:
            task.result.CopyFrom(to_value(to_jsonable(result)))
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

"""API messages -> the dicts ``langgraph_sdk`` returns, and run keyword arguments -> RunSpec."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import timestamp_pb2
from lgmesh.api.v1 import types_pb2

from mesh_core import api_names as names
from mesh_core.jsonvalue import from_struct, from_value, to_struct, to_value

__all__ = [
    "StreamPart",
    "assistant_dict",
    "part_of",
    "run_dict",
    "run_spec",
    "state_dict",
    "thread_dict",
]


@dataclass
class StreamPart:
    """One event of a run: ``event`` is the stream mode or ``"lifecycle"``."""

    event: str
    data: Any
    run_id: str
    seq: int
    namespace: tuple[str, ...] = ()
    lifecycle: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The event's id (``last_event_id`` of ``join_stream``), as in langgraph_sdk."""
        return str(self.seq)


def _iso(ts: timestamp_pb2.Timestamp) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime().isoformat() + "+00:00"


def _interrupts(items: Sequence[types_pb2.Interrupt]) -> list[dict[str, Any]]:
    return [{"id": i.id, "value": from_value(i.value)} for i in items]


def _error(msg: Any) -> dict[str, str] | None:
    if not msg.HasField("error"):
        return None
    return {"type": msg.error.type, "message": msg.error.message}


def part_of(ev: types_pb2.RunEvent) -> StreamPart:
    lc: dict[str, Any] = {}
    if ev.mode == "lifecycle":
        lc = {
            "kind": names.name_of(names.LIFECYCLE_KIND, ev.lifecycle.kind),
            "status": names.name_of(names.RUN_STATUS, ev.lifecycle.status),
            "runtime_id": ev.lifecycle.runtime_id,
            "interrupts": _interrupts(ev.lifecycle.interrupts),
        }
        err = _error(ev.lifecycle)
        if err is not None:
            lc["error"] = err
        if ev.lifecycle.HasField("output"):  # the checkpoint whose state is the output
            out = ev.lifecycle.output
            lc["output"] = {
                "graph_id": out.graph_id,
                "checkpoint_id": out.checkpoint_id,
                "checkpoint_ns": out.checkpoint_ns,
            }
    return StreamPart(
        event=ev.mode,
        data=from_value(ev.data) if ev.HasField("data") else None,
        run_id=ev.run_id,
        seq=ev.seq,
        namespace=tuple(ev.namespace),
        lifecycle=lc,
    )


def run_dict(run: types_pb2.Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "created_at": _iso(run.created_at),
        "updated_at": _iso(run.updated_at),
        "status": names.name_of(names.RUN_STATUS, run.status),
        "metadata": from_struct(run.metadata),
        "multitask_strategy": names.name_of(names.MULTITASK_STRATEGY, run.multitask_strategy),
        "attempts": run.attempts,
        "interrupts": _interrupts(run.interrupts),
        "error": _error(run),
    }


def thread_dict(t: types_pb2.Thread) -> dict[str, Any]:
    return {
        "thread_id": t.thread_id,
        "created_at": _iso(t.created_at),
        "updated_at": _iso(t.updated_at),
        "metadata": from_struct(t.metadata),
        "status": names.name_of(names.THREAD_STATUS, t.status),
        "graph_id": t.graph_id or None,
        "ttl": t.ttl_seconds / 60.0 if t.ttl_seconds else None,
    }


def _checkpoint(thread_id: str, ns: str, cid: str) -> dict[str, Any] | None:
    if not cid:
        return None
    return {
        "thread_id": thread_id,
        "checkpoint_ns": ns,
        "checkpoint_id": cid,
        "checkpoint_map": None,
    }


def state_dict(st: types_pb2.ThreadState, thread_id: str) -> dict[str, Any]:
    """A ThreadState as langgraph_sdk has it (plus flat checkpoint ids)."""
    return {
        "values": from_value(st.values) if st.HasField("values") else None,
        "next": list(st.next),
        "checkpoint": _checkpoint(thread_id, st.checkpoint_ns, st.checkpoint_id),
        "parent_checkpoint": _checkpoint(thread_id, st.checkpoint_ns, st.parent_checkpoint_id),
        "checkpoint_id": st.checkpoint_id,
        "parent_checkpoint_id": st.parent_checkpoint_id,
        "metadata": from_struct(st.metadata),
        "created_at": _iso(st.created_at),
        "tasks": [
            {
                "id": t.id,
                "name": t.name,
                "error": _error(t),
                "interrupts": _interrupts(t.interrupts),
                "state": state_dict(t.state, thread_id) if t.HasField("state") else None,
                "result": from_value(t.result) if t.HasField("result") else None,
            }
            for t in st.tasks
        ],
        "interrupts": _interrupts(st.interrupts),
    }


def assistant_dict(a: types_pb2.Assistant) -> dict[str, Any]:
    out: dict[str, Any] = {
        "assistant_id": a.assistant_id,
        "graph_id": a.graph_id,
        "config": from_struct(a.config),
        "context": from_struct(a.context),
        "metadata": from_struct(a.metadata),
        "version": a.version,
        "name": a.name,
        "description": a.description or None,
        "created_at": _iso(a.created_at),
        "updated_at": _iso(a.updated_at),
        "nodes": list(a.nodes),
    }
    for key in ("input_schema", "output_schema", "context_schema"):
        if a.HasField(key):
            out[key] = from_struct(getattr(a, key))
    return out


def _checkpoint_id(checkpoint: dict[str, Any] | None, checkpoint_id: str | None) -> str:
    if checkpoint_id:
        return checkpoint_id
    return str((checkpoint or {}).get("checkpoint_id") or "")


def run_spec(
    thread_id: str | None,
    assistant_id: str,
    *,
    input: Any = None,
    command: dict[str, Any] | None = None,
    stream_mode: str | Sequence[str] = ("values",),
    stream_subgraphs: bool = False,
    metadata: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    checkpoint: dict[str, Any] | None = None,
    checkpoint_id: str | None = None,
    interrupt_before: str | Sequence[str] | None = None,
    interrupt_after: str | Sequence[str] | None = None,
    webhook: str | None = None,
    multitask_strategy: str | None = None,
    if_not_exists: str | None = None,
    on_completion: str | None = None,
    after_seconds: float | None = None,
    durability: str | None = None,
) -> types_pb2.RunSpec:
    """The RunSpec for langgraph_sdk's run keyword arguments."""
    modes = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode)

    def nodes(v: str | Sequence[str] | None) -> list[str]:
        return [v] if isinstance(v, str) else list(v or ())

    spec = types_pb2.RunSpec(
        thread_id=thread_id or "",
        assistant_id=assistant_id,
        stream_modes=[names.value_of(names.STREAM_MODE, m, "stream_mode") for m in modes],
        multitask_strategy=names.value_of(
            names.MULTITASK_STRATEGY, multitask_strategy or "reject", "multitask_strategy"
        ),
        interrupt_before=nodes(interrupt_before),
        interrupt_after=nodes(interrupt_after),
        stream_subgraphs=stream_subgraphs,
        if_not_exists_create=if_not_exists == "create",
        checkpoint_id=_checkpoint_id(checkpoint, checkpoint_id),
        after_seconds=float(after_seconds or 0),
        webhook=webhook or "",
    )
    if durability:
        spec.durability = names.value_of(names.DURABILITY, durability, "durability")
    if on_completion:
        spec.on_completion = names.value_of(names.ON_COMPLETION, on_completion, "on_completion")
    if command is not None:
        cmd = types_pb2.Command()
        if "resume" in command:
            cmd.resume.CopyFrom(to_value(command["resume"]))
            cmd.resume_map = isinstance(command["resume"], dict) and bool(command.get("resume_map"))
        if command.get("update") is not None:
            cmd.update.CopyFrom(to_value(command["update"]))
        goto = command.get("goto")
        if goto:
            cmd.goto.extend([goto] if isinstance(goto, str) else list(goto))
        spec.command.CopyFrom(cmd)
    elif input is not None:
        spec.input.CopyFrom(to_value(input))
    if config:
        spec.config.CopyFrom(to_struct(config))
    if context:
        spec.context.CopyFrom(to_struct(context))
    if metadata:
        spec.metadata.CopyFrom(to_struct(metadata))
    return spec

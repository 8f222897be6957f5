"""Run one case in-process and through the mesh, normalize both, compare.

A *case* is a graph id, an input, and zero or more resume commands. Each side runs the
same legs on its own thread: the first with the input, every next one with a command
built from the interrupts the previous leg ended with (interrupt ids differ between the
two sides, so a resume map is built per side from that side's own ids).

Normalization (each rule removes something that legitimately differs between two runs
of the same graph, and nothing else):

* JSON round trip: in-process values go through ``to_jsonable`` and the protobuf
  ``Value`` the mesh uses on the wire, so tuples become lists and integral floats ints,
  exactly as the mesh client sees them.
* Supersteps: events are cut into segments at every root-namespace ``values`` event
  (LangGraph emits it once per superstep, after that step's updates); inside a segment
  ``updates``, ``custom`` and nested ``values`` events are compared as multisets, since
  tasks of one superstep run concurrently. The per-interrupt ``values`` events carrying
  ``__interrupt__`` are not step boundaries (one per interrupted task, in completion order).
* Namespaces: ``node:<task id>`` becomes ``node`` (task ids derive from checkpoint ids,
  which are time-based UUIDs unique to each thread).
* Interrupt ids: dropped from events (they hash the task's checkpoint namespace); the
  mesh's ids are checked to be 32-hex and to match its own ``__interrupt__`` events.
* Message ids: replaced by a placeholder (``lc_run--<uuid>`` per model call, or a uuid4
  added by ``add_messages``). ``messages`` events become, per (namespace, node), the list
  of messages in order of first token with their type and concatenated content; the
  metadata beyond ``langgraph_node`` holds thread ids, checkpoint namespaces and tracing
  fields that differ per run by construction.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.pregel import Pregel
from langgraph.types import Command

from mesh_client import MeshClient
from mesh_core.jsonvalue import from_value, to_jsonable, to_value
from mesh_core.localservers import LocalServers
from runtime_svc.graphs import GraphRegistry
from tests.e2e.cluster import MeshCluster
from tests.helpers import unique_prefix

__all__ = [
    "GRAPHS_FILE",
    "MODES",
    "Case",
    "ClusterVariant",
    "Leg",
    "assert_equivalent",
    "graph_of",
    "resume_each",
    "run_case",
    "run_in_mesh",
    "run_in_process",
    "start_mesh",
]

MODES = ("updates", "custom", "messages", "values")
MESH_RUN_TIMEOUT = 60.0

#: a resume step: the interrupts ``[{"id", "value"}]`` the previous leg ended with -> the
#: mesh-style command dict (``{"resume": ..., "update": ..., "goto": ..., "resume_map": bool}``)
ResumeFn = Callable[[list[dict[str, Any]]], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    """One scenario: the graph, its input, the resumes, what LangGraph itself must do."""

    id: str
    graph: str
    input: Any
    #: statuses in-process LangGraph must end each leg with (guards the case itself)
    expect: tuple[str, ...]
    resumes: tuple[ResumeFn | dict[str, Any], ...] = ()
    config: Mapping[str, Any] | None = None
    subgraphs: bool = False
    #: a known mesh bug: the case runs as ``xfail(strict=True, reason=xfail)``
    xfail: str | None = None


@dataclass
class Leg:
    """What one run (input or resume) produced, already normalized."""

    status: str
    segments: list[dict[str, Any]]
    values: Any
    interrupts: list[Any]
    error: dict[str, str] | None
    raw_interrupts: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


GRAPHS_FILE = Path(__file__).with_name("graphs.yaml")


@functools.cache
def _registry() -> GraphRegistry:
    return GraphRegistry.from_file(GRAPHS_FILE)


def graph_of(graph_id: str) -> Pregel:
    """The compiled graph ``graphs.yaml`` maps ``graph_id`` to, loaded as the runtimes load it."""
    return _registry().get_graph(graph_id)


@dataclass(frozen=True)
class ClusterVariant:
    """A mesh configuration to run the suite against (extra runtime flags and env)."""

    name: str
    runtime_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    runtimes: int = 2
    gateways: int = 1


def start_mesh(
    infra: LocalServers, tmp: Path, variant: ClusterVariant | None = None
) -> MeshCluster:
    """A started :class:`MeshCluster` serving ``graphs.yaml`` (stop it with ``.stop()``)."""
    v = variant or ClusterVariant("default")
    cluster = MeshCluster(
        infra, unique_prefix("eq"), tmp, graphs=str(GRAPHS_FILE), extra_env=dict(v.env)
    )
    try:
        for _ in range(v.runtimes):
            cluster.add_runtime(extra=list(v.runtime_args))
        for _ in range(v.gateways):
            cluster.add_gateway()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def resume_each(fn: Callable[[Any], Any]) -> ResumeFn:
    """A resume map: every pending interrupt id -> ``fn(its value)``."""

    def build(interrupts: list[dict[str, Any]]) -> dict[str, Any]:
        return {"resume": {i["id"]: fn(i["value"]) for i in interrupts}, "resume_map": True}

    return build


def _command(step: ResumeFn | dict[str, Any], interrupts: list[dict[str, Any]]) -> dict[str, Any]:
    return step(interrupts) if callable(step) else dict(step)


# -- normalization --------------------------------------------------------------------------
def _wire(obj: Any) -> Any:
    """What the mesh client would see for ``obj``: JSON via protobuf Value."""
    return from_value(to_value(to_jsonable(obj)))


_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def _scrub(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if set(obj) == {"id", "value"}:  # an Interrupt
        return {"interrupt": _scrub(obj["value"])}
    out = {k: _scrub(v) for k, v in obj.items()}
    if "content" in out and "type" in out and "id" in out:  # a message
        out["id"] = "<id>" if out["id"] else out["id"]
    return out


def _ns(ns: Sequence[str]) -> list[str]:
    return [part.split(":", 1)[0] for part in ns]


def _key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


def _segments(events: list[tuple[tuple[str, ...], str, Any]]) -> list[dict[str, Any]]:
    segments: list[dict[str, Any]] = []
    cur: dict[str, Any] = {}
    msgs: dict[tuple[str, ...], dict[str, Any]] = {}

    def close(end: Any) -> None:
        nonlocal cur, msgs
        seg = {k: sorted(v, key=_key) for k, v in cur.items()}
        if msgs:
            seg["messages"] = sorted(
                ([*k, [[m["type"], m["text"]] for m in v.values()]] for k, v in msgs.items()),
                key=_key,
            )
        seg["end"] = end
        segments.append(seg)
        cur, msgs = {}, {}

    for ns, mode, data in events:
        nns = _ns(ns)
        if mode == "values" and not ns and not (isinstance(data, dict) and "__interrupt__" in data):
            close(_scrub(data))
        elif mode == "messages":
            msg, meta = data
            node = str((meta or {}).get("langgraph_node", ""))
            per_node = msgs.setdefault((*nns, node), {})
            entry = per_node.setdefault(str(msg.get("id")), {"type": msg.get("type"), "text": ""})
            content = msg.get("content")
            entry["text"] += content if isinstance(content, str) else _key(content)
        else:
            cur.setdefault(mode if not ns or mode != "values" else "subgraph_values", []).append(
                [nns, _scrub(data)]
            )
    if cur or msgs:
        close(None)
    return segments


def _leg(
    status: str,
    events: list[tuple[tuple[str, ...], str, Any]],
    values: Any,
    interrupts: list[dict[str, Any]],
    error: dict[str, str] | None,
    seconds: float,
) -> Leg:
    return Leg(
        status=status,
        segments=_segments(events),
        values=_scrub(values),
        interrupts=sorted((_scrub(i["value"]) for i in interrupts), key=_key),
        error=error,
        raw_interrupts=interrupts,
        seconds=seconds,
    )


# -- the two sides --------------------------------------------------------------------------
async def run_in_process(case: Case) -> list[Leg]:
    """The reference: the same compiled graph, InMemorySaver, durability "sync"."""
    graph = graph_of(case.graph).copy(update={"checkpointer": InMemorySaver()})
    config: dict[str, Any] = {**(case.config or {})}
    config["configurable"] = {**config.get("configurable", {}), "thread_id": str(uuid.uuid4())}
    legs: list[Leg] = []
    payload: Any = case.input
    for i in range(len(case.resumes) + 1):
        if i:
            cmd = _command(case.resumes[i - 1], legs[-1].raw_interrupts)
            payload = Command(
                resume=cmd.get("resume"), update=cmd.get("update"), goto=cmd.get("goto") or ()
            )
        events: list[tuple[tuple[str, ...], str, Any]] = []
        error: dict[str, str] | None = None
        t0 = time.perf_counter()
        try:
            async for item in graph.astream(
                payload,
                config,
                stream_mode=list(MODES),
                subgraphs=case.subgraphs,
                durability="sync",
            ):
                ns, mode, chunk = item if case.subgraphs else ((), *item)
                if mode == "messages":
                    chunk = [to_jsonable(chunk[0]), to_jsonable(chunk[1])]
                events.append((tuple(ns), mode, _wire(chunk)))
        except Exception as exc:
            error = {"type": type(exc).__name__, "message": str(exc)}
        seconds = time.perf_counter() - t0
        state = await graph.aget_state(config)
        interrupts = _wire([{"id": x.id, "value": x.value} for x in state.interrupts])
        status = "error" if error else "interrupted" if interrupts else "success"
        legs.append(_leg(status, events, _wire(state.values), interrupts, error, seconds))
        if status != "interrupted":
            break
    return legs


async def run_in_mesh(client: MeshClient, case: Case) -> list[Leg]:
    """The same legs through the gateway, on a fresh mesh thread."""
    thread = await client.threads.create(metadata={"suite": "equivalence", "case": case.id})
    tid = thread["thread_id"]
    legs: list[Leg] = []
    for i in range(len(case.resumes) + 1):
        kwargs: dict[str, Any] = {
            "stream_mode": list(MODES),
            "stream_subgraphs": case.subgraphs,
            "config": dict(case.config or {}) or None,
        }
        if i:
            kwargs["command"] = _command(case.resumes[i - 1], legs[-1].raw_interrupts)
        else:
            kwargs["input"] = case.input
        events: list[tuple[tuple[str, ...], str, Any]] = []
        ended: Any = None
        t0 = time.perf_counter()
        async with asyncio.timeout(MESH_RUN_TIMEOUT):
            async for part in client.runs.stream(tid, case.graph, **kwargs):
                if part.event == "lifecycle":
                    if part.lifecycle.get("kind") == "ended":
                        ended = part
                    continue
                events.append((part.namespace, part.event, part.data))
        seconds = time.perf_counter() - t0
        assert ended is not None, (
            f"{case.id}: the mesh stream closed without an 'ended' lifecycle event"
        )
        lc = ended.lifecycle
        interrupts = list(lc.get("interrupts") or [])
        _check_interrupt_ids(case, interrupts, events)
        values = ended.data
        if lc.get("status") == "error":
            # the ended event carries no values on error: read what the thread kept
            values = (await client.threads.get_state(tid))["values"]
        legs.append(
            _leg(lc.get("status", ""), events, values, interrupts, lc.get("error"), seconds)
        )
        if lc.get("status") != "interrupted":
            break
    return legs


def _check_interrupt_ids(
    case: Case, interrupts: list[dict[str, Any]], events: list[tuple[tuple[str, ...], str, Any]]
) -> None:
    ids = [i["id"] for i in interrupts]
    assert all(_HEX32.match(x) for x in ids), f"{case.id}: bad interrupt ids from the mesh: {ids}"
    seen = {
        x["id"]
        for ns, mode, data in events
        if mode == "updates" and not ns and isinstance(data, dict)
        for x in data.get("__interrupt__", [])
    }
    assert seen <= set(ids), (
        f"{case.id}: streamed interrupt ids {seen} not among the ended ones {ids}"
    )


async def run_case(client: MeshClient, case: Case) -> tuple[list[Leg], list[Leg]]:
    local = await run_in_process(case)
    remote = await run_in_mesh(client, case)
    return local, remote


def assert_equivalent(case: Case, local: list[Leg], remote: list[Leg]) -> None:
    """In-process LangGraph must do what the case expects, and the mesh exactly the same."""
    assert [leg.status for leg in local] == list(case.expect), (
        f"{case.id}: in-process LangGraph ended {[leg.status for leg in local]}, the case expects {case.expect}"
    )
    assert [leg.status for leg in remote] == [leg.status for leg in local], (
        f"{case.id}: statuses differ"
    )
    for n, (lo, re_) in enumerate(zip(local, remote, strict=True)):
        where = f"{case.id} leg {n}"
        assert re_.error == lo.error, f"{where}: error differs"
        assert re_.interrupts == lo.interrupts, f"{where}: interrupts differ"
        assert re_.values == lo.values, f"{where}: final state differs"
        assert len(re_.segments) == len(lo.segments), (
            f"{where}: {len(re_.segments)} supersteps through the mesh, {len(lo.segments)} in-process\n"
            f"mesh: {re_.segments}\nlocal: {lo.segments}"
        )
        for s, (a, b) in enumerate(zip(re_.segments, lo.segments, strict=True)):
            assert a == b, f"{where} superstep segment {s} differs (mesh != in-process)"

"""Run one case in-process and through the mesh, normalize both, compare.

A *case* is a graph id, an input, and zero or more follow-up runs (resume commands, new
input). Each side runs the same legs on its own thread: the first with the input, every
next one with a command built from the interrupts the previous leg ended with (interrupt
ids differ between the two sides, so a resume map is built per side from its own ids).

Per leg, compared: the status; the error ``{type, message}``; the interrupt values; the
thread's final state (``get_state().values`` on both sides); the run output (the mesh's
"ended" event data vs what in-process ``ainvoke`` returns); the events, per superstep.

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
    "assert_same_output",
    "graph_of",
    "resume_each",
    "run_case",
    "run_in_mesh",
    "run_in_process",
    "start_mesh",
]

MODES = ("updates", "custom", "messages", "values")
MESH_RUN_TIMEOUT = 60.0

#: a follow-up run on the same thread: either a dict -- ``{"input": x}`` (a new run with input
#: ``x``; ``None`` continues from the last checkpoint) or a mesh-style command
#: ``{"resume": ..., "update": ..., "goto": ..., "resume_map": bool}`` -- or a function of the
#: interrupts ``[{"id", "value"}]`` the previous leg ended with that returns such a dict
Step = Callable[[list[dict[str, Any]]], dict[str, Any]] | dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One scenario: the graph, its input, follow-up runs, what LangGraph itself must do."""

    id: str
    graph: str
    input: Any
    #: statuses in-process LangGraph must end each leg with (guards the case itself)
    expect: tuple[str, ...]
    then: tuple[Step, ...] = ()
    config: Mapping[str, Any] | None = None
    context: Mapping[str, Any] | None = None
    interrupt_before: tuple[str, ...] = ()
    interrupt_after: tuple[str, ...] = ()
    subgraphs: bool = False
    #: a known mesh bug: the case runs as ``xfail(strict=True, reason=xfail)``
    xfail: str | None = None
    #: a known mesh bug in the run output only: everything else is still checked, and the
    #: output check is a strict xfail (see ``test_equivalence``)
    output_bug: str | None = None


@dataclass
class Leg:
    """What one run (input or resume) produced, already normalized."""

    status: str
    segments: list[dict[str, Any]]
    #: the thread's state after the run (``get_state().values``)
    values: Any
    #: what the run returned: the mesh's "ended" event data; in-process, what ``ainvoke``
    #: returns (the last root values, plus ``__interrupt__`` with every interrupt raised);
    #: ``None`` when the run failed
    output: Any
    interrupts: list[Any]
    error: dict[str, str] | None
    raw_interrupts: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


GRAPHS_FILE = Path(__file__).with_name("graphs.yaml")


@functools.cache
def _registry() -> GraphRegistry:
    return GraphRegistry.from_file(GRAPHS_FILE)


def graph_of(graph_id: str) -> Pregel[Any, Any, Any, Any]:
    """The compiled graph ``graphs.yaml`` maps ``graph_id`` to, loaded as the runtimes load it."""
    return _registry().get_graph(graph_id)


@dataclass(frozen=True)
class ClusterVariant:
    """A mesh configuration to run the suite against (extra runtime flags and env)."""

    name: str
    #: extra command-line flags for every runtime process (owners and workers)
    runtime_args: tuple[str, ...] = ()
    #: extra environment for every service process
    env: Mapping[str, str] = field(default_factory=dict)
    runtimes: int = 2
    runtime_role: str = "both"
    #: additional runtimes started with ``--role worker``
    workers: int = 0
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
            cluster.add_runtime(role=v.runtime_role, extra=list(v.runtime_args))
        for _ in range(v.workers):
            cluster.add_runtime(role="worker", extra=list(v.runtime_args))
        for _ in range(v.gateways):
            cluster.add_gateway()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def resume_each(fn: Callable[[Any], Any]) -> Step:
    """A resume map: every pending interrupt id -> ``fn(its value)``."""

    def build(interrupts: list[dict[str, Any]]) -> dict[str, Any]:
        return {"resume": {i["id"]: fn(i["value"]) for i in interrupts}, "resume_map": True}

    return build


def _step(step: Step, interrupts: list[dict[str, Any]]) -> dict[str, Any]:
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
    if isinstance(out.get("__interrupt__"), list):  # raised concurrently: any order
        out["__interrupt__"] = sorted(out["__interrupt__"], key=_key)
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


def _invoke_output(events: list[tuple[tuple[str, ...], str, Any]]) -> Any:
    """What ``Pregel.ainvoke`` (v1) would have returned for this stream."""
    latest: Any = None
    raised: list[Any] = []
    for ns, mode, data in events:
        if ns:
            continue
        if mode == "values":
            latest = data
        elif mode == "updates" and isinstance(data, dict) and data.get("__interrupt__"):
            raised.extend(data["__interrupt__"])
    if not raised:
        return latest
    return (
        {**latest, "__interrupt__": raised}
        if isinstance(latest, dict)
        else {"__interrupt__": raised}
    )


def _leg(
    status: str,
    events: list[tuple[tuple[str, ...], str, Any]],
    values: Any,
    output: Any,
    interrupts: list[dict[str, Any]],
    error: dict[str, str] | None,
    seconds: float,
) -> Leg:
    return Leg(
        status=status,
        segments=_segments(events),
        values=_scrub(values),
        output=_scrub(output),
        interrupts=sorted((_scrub(i["value"]) for i in interrupts), key=_key),
        error=error,
        raw_interrupts=interrupts,
        seconds=seconds,
    )


# -- the two sides --------------------------------------------------------------------------
async def run_in_process(case: Case) -> list[Leg]:
    """The reference: the same compiled graph, InMemorySaver, durability "sync"."""
    graph: Any = graph_of(case.graph).copy(update={"checkpointer": InMemorySaver()})
    config: dict[str, Any] = {**(case.config or {})}
    config["configurable"] = {**config.get("configurable", {}), "thread_id": str(uuid.uuid4())}
    legs: list[Leg] = []
    for step in ({"input": case.input}, *case.then):
        spec = _step(step, legs[-1].raw_interrupts if legs else [])
        payload: Any = spec.get("input")
        if "input" not in spec:
            payload = Command(
                resume=spec.get("resume"), update=spec.get("update"), goto=spec.get("goto") or ()
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
                context=dict(case.context) if case.context else None,
                interrupt_before=list(case.interrupt_before) or None,
                interrupt_after=list(case.interrupt_after) or None,
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
        # as the mesh reports it: a static breakpoint (interrupt_before/after) that stopped
        # the run with tasks left counts as "interrupted", like a pending interrupt()
        paused = bool(interrupts) or (
            bool(state.next) and bool(case.interrupt_before or case.interrupt_after)
        )
        status = "error" if error else "interrupted" if paused else "success"
        output = None if error else _invoke_output(events)
        legs.append(_leg(status, events, _wire(state.values), output, interrupts, error, seconds))
    return legs


async def run_in_mesh(
    client: MeshClient, case: Case, *, expect: Sequence[str] | None = None
) -> list[Leg]:
    """The same legs through the gateway, on a fresh mesh thread.

    With ``expect`` (the in-process statuses), stops after the first leg that ends otherwise.
    """
    thread = await client.threads.create(metadata={"suite": "equivalence", "case": case.id})
    tid = thread["thread_id"]
    legs: list[Leg] = []
    for n, step in enumerate(({"input": case.input}, *case.then)):
        spec = _step(step, legs[-1].raw_interrupts if legs else [])
        kwargs: dict[str, Any] = {
            "stream_mode": list(MODES),
            "stream_subgraphs": case.subgraphs,
            "config": dict(case.config or {}) or None,
            "context": dict(case.context or {}) or None,
            "interrupt_before": case.interrupt_before,
            "interrupt_after": case.interrupt_after,
        }
        if "input" in spec:
            kwargs["input"] = spec["input"]
        else:
            kwargs["command"] = spec
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
        state = await client.threads.get_state(tid)
        values = state["values"]
        # the ids a client resumes with (ended event) are the thread's pending interrupts
        assert sorted(i["id"] for i in state["interrupts"]) == sorted(
            i["id"] for i in interrupts
        ), f"{case.id} leg {n}: ended interrupts {interrupts} != thread state {state['interrupts']}"
        status = lc.get("status", "")
        legs.append(_leg(status, events, values, ended.data, interrupts, lc.get("error"), seconds))
        if expect is not None and (n >= len(expect) or lc.get("status") != expect[n]):
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
    remote = await run_in_mesh(client, case, expect=[leg.status for leg in local])
    return local, remote


def assert_equivalent(
    case: Case, local: list[Leg], remote: list[Leg], *, check_output: bool = True
) -> None:
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
        assert re_.values == lo.values, f"{where}: final state (get_state) differs"
        if check_output:
            assert_same_output(case, local, remote, leg=n)
        assert len(re_.segments) == len(lo.segments), (
            f"{where}: {len(re_.segments)} supersteps through the mesh, {len(lo.segments)} in-process\n"
            f"mesh: {re_.segments}\nlocal: {lo.segments}"
        )
        for s, (a, b) in enumerate(zip(re_.segments, lo.segments, strict=True)):
            assert a == b, f"{where} superstep segment {s} differs (mesh != in-process)"


def assert_same_output(
    case: Case, local: list[Leg], remote: list[Leg], *, leg: int | None = None
) -> None:
    """The run output (mesh "ended" data) equals what in-process ``ainvoke`` returns."""
    for n, (lo, re_) in enumerate(zip(local, remote, strict=True)):
        if leg is None or n == leg:
            assert re_.output == lo.output, f"{case.id} leg {n}: run output differs"

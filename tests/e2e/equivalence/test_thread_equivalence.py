"""Thread operations through the mesh equal in-process LangGraph's (issue 12's must-show).

History (checkpoints, metadata.step/source, parent links, next and tasks per snapshot),
update_state with and without as_node then continuing, forking from an earlier
checkpoint, copying a thread then running on both: each scenario (``thread_ops``) runs
against InMemorySaver in-process and against the mesh, and both must observe the same.
Send tasks run on remote workers (the mesh's default); ``..._remote_all`` runs every task
remotely. The ``tasks``, ``checkpoints`` and ``debug`` stream modes, with and without
subgraphs, carry the same events as in-process LangGraph's.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from mesh_client import MeshClient
from mesh_core.jsonvalue import to_jsonable
from tests.e2e.equivalence.harness import graph_of
from tests.e2e.equivalence.thread_ops import SCENARIOS, InProcessSide, MeshSide, Scenario

pytestmark = [pytest.mark.e2e]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
async def test_thread_ops_equivalent(eq_client: MeshClient, scenario: Scenario) -> None:
    local = await scenario.script(InProcessSide(scenario.graph))
    mesh = await scenario.script(MeshSide(eq_client, scenario.graph))
    assert len(mesh) == len(local)
    for n, (m, lo) in enumerate(zip(mesh, local, strict=True)):
        assert m == lo, f"{scenario.id}: observation {n} differs (mesh != in-process)"


def _shape(ns: tuple[str, ...], mode: str, data: Any) -> str:
    """What a tasks / checkpoints / debug event says, without ids and times."""
    where = [part.split(":", 1)[0] for part in ns]
    if mode == "tasks":
        what: Any = [data.get("name"), "result" in data, bool(data.get("error"))]
    elif mode == "checkpoints":
        meta = data.get("metadata") or {}
        what = [meta.get("step"), meta.get("source"), sorted(data.get("next") or [])]
    else:  # debug: {type, step, payload}
        payload = data.get("payload") or {}
        what = [data.get("type"), data.get("step"), payload.get("name")]
    return json.dumps([where, mode, what])


@pytest.mark.parametrize("subgraphs", [True, False], ids=["subgraphs", "root"])
async def test_tasks_checkpoints_debug_streams_equivalent(
    eq_client: MeshClient, subgraphs: bool
) -> None:
    modes = ["tasks", "checkpoints", "debug"]
    graph: Any = graph_of("subgraph_interrupt").copy(update={"checkpointer": InMemorySaver()})
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    local = []
    async for item in graph.astream(
        {"topic": "mesh"}, config, stream_mode=modes, subgraphs=subgraphs, durability="sync"
    ):
        ns, mode, chunk = item if subgraphs else ((), *item)
        local.append(_shape(tuple(ns), mode, to_jsonable(chunk)))
    t = await eq_client.threads.create()
    mesh = [
        _shape(p.namespace, p.event, p.data)
        async for p in eq_client.runs.stream(
            t["thread_id"],
            "subgraph_interrupt",
            input={"topic": "mesh"},
            stream_mode=modes,
            stream_subgraphs=subgraphs,
        )
        if p.event != "lifecycle"
    ]
    assert sorted(mesh) == sorted(local)
    assert any(json.loads(s)[0] for s in mesh) == subgraphs  # subgraph events: namespaced

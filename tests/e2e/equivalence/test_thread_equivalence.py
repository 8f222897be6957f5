"""Thread operations through the mesh equal in-process LangGraph's (issue 12's must-show).

History (checkpoints, metadata.step/source, parent links, next and tasks per snapshot),
update_state with and without as_node then continuing, forking from an earlier
checkpoint, copying a thread then running on both: each scenario (``thread_ops``) runs
against InMemorySaver in-process and against the mesh, and both must observe the same.
Send tasks run on remote workers (the mesh's default); ``..._remote_all`` runs every task
remotely.
"""

from __future__ import annotations

import pytest

from mesh_client import MeshClient
from tests.e2e.equivalence.thread_ops import SCENARIOS, InProcessSide, MeshSide, Scenario

pytestmark = [pytest.mark.e2e]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
async def test_thread_ops_equivalent(eq_client: MeshClient, scenario: Scenario) -> None:
    local = await scenario.script(InProcessSide(scenario.graph))
    mesh = await scenario.script(MeshSide(eq_client, scenario.graph))
    assert len(mesh) == len(local)
    for n, (m, lo) in enumerate(zip(mesh, local, strict=True)):
        assert m == lo, f"{scenario.id}: observation {n} differs (mesh != in-process)"

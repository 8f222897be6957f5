from __future__ import annotations

import pytest

from tests.e2e.cluster import MeshCluster

pytestmark = [pytest.mark.e2e]


async def test_stream_a_run_through_the_mesh(mesh: MeshCluster) -> None:
    client = mesh.client()
    thread = await client.threads.create(metadata={"user": "ada"})
    parts = [
        p
        async for p in client.runs.stream(
            thread["thread_id"],
            "steps",
            input={"step": 0},
            stream_mode=["values", "updates", "custom"],
        )
    ]
    modes = [p.event for p in parts]
    assert modes[0] == "lifecycle" and parts[0].lifecycle["kind"] == "started"
    assert parts[-1].lifecycle["kind"] == "ended" and parts[-1].lifecycle["status"] == "success"
    assert {"values", "updates", "custom"} <= set(modes)
    assert parts[-1].data["step"] == 5
    seqs = [p.seq for p in parts]
    assert seqs == list(range(1, len(parts) + 1))

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


async def test_get_client_takes_an_http_url(mesh: MeshCluster) -> None:
    """langgraph_sdk users write get_client(url="http://host:port")."""
    from mesh_client import get_client

    client = get_client(url=f"http://{mesh.gateways[0].address}/", api_key="acme-key")
    try:
        thread = await client.threads.create(metadata={"via": "http url"})
        assert (await client.threads.get(thread["thread_id"]))["metadata"] == {"via": "http url"}
    finally:
        await client.close()


def test_grpc_target_of_a_url() -> None:
    from mesh_client._client import _grpc_target

    assert _grpc_target("127.0.0.1:50051") == ("127.0.0.1:50051", False)
    assert _grpc_target("http://127.0.0.1:50051") == ("127.0.0.1:50051", False)
    assert _grpc_target("https://mesh.example") == ("mesh.example:443", True)
    assert _grpc_target("http://[::1]:50051/") == ("[::1]:50051", False)
    with pytest.raises(ValueError, match="unsupported URL scheme 'ftp'"):
        _grpc_target("ftp://x:1")

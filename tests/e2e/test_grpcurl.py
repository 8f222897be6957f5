"""The real grpcurl binary against the gateway: reflection, JSON in, streamed JSON out, health."""

from __future__ import annotations

import json
import subprocess

import pytest

from mesh_core.localservers import BinaryNotFoundError, find_binary
from tests.e2e.cluster import MeshCluster

pytestmark = [pytest.mark.e2e]


def _grpcurl() -> str:
    try:
        return str(find_binary("grpcurl"))
    except BinaryNotFoundError as exc:
        pytest.skip(f"missing grpcurl binary: {exc}")


def run(
    address: str, *args: str, data: dict | None = None, key: str | None = "acme-key"
) -> subprocess.CompletedProcess[str]:  # type: ignore[type-arg]
    cmd = [_grpcurl(), "-plaintext"]
    if key:
        cmd += ["-H", f"authorization: Bearer {key}"]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    cmd += [address, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def _objects(text: str) -> list[dict]:  # type: ignore[type-arg]
    dec = json.JSONDecoder()
    out, i = [], 0
    text = text.strip()
    while i < len(text):
        obj, j = dec.raw_decode(text, i)
        out.append(obj)
        i = j
        while i < len(text) and text[i].isspace():
            i += 1
    return out


async def test_grpcurl_list_describe_stream_and_health(mesh: MeshCluster) -> None:
    addr = mesh.gateways[0].address
    listed = run(addr, "list", key=None)
    assert listed.returncode == 0, listed.stderr
    services = set(listed.stdout.split())
    assert {
        "lgmesh.api.v1.RunService",
        "lgmesh.api.v1.ThreadService",
        "lgmesh.api.v1.AssistantService",
        "grpc.health.v1.Health",
    } <= services

    described = run(addr, "describe", "lgmesh.api.v1.RunService", key=None)
    assert described.returncode == 0, described.stderr
    assert (
        "rpc StreamRun ( .lgmesh.api.v1.StreamRunRequest ) returns ( stream .lgmesh.api.v1.StreamRunResponse )"
        in described.stdout
    )
    msg = run(addr, "describe", "lgmesh.api.v1.RunSpec", key=None)
    assert "google.protobuf.Value input" in msg.stdout

    health = run(addr, "grpc.health.v1.Health/Check", key=None)
    assert health.returncode == 0 and json.loads(health.stdout)["status"] == "SERVING"

    created = run(
        addr, "lgmesh.api.v1.ThreadService/CreateThread", data={"metadata": {"via": "grpcurl"}}
    )
    assert created.returncode == 0, created.stderr
    thread = json.loads(created.stdout)["thread"]
    thread_id = thread.get("threadId") or thread["thread_id"]

    streamed = run(
        addr,
        "lgmesh.api.v1.RunService/StreamRun",
        data={
            "run": {
                "threadId": thread_id,
                "assistantId": "steps",
                "input": {"step": 0},
                "config": {"configurable": {"steps": 3}},
                "streamModes": ["STREAM_MODE_VALUES", "STREAM_MODE_UPDATES"],
            }
        },
    )
    assert streamed.returncode == 0, streamed.stderr
    events = [o["event"] for o in _objects(streamed.stdout)]
    lifecycle = [e["lifecycle"] for e in events if e["mode"] == "lifecycle"]
    assert lifecycle[0]["kind"] == "LIFECYCLE_KIND_STARTED"
    assert lifecycle[-1]["status"] == "RUN_STATUS_SUCCESS"
    assert events[-1]["data"]["step"] == 3
    assert any(e["mode"] == "updates" for e in events)

    denied = run(
        addr, "lgmesh.api.v1.ThreadService/GetThread", data={"threadId": thread_id}, key="nope"
    )
    assert denied.returncode != 0 and "Unauthenticated" in denied.stderr


async def test_reflection_answers_under_v1_and_v1alpha(mesh: MeshCluster) -> None:
    import grpc
    from grpc_reflection.v1alpha import reflection_pb2

    async with grpc.aio.insecure_channel(mesh.gateways[0].address) as ch:
        for service in (
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ):
            call = ch.stream_stream(
                f"/{service}/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            replies = [
                r
                async for r in call(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")])
                )
            ]
            names = {s.name for s in replies[0].list_services_response.service}
            assert "lgmesh.api.v1.RunService" in names, service


def _ok(proc: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


async def test_grpcurl_history_update_state_fork_and_errors(mesh: MeshCluster) -> None:
    addr = mesh.gateways[0].address
    threads, runs = "lgmesh.api.v1.ThreadService", "lgmesh.api.v1.RunService"
    tid = _ok(run(addr, f"{threads}/CreateThread", data={}))["thread"]["thread_id"]
    spec = {"threadId": tid, "assistantId": "steps", "config": {"configurable": {"steps": 3}}}
    waited = _ok(run(addr, f"{runs}/WaitRun", data={"run": {**spec, "input": {"step": 0}}}))
    assert waited["run"]["status"] == "RUN_STATUS_SUCCESS" and waited["values"]["step"] == 3

    history = _ok(run(addr, f"{threads}/GetThreadHistory", data={"threadId": tid, "limit": 10}))
    states = history["states"]
    assert [s["metadata"]["step"] for s in states] == [3, 2, 1, 0, -1]
    assert states[1]["parent_checkpoint_id"] == states[2]["checkpoint_id"]
    assert states[1]["next"] == ["work"]

    updated = _ok(
        run(
            addr,
            f"{threads}/UpdateThreadState",
            data={"threadId": tid, "values": {"step": 7}, "asNode": "work"},
        )
    )
    state = _ok(run(addr, f"{threads}/GetThreadState", data={"threadId": tid}))["state"]
    assert state["checkpoint_id"] == updated["checkpoint_id"] and state["values"]["step"] == 7

    step1 = next(s for s in states if s["metadata"]["step"] == 1)["checkpoint_id"]
    forked = _ok(
        run(
            addr,
            f"{runs}/WaitRun",
            data={"run": {**spec, "input": {"step": 50}, "checkpointId": step1}},
        )
    )
    assert forked["values"]["step"] == 51

    missing = run(
        addr, f"{threads}/GetThreadState", data={"threadId": tid, "checkpointId": "1f0-nope"}
    )
    assert missing.returncode != 0 and "NotFound" in missing.stderr
    bad_node = run(
        addr,
        f"{threads}/UpdateThreadState",
        data={"threadId": tid, "values": {"step": 1}, "asNode": "nope"},
    )
    assert bad_node.returncode != 0 and "InvalidArgument" in bad_node.stderr
    other = run(addr, f"{threads}/GetThreadHistory", data={"threadId": tid}, key="beta-key")
    assert other.returncode != 0 and "NotFound" in other.stderr

    # a failed run: the response says so (status, error) and prints (values is null)
    failed = _ok(
        run(
            addr,
            f"{runs}/WaitRun",
            data={"run": {"assistantId": "boom", "input": {"item": "x"}}},
        )
    )
    assert failed["run"]["status"] == "RUN_STATUS_ERROR"
    assert failed["run"]["error"]["type"] == "ValueError"
    assert failed["values"] is None


async def test_grpcurl_assistants(mesh: MeshCluster) -> None:
    addr = mesh.gateways[0].address
    svc = "lgmesh.api.v1.AssistantService"
    listed = run(addr, f"{svc}/ListAssistants", data={})
    assert listed.returncode == 0 and len(listed.stdout) < 20_000  # compact: no schemas
    created = _ok(
        run(
            addr,
            f"{svc}/CreateAssistant",
            data={"graphId": "steps", "config": {"configurable": {"steps": 2}}, "name": "two"},
        )
    )["assistant"]
    graph = _ok(
        run(addr, f"{svc}/GetAssistantGraph", data={"assistantId": created["assistant_id"]})
    )
    assert any(n["id"] == "work" for n in graph["graph"]["nodes"])
    schemas = _ok(
        run(addr, f"{svc}/GetAssistantSchemas", data={"assistantId": created["assistant_id"]})
    )
    assert schemas["schemas"]["graph_id"] == "steps"
    waited = _ok(
        run(
            addr,
            "lgmesh.api.v1.RunService/WaitRun",
            data={"run": {"assistantId": created["assistant_id"], "input": {"step": 0}}},
        )
    )
    assert waited["values"]["step"] == 2


async def test_grpcurl_reaches_a_runtime_only_with_a_tier_certificate(mesh: MeshCluster) -> None:
    """The README's way to call an internal service: -cacert/-cert/-key of an allowed
    tier, -servername <tier>.lgmesh.internal, a tenant token for tenant-scoped RPCs."""
    assert mesh.pki is not None
    pki, addr = mesh.pki, mesh.runtimes[0].address

    def internal(tier: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [
            _grpcurl(),
            "-cacert",
            str(pki.ca),
            "-cert",
            str(pki.cert(tier)),
            "-key",
            str(pki.key(tier)),
            "-servername",
            "runtime.lgmesh.internal",
            *args,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    listed = internal("gateway", addr, "list")
    assert listed.returncode == 0, listed.stderr
    assert "lgmesh.runtime.v1.RuntimeService" in listed.stdout.split()
    graphs = internal("gateway", addr, "lgmesh.runtime.v1.RuntimeService/ListGraphs")
    assert graphs.returncode == 0 and "steps" in graphs.stdout, graphs.stderr
    state = ["-d", '{"tenant_id": "acme", "thread_id": "t", "assistant_id": "steps"}', addr]
    method = "lgmesh.runtime.v1.RuntimeService/GetThreadState"
    no_token = internal("gateway", *state, method)
    assert "Unauthenticated" in no_token.stderr, no_token.stderr
    ((header, token),) = mesh.tenant_metadata("acme")
    with_token = internal("gateway", "-H", f"{header}: {token}", *state, method)
    assert (
        "Unauthenticated" not in with_token.stderr and "PermissionDenied" not in with_token.stderr
    )
    as_tools = internal("tools", addr, "lgmesh.runtime.v1.RuntimeService/ListGraphs")
    assert "PermissionDenied" in as_tools.stderr, as_tools.stderr
    plaintext = run(addr, "list", key=None)
    assert plaintext.returncode != 0

"""tool_svc as real processes (two replicas) against a real Valkey: listing, invoking,
schema errors, tool errors vs infrastructure errors, timeouts, idempotency, metrics,
graceful SIGTERM."""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import redis.asyncio as aioredis
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from lgmesh.tools.v1 import tools_pb2 as pb
from lgmesh.tools.v1 import tools_pb2_grpc as pb_grpc

from mesh_cli.launcher import ServiceProcess, start_all
from mesh_client.tools import remote_tools
from mesh_core.adapters.redis.keys import RedisKeys
from mesh_core.localservers import LocalServers, find_binary
from tests.helpers import assert_eventually, unique_prefix
from tests.tls import TestPki

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

TEST_CONFIG = """
defaults: {timeout: 5, max_concurrency: 8, max_queue_wait: 0.2}
idempotency_ttl: 60
tools:
  - import: mesh_demo.tools:TOOLS
  - import: mesh_demo.tools:wait
    name: slow_wait
    timeout: 0.3
  - import: mesh_demo.tools:block
    name: single_block
    max_concurrency: 1
    max_queue_wait: 0
"""


def start_replicas(
    tmp: Path,
    redis_url: str,
    prefix: str,
    n: int = 2,
    config: str = TEST_CONFIG,
    pki: TestPki | None = None,
) -> list[ServiceProcess]:
    """``lgmesh tools`` replicas on free loopback ports, started together (with mutual
    TLS and tenant tokens when given a ``pki``)."""
    cfg = tmp / "tools.yaml"
    cfg.write_text(config)
    env = {
        "LGMESH_REDIS_URL": redis_url,
        "LGMESH_PREFIX": prefix,
        **(pki.env("tools") if pki is not None else {}),
    }
    args = ["tools", "--port", "0", "--metrics-port", "0", "--config", str(cfg)]
    procs = [
        ServiceProcess(f"tools-{i}", args, env, log_file=tmp / f"tool_svc_{i}.log", cwd=str(ROOT))
        for i in range(n)
    ]
    start_all(procs, timeout=30)
    return procs


@pytest.fixture(scope="module")
def module_prefix() -> str:
    return unique_prefix("tools")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def replicas(
    infra: LocalServers,
    module_prefix: str,
    pki: TestPki,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[ServiceProcess]]:
    procs = start_replicas(
        tmp_path_factory.mktemp("tool_svc"), infra.redis_url, module_prefix, pki=pki
    )
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()


@pytest.fixture
async def stubs(
    replicas: list[ServiceProcess], pki: TestPki
) -> AsyncIterator[list[pb_grpc.ToolServiceStub]]:
    channels = [pki.channel(p.address, "tools") for p in replicas]
    try:
        yield [pb_grpc.ToolServiceStub(c) for c in channels]
    finally:
        for c in channels:
            await c.close()


@pytest.fixture
async def redis_client(infra: LocalServers) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(infra.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def _call(name: str, args: dict[str, Any], **kw: Any) -> pb.InvokeToolRequest:
    return pb.InvokeToolRequest(tenant_id="acme", name=name, arguments_json=json.dumps(args), **kw)


def _details(err: grpc.aio.AioRpcError) -> dict[str, Any]:
    out: dict[str, Any] = {}
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status details"
    for d in status.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.RetryInfo,
        ):
            if d.Is(kind.DESCRIPTOR):
                msg = kind()
                d.Unpack(msg)
                out[kind.__name__] = msg
    return out


async def _payments(client: aioredis.Redis, prefix: str, account: str) -> int:
    raw = await client.hget(RedisKeys(prefix).demo_payments(account), "count")
    return int(raw or 0)


async def test_list_tools_on_both_replicas(
    stubs: Sequence[pb_grpc.ToolServiceStub], replicas: list[ServiceProcess], pki: TestPki
) -> None:
    for stub in stubs:
        resp = await stub.ListTools(pb.ListToolsRequest(tenant_id="acme"))
        by_name = {t.name: t for t in resp.tools}
        assert {"search", "record_payment", "slow_wait", "single_block"} <= set(by_name)
        schema = json.loads(by_name["search"].args_schema_json)
        assert schema["properties"]["query"]["type"] == "string"
        assert schema["required"] == ["query"]
        assert by_name["single_block"].max_concurrency == 1
        assert by_name["slow_wait"].timeout.ToMilliseconds() == 300
    only = await stubs[0].ListTools(pb.ListToolsRequest(names=["divide", "search"]))
    assert [t.name for t in only.tools] == ["divide", "search"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stubs[1].ListTools(pb.ListToolsRequest(names=["search", "nope"]))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert _details(info.value)["ErrorInfo"].reason == "TOOL_NOT_FOUND"
    # Reflection answers (grpcurl works against the service).
    out = await asyncio.to_thread(
        subprocess.run,
        [
            str(find_binary("grpcurl")),
            *("-cacert", str(pki.files.ca), "-servername", "tools.lgmesh.internal"),
            *("-cert", str(pki.files.cert("runtime")), "-key", str(pki.files.key("runtime"))),
            replicas[0].address,
            "list",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert "lgmesh.tools.v1.ToolService" in out.stdout, out.stderr


async def test_invoke_returns_content_and_artifact(
    stubs: Sequence[pb_grpc.ToolServiceStub],
) -> None:
    results = [await s.InvokeTool(_call("search", {"query": "leases"})) for s in stubs]
    assert all(r.status == pb.TOOL_CALL_STATUS_OK for r in results)
    assert results[0].content_json == results[1].content_json  # deterministic tool
    assert json.loads(results[0].content_json).startswith("1. ")
    assert not results[0].HasField("artifact_json")
    doc = await stubs[1].InvokeTool(_call("fetch_document", {"doc_id": 4}))
    assert json.loads(doc.artifact_json)["id"] == 4
    waited = await stubs[0].InvokeTool(_call("wait", {"seconds": 0.01}))
    assert json.loads(waited.content_json) == "waited 0.01s"


async def test_schema_errors_are_invalid_argument_with_field_details(
    stubs: Sequence[pb_grpc.ToolServiceStub],
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stubs[0].InvokeTool(_call("search", {"query": 7, "top_k": "many", "x": 1}))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = _details(info.value)
    fields = {v.field for v in details["BadRequest"].field_violations}
    assert {"arguments.query", "arguments.top_k"} <= fields
    assert details["ErrorInfo"].reason == "TOOL_ARGUMENTS_INVALID"
    assert "Traceback" not in (info.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stubs[1].InvokeTool(pb.InvokeToolRequest(name="search", arguments_json="{oops"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(info.value)["BadRequest"].field_violations[0].field == "arguments_json"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stubs[1].InvokeTool(pb.InvokeToolRequest(arguments_json="{}"))
    assert _details(info.value)["BadRequest"].field_violations[0].field == "name"


async def test_tool_errors_are_results_infrastructure_errors_are_statuses(
    stubs: Sequence[pb_grpc.ToolServiceStub],
) -> None:
    # The tool raised: the RPC succeeds, the status says TOOL_ERROR (the agent sees it).
    res = await stubs[0].InvokeTool(_call("divide", {"a": 1, "b": 0}))
    assert res.status == pb.TOOL_CALL_STATUS_TOOL_ERROR
    assert res.error.type == "ZeroDivisionError" and "division by zero" in res.error.message
    res = await stubs[1].InvokeTool(_call("record_payment", {"account": "x", "amount_cents": -1}))
    assert (res.status, res.error.type) == (pb.TOOL_CALL_STATUS_TOOL_ERROR, "ValueError")
    # The tool's concurrency cap is full: RESOURCE_EXHAUSTED with RetryInfo (retryable).
    busy = asyncio.ensure_future(stubs[0].InvokeTool(_call("single_block", {"seconds": 1.0})))
    try:

        async def refused() -> grpc.aio.AioRpcError | None:
            try:
                await stubs[0].InvokeTool(_call("single_block", {"seconds": 0}))
            except grpc.aio.AioRpcError as exc:
                return exc
            return None  # busy has not taken the slot yet: ask again

        err = await assert_eventually(refused, interval=0.02, message="a call refused")
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = _details(err)
        assert details["ErrorInfo"].reason == "TOOL_BUSY"
        assert details["RetryInfo"].retry_delay.ToNanoseconds() > 0
        # The other replica has its own slots.
        ok = await stubs[1].InvokeTool(_call("single_block", {"seconds": 0}))
        assert ok.status == pb.TOOL_CALL_STATUS_OK
    finally:
        assert (await busy).status == pb.TOOL_CALL_STATUS_OK


async def test_timeouts(stubs: Sequence[pb_grpc.ToolServiceStub]) -> None:
    loop = asyncio.get_running_loop()
    # The tool's own timeout (0.3 s in the config).
    t0 = loop.time()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stubs[0].InvokeTool(_call("slow_wait", {"seconds": 5}))
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert _details(info.value)["ErrorInfo"].reason == "TOOL_TIMEOUT"
    assert loop.time() - t0 < 2.5
    # The request's timeout field.
    req = _call("wait", {"seconds": 5})
    req.timeout.FromMilliseconds(200)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stubs[1].InvokeTool(req)
    assert _details(info.value)["ErrorInfo"].reason == "TOOL_TIMEOUT"
    # The caller's gRPC deadline.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stubs[1].InvokeTool(_call("wait", {"seconds": 5}), timeout=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert loop.time() - t0 < 5


async def test_same_key_runs_once_across_replicas(
    stubs: Sequence[pb_grpc.ToolServiceStub], redis_client: aioredis.Redis, module_prefix: str
) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    args = {"account": account, "amount_cents": 250}
    first = await stubs[0].InvokeTool(_call("record_payment", args, idempotency_key="k1"))
    again = await stubs[1].InvokeTool(_call("record_payment", args, idempotency_key="k1"))
    assert (first.replayed, again.replayed) == (False, True)
    assert first.content_json == again.content_json
    assert await _payments(redis_client, module_prefix, account) == 1
    # Another key runs again; no key always runs.
    await stubs[1].InvokeTool(_call("record_payment", args, idempotency_key="k2"))
    await stubs[0].InvokeTool(_call("record_payment", args))
    assert await _payments(redis_client, module_prefix, account) == 3
    # The same key with other arguments is refused.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        other = {"account": account, "amount_cents": 999}
        await stubs[0].InvokeTool(_call("record_payment", other, idempotency_key="k1"))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _details(info.value)["ErrorInfo"].reason == "IDEMPOTENCY_KEY_REUSED"
    # Keys are per tenant.
    other_tenant = _call("record_payment", args, idempotency_key="k1")
    other_tenant.tenant_id = "globex"
    assert not (await stubs[1].InvokeTool(other_tenant)).replayed
    assert await _payments(redis_client, module_prefix, account) == 4


async def test_concurrent_calls_with_one_key_run_the_tool_once(
    stubs: Sequence[pb_grpc.ToolServiceStub], redis_client: aioredis.Redis, module_prefix: str
) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    args = {"account": account, "amount_cents": 100, "processing_seconds": 0.3}
    calls = [
        stubs[i % 2].InvokeTool(_call("record_payment", args, idempotency_key="same"))
        for i in range(8)
    ]
    results = await asyncio.gather(*calls)
    assert len({r.content_json for r in results}) == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * 7
    assert await _payments(redis_client, module_prefix, account) == 1


async def test_a_timed_out_keyed_call_is_not_run_again(
    stubs: Sequence[pb_grpc.ToolServiceStub], redis_client: aioredis.Redis, module_prefix: str
) -> None:
    """A sync tool past its timeout keeps running; a retry with its key gets its result."""
    account = f"acct-{uuid.uuid4().hex[:8]}"
    args = {"account": account, "amount_cents": 300, "processing_seconds": 0.6}
    req = _call("record_payment", args, idempotency_key="slow")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stubs[0].InvokeTool(req, timeout=0.2)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    retry = await stubs[1].InvokeTool(req, timeout=10)
    assert retry.replayed and json.loads(retry.content_json).startswith("payment #1 ")
    assert await _payments(redis_client, module_prefix, account) == 1


async def test_a_dead_runners_lock_lapses_and_the_call_runs(
    stubs: Sequence[pb_grpc.ToolServiceStub], redis_client: aioredis.Redis, module_prefix: str
) -> None:
    """A replica that died mid-call leaves a lock with no result: it expires, the next
    caller with the key runs the tool."""
    from tool_svc import IdempotencyStore

    account = f"acct-{uuid.uuid4().hex[:8]}"
    scoped = IdempotencyStore.scoped_key("acme", "record_payment", "orphan")
    lock_key = RedisKeys(module_prefix).tool_idempotency_lock(scoped)
    await redis_client.set(lock_key, "dead-replica", px=400)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    args = {"account": account, "amount_cents": 1}
    res = await stubs[0].InvokeTool(_call("record_payment", args, idempotency_key="orphan"))
    assert loop.time() - t0 >= 0.3  # it waited for the lock to lapse
    assert not res.replayed and res.status == pb.TOOL_CALL_STATUS_OK
    assert await _payments(redis_client, module_prefix, account) == 1


async def test_metrics_by_tool(
    stubs: Sequence[pb_grpc.ToolServiceStub], replicas: list[ServiceProcess]
) -> None:
    await stubs[0].InvokeTool(_call("search", {"query": "metrics"}))
    await stubs[0].InvokeTool(_call("divide", {"a": 1, "b": 0}))
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{replicas[0].metrics_port}/metrics")).text
    assert 'lgmesh_tool_invocations_total{outcome="ok",tool="search"}' in text
    assert 'lgmesh_tool_errors_total{kind="tool_error",tool="divide"}' in text
    assert 'lgmesh_tool_inflight{tool="search"} 0.0' in text
    assert 'lgmesh_tool_invocation_seconds_bucket{le="0.005",outcome="ok",tool="search"}' in text


async def test_remote_tools_in_a_graph_over_both_replicas(
    replicas: list[ServiceProcess], redis_client: aioredis.Redis, module_prefix: str, pki: TestPki
) -> None:
    tools = await asyncio.to_thread(
        functools.partial(
            remote_tools,
            [p.address for p in replicas],
            tenant_id="acme",
            names=["record_payment"],
            metadata=pki.token_metadata("acme"),
            security=pki.security("runtime"),
        )
    )
    account = f"acct-{uuid.uuid4().hex[:8]}"
    calls = [
        {"name": "record_payment", "args": {"account": account, "amount_cents": 5}, "id": f"c{i}"}
        for i in range(4)
    ]
    app = (
        StateGraph(MessagesState).add_node("tools", ToolNode(tools)).add_edge(START, "tools")
    ).compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t"}}
    out = await app.ainvoke({"messages": [AIMessage("", tool_calls=calls)]}, config)
    msgs = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert [m.status for m in msgs] == ["success"] * 4
    assert await _payments(redis_client, module_prefix, account) == 4  # 4 tool call ids, 4 keys


async def _inflight(proc: ServiceProcess, tool: str) -> bool:
    """A call of ``tool`` is running on the replica (its in-flight gauge)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{proc.metrics_port}/metrics")).text
    return f'lgmesh_tool_inflight{{tool="{tool}"}} 1.0' in text


async def test_sigterm_drains_in_flight_calls(
    infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    pki = TestPki(tmp_path / "pki")
    (proc,) = start_replicas(tmp_path, infra.redis_url, prefix, n=1, pki=pki)
    try:
        async with pki.channel(proc.address, "tools") as channel:
            stub = pb_grpc.ToolServiceStub(channel)
            # long enough that it still runs when the replica's metrics show it running
            running = asyncio.ensure_future(stub.InvokeTool(_call("wait", {"seconds": 2.0})))
            await assert_eventually(
                lambda: _inflight(proc, "wait"), message="the call running on the replica"
            )
            assert proc.proc is not None
            proc.proc.send_signal(signal.SIGTERM)
            res = await running
            assert res.status == pb.TOOL_CALL_STATUS_OK
        assert await asyncio.to_thread(proc.proc.wait, 15) == 0
    finally:
        proc.stop()

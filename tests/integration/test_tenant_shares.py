"""A tenant's share of a tool's and of an LLM provider's concurrency, on real processes.

The tool service and the LLM gateway run as processes with a tenant limits file
(``--tenant-limits``: ``tool_share``/``llm_share`` 0.5 of two slots, so one slot per
tenant). Tenant acme holds its slot; its next call is refused with RESOURCE_EXHAUSTED
naming the share (QuotaFailure + RetryInfo), while tenant beta's call is served at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from lgmesh.llm.v1 import llm_pb2, llm_pb2_grpc
from lgmesh.tools.v1 import tools_pb2, tools_pb2_grpc

from mesh_cli.launcher import ServiceProcess, start_all, stop_all
from mesh_client.errors import MeshAPIError, from_rpc_error
from mesh_core.localservers import LocalServers
from tests.helpers import assert_eventually, unique_prefix

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LIMITS = "defaults: {tool_share: 0.5, llm_share: 0.5}\ntenants: {}\n"
TOOLS = """
defaults: {timeout: 60, max_concurrency: 2, max_queue_wait: 0.2}
tools:
  - import: mesh_demo.tools:wait
"""
LLM = """
providers:
  scripted:
    type: scripted
    max_concurrency: 2
    chunk_delay_s: 0.5
    rules:
      - reply: "one two three four five six seven eight nine ten eleven twelve thirteen"
routes:
  m: [scripted/any]
"""


@pytest.fixture(scope="module")
def services(
    infra: LocalServers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("shares")
    for name, text in (("limits.yaml", LIMITS), ("tools.yaml", TOOLS), ("llm.yaml", LLM)):
        (tmp / name).write_text(text)
    env = {
        "LGMESH_REDIS_URL": infra.redis_url,
        "LGMESH_PREFIX": unique_prefix("shares"),
        "LGMESH_TENANT_LIMITS": str(tmp / "limits.yaml"),
    }
    procs = [
        ServiceProcess(
            name,
            [name, "--port", "0", "--drain-grace", "1", "--config", str(tmp / config)],
            env,
            log_file=tmp / f"{name}.log",
            cwd=str(ROOT),
        )
        for name, config in (("tools", "tools.yaml"), ("llm-gateway", "llm.yaml"))
    ]
    start_all(procs, timeout=30)
    try:
        yield {p.name: p.address for p in procs}
    finally:
        stop_all(procs)


@contextlib.asynccontextmanager
async def channel(address: str) -> AsyncIterator[grpc.aio.Channel]:
    ch = grpc.aio.insecure_channel(address)
    try:
        yield ch
    finally:
        await ch.close()


def _share_refused(err: grpc.aio.AioRpcError, limit: str) -> None:
    e = from_rpc_error(err)
    assert isinstance(e, MeshAPIError)
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
    assert e.reason == "QUOTA_EXCEEDED" and e.quota == {limit: 1}, e
    assert e.retry_after is not None


async def test_a_tenant_holds_at_most_its_share_of_a_tool(services: dict[str, str]) -> None:
    async with channel(services["tools"]) as ch:
        stub = tools_pb2_grpc.ToolServiceStub(ch)

        def call(tenant: str, seconds: float) -> tools_pb2.InvokeToolRequest:
            return tools_pb2.InvokeToolRequest(
                tenant_id=tenant, name="wait", arguments_json=f'{{"seconds": {seconds}}}'
            )

        holding = asyncio.ensure_future(stub.InvokeTool(call("acme", 60), timeout=90))

        async def refused() -> bool:
            try:
                await stub.InvokeTool(call("acme", 0), timeout=10)
            except grpc.aio.AioRpcError as err:
                _share_refused(err, "tool_share")
                return True
            return False  # served: acme's first call does not hold its slot yet

        try:
            await assert_eventually(refused, message="acme's second call refused")
            # The other slot is beta's: served at once, not after acme's call.
            other = await stub.InvokeTool(call("beta", 0), timeout=5)
            assert other.status == tools_pb2.TOOL_CALL_STATUS_OK
            assert not holding.done()
        finally:
            holding.cancel()
            with contextlib.suppress(BaseException):
                await holding


async def test_a_tenant_holds_at_most_its_share_of_a_provider(services: dict[str, str]) -> None:
    msgs = [llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content="count")]

    def tenant(name: str) -> tuple[tuple[str, str], ...]:
        return (("x-lgmesh-tenant", name),)

    async with channel(services["llm-gateway"]) as ch:
        stub = llm_pb2_grpc.LlmServiceStub(ch)
        # acme's stream holds one of the provider's two slots while it streams (~6 s).
        stream = stub.StreamGenerate(
            llm_pb2.StreamGenerateRequest(model="m", messages=msgs),
            metadata=tenant("acme"),
            timeout=60,
        )
        try:
            await stream.read()  # the first chunk: the slot is acme's
            second = llm_pb2.GenerateRequest(model="m", messages=msgs)
            # The request's own deadline (1 s) ends its wait for a slot well before the
            # call's gRPC deadline, so the answer is the gateway's, not the client's timeout.
            second.deadline.FromNanoseconds(time.time_ns() + 1_000_000_000)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Generate(second, metadata=tenant("acme"), timeout=15)
            _share_refused(info.value, "llm_share")
            other = await stub.Generate(
                llm_pb2.GenerateRequest(model="m", messages=msgs),
                metadata=tenant("beta"),
                timeout=5,
            )
            assert other.message.content.startswith("one two")
        finally:
            stream.cancel()

"""Two LLM gateway replicas (real processes) share one rate limit through Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import yaml
from lgmesh.llm.v1 import llm_pb2, llm_pb2_grpc

from mesh_core.config import InfraSettings
from tests.helpers import assert_eventually
from tests.support.llm_processes import LlmProcess, start_gateway, start_openai_stub

pytestmark = pytest.mark.integration

RPM = 30
REQUESTS = 150
CLIENTS = 6


@pytest.fixture
def stub() -> Iterator[LlmProcess]:
    proc = start_openai_stub()
    try:
        yield proc
    finally:
        proc.terminate()


def _config(tmp_path: Path, stub: LlmProcess, model: str) -> Path:
    doc = {
        "providers": {"stub": {"type": "openai", "base_url": stub.base_url}},
        "routes": {"m": [f"stub/{model}"], "slow": [f"stub/{model}-slow"]},
        "limits": {"window_s": 60, "tenants": {"acme": {"rpm": RPM}}},
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_rate_limit_holds_across_two_replicas(
    tmp_path: Path, stub: LlmProcess, infra_settings: InfraSettings
) -> None:
    model = f"rl-{uuid.uuid4().hex[:8]}"
    cfg = _config(tmp_path, stub, model)
    replicas = [
        start_gateway(
            cfg, redis_url=infra_settings.redis_url, prefix=infra_settings.prefix, metrics_port=0
        )
        for _ in range(2)
    ]
    try:
        channels = [grpc.aio.insecure_channel(r.address) for r in replicas]
        stubs = [llm_pb2_grpc.LlmServiceStub(ch) for ch in channels]
        admitted = [0, 0]
        refused = 0
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(REQUESTS):
            queue.put_nowait(i)
        req = llm_pb2.GenerateRequest(
            model="m", messages=[llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content="hi")]
        )
        md = (("x-lgmesh-tenant", "acme"),)

        async def client() -> None:
            nonlocal refused
            while not queue.empty():
                i = queue.get_nowait()
                try:
                    await stubs[i % 2].Generate(req, timeout=10, metadata=md)
                    admitted[i % 2] += 1
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
                    refused += 1

        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        total = sum(admitted)
        assert RPM <= total <= RPM * 1.1, admitted
        assert min(admitted) > 0  # both replicas admitted some
        assert total + refused == REQUESTS
        assert stub.hits(model) == total  # refused requests never reached the provider

        # Each replica exports its metrics.
        async with httpx.AsyncClient() as http:
            metrics_url = f"http://127.0.0.1:{replicas[0].metrics_port}/metrics"
            body = (await http.get(metrics_url)).text
        assert 'lgmesh_llm_rate_limited_total{kind="tenant_rpm"}' in body
        assert "lgmesh_llm_inflight_requests 0.0" in body

        # SIGTERM drains: a call in flight finishes, then the process exits cleanly.
        stub.add_faults(f"{model}-slow", [{"delay": 0.8}])
        slow = asyncio.ensure_future(
            stubs[1].Generate(
                llm_pb2.GenerateRequest(model="slow", messages=req.messages), timeout=10
            )
        )
        await assert_eventually(lambda: stub.hits(f"{model}-slow") == 1, timeout=5)
        exit_code = await asyncio.to_thread(replicas[1].terminate)
        resp = await slow
        assert resp.message.content == "echo: hi"
        assert exit_code == 0
        for ch in channels:
            await ch.close()
    finally:
        for r in replicas:
            r.terminate()

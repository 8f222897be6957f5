"""The tool service's stored results with the payload codec: ``lgmesh tools
--payload-keys`` replicas (real processes) on a real Valkey. A keyed call's result is
sealed, bound to its own key (tenant, tool, caller's key), replays through the service,
and does not open under another key: DATA_LOSS, and the tool (a payment) is not run
again. A result stored before the codec still reads; a replica without keys fails
clearly on a sealed one."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from lgmesh.tools.v1 import tools_pb2 as pb
from lgmesh.tools.v1 import tools_pb2_grpc as pb_grpc

from mesh_cli.launcher import ServiceProcess, start_all
from mesh_core.adapters.redis.keys import RedisKeys
from mesh_core.localservers import LocalServers
from mesh_core.security import PayloadCodec, SealedDataError, is_sealed
from tests.helpers import unique_prefix
from tool_svc import IdempotencyStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEY = os.urandom(32)
CONFIG = "idempotency_ttl: 60\ntools:\n  - import: mesh_demo.tools:TOOLS\n"


@pytest.fixture(scope="module")
def module_prefix() -> str:
    return unique_prefix("tpc")


@pytest.fixture(scope="module")
def replicas(
    infra: LocalServers, module_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    """One replica with the payload keys, one without, on the same Redis and prefix."""
    tmp = tmp_path_factory.mktemp("tool_codec")
    (tmp / "tools.yaml").write_text(CONFIG)
    (tmp / "payload-keys").write_text(base64.b64encode(KEY).decode() + "\n")
    args = ["tools", "--port", "0", "--config", str(tmp / "tools.yaml")]
    env = {"LGMESH_REDIS_URL": infra.redis_url, "LGMESH_PREFIX": module_prefix}
    procs = {
        name: ServiceProcess(
            f"tools-{name}",
            args,
            {**env, "LGMESH_PAYLOAD_KEYS": keys},
            log_file=tmp / f"{name}.log",
            cwd=str(ROOT),
        )
        for name, keys in (("sealed", str(tmp / "payload-keys")), ("keyless", ""))
    }
    start_all(list(procs.values()), timeout=60)
    try:
        yield procs
    finally:
        for p in procs.values():
            p.stop()


@pytest.fixture
async def stubs(
    replicas: dict[str, ServiceProcess],
) -> AsyncIterator[dict[str, pb_grpc.ToolServiceStub]]:
    channels = {name: grpc.aio.insecure_channel(p.address) for name, p in replicas.items()}
    try:
        yield {name: pb_grpc.ToolServiceStub(c) for name, c in channels.items()}
    finally:
        for c in channels.values():
            await c.close()


def _pay(account: str, key: str, tenant: str = "acme") -> pb.InvokeToolRequest:
    args = json.dumps({"account": account, "amount_cents": 250})
    return pb.InvokeToolRequest(
        tenant_id=tenant, name="record_payment", arguments_json=args, idempotency_key=key
    )


def _result_key(prefix: str, key: str, tenant: str = "acme") -> str:
    return RedisKeys(prefix).tool_idempotency(
        IdempotencyStore.scoped_key(tenant, "record_payment", key)
    )


async def _payments(infra_redis: aioredis.Redis, prefix: str, account: str) -> int:
    return int(await infra_redis.hget(RedisKeys(prefix).demo_payments(account), "count") or 0)


async def _data_loss(stub: pb_grpc.ToolServiceStub, req: pb.InvokeToolRequest, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.InvokeTool(req)
    assert info.value.code() == grpc.StatusCode.DATA_LOSS, info.value
    status = rpc_status.from_call(info.value)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status details"
    error = error_details_pb2.ErrorInfo()
    assert [d.Unpack(error) for d in status.details if d.Is(error.DESCRIPTOR)]
    assert error.reason == reason
    assert "idempotency key" in (info.value.details() or "")


async def test_stored_result_is_sealed_bound_to_its_key_and_never_rerun(
    stubs: dict[str, pb_grpc.ToolServiceStub], infra_redis: aioredis.Redis, module_prefix: str
) -> None:
    account = f"acct-{uuid.uuid4().hex}"
    sealed, keyless = stubs["sealed"], stubs["keyless"]
    first = await sealed.InvokeTool(_pay(account, "k1"))
    assert not first.replayed and account in first.content_json
    raw = await infra_redis.get(_result_key(module_prefix, "k1"))
    assert raw is not None and is_sealed(raw) and account.encode() not in raw
    again = await sealed.InvokeTool(_pay(account, "k1"))
    assert again.replayed and again.content_json == first.content_json

    # Copied to another key of the tenant, or to the same key of another tenant.
    for key, tenant in (("k2", "acme"), ("k1", "globex")):
        await infra_redis.set(_result_key(module_prefix, key, tenant), raw)
        await _data_loss(sealed, _pay(account, key, tenant), "PAYLOAD_UNREADABLE")
    # A replica without keys.
    await _data_loss(keyless, _pay(account, "k1"), "PAYLOAD_KEYS_MISSING")
    assert await _payments(infra_redis, module_prefix, account) == 1  # the payment ran once

    # A caller waiting on another's run meets the same (in-process store, same Redis).
    store = IdempotencyStore(
        infra_redis, RedisKeys(module_prefix), ttl=60, codec=PayloadCodec([os.urandom(32)])
    )
    with pytest.raises(SealedDataError) as info:
        await store.wait(IdempotencyStore.scoped_key("acme", "record_payment", "k1"), 1.0)
    assert info.value.reason == "PAYLOAD_KEY_UNKNOWN"


async def test_a_result_stored_before_the_codec_still_reads(
    stubs: dict[str, pb_grpc.ToolServiceStub], infra_redis: aioredis.Redis, module_prefix: str
) -> None:
    account = f"acct-{uuid.uuid4().hex}"
    before = await stubs["keyless"].InvokeTool(_pay(account, "old"))
    raw: Any = await infra_redis.get(_result_key(module_prefix, "old"))
    assert raw is not None and account.encode() in raw and not is_sealed(raw)
    after = await stubs["sealed"].InvokeTool(_pay(account, "old"))
    assert after.replayed and after.content_json == before.content_json
    assert await _payments(infra_redis, module_prefix, account) == 1

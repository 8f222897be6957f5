"""Fair slots between tenants, the tenant limits file, and QuotaFailure details."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2

from mesh_core.config import ConfigError, InfraSettings
from mesh_core.errors import QuotaExceededError
from mesh_core.fairshare import FairSlots, share_cap
from mesh_core.limits import LimitsTable, TenantLimits, load_limits
from runtime_svc.manager import share_retry_after
from tests.helpers import assert_eventually
from tool_svc import Invocation, ToolEngine, ToolServiceSettings, ToolSpec, load_registry

HOLD = threading.Event()
HOLDING: list[str] = []  # the tags of the hold() calls running now


def hold(tag: str) -> str:
    """Block a thread until the test lets go."""
    HOLDING.append(tag)
    try:
        HOLD.wait(10)
    finally:
        HOLDING.remove(tag)
    return tag


def quick(tag: str) -> str:
    """Return at once."""
    return tag


def test_share_cap() -> None:
    assert share_cap(8, 0.5) == 4
    assert share_cap(1, 0.5) == 1  # everyone may run something
    assert share_cap(10, 1.0) == 10
    assert share_cap(3, 0.7) == 2


async def test_a_tenant_never_holds_more_than_its_cap() -> None:
    slots = FairSlots(4)
    for _ in range(2):
        await slots.acquire("a", cap=2, timeout=0)
    with pytest.raises(TimeoutError):
        await slots.acquire("a", cap=2, timeout=0.05)
    # b is not slowed by a's queue.
    await slots.acquire("b", cap=2, timeout=0)
    assert slots.in_use == 3 and slots.held("a") == 2 and slots.waiting() == 0


async def test_free_slots_go_round_robin_between_waiting_tenants() -> None:
    slots = FairSlots(1)
    await slots.acquire("x", timeout=0)
    holder = ["x"]
    order: list[str] = []

    async def want(tenant: str) -> None:
        await slots.acquire(tenant, timeout=5)
        order.append(tenant)
        holder.append(tenant)

    # a queues a burst of 5 first; b queues 2 after it.
    waiters = [asyncio.create_task(want("a")) for _ in range(5)]
    await asyncio.sleep(0)
    waiters += [asyncio.create_task(want("b")) for _ in range(2)]
    await asyncio.sleep(0)
    assert slots.waiting() == 7
    while len(order) < 7:
        slots.release(holder.pop(0))
        await asyncio.sleep(0)
    await asyncio.gather(*waiters)
    # b does not wait behind a's whole burst: turns alternate while both wait.
    assert order == ["a", "b", "a", "b", "a", "a", "a"]
    assert slots.waiting("a") == 0 and slots.waiting("nobody") == 0


def test_runtime_share_retry_after_follows_the_tenants_queue() -> None:
    # Nobody else queues: about a second, jittered.
    assert 1.0 <= share_retry_after(0, 32, 2.0) <= 1.5
    # 160 of the tenant's runs queue for its 32 slots, which free about every 2 s:
    # the queue takes ~10 s to move; refusals spread over 10-15 s, not one wave.
    delays = [share_retry_after(160, 32, 2.0) for _ in range(200)]
    assert all(10.0 <= d <= 15.0 for d in delays)
    assert max(delays) - min(delays) > 2.0
    assert share_retry_after(100_000, 1, 2.0) <= 30.0 * 1.5


async def test_cancelled_waiter_gives_its_turn_away() -> None:
    slots = FairSlots(1)
    await slots.acquire("x", timeout=0)
    gone = asyncio.create_task(slots.acquire("a", timeout=5))
    stays = asyncio.create_task(slots.acquire("b", timeout=5))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    slots.release("x")
    await asyncio.wait_for(stays, 1)
    assert slots.held("b") == 1 and slots.held("a") == 0 and slots.in_use == 1


def test_limits_file(tmp_path: Path) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text(
        "defaults:\n  concurrent_runs: 8\n  tool_share: 0.25\n"
        "tenants:\n  acme:\n    concurrent_runs: 100\n"
    )
    table = load_limits(path)
    assert table.for_tenant("other").concurrent_runs == 8
    acme = table.for_tenant("acme")
    assert acme.concurrent_runs == 100 and acme.tool_share == 0.25  # inherits defaults
    assert load_limits("") == LimitsTable()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("defaults:\n  concurent_runs: 3\n", "unknown limit 'concurent_runs'"),
        ("defaults:\n  concurrent_runs: -1\n", "must be positive"),
        ("defaults:\n  tool_share: 2\n", "at most 1"),
        ("defaults:\n  max_run_seconds: .inf\n", "must be positive"),
        ("defaults:\n  concurrent_runs: lots\n", "must be a number"),
        ("tenant:\n  a: {}\n", "unknown key 'tenant'"),
        ("defaults: [1\n", "not valid YAML at line"),
    ],
)
def test_bad_limits_files_say_what_is_wrong(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="tenant limits file") as info:
        load_limits(path)
    assert needle in str(info.value)


def test_quota_error_carries_quota_failure_and_retry_info() -> None:
    err = QuotaExceededError(
        "too many runs", tenant="acme", limit="concurrent_runs", value=8, retry_after=1.5
    )
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.retryable
    kinds = {}
    for any_ in err.details():
        for cls in (
            error_details_pb2.QuotaFailure,
            error_details_pb2.RetryInfo,
            error_details_pb2.ErrorInfo,
        ):
            if any_.Is(cls.DESCRIPTOR):
                msg = cls()
                any_.Unpack(msg)
                kinds[cls.__name__] = msg
    v = kinds["QuotaFailure"].violations[0]
    assert v.subject == "tenant:acme" and v.quota_id == "concurrent_runs" and v.quota_value == 8
    assert kinds["RetryInfo"].retry_delay.ToMilliseconds() == 1500
    assert kinds["ErrorInfo"].reason == "QUOTA_EXCEEDED"
    # A request that is too big cannot succeed by waiting: no RetryInfo, not retryable.
    big = QuotaExceededError("too deep", tenant="a", limit="max_recursion_limit", value=1000)
    assert not big.retryable


async def test_tool_share_keeps_one_tenant_from_filling_a_tool() -> None:
    HOLD.clear()
    HOLDING.clear()
    settings = ToolServiceSettings(
        infra=InfraSettings(),
        tools=(
            ToolSpec(
                "tests.unit.test_fairshare_limits:hold", max_concurrency=4, max_queue_wait=0.05
            ),
            ToolSpec("tests.unit.test_fairshare_limits:quick", max_concurrency=4),
        ),
    )
    engine = ToolEngine(
        load_registry(settings),
        thread_pool_size=32,
        limits=LimitsTable(TenantLimits(tool_share=0.5)),
    )

    def inv(tenant: str, name: str, tag: str) -> Invocation:
        return Invocation(tenant_id=tenant, name=name, arguments_json=f'{{"tag": "{tag}"}}')

    try:
        burst = [asyncio.create_task(engine.invoke(inv("a", "hold", str(i)))) for i in range(2)]
        await assert_eventually(lambda: sorted(HOLDING) == ["0", "1"], message="a's burst runs")
        with pytest.raises(QuotaExceededError) as info:
            await engine.invoke(inv("a", "hold", "third"))
        assert info.value.limit == "tool_share" and info.value.retry_after
        # Another tenant still gets the tool, and another tool is untouched.
        b = asyncio.create_task(engine.invoke(inv("b", "hold", "b")))
        assert (await engine.invoke(inv("a", "quick", "q"))).content == "q"
        HOLD.set()
        assert (await b).content == "b"
        assert sorted(r.content for r in await asyncio.gather(*burst)) == ["0", "1"]
    finally:
        HOLD.set()
        await engine.aclose()

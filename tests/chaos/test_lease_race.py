"""Two real OS processes race for one thread's etcd lease."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from mesh_core.adapters.etcd import EtcdKeys, new_etcd_client, read_thread_owner
from mesh_core.config import InfraSettings
from tests.chaos._procs.driver import HelperProcess

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

TTL = 2
HOLDER = "tests.chaos._procs.lease_holder"

Spawn = Callable[[str], Awaitable[HelperProcess]]


@pytest.fixture
async def spawn(infra_settings: InfraSettings, tmp_path: Path) -> AsyncIterator[Spawn]:
    procs: list[HelperProcess] = []

    async def start(holder_id: str) -> HelperProcess:
        proc = await HelperProcess.start(
            holder_id,
            HOLDER,
            [
                "--etcd-url",
                infra_settings.etcd_url,
                "--prefix",
                infra_settings.prefix,
                "--holder-id",
                holder_id,
                "--ttl",
                str(TTL),
            ],
            tmp_path,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        await proc.stop()


async def _race(
    a: HelperProcess, b: HelperProcess, thread_id: str
) -> tuple[HelperProcess, HelperProcess, int]:
    """Both ask at once; returns (winner, loser, winner's token). The loser is left waiting."""
    await asyncio.gather(a.expect("ready"), b.expect("ready"))
    await asyncio.gather(a.send(f"acquire {thread_id}"), b.send(f"acquire {thread_id}"))
    (ev_a, _), (ev_b, _) = await asyncio.gather(a.next_event(), b.next_event())
    outcomes = sorted([ev_a["event"], ev_b["event"]])
    assert outcomes == ["acquired", "busy"], f"exactly one must win, got {ev_a} / {ev_b}"
    if ev_a["event"] == "acquired":
        return a, b, ev_a["token"]
    return b, a, ev_b["token"]


async def test_one_wins_and_the_waiter_wins_after_release(spawn: Spawn) -> None:
    a, b = await asyncio.gather(spawn("rt-a"), spawn("rt-b"))
    winner, loser, token = await _race(a, b, "thread-1")

    # The loser is blocked on its watch: nothing arrives while the winner holds the thread.
    with pytest.raises(AssertionError, match="no event"):
        await loser.next_event(timeout=0.5)

    released_at = time.monotonic()
    await winner.send("release thread-1")
    await winner.expect("released")
    got, at = await loser.expect("acquired", timeout=5)
    assert got["token"] > token
    assert at - released_at < 1.0, f"waiter woke {at - released_at:.3f}s after the release"

    await winner.send("exit")
    await winner.expect("closed")


async def test_waiter_wins_within_ttl_plus_1s_after_the_winner_is_sigkilled(
    spawn: Spawn, infra_settings: InfraSettings
) -> None:
    a, b = await asyncio.gather(spawn("rt-a"), spawn("rt-b"))
    winner, loser, token = await _race(a, b, "thread-2")

    killed_at = time.monotonic()
    winner.signal(signal.SIGKILL)
    await winner.proc.wait()

    # Right after the kill the dead owner's key is still there: nobody else may own it yet.
    keys = EtcdKeys(infra_settings.prefix)
    client = new_etcd_client(infra_settings)
    try:
        owner = await read_thread_owner(client, keys, "thread-2")
    finally:
        await client.close()
    assert owner is not None
    assert owner.holder_id == winner.name
    assert owner.token == token

    got, at = await loser.expect("acquired", timeout=TTL + 5)
    takeover = at - killed_at
    print(f"takeover after SIGKILL: {takeover:.3f}s (ttl={TTL}s)")
    assert takeover < TTL + 1, f"takeover took {takeover:.3f}s"
    assert got["token"] > token

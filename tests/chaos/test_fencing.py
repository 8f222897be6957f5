"""A paused owner (SIGSTOP past its TTL) can never commit after another owner took over.

Two independent layers each reject the zombie's writes: its own self-fencing
(``ThreadLease.check()``) and the Redis fence script (fencing token).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import redis.asyncio as aredis

from mesh_core.adapters.etcd import EtcdSession, ThreadLeases
from mesh_core.adapters.redis.checkpointer import MeshCheckpointer
from mesh_core.config import InfraSettings
from tests.chaos._procs.driver import HelperProcess
from tests.chaos._procs.fenced_writer import fenced_config, owner_checkpoint

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

TTL = 2
THREAD = "thread-fenced"


@pytest.mark.parametrize("layer", ["self", "redis"])
async def test_paused_owner_cannot_commit_after_takeover(
    layer: str, infra_settings: InfraSettings, tmp_path: Path
) -> None:
    args = [
        "--etcd-url",
        infra_settings.etcd_url,
        "--redis-url",
        infra_settings.redis_url,
        "--prefix",
        infra_settings.prefix,
        "--thread",
        THREAD,
        "--ttl",
        str(TTL),
    ]
    if layer == "redis":
        args.append("--no-self-fence")  # only the Redis fence stands in the way
    a = await HelperProcess.start("owner-a", "tests.chaos._procs.fenced_writer", args, tmp_path)
    redis = aredis.Redis.from_url(infra_settings.redis_url)
    saver = MeshCheckpointer(redis, prefix=infra_settings.prefix)
    try:
        acquired, _ = await a.expect("acquired", timeout=15)
        token_a, a1_id = acquired["token"], acquired["checkpoint_id"]

        # A stalls (GC pause, SIGSTOP) for longer than its TTL.
        a.signal(signal.SIGSTOP)
        stopped_at = time.monotonic()

        # B waits for A's lease to expire, takes the thread and commits.
        async with EtcdSession(infra_settings, ttl=TTL) as session_b:
            b = ThreadLeases(session_b, None, "rt-b", "addr-b")
            lease_b = await b.acquire(THREAD, timeout=TTL + 3)
            # (the TTL + 1 s takeover bound is test_lease_race's; here only the fence matters,
            # so a loaded machine gets the acquire timeout's slack)
            assert time.monotonic() - stopped_at < TTL + 3
            assert lease_b.token > token_a
            await saver.abump_fence(THREAD, lease_b.token)
            checkpoint_b, versions_b = owner_checkpoint(saver, "B")
            lease_b.check()
            await saver.aput(
                fenced_config(THREAD, lease_b.token, a1_id),
                checkpoint_b,
                {"source": "loop", "step": 2},
                versions_b,
            )

            # A wakes up and, believing it still owns the thread, tries to commit.
            a.signal(signal.SIGCONT)
            await a.send("commit")
            event, _ = await a.next_event()
            seen = [event["event"]]
            while event["event"] == "lost":  # A's keepalive task may notice first
                event, _ = await a.next_event()
                seen.append(event["event"])
            assert event["event"] == "rejected", f"A's late write went through: {event}"
            assert event["layer"] == layer
            if layer == "self":
                assert event["reason"] == "STALE_OWNER"
            else:
                assert event["writes"] == ["put", "put_writes"]

            # B's state is intact: its checkpoint is the latest, the fence holds B's token,
            # and A's second checkpoint and late write do not exist.
            latest = await saver.aget_tuple({"configurable": {"thread_id": THREAD}})
            assert latest is not None
            assert latest.checkpoint["id"] == checkpoint_b["id"]
            assert latest.checkpoint["channel_values"] == {"owner": "B"}
            assert await saver.aget_fence(THREAD) == lease_b.token
            history = [
                t.checkpoint["channel_values"]["owner"]
                async for t in saver.alist({"configurable": {"thread_id": THREAD}})
            ]
            assert sorted(history) == ["A", "B"]
            a1 = await saver.aget_tuple(
                {"configurable": {"thread_id": THREAD, "checkpoint_id": a1_id}}
            )
            assert a1 is not None
            assert a1.pending_writes == []
            owner = await b.owner(THREAD)
            assert owner is not None
            assert owner.holder_id == "rt-b"

        await a.send("exit")
        await a.expect("closed", skip=frozenset({"lost"}))
    finally:
        await a.stop()
        await redis.aclose()

"""A run's output when its owner dies right after the run's final event reached the log.

The event log keeps a large output only as the checkpoint that holds it. The owner is
frozen (SIGSTOP) the moment the test sees the final event on the log's subject, then
SIGKILLed, so nothing it would do after the append (stream the event live, store the
webhook body) is relied on. Then, with the other runtime reading the checkpoint:

* WaitForRun and JoinRun, on either gateway, return the output the run ended with;
* the webhook is delivered once, with that output;
* a client that was streaming the run gets the final event with its output, whether
  it came live or from the log after the stream broke;
* the thread takes its next run (on the surviving runtime).
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from lgmesh.api.v1 import types_pb2
from nats.aio.msg import Msg

from mesh_client import StreamPart
from mesh_core.adapters.nats.eventlog import is_final_event
from mesh_core.adapters.nats.subjects import NatsNames
from mesh_core.localservers import LocalServers
from tests.e2e.cluster import MeshCluster
from tests.faults.support import Receiver, webhook_finished
from tests.helpers import assert_eventually

pytestmark = [pytest.mark.faults, pytest.mark.chaos, pytest.mark.slow]

BIG = "x" * 6000
CONFIG = {"configurable": {"steps": 2, "delay": 0.2}}


class OwnerKiller:
    """Freezes, then kills, the runtime that logged a watched run's final event."""

    def __init__(self, cluster: MeshCluster, prefix: str) -> None:
        self.cluster = cluster
        self.names = NatsNames(prefix)
        self.watched: set[str] = set()
        self.watch_all = False  # every run of the mesh (a test that runs one at a time)
        self.killed: dict[str, str] = {}  # run id -> runtime id
        self._owners: dict[str, str] = {}

    async def _on_event(self, msg: Msg) -> None:
        ev = types_pb2.RunEvent.FromString(msg.data)
        if ev.mode == "lifecycle" and ev.lifecycle.runtime_id:
            self._owners.setdefault(ev.run_id, ev.lifecycle.runtime_id)
        watched = self.watch_all or ev.run_id in self.watched
        if watched and is_final_event(ev) and ev.run_id not in self.killed:
            owner = ev.lifecycle.runtime_id
            proc = self.cluster.runtimes[int(owner.rsplit("-rt", 1)[1]) - 1]
            proc.signal(signal.SIGSTOP)  # at once, before it does anything more
            proc.kill()
            self.killed[ev.run_id] = owner

    async def __aenter__(self) -> OwnerKiller:
        self._nc = await nats.connect(self.cluster.infra.nats_url)
        await self._nc.subscribe(self.names.events_wildcard, cb=self._on_event)
        await self._nc.flush()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._nc.close()


@pytest.fixture
async def cluster(infra: LocalServers, prefix: str, tmp_path: Path) -> AsyncIterator[MeshCluster]:
    c = MeshCluster(
        infra, prefix, tmp_path, lease_ttl=2, extra_env={"LGMESH_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"}
    )
    try:
        yield c
    finally:
        await c.aclose_clients()
        c.stop()


def _expected(steps: int = 2) -> dict[str, Any]:
    return {"step": steps, "done": True, "log": [BIG]}


def _without_pids(values: dict[str, Any]) -> dict[str, Any]:
    """The steps graph logs ``s<step>@<pid>``: keep the step."""
    return {**values, "log": [e.split("@")[0] if e != BIG else e for e in values["log"]]}


async def test_output_after_the_owner_died_right_after_the_final_event(
    cluster: MeshCluster, prefix: str
) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        for _ in range(2):
            # the dying owner may have claimed the webhook job the moment its run ended:
            # the other runtime takes it again after the visibility (30 s by default)
            cluster.add_runtime(extra=["--schedule-visibility", "2"])
        cluster.add_gateway()
        cluster.add_gateway()
        client, other = cluster.client(gateway=0), cluster.client(gateway=1)
        t = await client.threads.create()
        async with OwnerKiller(cluster, prefix) as killer:
            run = await client.runs.create(
                t["thread_id"],
                "steps",
                input={"step": 0, "log": [BIG]},
                config=CONFIG,
                webhook=receiver.url,
            )
            killer.watched.add(run["run_id"])
            await assert_eventually(
                lambda: run["run_id"] in killer.killed, timeout=20, message="owner killed"
            )
        want = {**_expected(), "log": [BIG, "s1", "s2"]}
        out = await other.runs.join(t["thread_id"], run["run_id"])
        assert _without_pids(out) == want
        parts = [p async for p in client.runs.join_stream(t["thread_id"], run["run_id"])]
        assert parts[-1].lifecycle["status"] == "success"
        assert parts[-1].data == out
        await assert_eventually(lambda: len(receiver.posts) == 1, timeout=30, message="webhook")
        assert receiver.posts[0]["body"]["values"] == out

        # the thread goes on: its next run waits out the dead owner's lease
        nxt = await other.runs.wait(t["thread_id"], "steps", input={"step": 0}, config=CONFIG)
        assert nxt["step"] == 2
        # the job left the schedule (delivered, done): no runtime POSTs it again
        await webhook_finished(cluster.infra.redis_url, prefix, run["run_id"], timeout=30)
        assert len(receiver.posts) == 1  # delivered once
    finally:
        await receiver.stop()


async def test_a_client_reading_the_run_from_the_log_gets_the_output(
    cluster: MeshCluster, prefix: str
) -> None:
    """A delayed run's stream is read from the log (no live stream to lose the event);
    every few runs the owner dies at the final event, so the output is read on another."""
    for _ in range(2):
        cluster.add_runtime(extra=["--schedule-visibility", "2"])
    cluster.add_gateway()
    client = cluster.client()
    async with OwnerKiller(cluster, prefix) as killer:
        # one run at a time: watch them all (a run known only from its first streamed
        # part could end before a loaded client reads that part)
        killer.watch_all = True
        for attempt in range(2):
            t = await client.threads.create()
            parts: list[StreamPart] = []
            async for p in client.runs.stream(
                t["thread_id"],
                "steps",
                input={"step": 0, "log": [BIG]},
                config=CONFIG,
                after_seconds=0.2,
            ):
                parts.append(p)
            end = parts[-1]
            assert end.run_id in killer.killed, f"attempt {attempt}: owner not killed"
            assert end.lifecycle["kind"] == "ended" and end.lifecycle["status"] == "success"
            assert _without_pids(end.data) == {**_expected(), "log": [BIG, "s1", "s2"]}
            assert [p.seq for p in parts] == list(range(1, len(parts) + 1))
            cluster.add_runtime(extra=["--schedule-visibility", "2"])  # two runtimes again

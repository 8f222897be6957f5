"""The payload codec end to end (``--payload-keys``): a mesh whose gateway and runtime
hold the key ring ``[new, old]``.

* Runs work as without it (values, history, update_state, streams, an interrupt and
  its resume, Send tasks on the worker queue, a delayed run, joining from the log after
  the run ended), and a marker put in run input, config, metadata and state never shows
  in any Redis value, etcd key or value, or NATS message (read with the admin
  credentials; every message published while the runs went).
* Data sealed with the old key of the ring, and data written before the codec was on,
  read and go on; data sealed with a key not in the ring gives DATA_LOSS with a reason
  (no key material), a run on it ends as an error and the thread is not wedged.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import nats
import pytest
import redis.asyncio as aioredis

from mesh_client.errors import MeshAPIError, RunFailedError
from mesh_core.adapters.etcd.keys import EtcdKeys
from mesh_core.adapters.etcd.session import new_etcd_client
from mesh_core.adapters.nats.subjects import NatsNames
from mesh_core.adapters.redis.checkpointer import MeshCheckpointer
from mesh_core.config import InfraSettings
from mesh_core.localservers import LocalServers
from mesh_core.security import PayloadCodec, is_sealed
from tests.e2e.cluster import MeshCluster
from tests.e2e.graphs import _steps_builder
from tests.helpers import assert_eventually, unique_prefix

pytestmark = [pytest.mark.e2e]

NEW, OLD, GONE = os.urandom(32), os.urandom(32), os.urandom(32)


@pytest.fixture(scope="module")
def sealed_mesh(
    infra: LocalServers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MeshCluster]:
    tmp = tmp_path_factory.mktemp("codec")
    keys = tmp / "payload-keys"
    keys.write_text("".join(base64.b64encode(k).decode() + "\n" for k in (NEW, OLD)))
    cluster = MeshCluster(
        infra, unique_prefix("pc"), tmp, extra_env={"LGMESH_PAYLOAD_KEYS": str(keys)}
    )
    try:
        cluster.start(runtimes=1, gateways=1)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def mesh(sealed_mesh: MeshCluster) -> AsyncIterator[MeshCluster]:
    try:
        yield sealed_mesh
    finally:
        await sealed_mesh.aclose_clients()


async def _redis_values(url: str) -> list[bytes]:
    """Every value (and hash field, set member) in Redis, read as the admin."""
    r = aioredis.from_url(url)
    out: list[bytes] = []
    try:
        async for key in r.scan_iter(count=1000):
            kind = (await r.type(key)).decode()
            if kind == "string":
                out.append(await r.get(key) or b"")
            elif kind == "hash":
                for f, v in (await r.hgetall(key)).items():
                    out += [f, v]
            elif kind == "zset":
                out += await r.zrange(key, 0, -1)
            elif kind == "set":
                out += list(await r.smembers(key))
            elif kind == "list":
                out += await r.lrange(key, 0, -1)
            elif kind == "stream":
                for _, entry in await r.xrange(key):
                    for f, v in entry.items():
                        out += [f, v]
    finally:
        await r.aclose()
    return out


async def _etcd_values(mesh: MeshCluster) -> list[bytes]:
    """Every key and value under the mesh's etcd root, read as the admin (taken while
    the runtime still holds thread leases: etcd has ids and addresses, no payloads)."""
    infra = mesh.infra
    client = new_etcd_client(
        InfraSettings(infra.etcd_url, infra.nats_url, infra.redis_url, prefix=mesh.prefix)
    )
    await client.connect()
    try:
        found = await client.get_prefix(EtcdKeys(mesh.prefix).root.encode())
        return [x for kv in found for x in (kv.key, kv.value)]
    finally:
        await client.close()


class _Wiretap:
    """Every NATS message published while it listens (admin user, subject ``>``)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    async def __aenter__(self) -> _Wiretap:
        return self

    async def start(self, url: str) -> None:
        self.nc = await nats.connect(url)

        async def on_msg(msg: Any) -> None:
            self.messages.append((msg.subject, bytes(msg.data or b"")))

        await self.nc.subscribe(">", cb=on_msg)
        await self.nc.flush()

    async def __aexit__(self, *exc: object) -> None:
        await self.nc.drain()


async def test_runs_work_and_no_marker_reaches_redis_or_nats(mesh: MeshCluster) -> None:
    marker = f"MARK{uuid.uuid4().hex}"
    c = mesh.client()
    names = NatsNames(mesh.prefix)
    async with _Wiretap() as tap:
        await tap.start(mesh.infra.nats_url)
        t = (await c.threads.create(metadata={"note": marker}))["thread_id"]
        cfg = {"configurable": {"steps": 2, "note": marker}}
        parts = [
            p
            async for p in c.runs.stream(
                t,
                "steps",
                input={"log": [marker]},
                config=cfg,
                metadata={"why": marker},
                stream_mode=["values", "updates", "custom"],
            )
        ]
        values = [p.data for p in parts if p.event == "values"]
        assert values[-1]["step"] == 2 and values[-1]["log"][0] == marker
        run_id = parts[0].run_id

        # joined from the log after the run ended: the same events, opened by the gateway
        joined = [p async for p in c.runs.join_stream(t, run_id)]
        assert [p.seq for p in joined] == [p.seq for p in parts]
        assert [p.data for p in joined if p.event == "values"] == values

        history = await c.threads.get_history(t, limit=10)
        assert [h["metadata"]["step"] for h in history] == [2, 1, 0, -1]
        assert history[0]["values"]["log"][0] == marker
        await c.threads.update_state(t, {"log": [marker + "u"]}, as_node="work")
        state = await c.threads.get_state(t)
        assert state["values"]["log"][-1] == marker + "u"
        assert (await c.threads.get(t))["metadata"] == {"note": marker}
        run = await c.runs.get(t, run_id)
        assert run["metadata"]["why"] == marker

        # Send fan-out: tasks travel through the worker queue with the marked config
        ft = (await c.threads.create())["thread_id"]
        out = await c.runs.wait(ft, "fan", input={"n": 4}, config=cfg)
        assert out["total"] == 0 + 1 + 4 + 9

        # an interrupt (pending writes, the run record's interrupts) and its resume
        at = (await c.threads.create())["thread_id"]
        asked = [p async for p in c.runs.stream(at, "approval", input={"request": marker})]
        end = asked[-1].lifecycle
        assert end["status"] == "interrupted"
        assert end["interrupts"][0]["value"] == {"question": f"approve {marker}?"}
        state = await c.threads.get_state(at)
        assert state["interrupts"][0]["value"] == {"question": f"approve {marker}?"}
        done = await c.runs.wait(at, "approval", command={"resume": True})
        assert done["result"] == "done" and done["request"] == marker

        # a delayed run: its request waits in the schedule
        delayed = await c.runs.create(t, "steps", input={"log": [marker + "d"]}, after_seconds=0.3)
        final = await c.runs.join(t, delayed["run_id"])
        assert marker + "d" in final["log"]
        in_etcd = await _etcd_values(mesh)

    stored = await _redis_values(mesh.infra.redis_url)
    assert not [v for v in stored if marker.encode() in v], "marker stored in Redis"
    assert in_etcd and not [v for v in in_etcd if marker.encode() in v], "marker in etcd"
    seen = [(s, d) for s, d in tap.messages if marker.encode() in d]
    assert not seen, f"marker in NATS messages on {sorted({s for s, _ in seen})}"
    # and what was looked at is the real thing: the run's events and the tasks, sealed
    events = [d for s, d in tap.messages if s == names.run_events(run_id)]
    assert len(events) >= len(parts) and all(is_sealed(d) for d in events)
    tasks = [d for s, d in tap.messages if s == names.tasks_subject]
    assert tasks and all(is_sealed(d.partition(b"\0")[2]) for d in tasks)  # "msgpack\0" sealed
    assert sum(is_sealed(v) for v in stored) > 10


async def _write_outside(
    mesh: MeshCluster, thread_id: str, codec: PayloadCodec | None, marker: str
) -> None:
    """A step of the thread written by a process with ``codec`` (another key ring, or
    none: data from before the codec was turned on)."""
    r = aioredis.from_url(mesh.infra.redis_url)
    try:
        graph = _steps_builder().compile(
            checkpointer=MeshCheckpointer(r, prefix=mesh.prefix, codec=codec)
        )
        conf = {"configurable": {"thread_id": f"acme:{thread_id}", "steps": 1}}
        await graph.ainvoke({"log": [marker]}, conf)
    finally:
        await r.aclose()


async def _thread(c: Any) -> str:
    t = str((await c.threads.create())["thread_id"])
    await c.runs.wait(t, "steps", input={}, config={"configurable": {"steps": 1}})
    return t


async def test_old_key_and_plain_data_read_and_go_on(mesh: MeshCluster) -> None:
    c = mesh.client()
    for codec, tag in ((PayloadCodec([OLD, NEW]), "old"), (None, "plain")):
        # the thread's first step written with the old key (second in the mesh's ring), or
        # with no codec at all (before it was turned on)
        t = str((await c.threads.create())["thread_id"])
        await _write_outside(mesh, t, codec, tag)
        if codec is None:  # the scans above would see plain text
            assert any(b"plain" in v for v in await _redis_values(mesh.infra.redis_url))
        out = await c.runs.wait(
            t, "steps", input={"log": ["next"]}, config={"configurable": {"steps": 3}}
        )
        assert out["step"] == 3 and out["log"][0] == tag and "next" in out["log"]
        history = await c.threads.get_history(t, limit=20)
        assert history[0]["values"]["step"] == 3 and history[-2]["values"]["log"] == [tag]


async def test_data_sealed_with_a_key_not_in_the_ring_is_a_clear_error(
    mesh: MeshCluster,
) -> None:
    c = mesh.client()
    t = await _thread(c)
    gone = base64.b64encode(GONE).decode()
    await _write_outside(mesh, t, PayloadCodec([GONE, NEW]), "gone")
    with pytest.raises(MeshAPIError) as info:
        await c.threads.get_state(t)
    assert info.value.code() == grpc.StatusCode.DATA_LOSS, info.value
    assert info.value.reason == "PAYLOAD_KEY_UNKNOWN"
    assert "key ring" in info.value.message and gone not in info.value.message
    # a run on it ends as an error saying so (not INTERNAL, not a hang) ...
    with pytest.raises(RunFailedError) as failed:
        await asyncio.wait_for(c.runs.wait(t, "steps", input={}), 30)
    assert "key ring" in failed.value.error_message
    # ... and leaves the thread usable: not busy, deletable
    await assert_eventually(lambda: _not_busy(c, t), message="thread left busy")
    await c.threads.delete(t)


async def _not_busy(c: Any, t: str) -> bool:
    return (await c.threads.get(t))["status"] != "busy"

"""The runtime registry against a real etcd: register, list, update, deregister, expiry."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from mesh_core.adapters.etcd import (
    EtcdKeys,
    EtcdSession,
    RuntimeInfo,
    RuntimeRegistry,
    list_runtimes,
)
from mesh_core.config import InfraSettings
from mesh_core.errors import FailedPreconditionError
from tests.chaos._procs.driver import HelperProcess
from tests.helpers import assert_eventually

pytestmark = pytest.mark.integration

TTL = 2


async def test_register_update_list_deregister(infra_settings: InfraSettings) -> None:
    async with (
        EtcdSession(infra_settings, ttl=TTL) as s1,
        EtcdSession(infra_settings, ttl=TTL) as s2,
    ):
        r1, r2 = RuntimeRegistry(s1), RuntimeRegistry(s2)
        assert await r1.list() == []
        with pytest.raises(FailedPreconditionError):
            await r1.update(running=1)

        await r1.register(RuntimeInfo("rt-1", "127.0.0.1:7001", capacity=4, roles=("owner",)))
        await r2.register(RuntimeInfo("rt-2", "127.0.0.1:7002", capacity=2))
        await r2.update(running=2)

        listed = await r1.list()
        assert listed == [
            RuntimeInfo("rt-1", "127.0.0.1:7001", capacity=4, running=0, roles=("owner",)),
            RuntimeInfo("rt-2", "127.0.0.1:7002", capacity=2, running=2),
        ]
        assert [r.has_room for r in listed] == [True, False]
        raw = await s1.client.get(EtcdKeys(infra_settings.prefix).runtime("rt-1").encode())
        assert raw is not None
        assert raw.lease == s1.lease_id  # bound to the process lease

        await r1.deregister()
        assert [r.runtime_id for r in await r2.list()] == ["rt-2"]
        assert r1.info is None
    # Closing a session revokes its lease: the entry is gone without waiting for the TTL.
    async with EtcdSession(infra_settings, ttl=TTL) as s3:
        assert await RuntimeRegistry(s3).list() == []


async def test_malformed_entries_are_skipped_and_logged(
    infra_settings: InfraSettings, caplog: pytest.LogCaptureFixture
) -> None:
    async with EtcdSession(infra_settings, ttl=TTL) as session:
        keys = EtcdKeys(infra_settings.prefix)
        await session.client.put(keys.runtime("broken").encode(), b"{not json")
        await RuntimeRegistry(session).register(RuntimeInfo("ok", "127.0.0.1:1", capacity=1))
        assert [r.runtime_id for r in await list_runtimes(session.client, keys)] == ["ok"]
        assert "malformed runtime registry entry" in caplog.text
        await session.client.delete(keys.runtime("broken").encode())


async def test_entry_expires_when_its_process_dies(
    infra_settings: InfraSettings, tmp_path: Path
) -> None:
    proc = await HelperProcess.start(
        "rt-dies",
        "tests.chaos._procs.lease_holder",
        [
            "--etcd-url",
            infra_settings.etcd_url,
            "--prefix",
            infra_settings.prefix,
            "--holder-id",
            "rt-dies",
            "--ttl",
            str(TTL),
        ],
        tmp_path,
    )
    try:
        await proc.expect("ready")
        await proc.send("register rt-dies")
        await proc.expect("registered")
        async with EtcdSession(infra_settings, ttl=TTL) as observer:
            registry = RuntimeRegistry(observer)
            assert [r.runtime_id for r in await registry.list()] == ["rt-dies"]

            killed_at = time.monotonic()
            proc.signal(signal.SIGKILL)

            async def gone() -> bool:
                return await registry.list() == []

            await assert_eventually(gone, timeout=TTL + 3, message="dead runtime still listed")
            assert time.monotonic() - killed_at < TTL + 1
    finally:
        await proc.stop()

"""Fixtures: real etcd, nats-server and Valkey/Redis processes on free loopback ports.

The servers start once per test session (each in a temp data dir); every test gets
its own namespace prefix, so tests never see each other's keys, subjects or streams.
Tests that restart or kill a server start their own with ``fresh_infra``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aredis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mesh_core.config import InfraSettings  # noqa: E402
from mesh_core.localservers import BinaryNotFoundError, LocalServers  # noqa: E402
from tests.helpers import unique_prefix  # noqa: E402


def _start(tmp: Path, **kw: bool) -> LocalServers:
    try:
        return LocalServers(tmp, **kw).start()
    except BinaryNotFoundError as exc:
        pytest.skip(f"missing server binary: {exc}")


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServers]:
    servers = _start(tmp_path_factory.mktemp("infra"))
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def fresh_infra(tmp_path: Path) -> Iterator[LocalServers]:
    """Servers of this test alone (for tests that restart, pause or kill them)."""
    servers = _start(tmp_path / "infra")
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def durable_infra(tmp_path: Path) -> Iterator[LocalServers]:
    """Servers of this test alone, Valkey with an append-only file (restarts keep data)."""
    servers = _start(tmp_path / "infra", redis_aof=True)
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
def infra_settings(infra: LocalServers, prefix: str) -> InfraSettings:
    return InfraSettings(
        etcd_url=infra.etcd_url, nats_url=infra.nats_url, redis_url=infra.redis_url, prefix=prefix
    )


@pytest.fixture
async def infra_redis(infra: LocalServers) -> AsyncIterator[aredis.Redis]:
    """A plain client of the shared Valkey (admin user): to look at or plant raw values."""
    client = aredis.Redis.from_url(infra.redis_url)
    try:
        yield client
    finally:
        await client.aclose()

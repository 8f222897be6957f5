from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mesh_core.localservers import LocalServers
from tests.e2e.cluster import MeshCluster


@pytest.fixture
async def mesh(infra: LocalServers, prefix: str, tmp_path: Path) -> AsyncIterator[MeshCluster]:
    cluster = MeshCluster(infra, prefix, tmp_path)
    try:
        cluster.start(runtimes=2, gateways=1)
        yield cluster
    finally:
        await cluster.aclose_clients()
        cluster.stop()

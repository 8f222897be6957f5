"""One mesh (2 runtimes, a gateway) shared by the end-to-end tests of a test process.

Tests that only talk to the mesh share it (each uses threads of its own, so they never
see each other's state); tests that kill, pause or reconfigure processes start their
own cluster. Clients a test opens are closed when it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from mesh_core.localservers import LocalServers
from tests.e2e.cluster import MeshCluster
from tests.helpers import unique_prefix


@pytest.fixture(scope="session")
def shared_mesh(
    infra: LocalServers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MeshCluster]:
    cluster = MeshCluster(infra, unique_prefix("e2e"), tmp_path_factory.mktemp("mesh"))
    try:
        cluster.start(runtimes=2, gateways=1)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def mesh(shared_mesh: MeshCluster) -> AsyncIterator[MeshCluster]:
    try:
        yield shared_mesh
    finally:
        await shared_mesh.aclose_clients()

"""One mesh for the whole equivalence module (per cluster variant), one client per test.

Rerunning the suite on another cluster config (e.g. remote task execution): in a new test
module, import ``test_equivalent`` from ``test_equivalence`` and override the
``equivalence_variant`` fixture there::

    from tests.e2e.equivalence.harness import ClusterVariant
    from tests.e2e.equivalence.test_equivalence import test_equivalent  # noqa: F401

    @pytest.fixture(scope="module")
    def equivalence_variant() -> ClusterVariant:
        return ClusterVariant("remote-tasks", runtime_args=("--flag",), env={"LGMESH_X": "1"})
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

pytest.register_assert_rewrite("tests.e2e.equivalence.harness")

from mesh_client import MeshClient  # noqa: E402
from mesh_core.localservers import LocalServers  # noqa: E402
from tests.e2e.cluster import MeshCluster  # noqa: E402
from tests.e2e.equivalence.harness import ClusterVariant, start_mesh  # noqa: E402


@pytest.fixture(scope="module")
def equivalence_variant() -> ClusterVariant:
    return ClusterVariant("default")


@pytest.fixture(scope="module")
def equivalence_mesh(
    infra: LocalServers,
    equivalence_variant: ClusterVariant,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[MeshCluster]:
    cluster = start_mesh(
        infra, tmp_path_factory.mktemp(f"eq-{equivalence_variant.name}"), equivalence_variant
    )
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def eq_client(equivalence_mesh: MeshCluster) -> AsyncIterator[MeshClient]:
    client = MeshClient(equivalence_mesh.gateways[0].address, "acme-key")
    try:
        yield client
    finally:
        await client.close()

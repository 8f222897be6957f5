"""The equivalence suite again with every task of every run executed by remote workers.

(The default mesh already sends Send tasks to workers; here ``--remote all`` opts every
node in, and one runtime is a pure worker so tasks really cross processes.)
"""

from __future__ import annotations

import pytest

from tests.e2e.equivalence.harness import ClusterVariant
from tests.e2e.equivalence.test_equivalence import test_equivalent  # noqa: F401  (re-run here)


@pytest.fixture(scope="module")
def equivalence_variant() -> ClusterVariant:
    return ClusterVariant("remote-all", runtime_args=("--remote", "all"), runtimes=2, workers=1)


from tests.e2e.equivalence.test_thread_equivalence import (  # noqa: E402, F401  (re-run here)
    test_thread_ops_equivalent,
)

"""`lgmesh dev` (the README's first command) brings the whole mesh up and the demo succeeds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_lgmesh_dev_runs_the_demo() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mesh_cli", "dev", "--demo-only", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "LangGraph Mesh is up" in out
    assert "planner chose 3 topics" in out
    assert out.count("researcher finished") == 3
    assert "== 3 findings merged; run success" in out
    for name in ("llm-gateway", "tools", "runtime-1", "runtime-2", "gateway"):
        assert f"{name:>12} | " in out, name
    assert "\x1b[" not in out  # no colour codes when not on a terminal

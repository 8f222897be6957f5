"""The README's first command, verbatim, in a fresh clone: a new venv, ``pip install``,
then ``lgmesh dev`` with its demo. Bounded: ``--demo`` becomes ``--demo-only`` (the
same demo, then it exits), and the gateway takes any free port (``LGMESH_DEV_PORT=0``
in the environment, so it meets no other mesh on this machine).

It installs the whole project into a new venv, which takes minutes, so it is marked
``readme`` and left out of the default run; ``.ci/run`` runs it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.readme import ROOT, first_command
from tests.helpers import process_alive

pytestmark = [pytest.mark.readme, pytest.mark.e2e, pytest.mark.slow]


def _running_from(path: Path) -> list[str]:
    """Processes whose command line names ``path`` (the clone's venv, its temp dir)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmdline and process_alive(int(entry.name)):
            out.append(f"{entry.name}: {cmdline[:200]}")
    return out


@pytest.mark.timeout(1500)
def test_the_first_command_in_a_fresh_clone(tmp_path: Path) -> None:
    command = first_command()
    assert command.endswith(".venv/bin/lgmesh dev --demo"), command
    bounded = command.removesuffix("--demo") + "--demo-only"
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LGMESH_", "VIRTUAL_ENV"))}
    env.update(TMPDIR=str(tmpdir), LGMESH_DEV_PORT="0")
    proc = subprocess.run(
        ["bash", "-c", bounded],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=1400,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "LangGraph Mesh is up" in out
    assert "== 3 findings merged; run success" in out
    deadline = time.monotonic() + 5
    while _running_from(clone) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running_from(clone), "left running after lgmesh dev exited"
    left = [p.name for p in tmpdir.iterdir()]
    assert not [n for n in left if n.startswith("lgmesh")], left

"""The committed stubs match the .proto sources."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_do_not_drift() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_proto_package_is_python_import_path() -> None:
    from lgmesh.api.v1 import runs_pb2
    from lgmesh.runtime.v1 import runtime_pb2

    assert runs_pb2.DESCRIPTOR.package == "lgmesh.api.v1"
    assert runtime_pb2.DESCRIPTOR.package == "lgmesh.runtime.v1"

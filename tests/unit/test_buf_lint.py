"""`buf lint` with the STANDARD rules passes on every .proto (buf comes from npm: @bufbuild/buf)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _buf() -> str:
    for cand in (
        os.environ.get("LGMESH_BUF_BIN"),
        str(ROOT / ".tools" / "node_modules" / ".bin" / "buf"),
        shutil.which("buf"),
    ):
        if cand and Path(cand).exists():
            return cand
    pytest.skip(
        "missing buf binary: run `npm install --prefix .tools @bufbuild/buf@1.75.0` (.ci/run does)"
    )


def test_buf_lint_standard() -> None:
    proc = subprocess.run(
        [_buf(), "lint", "protos"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

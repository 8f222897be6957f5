#!/usr/bin/env python
"""Regenerate the Python stubs (with .pyi) under protos/gen from protos/lgmesh.

python scripts/gen_protos.py          # write
python scripts/gen_protos.py --check  # exit 1 if the committed stubs drift
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "protos"
OUT = ROOT / "protos" / "gen"


def generate(out: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    files = sorted(str(p.relative_to(SRC)) for p in (SRC / "lgmesh").rglob("*.proto"))
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{SRC}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Every directory is a regular package so setuptools and mypy find the stubs.
    for d in [p for p in (out / "lgmesh").rglob("*") if p.is_dir()] + [out / "lgmesh"]:
        (d / "__init__.py").touch()


def _tree(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="fail if stubs drift from sources")
    ns = parser.parse_args()
    if ns.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp)
            generate(fresh)
            want, have = _tree(fresh), _tree(OUT)
            drift = sorted(set(want) ^ set(have))
            drift += [
                k for k in want if k in have and not filecmp.cmp(want[k], have[k], shallow=False)
            ]
            if drift:
                print("generated stubs drift from protos/: " + ", ".join(drift))
                print("run: python scripts/gen_protos.py")
                return 1
            print("stubs up to date")
            return 0
    if (OUT / "lgmesh").exists():
        shutil.rmtree(OUT / "lgmesh")
    generate(OUT)
    print(f"wrote {OUT / 'lgmesh'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

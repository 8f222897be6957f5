"""Start helper processes and talk to them line by line (JSON events out, commands in)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

ROOT = Path(__file__).resolve().parents[3]


def _open_log(path: Path) -> BinaryIO:
    return path.open("wb")


class HelperProcess:
    """One ``python -m <module>`` child; ``events`` are its stdout JSON lines."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.stderr_path = stderr_path

    @classmethod
    async def start(cls, name: str, module: str, args: list[str], log_dir: Path) -> HelperProcess:
        stderr_path = log_dir / f"{name}.stderr"
        with _open_log(stderr_path) as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        return cls(name, proc, stderr_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:]

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def next_event(self, timeout: float = 10.0) -> tuple[dict[str, Any], float]:
        """The next JSON event and the (test-process monotonic) time it arrived."""
        assert self.proc.stdout is not None
        try:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: no event within {timeout}s; stderr:\n{self.stderr()}"
            ) from None
        if not raw:
            raise AssertionError(f"{self.name} exited; stderr:\n{self.stderr()}")
        return json.loads(raw), time.monotonic()

    async def expect(
        self, event: str, timeout: float = 10.0, *, skip: frozenset[str] = frozenset()
    ) -> tuple[dict[str, Any], float]:
        """The next event, which must be ``event`` (events named in ``skip`` are passed
        over, e.g. "lost": a session may be lost, healed and lost again under load)."""
        got, at = await self.next_event(timeout)
        while got["event"] in skip:
            got, at = await self.next_event(timeout)
        assert got["event"] == event, f"{self.name}: expected {event!r}, got {got}"
        return got, at

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    async def stop(self) -> None:
        """Kill this child (and only it) if it is still running, and reap it."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 10)

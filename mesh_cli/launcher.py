"""Run mesh services as child processes: ``lgmesh dev`` and the end-to-end tests use this.

Each service prints ``LGMESH_READY <kind> <address>`` once it serves; :class:`ServiceProcess`
waits for that line, prefixes the child's log lines with its name, and stops it with
SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

__all__ = ["ServiceProcess", "free_port"]

from mesh_core.localservers import find_free_port as free_port

_COLORS = ["36", "35", "33", "32", "34", "91", "96", "95"]
# tool_svc and llm_gateway_svc announce themselves as "<name> ready port=N ...".
_READY_PORT = re.compile(r"^\S+ ready port=(\d+)")


class ServiceProcess:
    """One service as a child process running ``python -m mesh_core.cli <args>``."""

    _n = 0

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        env: Mapping[str, str],
        *,
        log_file: Path | None = None,
        echo: Callable[[str], None] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = {
            **os.environ,
            **env,
            "PYTHONUNBUFFERED": "1",
            "LGMESH_DIE_WITH_PARENT": str(os.getpid()),
        }
        self.log_file = log_file
        self.echo = echo
        self.cwd = cwd
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen[str] | None = None
        self.address = ""
        self._ready = threading.Event()
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None
        ServiceProcess._n += 1
        self._color = _COLORS[ServiceProcess._n % len(_COLORS)]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mesh_core.cli", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out = "\n".join(self._lines[-40:])
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{out}")
        return self

    def _read(self, stream: IO[str] | None) -> None:
        if stream is None:
            return
        log = open(self.log_file, "a") if self.log_file else None  # noqa: SIM115
        try:
            for line in stream:
                line = line.rstrip("\n")
                self._lines.append(line)
                if len(self._lines) > 2000:
                    del self._lines[:1000]
                if line.startswith("LGMESH_READY"):
                    parts = line.split()
                    self.address = parts[2] if len(parts) > 2 else ""
                    self._ready.set()
                elif not self._ready.is_set() and (m := _READY_PORT.match(line)):
                    self.address = f"{self.host}:{m.group(1)}"
                    self._ready.set()
                if log is not None:
                    log.write(line + "\n")
                    log.flush()
                if self.echo is not None:
                    self.echo(f"\x1b[{self._color}m{self.name:>12}\x1b[0m | {line}")
        finally:
            if log is not None:
                log.close()

    def output(self) -> str:
        return "\n".join(self._lines)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, grace: float = 10.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

"""Run mesh services as child processes: ``lgmesh dev``, the tests and the benchmarks.

A service announces readiness on a pipe the launcher passes it (``LGMESH_READY_FD``):
one JSON line with its address, pid and metrics port, so nothing internal appears in
its log. :class:`ServiceProcess` waits for that line, prefixes the child's log lines
with its name (in colour on a terminal), and stops it with SIGTERM, then SIGKILL.
Children die with the launcher, however it ends: they ask for SIGTERM when their parent
dies (``LGMESH_DIE_WITH_PARENT``), and the launcher's
:class:`~mesh_core.localservers.ProcessWatchdog` kills whatever is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from mesh_core.localservers import ProcessWatchdog, die_with_parent
from mesh_core.localservers import find_free_port as free_port

__all__ = [
    "ServiceProcess",
    "ServiceStartError",
    "die_with_parent",
    "free_port",
    "start_all",
    "stop_all",
]

_COLORS = ["36", "35", "33", "32", "34", "91", "96", "95"]


class ServiceStartError(RuntimeError):
    """A service exited, or did not get ready in time, before it served."""

    def __init__(self, name: str, why: str, output: str) -> None:
        super().__init__(f"{name} did not start ({why}); its last lines:\n{output}")
        self.name = name
        self.why = why
        self.output = output


def start_all(procs: Sequence[ServiceProcess], timeout: float = 60.0) -> None:
    """Start several services at once and wait for all of them (stopping all if one fails)."""
    try:
        for p in procs:
            p.spawn()
        for p in procs:
            p.wait_ready(timeout)
    except BaseException:
        for p in procs:
            with contextlib.suppress(Exception):
                p.stop()
        raise


def stop_all(procs: Sequence[ServiceProcess], grace: float = 10.0) -> None:
    """SIGTERM several services at once, then wait for each (SIGKILL after ``grace``)."""
    for p in procs:
        p.signal(signal.SIGCONT)
        p.signal(signal.SIGTERM)
    for p in procs:
        with contextlib.suppress(Exception):
            p.stop(grace)


class ServiceProcess:
    """One service as a child process running ``python -m mesh_cli <args>`` (``module``:
    another module that announces readiness the same way, e.g. a test's stub server)."""

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
        color: bool = False,
        wrapper: Sequence[str] = (),
        module: str = "mesh_cli",
    ) -> None:
        """``wrapper``: a command the service runs under (tests: ``ip netns exec NS``)."""
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
        self.color = color
        self.wrapper = list(wrapper)
        self.module = module
        self.proc: subprocess.Popen[str] | None = None
        self.address = ""
        self.ready_info: dict[str, Any] = {}
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None
        self._ready_r: int | None = None
        ServiceProcess._n += 1
        self._color = _COLORS[ServiceProcess._n % len(_COLORS)]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        """Start the service and wait until it serves (:class:`ServiceStartError` if not)."""
        return self.spawn().wait_ready(timeout)

    def spawn(self) -> ServiceProcess:
        """Start the process without waiting; :meth:`wait_ready` waits (start several
        services first, then wait for all: they boot in parallel)."""
        ready_r, ready_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [*self.wrapper, sys.executable, "-m", self.module, *self.args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                env={**self.env, "LGMESH_READY_FD": str(ready_w)},
                cwd=self.cwd,
                start_new_session=True,
                pass_fds=(ready_w,),
            )
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
        ProcessWatchdog.for_this_process().watch(self.proc.pid)
        self._ready_r = ready_r
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()
        return self

    def wait_ready(self, timeout: float = 60.0) -> ServiceProcess:
        assert self.proc is not None and self._ready_r is not None, "spawn() first"
        try:
            line = self._await_ready(self._ready_r, timeout)
        finally:
            os.close(self._ready_r)
            self._ready_r = None
        if line is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(1.0)  # it closed the pipe as it died: its exit code
            code = self.proc.poll()
            if self._reader is not None:
                self._reader.join(1.0)  # its last lines
            self.stop()
            why = f"exited with code {code}" if code is not None else f"not ready in {timeout:g}s"
            raise ServiceStartError(self.name, why, "\n".join(self._lines[-40:]))
        self.ready_info = json.loads(line)
        self.address = str(self.ready_info.get("address") or "")
        return self

    def _await_ready(self, fd: int, timeout: float) -> str | None:
        """The JSON line the service writes once it serves (None: it died or timed out)."""
        assert self.proc is not None
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            readable, _, _ = select.select([fd], [], [], 0.1)
            if readable:
                chunk = os.read(fd, 4096)
                if not chunk:  # the child closed it: ready line written, or it exited
                    break
                buf += chunk
                if b"\n" in buf:
                    return buf.split(b"\n", 1)[0].decode()
            elif self.proc.poll() is not None:
                break
        return buf.split(b"\n", 1)[0].decode() if b"\n" in buf else None

    @property
    def metrics_port(self) -> int | None:
        port = self.ready_info.get("metrics_port")
        return int(port) if port else None

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
                if log is not None:
                    log.write(line + "\n")
                    log.flush()
                if self.echo is not None:
                    tag = f"{self.name:>12}"
                    if self.color:
                        tag = f"\x1b[{self._color}m{tag}\x1b[0m"
                    self.echo(f"{tag} | {line}")
        finally:
            if log is not None:
                log.close()

    def output(self) -> str:
        return "\n".join(self._lines)

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        return None if self.proc is None else self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            ProcessWatchdog.for_this_process().forget(self.proc.pid)

    def stop(self, grace: float = 10.0) -> None:
        if self._ready_r is not None:
            os.close(self._ready_r)
            self._ready_r = None
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        ProcessWatchdog.for_this_process().forget(proc.pid)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

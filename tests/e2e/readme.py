"""The README's commands as data, and ``lgmesh dev`` as a process the tests can watch.

``lgmesh dev`` runs in a network namespace of its own when the test process may make
one (root, ``ip netns``): there its gateway takes the README's port, 127.0.0.1:50051,
without meeting another mesh on this machine, and the namespace's process list is
exactly what ``lgmesh dev`` started. Elsewhere it runs on a free port, the commands get
that port instead of 50051, and its processes are found by parentage.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from mesh_core.localservers import ProcessWatchdog, find_free_port
from tests.helpers import process_alive

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_PORT = 50051


def bash_blocks(text: str) -> list[tuple[str, str]]:
    """Every ```bash block of a Markdown text: (the heading above it, its body)."""
    out: list[tuple[str, str]] = []
    heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.strip() == "```bash":
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            out.append((heading, "\n".join(lines[i + 1 : j])))
            i = j
        i += 1
    return out


def readme_commands() -> list[str]:
    """Every shell command of the README after its first block (the install commands),
    in order."""
    return [c for _, body in bash_blocks(README.read_text())[1:] for c in shell_commands(body)]


def first_command() -> str:
    """The README's first command (without its comment)."""
    first = bash_blocks(README.read_text())[0][1].splitlines()[0]
    return first.split("  #", 1)[0].strip()


def shell_commands(block: str) -> list[str]:
    """Split a shell block into whole commands: comment lines dropped, continuation
    lines (a trailing backslash, or a quote still open) joined verbatim."""
    out: list[str] = []
    buf = ""
    for line in block.splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buf = f"{buf}\n{line}" if buf else line
        if buf.endswith("\\"):
            continue
        try:
            shlex.split(buf)
        except ValueError:  # an open quote: the command goes on
            continue
        out.append(buf)
        buf = ""
    assert not buf, f"unterminated command: {buf!r}"
    return out


def lgmesh_argv() -> list[str]:
    script = Path(sys.executable).parent / "lgmesh"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mesh_cli"]


def netns_available() -> bool:
    if not shutil.which("ip") or os.geteuid() != 0:
        return False
    probe = f"lgm-probe-{uuid.uuid4().hex[:6]}"
    ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ok


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rpartition(")")[2].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class DevProcess:
    """``lgmesh dev`` with its output collected line by line."""

    def __init__(self, args: list[str], tmpdir: Path, *, netns: bool) -> None:
        self.tmpdir = tmpdir  # its TMPDIR: the temp dir it makes goes here
        self.ns = f"lgm-dev-{uuid.uuid4().hex[:8]}" if netns else ""
        self.port = README_PORT if netns else find_free_port()
        self.lines: list[str] = []
        self._cond = threading.Condition()
        if self.ns:
            subprocess.run(["ip", "netns", "add", self.ns], check=True)
            self.exec(["ip", "link", "set", "lo", "up"], check=True)
        wrapper = ["ip", "netns", "exec", self.ns] if self.ns else []
        self.proc = subprocess.Popen(
            [*wrapper, *lgmesh_argv(), "dev", "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env={**os.environ, "TMPDIR": str(tmpdir), "PYTHONUNBUFFERED": "1"},
        )
        ProcessWatchdog.for_this_process().watch(self.proc.pid)  # if this test process dies
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(text in line for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"no {text!r} from lgmesh dev:\n{self.output[-5000:]}")
                self._cond.wait(min(left, 0.5))

    def exec(self, argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        """Run a command where ``lgmesh dev`` runs (its network namespace, if any)."""
        wrapper = ["ip", "netns", "exec", self.ns] if self.ns else []
        return subprocess.run([*wrapper, *argv], capture_output=True, text=True, **kw)  # type: ignore[call-overload,no-any-return]

    def processes(self) -> list[int]:
        """What ``lgmesh dev`` started that is still running (itself excluded)."""
        if self.ns:
            out = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True)
            return [
                int(p)
                for p in out.stdout.split()
                if int(p) != self.proc.pid and process_alive(int(p))
            ]
        return [p for p in _children(self.proc.pid) if process_alive(p)]

    def signal_and_watch(self, sig: int, within: float) -> tuple[list[int], float]:
        """Send ``sig``; wait until every process it started is gone (at most ``within``
        seconds). Returns the processes left and the seconds it took."""
        started = self.processes() if not self.ns else []
        t0 = time.monotonic()
        os.kill(self.proc.pid, sig)
        left = started
        while time.monotonic() - t0 < within:
            left = self.processes() if self.ns else [p for p in started if process_alive(p)]
            if not left and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        return left, time.monotonic() - t0

    def temp_dirs(self) -> list[str]:
        return sorted(p.name for p in self.tmpdir.iterdir())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.ns:
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


@contextlib.contextmanager
def lgmesh_dev(args: list[str], tmpdir: Path, *, netns: bool) -> Iterator[DevProcess]:
    dev = DevProcess(args, tmpdir, netns=netns)
    try:
        yield dev
    finally:
        dev.close()


def for_port(command: str, port: int) -> str:
    """The README's command, pointed at ``port`` instead of 50051 (when not in a netns)."""
    return re.sub(rf"127\.0\.0\.1:{README_PORT}\b", f"127.0.0.1:{port}", command)

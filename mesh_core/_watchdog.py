"""Processes and temp dirs that die with their launcher, however the launcher ends.

A launcher (``lgmesh dev``, a test process, a benchmark) starts etcd, nats-server,
valkey and mesh services as children in sessions of their own, so Ctrl-C and a closed
terminal reach only the launcher, which stops them in order. When the launcher itself
is killed (SIGKILL, an OOM kill, a crash) nothing of it runs any more, and its children
would live on under PID 1. This module closes that gap with a watchdog: one small
process per launcher that reads a pipe only the launcher holds. The launcher writes
``watch <pid>`` for each child it starts and ``dir <path>`` for each temp dir it owns;
when the pipe reaches end-of-file (the launcher exited, whatever the way) the watchdog
sends SIGTERM to the children still alive, SIGKILL after a short grace, removes the
dirs and exits.

Why not the usual alternatives:

* ``preexec_fn=prctl(PR_SET_PDEATHSIG)`` forks the launcher with ``fork()`` instead of
  ``posix_spawn``/``vfork`` and runs Python in the child; a launcher running gRPC (or any
  other) threads can deadlock or crash there.
* ``PR_SET_PDEATHSIG`` set in an exec wrapper fires when the *thread* that started the
  child exits, not the process: a server started from ``asyncio.to_thread`` would be
  killed when that pool thread retires.
* The watchdog is tied to the launcher's open file descriptor, which the kernel closes
  when the process ends, for every way of ending. It costs one ``python -I`` process,
  once per launcher (not per child): about 12 MB resident and 50-130 ms of start-up
  CPU on the 2-core development machine, which the launcher does not wait for; after
  a SIGKILL of the launcher its children are gone in well under a second.

A pid may be reused after its process ended: the watchdog remembers each child's start
time (``/proc/<pid>/stat``) and signals only a process that still has it.

Run as a script (``python -I _watchdog.py``): it imports only the standard library.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

__all__ = ["ProcessWatchdog"]

#: Seconds between SIGTERM and SIGKILL once the launcher is gone.
DEFAULT_GRACE = 3.0


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (None: no such process, or not Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rpartition(b")")[2].split()
    return fields[19].decode() if len(fields) > 19 else None


class ProcessWatchdog:
    """The launcher's side: one watchdog process per launcher process, started lazily.

    ``watch(pid)`` / ``forget(pid)`` for children, ``own_dir(path)`` / ``disown_dir(path)``
    for temp dirs removed when the launcher dies. Thread-safe; a forked child of the
    launcher gets a watchdog of its own.
    """

    _lock = threading.Lock()
    _instance: ProcessWatchdog | None = None

    def __init__(self, grace: float = DEFAULT_GRACE) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-I", __file__, str(grace)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # neither Ctrl-C nor a closed terminal reaches it
            close_fds=True,
        )
        self._pid = os.getpid()
        self._write_lock = threading.Lock()

    @classmethod
    def for_this_process(cls) -> ProcessWatchdog:
        with cls._lock:
            wd = cls._instance
            if wd is None or wd._pid != os.getpid() or wd._proc.poll() is not None:
                wd = cls._instance = cls()
            return wd

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _send(self, line: str) -> None:
        stdin = self._proc.stdin
        if stdin is None:
            return
        with self._write_lock, contextlib.suppress(OSError, ValueError):
            stdin.write(line.encode() + b"\n")
            stdin.flush()

    def watch(self, pid: int) -> None:
        self._send(f"watch {pid}")

    def forget(self, pid: int) -> None:
        self._send(f"forget {pid}")

    def own_dir(self, path: str | os.PathLike[str]) -> None:
        self._send(f"dir {os.fspath(path)}")

    def disown_dir(self, path: str | os.PathLike[str]) -> None:
        self._send(f"undir {os.fspath(path)}")


# -- the watchdog process ------------------------------------------------------------------
def _signal(pid: int, started: str | None, sig: int) -> bool:
    """Signal ``pid`` (its whole group when it leads one) if it is still the same process."""
    if started is None or _start_time(pid) != started:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
        return True
    return False


def _reap(children: dict[int, str | None], dirs: list[str], grace: float) -> None:
    for pid, started in children.items():
        _signal(pid, started, signal.SIGCONT)  # a paused process cannot exit
        _signal(pid, started, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = dict(children)
    while alive and time.monotonic() < deadline:
        alive = {p: s for p, s in alive.items() if s is not None and _start_time(p) == s}
        if alive:
            time.sleep(0.05)
    for pid, started in alive.items():
        _signal(pid, started, signal.SIGKILL)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def _main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # only the end of the pipe ends us
    grace = float(argv[0]) if argv else DEFAULT_GRACE
    children: dict[int, str | None] = {}
    dirs: list[str] = []
    for raw in sys.stdin.buffer:
        verb, _, arg = raw.decode(errors="replace").rstrip("\n").partition(" ")
        if verb == "watch" and arg.isdigit():
            children[int(arg)] = _start_time(int(arg))
        elif verb == "forget" and arg.isdigit():
            children.pop(int(arg), None)
        elif verb == "dir" and arg:
            dirs.append(arg)
        elif verb == "undir" and arg in dirs:
            dirs.remove(arg)
    _reap(children, dirs, grace)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

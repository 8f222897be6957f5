"""Start the OpenAI stub and gateway replicas as real processes (tests, benchmarks).

Children run from the repository root with it on ``PYTHONPATH``, so test helpers
(``tests.support.*``) import as modules there without being part of the product.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

__all__ = ["ServiceProcess", "gateway_in_thread", "start_gateway", "start_openai_stub"]

ROOT = Path(__file__).resolve().parents[2]
_READY = re.compile(rb"ready port=(\d+)(?: metrics_port=(-?\d+))?")


@dataclass
class ServiceProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    metrics_port: int = -1
    _log: Any = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """For the OpenAI stub: the base URL a provider config points at."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- OpenAI stub admin ---------------------------------------------------------------
    def add_faults(self, model: str, faults: list[dict[str, Any]], *, repeat: bool = False) -> None:
        r = httpx.post(
            f"http://127.0.0.1:{self.port}/admin/faults",
            json={"model": model, "faults": faults, "repeat": repeat},
        )
        r.raise_for_status()

    def stats(self) -> dict[str, Any]:
        r = httpx.get(f"http://127.0.0.1:{self.port}/admin/stats")
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc

    def hits(self, model: str) -> int:
        return int(self.stats()["by_model"].get(model, 0))

    # -- lifecycle ---------------------------------------------------------------------
    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait; SIGKILL if it does not exit. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
        return int(self.proc.returncode)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _pythonpath() -> str:
    rest = os.environ.get("PYTHONPATH", "")
    return str(ROOT) + (os.pathsep + rest if rest else "")


def _start(
    argv: list[str], env: Mapping[str, str] | None, timeout: float, *, ready_fd: bool = False
) -> ServiceProcess:
    """Start ``python <argv>``; ready when it prints ``ready port=N`` or, with
    ``ready_fd``, writes its JSON readiness line on the fd passed as LGMESH_READY_FD."""
    log_path = Path(tempfile.mkstemp(prefix="lgmesh-llm-", suffix=".log")[1])
    log = open(log_path, "ab")  # noqa: SIM115 - closed in terminate()
    r, w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, *argv],
        stdout=log if ready_fd else subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        env={
            **os.environ,
            "PYTHONPATH": _pythonpath(),
            **(env or {}),
            "LGMESH_READY_FD": str(w),
        },
        cwd=ROOT,
        start_new_session=True,
        pass_fds=(w,),
    )
    os.close(w)
    source = r if ready_fd else proc.stdout.fileno()  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([source], [], [], 0.1)
            if ready:
                data = os.read(source, 4096)
                buf += data
                if ready_fd and b"\n" in buf:
                    info = json.loads(buf.split(b"\n", 1)[0])
                    port = int(str(info["address"]).rpartition(":")[2])
                    metrics = int(info.get("metrics_port") or -1)
                    return ServiceProcess(proc, port, log_path, metrics, log)
                m = None if ready_fd else _READY.search(buf)
                if m:
                    metrics = int(m.group(2)) if m.group(2) else -1
                    return ServiceProcess(proc, int(m.group(1)), log_path, metrics, log)
                if not data and proc.poll() is not None:
                    break
            elif proc.poll() is not None:
                break
    finally:
        os.close(r)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait(5)
    log.close()
    raise RuntimeError(f"{argv[1]} did not start: {log_path.read_text(errors='replace')[-2000:]}")


def start_openai_stub(timeout: float = 20.0) -> ServiceProcess:
    return _start(["-m", "tests.support.openai_stub", "--port", "0"], None, timeout)


def start_gateway(
    config_path: str | Path,
    *,
    redis_url: str,
    prefix: str,
    port: int = 0,
    metrics_port: int = -1,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> ServiceProcess:
    env = {"LGMESH_REDIS_URL": redis_url, "LGMESH_PREFIX": prefix, **(extra_env or {})}
    argv = ["-m", "mesh_cli", "llm-gateway", "--port", str(port)]
    if metrics_port >= 0:
        argv += ["--metrics-port", str(metrics_port)]
    argv += ["--config", str(config_path), "--drain-grace", "2"]
    return _start(argv, env, timeout, ready_fd=True)


@contextlib.contextmanager
def gateway_in_thread(settings: Any, store: Any = None) -> Iterator[str]:
    """An in-process gateway on its own event loop thread; yields its address.

    For sync callers (LangChain's invoke/stream) and module-scoped fixtures: the
    server's loop outlives each test's loop.
    """
    import asyncio
    import threading

    from llm_gateway_svc import LlmGatewayServer

    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    ports: list[int] = []
    errors: list[BaseException] = []

    async def run() -> None:
        try:
            server = LlmGatewayServer(settings, store=store)  # grpc.aio binds to this loop
            await server.start()
            ports.append(server.port)
        except BaseException as exc:
            errors.append(exc)
            raise
        finally:
            started.set()
        await stop.wait()
        await server.stop(grace=0)

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert started.wait(30), "the gateway did not start"
    if errors:
        raise errors[0]
    try:
        yield f"127.0.0.1:{ports[0]}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)

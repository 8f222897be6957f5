"""Start the OpenAI stub and LLM gateway replicas as real processes (tests, benchmarks),
with the mesh's one launcher (``mesh_cli.launcher.ServiceProcess``).

Children run from the repository root, so test helpers (``tests.support.*``) import as
modules there without being part of the product. Their output is kept in memory
(``log()``), never in files left behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from mesh_cli.launcher import ServiceProcess

__all__ = ["LlmProcess", "gateway_in_thread", "start_gateway", "start_openai_stub"]

ROOT = Path(__file__).resolve().parents[2]


class LlmProcess(ServiceProcess):
    """The stub or a gateway replica: its port, and the stub's admin endpoints."""

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    @property
    def metrics_port(self) -> int:  # type: ignore[override]
        port = self.ready_info.get("metrics_port")
        return int(port) if port else -1

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
        self.stop(timeout)
        return int(self.poll() or 0)

    def log(self) -> str:
        return self.output()


def start_openai_stub(timeout: float = 20.0) -> LlmProcess:
    proc = LlmProcess(
        "openai-stub", ["--port", "0"], {}, cwd=str(ROOT), module="tests.support.openai_stub"
    )
    return proc.start(timeout)  # type: ignore[return-value]


def start_gateway(
    config_path: str | Path,
    *,
    redis_url: str,
    prefix: str,
    port: int = 0,
    metrics_port: int = -1,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> LlmProcess:
    env = {"LGMESH_REDIS_URL": redis_url, "LGMESH_PREFIX": prefix, **(extra_env or {})}
    argv = ["llm-gateway", "--port", str(port)]
    if metrics_port >= 0:
        argv += ["--metrics-port", str(metrics_port)]
    argv += ["--config", str(config_path), "--drain-grace", "2"]
    return LlmProcess("llm-gateway", argv, env, cwd=str(ROOT)).start(timeout)  # type: ignore[return-value]


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

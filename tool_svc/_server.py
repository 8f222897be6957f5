"""Build and run one tool_svc replica; graceful SIGTERM (NOT_SERVING, drain, stop)."""

from __future__ import annotations

import asyncio
import logging
import signal
from types import TracebackType

from mesh_core.adapters.redis.client import connect_redis
from mesh_core.adapters.redis.keys import RedisKeys
from mesh_core.rpc import MeshServer
from mesh_core.telemetry import start_metrics_server
from tool_svc._engine import ToolEngine
from tool_svc._idempotency import IdempotencyStore
from tool_svc._registry import load_registry
from tool_svc._settings import ToolServiceSettings
from tool_svc.servicer import SERVICE_NAME, ToolServicer, add_to_server

__all__ = ["ToolServer", "serve"]

log = logging.getLogger(__name__)


class ToolServer:
    """One replica: tools loaded, gRPC server (health + reflection), optional /metrics.

    Usage::

        async with ToolServer(settings) as server:
            print(server.port)
    """

    def __init__(self, settings: ToolServiceSettings) -> None:
        self.settings = settings
        self.registry = load_registry(settings)
        self.redis = connect_redis(settings.infra.redis_url)
        self.engine = ToolEngine(
            self.registry,
            idempotency=IdempotencyStore(
                self.redis,
                RedisKeys(settings.infra.prefix),
                ttl=settings.idempotency_ttl,
                lock_ttl=settings.idempotency_lock_ttl,
            ),
            thread_pool_size=settings.thread_pool_size,
        )
        self.server = MeshServer("tool_svc", settings.address)
        self.server.add(add_to_server, ToolServicer(self.engine), SERVICE_NAME)
        self.port = 0
        self.metrics_port: int | None = None

    async def start(self) -> int:
        self.port = await self.server.start()
        if self.settings.metrics_port is not None:
            self.metrics_port = start_metrics_server(
                self.settings.metrics_port, host=self.settings.metrics_host
            )
        log.info(
            "tool_svc serving %d tools on %s:%d", len(self.registry), self.settings.host, self.port
        )
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, refuse new calls, let running ones finish (and record), close."""
        grace = self.settings.drain_grace if grace is None else grace
        await self.server.set_not_serving()
        await self.server.server.stop(grace)
        await self.engine.aclose(timeout=grace)
        await self.redis.aclose()

    async def __aenter__(self) -> ToolServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve(settings: ToolServiceSettings) -> None:
    """Run a replica until SIGTERM/SIGINT, then drain and stop."""
    server = ToolServer(settings)
    await server.start()
    print(f"tool_svc ready port={server.port} metrics_port={server.metrics_port or 0}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("tool_svc draining")
    await server.stop()

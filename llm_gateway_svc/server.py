"""Build and run the LLM gateway: ``serve(settings)`` with graceful SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from lgmesh.llm.v1 import llm_pb2_grpc

from llm_gateway_svc.config import LlmGatewaySettings
from llm_gateway_svc.engine import LlmGateway
from llm_gateway_svc.router import Router
from llm_gateway_svc.servicer import SERVICE_NAME, LlmServicer
from llm_gateway_svc.store import LlmStore, RedisLlmStore
from mesh_core.rpc import MeshServer
from mesh_core.telemetry import start_metrics_server

__all__ = ["LlmGatewayServer", "serve"]

log = logging.getLogger(__name__)


class LlmGatewayServer:
    """The gRPC server of one replica: ``await start()`` -> port, ``await stop()``."""

    def __init__(
        self,
        settings: LlmGatewaySettings,
        *,
        store: LlmStore | None = None,
        router: Router | None = None,
    ) -> None:
        self.settings = settings
        store = store or RedisLlmStore.from_url(settings.infra.redis_url, settings.infra.prefix)
        self.gateway = LlmGateway(settings, store, router)
        self.server = MeshServer("llm_gateway", f"{settings.host}:{settings.port}")
        self.server.add(
            llm_pb2_grpc.add_LlmServiceServicer_to_server, LlmServicer(self.gateway), SERVICE_NAME
        )
        self.port = 0
        self.metrics_port = -1

    async def start(self) -> int:
        self.port = await self.server.start()
        if self.settings.metrics_port >= 0:
            self.metrics_port = start_metrics_server(
                self.settings.metrics_port, host=self.settings.host
            )
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, let in-flight calls finish (up to ``grace``), stop."""
        await self.server.set_not_serving()
        await self.server.stop(self.settings.drain_grace_s if grace is None else grace)
        await self.gateway.aclose()

    async def __aenter__(self) -> LlmGatewayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(grace=0)


async def serve(settings: LlmGatewaySettings, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set), then drain and exit."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    server = LlmGatewayServer(settings)
    port = await server.start()
    # One parseable line for supervisors and tests that start us on port 0.
    print(f"llm_gateway_svc ready port={port} metrics_port={server.metrics_port}", flush=True)
    try:
        await stop.wait()
        log.info("llm_gateway_svc draining (grace %.1fs)", settings.drain_grace_s)
    finally:
        await server.stop()

"""Build and run the LLM gateway: ``serve(settings)`` with graceful SIGTERM."""

from __future__ import annotations

import logging

from lgmesh.llm.v1 import llm_pb2_grpc

from llm_gateway_svc.config import LlmGatewaySettings
from llm_gateway_svc.engine import LlmGateway
from llm_gateway_svc.router import Router
from llm_gateway_svc.servicer import CALLERS, SERVICE_NAME, TENANT_SCOPED, LlmServicer
from llm_gateway_svc.store import LlmStore, RedisLlmStore
from mesh_core.lifecycle import LifecycleSettings, Probe, Service, run_service
from mesh_core.rpc import MeshServer

__all__ = ["LlmGatewayServer", "serve"]

log = logging.getLogger(__name__)


class LlmGatewayServer(Service):
    """The gRPC server of one replica: ``await start()`` -> port, ``await stop()``."""

    def __init__(
        self,
        settings: LlmGatewaySettings,
        *,
        store: LlmStore | None = None,
        router: Router | None = None,
    ) -> None:
        self.settings = settings
        store = store or RedisLlmStore.from_url(
            settings.infra.redis_url, settings.infra.prefix, codec=settings.payload_codec
        )
        self.store = store
        self.gateway = LlmGateway(settings, store, router)
        self._server = MeshServer(
            "llm_gateway",
            f"{settings.host}:{settings.port}",
            interceptors=settings.security.policy(CALLERS, tenant_scoped=TENANT_SCOPED),
            credentials=settings.security.server_credentials(),
        )
        self._server.add(
            llm_pb2_grpc.add_LlmServiceServicer_to_server, LlmServicer(self.gateway), SERVICE_NAME
        )
        self.port = 0
        self._stopped = False

    kind = "llm-gateway"

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}" if self.port else ""

    @property
    def server(self) -> MeshServer:
        return self._server

    def probes(self) -> list[Probe]:
        ping = getattr(self.store, "ping", None)
        return [Probe("redis", ping)] if ping is not None else []

    async def start(self) -> None:
        self.port = await self._server.start()
        self.settings.security.warn_if_plaintext()

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, let in-flight calls finish (up to ``grace``), stop."""
        if self._stopped:
            return
        self._stopped = True
        await self._server.set_not_serving()
        await self._server.stop(self.settings.drain_grace_s if grace is None else grace)
        await self.gateway.aclose()

    async def __aenter__(self) -> LlmGatewayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(grace=0)


async def serve(settings: LlmGatewaySettings, lifecycle: LifecycleSettings) -> None:
    """Run until SIGTERM/SIGINT, then drain and exit."""
    await run_service(LlmGatewayServer(settings), lifecycle)

"""Build and run one tool_svc replica; graceful SIGTERM (NOT_SERVING, drain, stop)."""

from __future__ import annotations

import logging
from types import TracebackType

from mesh_core.adapters.redis.client import connect_redis
from mesh_core.adapters.redis.keys import RedisKeys
from mesh_core.lifecycle import LifecycleSettings, Probe, Service, redis_probe, run_service
from mesh_core.rpc import MeshServer
from tool_svc._engine import ToolEngine
from tool_svc._idempotency import IdempotencyStore
from tool_svc._registry import load_registry
from tool_svc._settings import ToolServiceSettings
from tool_svc.servicer import CALLERS, SERVICE_NAME, TENANT_SCOPED, ToolServicer, add_to_server

__all__ = ["ToolServer", "serve"]

log = logging.getLogger(__name__)


class ToolServer(Service):
    """One replica: tools loaded, gRPC server (health + reflection).

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
                codec=settings.payload_codec,
            ),
            thread_pool_size=settings.thread_pool_size,
            limits=settings.limits,
        )
        self._server = MeshServer(
            "tool_svc",
            settings.address,
            interceptors=settings.security.policy(CALLERS, tenant_scoped=TENANT_SCOPED),
            credentials=settings.security.server_credentials(),
        )
        self._server.add(add_to_server, ToolServicer(self.engine), SERVICE_NAME)
        self.port = 0
        self._stopped = False

    kind = "tools"

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}" if self.port else ""

    @property
    def server(self) -> MeshServer:
        return self._server

    def probes(self) -> list[Probe]:
        return [redis_probe(self.redis)]

    async def start(self) -> None:
        self.port = await self._server.start()
        self.settings.security.warn_if_plaintext()
        log.info(
            "tool_svc serving %d tools on %s:%d", len(self.registry), self.settings.host, self.port
        )

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, refuse new calls, let running ones finish (and record), close."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.drain_grace if grace is None else grace
        await self._server.set_not_serving()
        await self._server.server.stop(grace)
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


async def serve(settings: ToolServiceSettings, lifecycle: LifecycleSettings) -> None:
    """Run a replica until SIGTERM/SIGINT, then drain and stop."""
    await run_service(ToolServer(settings), lifecycle)

"""Bootstrap for every mesh gRPC server: health, reflection (v1 + v1alpha), errors, drain."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2

from mesh_core.rpc._errors import ErrorTranslationInterceptor
from mesh_core.telemetry import GrpcMetricsInterceptor, current_tracing

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


class MeshServer:
    """A grpc.aio server with the health and reflection services every tier exposes.

    Usage::

        server = MeshServer("gateway", "127.0.0.1:0")
        server.add(pb_grpc.add_RunServiceServicer_to_server, servicer, "lgmesh.mesh.v1.RunService")
        await server.start()
        ...
        await server.drain_and_stop(grace=10)
    """

    def __init__(
        self,
        name: str,
        address: str,
        *,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        """``credentials``: TLS (internal services require a client certificate); None
        serves plaintext (the gateway's public port without TLS)."""
        self.name = name
        self.address = address
        self.credentials = credentials
        self.max_message_bytes = max_message_bytes
        self.server = grpc.aio.server(
            interceptors=[
                *current_tracing().server_interceptors(),
                GrpcMetricsInterceptor(),
                *interceptors,
                ErrorTranslationInterceptor(),
            ],
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_time_ms", 20_000),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.keepalive_permit_without_calls", 1),
            ],
        )
        self.health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._services: list[str] = []
        self.port: int = 0
        self._health_server: grpc.aio.Server | None = None

    def add(
        self, register: Callable[[Any, grpc.aio.Server], None], servicer: Any, service_name: str
    ) -> None:
        register(servicer, self.server)
        self._services.append(service_name)

    async def start(self) -> int:
        names = [
            *self._services,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ]
        servicer = reflection.aio.ReflectionServicer(names)
        reflection_pb2_grpc_add(servicer, self.server)
        if self.credentials is not None:
            self.port = self.server.add_secure_port(self.address, self.credentials)
        else:
            self.port = self.server.add_insecure_port(self.address)
        if self.port == 0:
            raise RuntimeError(f"{self.name}: cannot bind {self.address}")
        await self.server.start()
        for svc in self._services:
            await self.health.set(svc, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        log.debug("%s serving on port %d", self.name, self.port)  # the lifecycle says "ready"
        return self.port

    async def serve_plain_health(self, address: str) -> int:
        """Also answer ``grpc.health.v1`` -- and nothing else -- in plaintext on
        ``address``, with this server's health (the kubelet's gRPC probes present no
        client certificate, so they cannot reach a port that requires one). Returns
        the port."""
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        port = server.add_insecure_port(address)
        if port == 0:
            raise RuntimeError(f"{self.name}: cannot bind the health port {address}")
        await server.start()
        self._health_server = server
        return port

    async def set_serving(self, serving: bool) -> None:
        """SERVING or NOT_SERVING for every service of this server (and the overall "")."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for svc in [*self._services, ""]:
            await self.health.set(svc, status)

    async def set_not_serving(self) -> None:
        """Report NOT_SERVING (readiness fails) while RPCs in flight continue."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float | None = 5.0) -> None:
        await self.set_not_serving()
        await self.server.stop(grace)
        if self._health_server is not None:
            await self._health_server.stop(None)

    async def wait(self) -> None:
        await self.server.wait_for_termination()


def reflection_pb2_grpc_add(servicer: Any, server: grpc.aio.Server) -> None:
    """Serve reflection under both the v1alpha and the v1 service names.

    The two protocols are wire-identical (v1 only renamed the package), so the same
    servicer answers both; grpcurl and newer clients try v1 first.
    """
    from grpc_reflection.v1alpha import reflection_pb2_grpc

    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": handler}),)
    )

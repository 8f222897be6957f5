"""Which tier may call which internal RPC.

Each internal server lists, per method (or per service), the tiers whose verified
certificate may call it, e.g. only gateways may ``ExecuteRun`` on a runtime. A caller
with another tier's certificate gets PERMISSION_DENIED; health checks and reflection
stay open to every authenticated peer (probes, grpcurl with a client certificate).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc

from mesh_core.errors import PermissionDeniedError, UnauthenticatedError
from mesh_core.rpc._errors import abort_with
from mesh_core.security._tls import peer_tier

__all__ = ["CallerPolicy"]

_OPEN = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class CallerPolicy(grpc.aio.ServerInterceptor):
    """``allowed``: full method name (``/pkg.Service/Method``) or service prefix
    (``/pkg.Service/``) -> tiers allowed to call it. A method no entry covers is refused."""

    def __init__(self, allowed: Mapping[str, Iterable[str]]) -> None:
        self._allowed = {k: frozenset(v) for k, v in allowed.items()}

    def tiers_for(self, method: str) -> frozenset[str] | None:
        if method.startswith(_OPEN):
            return None  # open
        if method in self._allowed:
            return self._allowed[method]
        service = method.rsplit("/", 1)[0] + "/"
        return self._allowed.get(service, frozenset())

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        tiers = self.tiers_for(method)
        if tiers is None:
            return handler

        async def check(context: grpc.aio.ServicerContext) -> None:
            tier = peer_tier(context)
            if tier is None:
                await abort_with(
                    context,
                    UnauthenticatedError(
                        "this internal service needs a mesh client certificate",
                        reason="PEER_UNAUTHENTICATED",
                    ),
                )
            if tier not in tiers:
                await abort_with(
                    context,
                    PermissionDeniedError(
                        f"the {tier} tier may not call {method}",
                        reason="TIER_NOT_ALLOWED",
                        metadata={"tier": str(tier), "method": method},
                    ),
                )

        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def uu(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await check(context)
                return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(
                uu, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def us(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await check(context)
                async for item in inner_us(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                us, handler.request_deserializer, handler.response_serializer
            )
        return handler

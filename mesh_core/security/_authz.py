"""Which tier may call which internal RPC, and on behalf of which tenant.

Each internal server lists, per method (or per service), the tiers whose verified
certificate may call it, e.g. only gateways may ``ExecuteRun`` on a runtime. A caller
with another tier's certificate gets PERMISSION_DENIED; health checks and reflection
stay open to every authenticated peer (probes, grpcurl with a client certificate).

A method listed as tenant-scoped also needs a valid tenant token
(``x-lgmesh-tenant-token``, see ``_tokens``): missing, forged or expired ->
UNAUTHENTICATED; a request whose ``tenant_id`` field (or ``x-lgmesh-tenant`` header)
names another tenant than the token -> PERMISSION_DENIED. The servicer reads the
verified claims with :func:`verified_tenant` (and the token itself, to pass it on,
with :func:`verified_token`).
"""

from __future__ import annotations

import contextvars
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc

from mesh_core.errors import PermissionDeniedError, UnauthenticatedError
from mesh_core.rpc._errors import abort_with
from mesh_core.security._tls import peer_tier
from mesh_core.security._tokens import TENANT_TOKEN_HEADER, TenantClaims, TenantTokenVerifier

__all__ = ["TENANT_HEADER", "CallerPolicy", "verified_tenant", "verified_token"]

_VERIFIED_MAX = 4096
_OPEN = ("/grpc.health.v1.Health/", "/grpc.reflection.")
#: The plain tenant header some callers also send (the LLM gateway's historical one).
TENANT_HEADER = "x-lgmesh-tenant"

_claims: contextvars.ContextVar[tuple[TenantClaims, str] | None] = contextvars.ContextVar(
    "lgmesh_tenant_claims", default=None
)


def verified_tenant() -> TenantClaims | None:
    """The verified tenant of the RPC being served (None: not a tenant-scoped call, or
    the server runs without internal security)."""
    got = _claims.get()
    return got[0] if got is not None else None


def verified_token() -> str:
    """The verified tenant token of the RPC being served ("" when there is none)."""
    got = _claims.get()
    return got[1] if got is not None else ""


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v.decode(errors="replace") if isinstance(v, bytes) else str(v)
    return ""


class CallerPolicy(grpc.aio.ServerInterceptor):
    """``allowed``: full method name (``/pkg.Service/Method``) or service prefix
    (``/pkg.Service/``) -> tiers allowed to call it. A method no entry covers is refused.

    ``tenant_scoped``: methods that act for a tenant and need a tenant token, checked
    with ``verifier`` (required when any method is tenant-scoped)."""

    def __init__(
        self,
        allowed: Mapping[str, Iterable[str]],
        *,
        tenant_scoped: Iterable[str] = (),
        verifier: TenantTokenVerifier | None = None,
    ) -> None:
        self._allowed = {k: frozenset(v) for k, v in allowed.items()}
        self._scoped = frozenset(tenant_scoped)
        if self._scoped and verifier is None:
            raise ValueError("tenant-scoped methods need a tenant token verifier")
        self._verifier = verifier
        # Tokens already verified (a run's token comes with each of its model and tool
        # calls, a gateway reuses its call tokens): a signature check is ~0.2 ms of CPU.
        self._verified: OrderedDict[str, TenantClaims] = OrderedDict()

    def tiers_for(self, method: str) -> frozenset[str] | None:
        if method.startswith(_OPEN):
            return None  # open
        if method in self._allowed:
            return self._allowed[method]
        service = method.rsplit("/", 1)[0] + "/"
        return self._allowed.get(service, frozenset())

    def is_tenant_scoped(self, method: str) -> bool:
        return method in self._scoped

    async def _check_tier(
        self, context: grpc.aio.ServicerContext, method: str, tiers: frozenset[str]
    ) -> None:
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

    async def _check_tenant(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        assert self._verifier is not None
        token = _metadata(context, TENANT_TOKEN_HEADER)
        claims = self._verified.get(token)
        if claims is None or claims.expires < time.time():
            try:
                claims = self._verifier.verify(token)
            except UnauthenticatedError as exc:
                self._verified.pop(token, None)
                await abort_with(context, exc)
            self._verified[token] = claims
            while len(self._verified) > _VERIFIED_MAX:
                self._verified.popitem(last=False)
        named = {
            "tenant_id": str(getattr(request, "tenant_id", "") or ""),
            TENANT_HEADER: _metadata(context, TENANT_HEADER),
        }
        for where, tenant in named.items():
            if tenant and tenant != claims.tenant:
                await abort_with(
                    context,
                    PermissionDeniedError(
                        f"{where} names another tenant than the caller's tenant token",
                        reason="TENANT_MISMATCH",
                        metadata={"field": where},
                    ),
                )
        _claims.set((claims, token))

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
        scoped = self.is_tenant_scoped(method)
        kind, make = next((k, m) for k, m in _HANDLER_KINDS if getattr(handler, k) is not None)
        inner = getattr(handler, kind)
        # A streamed request has no single tenant_id to compare: no internal RPC is one,
        # and a tenant-scoped one still needs a valid token.
        unary_request = kind.startswith("unary")

        async def check(request: Any, context: grpc.aio.ServicerContext) -> None:
            await self._check_tier(context, method, tiers)
            if scoped:
                await self._check_tenant(request if unary_request else None, context)

        async def streamed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(request, context)
            async for item in inner(request, context):
                yield item

        async def single(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(request, context)
            return await inner(request, context)

        wrapped = streamed if kind.endswith("stream") else single
        return make(wrapped, handler.request_deserializer, handler.response_serializer)


#: grpc.RpcMethodHandler's attribute per kind of RPC, and how to make one of that kind
_HANDLER_KINDS = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", grpc.stream_stream_rpc_method_handler),
)

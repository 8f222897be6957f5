"""gRPC servicer of lgmesh.llm.v1.LlmService: convert, call the engine, convert back."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import grpc
from lgmesh.llm.v1 import llm_pb2, llm_pb2_grpc

from llm_gateway_svc._convert import (
    chunk_to_pb,
    embed_request_from_pb,
    embed_result_to_pb,
    request_from_pb,
    result_to_pb,
    routes_to_pb,
)
from llm_gateway_svc.engine import DEFAULT_TENANT, LlmGateway
from llm_gateway_svc.resilience import Deadline
from mesh_core.errors import FieldViolation, InvalidArgumentError
from mesh_core.security import TENANT_HEADER, verified_tenant

__all__ = [
    "CALLERS",
    "DEFAULT_DEADLINE_S",
    "SERVICE_NAME",
    "TENANT_METADATA_KEY",
    "TENANT_SCOPED",
    "LlmServicer",
]

SERVICE_NAME = "lgmesh.llm.v1.LlmService"
TENANT_METADATA_KEY = TENANT_HEADER
#: Who may call the LLM gateway (``mesh_core.security.CallerPolicy``, with mutual TLS):
#: graph code on runtimes and on workers (remote Send tasks).
CALLERS = {f"/{SERVICE_NAME}/": ("runtime", "worker")}
#: Calls billed to a tenant: they need the run's tenant token (the tenant is the token's,
#: an ``x-lgmesh-tenant`` header naming another is refused). ListModels names no tenant.
TENANT_SCOPED = frozenset(
    f"/{SERVICE_NAME}/{name}" for name in ("Generate", "StreamGenerate", "Embed")
)
# A call without any deadline still gets one: no request may hang forever upstream.
DEFAULT_DEADLINE_S = 300.0
# Give up this long before the caller's deadline so the status (with details)
# still reaches the caller instead of its own bare DEADLINE_EXCEEDED.
_DEADLINE_MARGIN_S = 0.02


def _tenant(context: grpc.aio.ServicerContext) -> str:
    claims = verified_tenant()
    if claims is not None:  # internal security on: the token's tenant, nothing else
        return claims.tenant
    for key, value in context.invocation_metadata() or ():
        if key == TENANT_METADATA_KEY:
            return str(value)
    return DEFAULT_TENANT


# google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_MIN_TS, _MAX_TS = -62_135_596_800, 253_402_300_799


def _deadline(
    context: grpc.aio.ServicerContext,
    req: llm_pb2.GenerateRequest | llm_pb2.StreamGenerateRequest | llm_pb2.EmbedRequest,
) -> Deadline:
    budget = DEFAULT_DEADLINE_S
    remaining = context.time_remaining()
    if remaining is not None:
        budget = min(budget, remaining - min(_DEADLINE_MARGIN_S, remaining / 10))
    if req.HasField("deadline"):
        ts = req.deadline
        # Protobuf raises ValueError on a Timestamp outside its range: say which field.
        if not (0 <= ts.nanos < 1_000_000_000 and _MIN_TS <= ts.seconds <= _MAX_TS):
            raise InvalidArgumentError(
                "deadline is not a valid timestamp",
                [FieldViolation("deadline", "seconds in years 1-9999, nanos in [0, 1e9)")],
            )
        budget = min(budget, ts.ToNanoseconds() / 1e9 - time.time())
    return Deadline.after(budget)


class LlmServicer(llm_pb2_grpc.LlmServiceServicer):
    def __init__(self, gateway: LlmGateway) -> None:
        self.gateway = gateway

    async def Generate(
        self, request: llm_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> llm_pb2.GenerateResponse:
        result = await self.gateway.generate(
            request_from_pb(request), tenant=_tenant(context), deadline=_deadline(context, request)
        )
        return result_to_pb(request.model, result)

    async def StreamGenerate(
        self, request: llm_pb2.StreamGenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[llm_pb2.StreamGenerateResponse]:
        chunks = self.gateway.stream(
            request_from_pb(request), tenant=_tenant(context), deadline=_deadline(context, request)
        )
        # Close the engine's stream at once when the caller goes away (releases the
        # upstream slot, the idempotency claim and the in-flight gauge).
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                yield chunk_to_pb(request.model, chunk)

    async def Embed(
        self, request: llm_pb2.EmbedRequest, context: grpc.aio.ServicerContext
    ) -> llm_pb2.EmbedResponse:
        result = await self.gateway.embed(
            embed_request_from_pb(request),
            tenant=_tenant(context),
            deadline=_deadline(context, request),
        )
        return embed_result_to_pb(request.model, result)

    async def ListModels(
        self, request: llm_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> llm_pb2.ListModelsResponse:
        return routes_to_pb(self.gateway.list_models())

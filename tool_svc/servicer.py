"""gRPC ToolService: validation of request fields, then the engine. Errors are MeshErrors,
translated to gRPC status (with google.rpc details) by mesh_core.rpc's interceptor."""

from __future__ import annotations

import grpc
from lgmesh.tools.v1 import tools_pb2 as pb
from lgmesh.tools.v1 import tools_pb2_grpc as pb_grpc

from mesh_core.errors import FieldViolation, InvalidArgumentError
from mesh_core.security import verified_tenant
from tool_svc._convert import invocation_from_pb, result_to_pb, tool_info_to_pb
from tool_svc._engine import ToolEngine

__all__ = ["CALLERS", "SERVICE_NAME", "TENANT_SCOPED", "ToolServicer", "add_to_server"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ToolService"].full_name
#: Who may call the tool service (``mesh_core.security.CallerPolicy``, with mutual TLS):
#: graph code on runtimes and on workers (remote Send tasks).
CALLERS = {f"/{SERVICE_NAME}/": ("runtime", "worker")}
#: Calls acting for a tenant: InvokeTool needs the run's tenant token naming the
#: request's ``tenant_id`` (its side effects, idempotency keys and fair share are that
#: tenant's). ListTools lists the deployment's tools, which no tenant owns.
TENANT_SCOPED = frozenset({f"/{SERVICE_NAME}/InvokeTool"})
MAX_NAME = 128
MAX_KEY = 512


def add_to_server(servicer: ToolServicer, server: grpc.aio.Server) -> None:
    pb_grpc.add_ToolServiceServicer_to_server(servicer, server)


class ToolServicer(pb_grpc.ToolServiceServicer):
    def __init__(self, engine: ToolEngine) -> None:
        self.engine = engine

    async def ListTools(
        self, request: pb.ListToolsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListToolsResponse:
        tools = self.engine.list_tools(list(request.names))
        return pb.ListToolsResponse(tools=[tool_info_to_pb(t) for t in tools])

    async def InvokeTool(
        self, request: pb.InvokeToolRequest, context: grpc.aio.ServicerContext
    ) -> pb.InvokeToolResponse:
        _check(request)
        claims = verified_tenant()
        if claims is not None and not request.tenant_id:
            request.tenant_id = claims.tenant  # the call's tenant is the token's
        remaining = context.time_remaining()
        result = await self.engine.invoke(invocation_from_pb(request, remaining))
        return result_to_pb(result)


def _check(request: pb.InvokeToolRequest) -> None:
    violations: list[FieldViolation] = []
    if not request.name:
        violations.append(FieldViolation("name", "required"))
    elif len(request.name) > MAX_NAME:
        violations.append(FieldViolation("name", f"at most {MAX_NAME} characters"))
    if len(request.idempotency_key) > MAX_KEY:
        violations.append(FieldViolation("idempotency_key", f"at most {MAX_KEY} characters"))
    if request.HasField("timeout") and request.timeout.ToNanoseconds() < 0:
        violations.append(FieldViolation("timeout", "must not be negative"))
    if violations:
        raise InvalidArgumentError("invalid InvokeToolRequest", violations)

"""RuntimeService: the internal API gateways call to execute runs on this runtime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from langgraph.checkpoint.base import BaseCheckpointSaver
from lgmesh.api.v1 import types_pb2
from lgmesh.runtime.v1 import runtime_pb2, runtime_pb2_grpc

from mesh_core.adapters.redis.records import scoped_thread_id
from mesh_core.errors import FieldViolation, InvalidArgumentError
from mesh_core.jsonvalue import LARGE_MESSAGE_BYTES, from_struct, from_value, to_struct, to_value
from mesh_core.security import verified_token
from runtime_svc import _convert
from runtime_svc.graphs import GraphRegistry
from runtime_svc.manager import RunManager
from runtime_svc.outputs import read_output
from runtime_svc.runs import RunRequest
from runtime_svc.threads import ThreadStore, graph_json, graph_schemas, subgraph_schemas

SERVICE_NAME = runtime_pb2.DESCRIPTOR.services_by_name["RuntimeService"].full_name

#: Who may call a runtime (``mesh_core.security.CallerPolicy``, with mutual TLS): gateways
#: only. Workers and other runtimes never call RuntimeService.
CALLERS = {f"/{SERVICE_NAME}/": ("gateway",)}
#: RPCs acting for a tenant: they need the gateway's tenant token for the request's
#: ``tenant_id``. The graph RPCs serve the deployment's graphs, which no tenant owns.
TENANT_SCOPED = frozenset(
    f"/{SERVICE_NAME}/{name}"
    for name in (
        "ExecuteRun",
        "CancelRun",
        "GetThreadState",
        "GetThreadHistory",
        "GetRunOutput",
        "UpdateThreadState",
        "DeleteThread",
        "CopyThread",
        "PruneThread",
    )
)


def _require(value: str, field: str) -> None:
    if not value:
        raise InvalidArgumentError(
            f"{field} is required", [FieldViolation(field, "must not be empty")]
        )


class RuntimeServicer(runtime_pb2_grpc.RuntimeServiceServicer):
    def __init__(
        self, manager: RunManager, graphs: GraphRegistry, checkpointer: BaseCheckpointSaver[Any]
    ) -> None:
        self.manager = manager
        self.graphs = graphs
        self.checkpointer = checkpointer
        self.threads = ThreadStore(checkpointer, manager.records, manager)

    async def ExecuteRun(
        self, request: runtime_pb2.ExecuteRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[runtime_pb2.ExecuteRunResponse]:
        _require(request.tenant_id, "tenant_id")
        _require(request.run_id, "run_id")
        _require(request.spec.thread_id, "spec.thread_id")
        _require(request.spec.assistant_id, "spec.assistant_id")

        def convert() -> RunRequest:
            return _convert.request_from_pb(
                request.tenant_id,
                request.run_id,
                request.spec,
                resume=request.resume,
                after_seq=request.after_seq,
                graph_id=request.graph_id,
                tenant_token=verified_token(),
            )

        # A large input is decoded off the event loop (other runs keep streaming).
        large = request.spec.ByteSize() > LARGE_MESSAGE_BYTES
        req = await asyncio.to_thread(convert) if large else convert()
        handle = await self.manager.submit(req)
        if not req.stream_modes:
            # Taken here: the gateway follows this runtime's hold on the thread from now
            # on. (A waited-for run logs no "started" event to say so: RunManager._drive.)
            yield runtime_pb2.ExecuteRunResponse()
        async for ev in handle.follow(request.after_seq):
            # as the log adapter converted it, with a final event's output
            pb = ev.wire if ev.wire is not None else _convert.event_to_pb(ev)
            yield runtime_pb2.ExecuteRunResponse(event=pb)

    async def CancelRun(
        self, request: runtime_pb2.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.CancelRunResponse:
        action = "rollback" if request.action == types_pb2.CANCEL_ACTION_ROLLBACK else "interrupt"
        found = await self.manager.cancel(request.run_id, action, tenant=request.tenant_id)
        return runtime_pb2.CancelRunResponse(found=found)

    async def GetThreadState(
        self, request: runtime_pb2.GetThreadStateRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.GetThreadStateResponse:
        _require(request.tenant_id, "tenant_id")
        _require(request.thread_id, "thread_id")
        _require(request.assistant_id, "assistant_id")
        state = await self.threads.state(
            self.graphs.get_graph(request.assistant_id),
            request.tenant_id,
            request.thread_id,
            checkpoint_id=request.checkpoint_id,
            checkpoint_ns=request.checkpoint_ns,
            subgraphs=request.subgraphs,
        )
        return runtime_pb2.GetThreadStateResponse(state=_convert.state_to_pb(state))

    async def GetRunOutput(
        self, request: runtime_pb2.GetRunOutputRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.GetRunOutputResponse:
        _require(request.tenant_id, "tenant_id")
        _require(request.thread_id, "thread_id")
        _require(request.output.graph_id, "output.graph_id")
        _require(request.output.checkpoint_id, "output.checkpoint_id")
        found, values = await read_output(
            self.graphs.get_graph(request.output.graph_id),
            self.checkpointer,
            scoped_thread_id(request.tenant_id, request.thread_id),
            request.output.checkpoint_id,
            request.output.checkpoint_ns,
            _convert.interrupts_from_pb(request.interrupts),
        )
        if not found:
            return runtime_pb2.GetRunOutputResponse(found=False)
        return runtime_pb2.GetRunOutputResponse(found=True, values=to_value(values))

    async def GetThreadHistory(
        self, request: runtime_pb2.GetThreadHistoryRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.GetThreadHistoryResponse:
        _require(request.tenant_id, "tenant_id")
        _require(request.thread_id, "thread_id")
        _require(request.graph_id, "graph_id")
        states = await self.threads.history(
            self.graphs.get_graph(request.graph_id),
            request.tenant_id,
            request.thread_id,
            limit=request.limit or 10,
            before=request.before,
            metadata=from_struct(request.metadata),
            checkpoint_ns=request.checkpoint_ns,
            checkpoint_id=request.checkpoint_id,
        )
        return runtime_pb2.GetThreadHistoryResponse(
            states=[_convert.state_to_pb(s) for s in states]
        )

    async def UpdateThreadState(
        self, request: runtime_pb2.UpdateThreadStateRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.UpdateThreadStateResponse:
        _require(request.tenant_id, "tenant_id")
        _require(request.thread_id, "thread_id")
        _require(request.graph_id, "graph_id")
        cid, ns = await self.threads.update_state(
            self.graphs.get_graph(request.graph_id),
            request.tenant_id,
            request.thread_id,
            from_value(request.values) if request.HasField("values") else None,
            as_node=request.as_node,
            checkpoint_id=request.checkpoint_id,
            checkpoint_ns=request.checkpoint_ns,
        )
        return runtime_pb2.UpdateThreadStateResponse(checkpoint_id=cid, checkpoint_ns=ns)

    async def DeleteThread(
        self, request: runtime_pb2.DeleteThreadRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.DeleteThreadResponse:
        _require(request.tenant_id, "tenant_id")
        _require(request.thread_id, "thread_id")
        await self.threads.delete(
            request.tenant_id, request.thread_id, checkpoints_only=request.checkpoints_only
        )
        return runtime_pb2.DeleteThreadResponse()

    async def CopyThread(
        self, request: runtime_pb2.CopyThreadRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.CopyThreadResponse:
        _require(request.tenant_id, "tenant_id")
        _require(request.source_thread_id, "source_thread_id")
        _require(request.target_thread_id, "target_thread_id")
        await self.threads.copy(
            request.tenant_id, request.source_thread_id, request.target_thread_id
        )
        return runtime_pb2.CopyThreadResponse()

    async def PruneThread(
        self, request: runtime_pb2.PruneThreadRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.PruneThreadResponse:
        _require(request.tenant_id, "tenant_id")
        _require(request.thread_id, "thread_id")
        await self.threads.prune(request.tenant_id, request.thread_id)
        return runtime_pb2.PruneThreadResponse()

    async def GetGraph(
        self, request: runtime_pb2.GetGraphRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.GetGraphResponse:
        graph = self.graphs.get_graph(request.graph_id)
        return runtime_pb2.GetGraphResponse(graph=to_struct(graph_json(graph, request.xray)))

    async def GetGraphSchemas(
        self, request: runtime_pb2.GetGraphSchemasRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.GetGraphSchemasResponse:
        graph = self.graphs.get_graph(request.graph_id)
        return runtime_pb2.GetGraphSchemasResponse(
            schemas=to_struct(graph_schemas(request.graph_id, graph))
        )

    async def GetSubgraphs(
        self, request: runtime_pb2.GetSubgraphsRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.GetSubgraphsResponse:
        graph = self.graphs.get_graph(request.graph_id)
        subs = subgraph_schemas(request.graph_id, graph, request.namespace, request.recurse)
        return runtime_pb2.GetSubgraphsResponse(subgraphs=to_struct(subs))

    async def ListGraphs(
        self, request: runtime_pb2.ListGraphsRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.ListGraphsResponse:
        return runtime_pb2.ListGraphsResponse(
            graphs=[_convert.assistant_to_pb(e) for e in self.graphs.values()]
        )

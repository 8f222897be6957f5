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
from mesh_core.errors import FieldViolation, InvalidArgumentError, NotFoundError
from mesh_core.jsonvalue import LARGE_MESSAGE_BYTES
from runtime_svc import _convert
from runtime_svc.graphs import GraphRegistry
from runtime_svc.langgraph_api import (
    CONFIG_KEY_CHECKPOINTER,
)
from runtime_svc.manager import RunManager
from runtime_svc.runs import RunRequest

SERVICE_NAME = runtime_pb2.DESCRIPTOR.services_by_name["RuntimeService"].full_name


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
            )

        # A large input is decoded off the event loop (other runs keep streaming).
        large = request.spec.ByteSize() > LARGE_MESSAGE_BYTES
        req = await asyncio.to_thread(convert) if large else convert()
        handle = await self.manager.submit(req)
        async for ev in handle.follow(request.after_seq):
            yield runtime_pb2.ExecuteRunResponse(event=_convert.event_to_pb(ev))

    async def CancelRun(
        self, request: runtime_pb2.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.CancelRunResponse:
        action = "rollback" if request.action == types_pb2.CANCEL_ACTION_ROLLBACK else "interrupt"
        found = await self.manager.cancel(request.run_id, action)
        return runtime_pb2.CancelRunResponse(found=found)

    async def GetThreadState(
        self, request: runtime_pb2.GetThreadStateRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.GetThreadStateResponse:
        _require(request.tenant_id, "tenant_id")
        _require(request.thread_id, "thread_id")
        _require(request.assistant_id, "assistant_id")
        graph = self.graphs.get_graph(request.assistant_id)
        conf: dict[str, Any] = {
            "thread_id": scoped_thread_id(request.tenant_id, request.thread_id),
            "checkpoint_ns": "",
            CONFIG_KEY_CHECKPOINTER: self.checkpointer,
        }
        if request.checkpoint_id:
            conf["checkpoint_id"] = request.checkpoint_id
        state = await graph.aget_state({"configurable": conf}, subgraphs=request.subgraphs)
        if request.checkpoint_id and not state.config:
            raise NotFoundError(f"checkpoint {request.checkpoint_id!r} not found")
        return runtime_pb2.GetThreadStateResponse(state=_convert.state_to_pb(state))

    async def ListGraphs(
        self, request: runtime_pb2.ListGraphsRequest, context: grpc.aio.ServicerContext
    ) -> runtime_pb2.ListGraphsResponse:
        return runtime_pb2.ListGraphsResponse(
            graphs=[_convert.assistant_to_pb(e) for e in self.graphs.values()]
        )

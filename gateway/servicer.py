"""The public API: ThreadService, RunService, AssistantService.

Each method authenticates, converts the request to plain Python, calls the engine
(``threads``, ``runs``, ``assistants``) and converts the answer back. Nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from lgmesh.api.v1 import (
    assistants_pb2,
    assistants_pb2_grpc,
    runs_pb2,
    runs_pb2_grpc,
    threads_pb2,
    threads_pb2_grpc,
    types_pb2,
)

from gateway import _convert
from gateway.assistants import AssistantsEngine
from gateway.auth import ApiKeyAuth
from gateway.runs import RunOutcome, RunsEngine
from gateway.threads import ThreadsEngine
from mesh_core import api_names as names
from mesh_core.errors import ResourceExhaustedError
from mesh_core.jsonvalue import LARGE_MESSAGE_BYTES, from_struct, from_value, to_struct, to_value

__all__ = ["ApiContext", "AssistantServicer", "RunServicer", "ThreadServicer"]

_NULL = to_value(None)


@dataclass
class ApiContext:
    """What every public servicer shares: auth, the size limit, the engines."""

    auth: ApiKeyAuth
    threads: ThreadsEngine
    runs: RunsEngine
    assistants: AssistantsEngine
    max_request_bytes: int

    def tenant(self, context: grpc.aio.ServicerContext, request: Any = None) -> str:
        tenant = self.auth.authenticate(context.invocation_metadata())
        if request is not None and request.ByteSize() > self.max_request_bytes:
            raise ResourceExhaustedError(
                f"request of {request.ByteSize()} bytes exceeds the {self.max_request_bytes}-byte limit",
                reason="MESSAGE_TOO_LARGE",
                metadata={"limit_bytes": str(self.max_request_bytes)},
            )
        return tenant


async def _spec(pb: types_pb2.RunSpec) -> Any:
    """The plain run spec; a large one is decoded off the event loop (other runs stream on)."""
    if pb.ByteSize() > LARGE_MESSAGE_BYTES:
        return await asyncio.to_thread(_convert.spec_from_pb, pb)
    return _convert.spec_from_pb(pb)


def _struct(msg: Any, field: str) -> dict[str, Any] | None:
    return from_struct(getattr(msg, field), field) if msg.HasField(field) else None


class ThreadServicer(threads_pb2_grpc.ThreadServiceServicer):
    def __init__(self, api: ApiContext) -> None:
        self.api = api
        self.threads = api.threads

    async def CreateThread(
        self, request: threads_pb2.CreateThreadRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.CreateThreadResponse:
        tenant = self.api.tenant(context, request)
        rec = await self.threads.create(
            tenant,
            request.thread_id,
            from_struct(request.metadata, "metadata"),
            if_exists_return=request.if_exists_return,
            graph_id=request.graph_id,
            ttl=request.ttl_seconds,
        )
        return threads_pb2.CreateThreadResponse(thread=_convert.thread_to_pb(rec))

    async def GetThread(
        self, request: threads_pb2.GetThreadRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.GetThreadResponse:
        tenant = self.api.tenant(context, request)
        rec = await self.threads.get(tenant, request.thread_id)
        return threads_pb2.GetThreadResponse(thread=_convert.thread_to_pb(rec))

    async def UpdateThread(
        self, request: threads_pb2.UpdateThreadRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.UpdateThreadResponse:
        tenant = self.api.tenant(context, request)
        rec = await self.threads.update(
            tenant, request.thread_id, _struct(request, "metadata"), ttl=request.ttl_seconds
        )
        return threads_pb2.UpdateThreadResponse(thread=_convert.thread_to_pb(rec))

    async def GetThreadState(
        self, request: threads_pb2.GetThreadStateRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.GetThreadStateResponse:
        tenant = self.api.tenant(context, request)
        state = await self.threads.state(
            tenant,
            request.thread_id,
            checkpoint_id=request.checkpoint_id,
            checkpoint_ns=request.checkpoint_ns,
            subgraphs=request.subgraphs,
        )
        return threads_pb2.GetThreadStateResponse(state=state or types_pb2.ThreadState())

    async def GetThreadHistory(
        self, request: threads_pb2.GetThreadHistoryRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.GetThreadHistoryResponse:
        tenant = self.api.tenant(context, request)
        states = await self.threads.history(
            tenant,
            request.thread_id,
            limit=request.limit,
            before=request.before,
            metadata=_struct(request, "metadata"),
            checkpoint_ns=request.checkpoint_ns,
            checkpoint_id=request.checkpoint_id,
        )
        return threads_pb2.GetThreadHistoryResponse(states=states)

    async def UpdateThreadState(
        self, request: threads_pb2.UpdateThreadStateRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.UpdateThreadStateResponse:
        tenant = self.api.tenant(context, request)
        cid, ns = await self.threads.update_state(
            tenant,
            request.thread_id,
            from_value(request.values, "values") if request.HasField("values") else None,
            as_node=request.as_node,
            checkpoint_id=request.checkpoint_id,
            checkpoint_ns=request.checkpoint_ns,
        )
        return threads_pb2.UpdateThreadStateResponse(checkpoint_id=cid, checkpoint_ns=ns)

    async def DeleteThread(
        self, request: threads_pb2.DeleteThreadRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.DeleteThreadResponse:
        tenant = self.api.tenant(context, request)
        await self.threads.delete(tenant, request.thread_id)
        return threads_pb2.DeleteThreadResponse()

    async def CopyThread(
        self, request: threads_pb2.CopyThreadRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.CopyThreadResponse:
        tenant = self.api.tenant(context, request)
        rec = await self.threads.copy(tenant, request.thread_id)
        return threads_pb2.CopyThreadResponse(thread=_convert.thread_to_pb(rec))

    async def PruneThreads(
        self, request: threads_pb2.PruneThreadsRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.PruneThreadsResponse:
        tenant = self.api.tenant(context, request)
        n = await self.threads.prune(
            tenant,
            list(request.thread_ids),
            names.name_of(names.PRUNE_STRATEGY, request.strategy, "keep_latest"),
        )
        return threads_pb2.PruneThreadsResponse(pruned_count=n)

    async def SearchThreads(
        self, request: threads_pb2.SearchThreadsRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.SearchThreadsResponse:
        tenant = self.api.tenant(context, request)
        recs = await self.threads.search(
            tenant,
            metadata=from_struct(request.metadata, "metadata"),
            status=names.name_of(names.THREAD_STATUS, request.status),
            ids=list(request.ids),
            limit=request.limit,
            offset=request.offset,
        )
        return threads_pb2.SearchThreadsResponse(threads=[_convert.thread_to_pb(r) for r in recs])

    async def CountThreads(
        self, request: threads_pb2.CountThreadsRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.CountThreadsResponse:
        tenant = self.api.tenant(context, request)
        n = await self.threads.count(
            tenant,
            metadata=from_struct(request.metadata, "metadata"),
            status=names.name_of(names.THREAD_STATUS, request.status),
        )
        return threads_pb2.CountThreadsResponse(count=n)


def _outcome_values(out: RunOutcome) -> Any:
    # Always a Value (null when there is no output): grpcurl cannot print an unset one.
    return to_value(out.values) if out.values is not None else _NULL


class RunServicer(runs_pb2_grpc.RunServiceServicer):
    def __init__(self, api: ApiContext) -> None:
        self.api = api
        self.runs = api.runs

    async def StreamRun(
        self, request: runs_pb2.StreamRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[runs_pb2.StreamRunResponse]:
        tenant = self.api.tenant(context, request)
        async for ev in self.runs.stream(tenant, await _spec(request.run)):
            yield runs_pb2.StreamRunResponse(event=ev)

    async def WaitRun(
        self, request: runs_pb2.WaitRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.WaitRunResponse:
        tenant = self.api.tenant(context, request)
        out = await self.runs.wait(tenant, await _spec(request.run))
        return runs_pb2.WaitRunResponse(
            run=_convert.run_to_pb(out.run), values=_outcome_values(out)
        )

    async def CreateRun(
        self, request: runs_pb2.CreateRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.CreateRunResponse:
        tenant = self.api.tenant(context, request)
        rec = await self.runs.create(tenant, await _spec(request.run))
        return runs_pb2.CreateRunResponse(run=_convert.run_to_pb(rec))

    async def GetRun(
        self, request: runs_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.GetRunResponse:
        tenant = self.api.tenant(context, request)
        rec = await self.runs.get(tenant, request.thread_id, request.run_id)
        return runs_pb2.GetRunResponse(run=_convert.run_to_pb(rec))

    async def ListRuns(
        self, request: runs_pb2.ListRunsRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.ListRunsResponse:
        tenant = self.api.tenant(context, request)
        recs = await self.runs.list(
            tenant,
            request.thread_id,
            status=names.name_of(names.RUN_STATUS, request.status),
            limit=request.limit,
            offset=request.offset,
        )
        return runs_pb2.ListRunsResponse(runs=[_convert.run_to_pb(r) for r in recs])

    async def CancelRun(
        self, request: runs_pb2.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.CancelRunResponse:
        tenant = self.api.tenant(context, request)
        rec = await self.runs.get(tenant, request.thread_id, request.run_id)
        rec = await self.runs.cancel(
            tenant,
            rec,
            wait=request.wait,
            action=names.name_of(names.CANCEL_ACTION, request.action, "interrupt"),
        )
        return runs_pb2.CancelRunResponse(run=_convert.run_to_pb(rec))

    async def CancelRuns(
        self, request: runs_pb2.CancelRunsRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.CancelRunsResponse:
        tenant = self.api.tenant(context, request)
        recs = await self.runs.cancel_many(
            tenant,
            thread_id=request.thread_id,
            run_ids=list(request.run_ids),
            status=names.name_of(names.CANCEL_RUNS_STATUS, request.status, "all"),
            action=names.name_of(names.CANCEL_ACTION, request.action, "interrupt"),
        )
        return runs_pb2.CancelRunsResponse(runs=[_convert.run_to_pb(r) for r in recs])

    async def DeleteRun(
        self, request: runs_pb2.DeleteRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.DeleteRunResponse:
        tenant = self.api.tenant(context, request)
        await self.runs.delete(tenant, request.thread_id, request.run_id)
        return runs_pb2.DeleteRunResponse()

    async def JoinRun(
        self, request: runs_pb2.JoinRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[runs_pb2.JoinRunResponse]:
        tenant = self.api.tenant(context, request)
        modes = {names.name_of(names.STREAM_MODE, m) for m in request.stream_modes} - {""}
        async for ev in self.runs.join(
            tenant, request.thread_id, request.run_id, request.after_seq, modes
        ):
            yield runs_pb2.JoinRunResponse(event=ev)

    async def WaitForRun(
        self, request: runs_pb2.WaitForRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.WaitForRunResponse:
        tenant = self.api.tenant(context, request)
        out = await self.runs.wait_for(tenant, request.thread_id, request.run_id)
        return runs_pb2.WaitForRunResponse(
            run=_convert.run_to_pb(out.run), values=_outcome_values(out)
        )


class AssistantServicer(assistants_pb2_grpc.AssistantServiceServicer):
    def __init__(self, api: ApiContext) -> None:
        self.api = api
        self.assistants = api.assistants

    async def _pb(self, rec: Any) -> types_pb2.Assistant:
        """A compact record: no schemas (GetAssistant with_schemas, GetAssistantSchemas)."""
        graph = await self.assistants.runtime.graph(rec.graph_id)
        return _convert.assistant_to_pb(rec, nodes=graph.nodes)

    async def ListAssistants(
        self, request: assistants_pb2.ListAssistantsRequest, context: grpc.aio.ServicerContext
    ) -> assistants_pb2.ListAssistantsResponse:
        tenant = self.api.tenant(context, request)
        recs = await self.assistants.search(tenant, limit=1 << 30)
        return assistants_pb2.ListAssistantsResponse(assistants=[await self._pb(r) for r in recs])

    async def GetAssistant(
        self, request: assistants_pb2.GetAssistantRequest, context: grpc.aio.ServicerContext
    ) -> assistants_pb2.GetAssistantResponse:
        tenant = self.api.tenant(context, request)
        rec = await self.assistants.get(tenant, request.assistant_id)
        graph = await self.assistants.runtime.graph(rec.graph_id)
        schemas = (
            await self.assistants.runtime.schemas(rec.graph_id) if request.with_schemas else None
        )
        return assistants_pb2.GetAssistantResponse(
            assistant=_convert.assistant_to_pb(rec, schemas=schemas, nodes=graph.nodes)
        )

    async def CreateAssistant(
        self, request: assistants_pb2.CreateAssistantRequest, context: grpc.aio.ServicerContext
    ) -> assistants_pb2.CreateAssistantResponse:
        tenant = self.api.tenant(context, request)
        rec = await self.assistants.create(
            tenant,
            request.graph_id,
            config=from_struct(request.config, "config"),
            context=from_struct(request.context, "context"),
            metadata=from_struct(request.metadata, "metadata"),
            assistant_id=request.assistant_id,
            if_exists_return=request.if_exists_return,
            name=request.name,
            description=request.description,
        )
        return assistants_pb2.CreateAssistantResponse(assistant=await self._pb(rec))

    async def UpdateAssistant(
        self, request: assistants_pb2.UpdateAssistantRequest, context: grpc.aio.ServicerContext
    ) -> assistants_pb2.UpdateAssistantResponse:
        tenant = self.api.tenant(context, request)
        rec = await self.assistants.update(
            tenant,
            request.assistant_id,
            graph_id=request.graph_id,
            config=_struct(request, "config"),
            context=_struct(request, "context"),
            metadata=_struct(request, "metadata"),
            name=request.name,
            description=request.description,
        )
        return assistants_pb2.UpdateAssistantResponse(assistant=await self._pb(rec))

    async def DeleteAssistant(
        self, request: assistants_pb2.DeleteAssistantRequest, context: grpc.aio.ServicerContext
    ) -> assistants_pb2.DeleteAssistantResponse:
        tenant = self.api.tenant(context, request)
        await self.assistants.delete(tenant, request.assistant_id)
        return assistants_pb2.DeleteAssistantResponse()

    async def SearchAssistants(
        self, request: assistants_pb2.SearchAssistantsRequest, context: grpc.aio.ServicerContext
    ) -> assistants_pb2.SearchAssistantsResponse:
        tenant = self.api.tenant(context, request)
        recs = await self.assistants.search(
            tenant,
            metadata=from_struct(request.metadata, "metadata"),
            graph_id=request.graph_id,
            name=request.name,
            limit=request.limit,
            offset=request.offset,
        )
        return assistants_pb2.SearchAssistantsResponse(assistants=[await self._pb(r) for r in recs])

    async def CountAssistants(
        self, request: assistants_pb2.CountAssistantsRequest, context: grpc.aio.ServicerContext
    ) -> assistants_pb2.CountAssistantsResponse:
        tenant = self.api.tenant(context, request)
        n = await self.assistants.count(
            tenant,
            metadata=from_struct(request.metadata, "metadata"),
            graph_id=request.graph_id,
            name=request.name,
        )
        return assistants_pb2.CountAssistantsResponse(count=n)

    async def ListAssistantVersions(
        self,
        request: assistants_pb2.ListAssistantVersionsRequest,
        context: grpc.aio.ServicerContext,
    ) -> assistants_pb2.ListAssistantVersionsResponse:
        tenant = self.api.tenant(context, request)
        recs = await self.assistants.versions(
            tenant,
            request.assistant_id,
            metadata=from_struct(request.metadata, "metadata"),
            limit=request.limit,
            offset=request.offset,
        )
        return assistants_pb2.ListAssistantVersionsResponse(
            versions=[await self._pb(r) for r in recs]
        )

    async def SetLatestAssistantVersion(
        self,
        request: assistants_pb2.SetLatestAssistantVersionRequest,
        context: grpc.aio.ServicerContext,
    ) -> assistants_pb2.SetLatestAssistantVersionResponse:
        tenant = self.api.tenant(context, request)
        rec = await self.assistants.set_latest(tenant, request.assistant_id, request.version)
        return assistants_pb2.SetLatestAssistantVersionResponse(assistant=await self._pb(rec))

    async def GetAssistantGraph(
        self, request: assistants_pb2.GetAssistantGraphRequest, context: grpc.aio.ServicerContext
    ) -> assistants_pb2.GetAssistantGraphResponse:
        tenant = self.api.tenant(context, request)
        graph = await self.assistants.graph_json(tenant, request.assistant_id, request.xray)
        return assistants_pb2.GetAssistantGraphResponse(graph=to_struct(graph))

    async def GetAssistantSchemas(
        self,
        request: assistants_pb2.GetAssistantSchemasRequest,
        context: grpc.aio.ServicerContext,
    ) -> assistants_pb2.GetAssistantSchemasResponse:
        tenant = self.api.tenant(context, request)
        schemas = await self.assistants.schemas(tenant, request.assistant_id)
        return assistants_pb2.GetAssistantSchemasResponse(schemas=to_struct(schemas))

    async def GetAssistantSubgraphs(
        self,
        request: assistants_pb2.GetAssistantSubgraphsRequest,
        context: grpc.aio.ServicerContext,
    ) -> assistants_pb2.GetAssistantSubgraphsResponse:
        tenant = self.api.tenant(context, request)
        subs = await self.assistants.subgraphs(
            tenant, request.assistant_id, request.namespace, request.recurse
        )
        return assistants_pb2.GetAssistantSubgraphsResponse(subgraphs=to_struct(subs))

"""The public API: ThreadService, RunService, AssistantService."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
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
from lgmesh.runtime.v1 import runtime_pb2

from gateway import _convert
from gateway.auth import ApiKeyAuth
from gateway.dispatch import ChannelPool, PassthroughError, RunDispatcher
from gateway.placement import Placement
from mesh_core.adapters.nats.eventlog import RunEventLog, is_final_event
from mesh_core.adapters.redis.records import TERMINAL_STATUSES, RecordStore, scoped_thread_id
from mesh_core.errors import (
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
)
from mesh_core.jsonvalue import LARGE_MESSAGE_BYTES, from_struct, from_value
from mesh_core.validation import validate_config, validate_input

MODE_NAMES = {
    types_pb2.STREAM_MODE_VALUES: "values",
    types_pb2.STREAM_MODE_UPDATES: "updates",
    types_pb2.STREAM_MODE_CUSTOM: "custom",
    types_pb2.STREAM_MODE_MESSAGES: "messages",
    types_pb2.STREAM_MODE_DEBUG: "debug",
}
_ID_MAX = 256


def _check_id(value: str, field: str, *, required: bool = True) -> None:
    if not value:
        if required:
            raise InvalidArgumentError(
                f"{field} is required", [FieldViolation(field, "must not be empty")]
            )
        return
    if len(value) > _ID_MAX or any(c in value for c in "{}:\n\r\t ") or not value.isprintable():
        raise InvalidArgumentError(
            f"{field} is not a valid id",
            [
                FieldViolation(
                    field,
                    f"1-{_ID_MAX} printable characters, none of '{{', '}}', ':' or whitespace",
                )
            ],
        )


class GatewayCore:
    """What every public servicer shares: auth, records, placement, dispatch."""

    def __init__(
        self,
        auth: ApiKeyAuth,
        records: RecordStore,
        placement: Placement,
        channels: ChannelPool,
        dispatcher: RunDispatcher,
        eventlog: RunEventLog,
        checkpointer: Any,
        *,
        max_request_bytes: int,
    ) -> None:
        self.auth = auth
        self.records = records
        self.placement = placement
        self.channels = channels
        self.dispatcher = dispatcher
        self.eventlog = eventlog
        self.checkpointer = checkpointer
        self.max_request_bytes = max_request_bytes
        self._graphs: dict[str, types_pb2.Assistant] = {}
        self._graphs_at = 0.0

    def tenant(self, context: grpc.aio.ServicerContext, request: Any = None) -> str:
        tenant = self.auth.authenticate(context.invocation_metadata())
        if request is not None and request.ByteSize() > self.max_request_bytes:
            raise ResourceExhaustedError(
                f"request of {request.ByteSize()} bytes exceeds the {self.max_request_bytes}-byte limit",
                reason="MESSAGE_TOO_LARGE",
                metadata={"limit_bytes": str(self.max_request_bytes)},
            )
        return tenant

    async def graphs(self, *, refresh: bool = False) -> dict[str, types_pb2.Assistant]:
        if refresh or not self._graphs or time.monotonic() - self._graphs_at > 30:
            last_err: Exception | None = None
            for rt in await self.placement.runtimes(fresh=refresh):
                try:
                    resp = await self.channels.stub(rt.address).ListGraphs(
                        runtime_pb2.ListGraphsRequest(), timeout=5
                    )
                except grpc.aio.AioRpcError as err:
                    last_err = err
                    continue
                self._graphs = {g.assistant_id: g for g in resp.graphs}
                self._graphs_at = time.monotonic()
                break
            else:
                if not self._graphs and last_err is not None:
                    raise PassthroughError(last_err)
        return self._graphs

    async def require_graph(self, assistant_id: str) -> types_pb2.Assistant:
        _check_id(assistant_id, "run.assistant_id")
        graphs = await self.graphs()
        if assistant_id not in graphs:
            graphs = await self.graphs(refresh=True)
        if assistant_id not in graphs:
            raise NotFoundError(
                f"assistant {assistant_id!r} not found", metadata={"assistant_id": assistant_id}
            )
        return graphs[assistant_id]

    async def cancel_run(self, tenant: str, rec: Any, *, wait: bool, action: int = 0) -> Any:
        """Cancel a run: recorded first (a queued run ends at once; a running one ends at
        its driver's next step, or when whoever resumes it sees the request), then the
        runtime driving it is told directly. With ``wait``, until it has ended."""
        if rec.status in TERMINAL_STATUSES:
            return rec
        action_name = "rollback" if action == 2 else "interrupt"
        status = await self.records.request_cancel(rec, action_name)
        if status == "running":
            owner = await self.placement.owner(rec.scoped_thread)
            if owner is not None and owner.address:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await self.channels.stub(owner.address).CancelRun(
                        runtime_pb2.CancelRunRequest(
                            tenant_id=tenant,
                            thread_id=rec.thread_id,
                            run_id=rec.run_id,
                            action=action,
                        ),
                        timeout=10,
                    )
        if wait:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    async for _ev in self.dispatcher.follow_log(
                        tenant, rec.thread_id, rec.run_id, 0
                    ):
                        pass
        fresh = await self.records.get_run(tenant, rec.thread_id, rec.run_id)
        return fresh or rec

    async def prepare_run(
        self, tenant: str, spec: types_pb2.RunSpec
    ) -> tuple[str, types_pb2.RunSpec, bool]:
        """Validate a RunSpec, make sure its thread exists.

        Returns (run_id, the spec with its thread id, whether the thread is brand new).
        """
        graph = await self.require_graph(spec.assistant_id)
        _check_id(spec.thread_id, "run.thread_id", required=False)
        if spec.HasField("input"):
            schema = from_struct(graph.input_schema)
            if spec.input.ByteSize() > LARGE_MESSAGE_BYTES:  # keep the event loop free
                await asyncio.to_thread(
                    lambda: validate_input(from_value(spec.input, "run.input"), schema)
                )
            else:
                validate_input(from_value(spec.input, "run.input"), schema)
        if spec.HasField("config"):
            validate_config(from_struct(spec.config, "run.config"))
        if spec.HasField("input") and spec.HasField("command"):
            raise InvalidArgumentError(
                "set either input or command, not both",
                [FieldViolation("run.command", "cannot be combined with run.input")],
            )
        for name in [*spec.interrupt_before, *spec.interrupt_after]:
            if name != "*" and name not in graph.nodes:
                raise InvalidArgumentError(
                    f"unknown node {name!r} in interrupt_before/after",
                    [
                        FieldViolation(
                            "run.interrupt_before", f"{name!r} is not a node of the graph"
                        )
                    ],
                )
        spec = types_pb2.RunSpec.FromString(spec.SerializeToString())
        fresh = not spec.thread_id
        if fresh:
            spec.thread_id = str(uuid.uuid4())
            await self.records.create_thread(
                tenant, spec.thread_id, {}, assistant_id=spec.assistant_id
            )
        else:
            thread = await self.records.get_thread(tenant, spec.thread_id)
            if thread is None:
                if not spec.if_not_exists_create:
                    raise NotFoundError(
                        f"thread {spec.thread_id!r} not found",
                        metadata={"thread_id": spec.thread_id},
                    )
                thread = await self.records.create_thread(
                    tenant,
                    spec.thread_id,
                    {},
                    if_exists_return=True,
                    assistant_id=spec.assistant_id,
                )
            if thread.assistant_id != spec.assistant_id:
                await self.records.update_thread(
                    tenant, spec.thread_id, assistant_id=spec.assistant_id
                )
        return str(uuid.uuid4()), spec, fresh


class ThreadServicer(threads_pb2_grpc.ThreadServiceServicer):
    def __init__(self, core: GatewayCore) -> None:
        self.core = core

    async def _thread(self, tenant: str, thread_id: str) -> Any:
        _check_id(thread_id, "thread_id")
        rec = await self.core.records.get_thread(tenant, thread_id)
        if rec is None:
            raise NotFoundError(
                f"thread {thread_id!r} not found", metadata={"thread_id": thread_id}
            )
        return rec

    async def CreateThread(
        self, request: threads_pb2.CreateThreadRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.CreateThreadResponse:
        tenant = self.core.tenant(context, request)
        _check_id(request.thread_id, "thread_id", required=False)
        rec = await self.core.records.create_thread(
            tenant,
            request.thread_id or str(uuid.uuid4()),
            from_struct(request.metadata, "metadata"),
            if_exists_return=request.if_exists_return,
        )
        return threads_pb2.CreateThreadResponse(thread=_convert.thread_to_pb(rec))

    async def GetThread(
        self, request: threads_pb2.GetThreadRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.GetThreadResponse:
        tenant = self.core.tenant(context, request)
        return threads_pb2.GetThreadResponse(
            thread=_convert.thread_to_pb(await self._thread(tenant, request.thread_id))
        )

    async def GetThreadState(
        self, request: threads_pb2.GetThreadStateRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.GetThreadStateResponse:
        tenant = self.core.tenant(context, request)
        rec = await self._thread(tenant, request.thread_id)
        if not rec.assistant_id:
            return threads_pb2.GetThreadStateResponse(state=types_pb2.ThreadState())
        scoped = scoped_thread_id(tenant, request.thread_id)
        address = (await self.core.placement.candidates(scoped))[0]
        try:
            resp = await self.core.channels.stub(address).GetThreadState(
                runtime_pb2.GetThreadStateRequest(
                    tenant_id=tenant,
                    thread_id=request.thread_id,
                    assistant_id=rec.assistant_id,
                    checkpoint_id=request.checkpoint_id,
                    subgraphs=request.subgraphs,
                ),
                timeout=10,
            )
        except grpc.aio.AioRpcError as err:
            raise PassthroughError(err) from None
        return threads_pb2.GetThreadStateResponse(state=resp.state)

    async def DeleteThread(
        self, request: threads_pb2.DeleteThreadRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.DeleteThreadResponse:
        tenant = self.core.tenant(context, request)
        rec = await self._thread(tenant, request.thread_id)
        if rec.active_run:
            run = await self.core.records.get_run(tenant, rec.thread_id, rec.active_run)
            if run is not None:
                await self.core.cancel_run(tenant, run, wait=True)
        await self.core.records.delete_thread(tenant, request.thread_id)
        await self.core.checkpointer.adelete_thread(scoped_thread_id(tenant, request.thread_id))
        return threads_pb2.DeleteThreadResponse()

    async def SearchThreads(
        self, request: threads_pb2.SearchThreadsRequest, context: grpc.aio.ServicerContext
    ) -> threads_pb2.SearchThreadsResponse:
        tenant = self.core.tenant(context, request)
        if request.limit < 0 or request.offset < 0:
            raise InvalidArgumentError(
                "limit and offset must not be negative", [FieldViolation("limit", ">= 0")]
            )
        recs = await self.core.records.search_threads(
            tenant,
            from_struct(request.metadata, "metadata"),
            _convert.THREAD_STATUS_NAMES.get(request.status, ""),
            limit=request.limit or 10,
            offset=request.offset,
        )
        return threads_pb2.SearchThreadsResponse(threads=[_convert.thread_to_pb(r) for r in recs])


class RunServicer(runs_pb2_grpc.RunServiceServicer):
    def __init__(self, core: GatewayCore) -> None:
        self.core = core

    async def _events(
        self, tenant: str, spec: types_pb2.RunSpec
    ) -> AsyncGenerator[types_pb2.RunEvent, None]:
        run_id, spec, fresh = await self.core.prepare_run(tenant, spec)
        async for ev in self.core.dispatcher.execute(tenant, run_id, spec, new_thread=fresh):
            yield ev

    async def StreamRun(
        self, request: runs_pb2.StreamRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[runs_pb2.StreamRunResponse]:
        tenant = self.core.tenant(context, request)
        async for ev in self._events(tenant, request.run):
            yield runs_pb2.StreamRunResponse(event=ev)

    async def WaitRun(
        self, request: runs_pb2.WaitRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.WaitRunResponse:
        tenant = self.core.tenant(context, request)
        spec = types_pb2.RunSpec.FromString(request.run.SerializeToString())
        del spec.stream_modes[:]
        spec.stream_modes.append(types_pb2.STREAM_MODE_UNSPECIFIED)  # lifecycle events only
        last: types_pb2.RunEvent | None = None
        attempts = 0
        run_id, spec, fresh = await self.core.prepare_run(tenant, spec)
        async for ev in self.core.dispatcher.execute(tenant, run_id, spec, new_thread=fresh):
            last = ev
            attempts += (
                ev.mode == "lifecycle" and ev.lifecycle.kind == types_pb2.LIFECYCLE_KIND_RESUMED
            )
        resp = runs_pb2.WaitRunResponse()
        if last is not None and is_final_event(last):
            resp.values.CopyFrom(last.data)
            lc = last.lifecycle
            resp.run.CopyFrom(
                types_pb2.Run(
                    run_id=last.run_id,
                    thread_id=spec.thread_id,
                    assistant_id=spec.assistant_id,
                    status=lc.status,
                    metadata=spec.metadata,
                    multitask_strategy=spec.multitask_strategy
                    or types_pb2.MULTITASK_STRATEGY_REJECT,
                    interrupts=lc.interrupts,
                    attempts=attempts,
                    updated_at=last.time,
                )
            )
            if lc.HasField("error"):
                resp.run.error.CopyFrom(lc.error)
        return resp

    async def CreateRun(
        self, request: runs_pb2.CreateRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.CreateRunResponse:
        tenant = self.core.tenant(context, request)
        events = self._events(tenant, request.run)
        try:
            first = await anext(events)  # the run is recorded once its first event exists
        finally:
            await events.aclose()  # the run goes on in its runtime
        rec = await self.core.records.find_run(tenant, first.run_id)
        if rec is None:
            raise NotFoundError("run vanished right after it was created")
        return runs_pb2.CreateRunResponse(run=_convert.run_to_pb(rec))

    async def _run(self, tenant: str, thread_id: str, run_id: str) -> Any:
        _check_id(run_id, "run_id")
        _check_id(thread_id, "thread_id", required=False)
        rec = (
            await self.core.records.get_run(tenant, thread_id, run_id)
            if thread_id
            else await self.core.records.find_run(tenant, run_id)
        )
        if rec is None:
            raise NotFoundError(f"run {run_id!r} not found", metadata={"run_id": run_id})
        return rec

    async def GetRun(
        self, request: runs_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.GetRunResponse:
        tenant = self.core.tenant(context, request)
        return runs_pb2.GetRunResponse(
            run=_convert.run_to_pb(await self._run(tenant, request.thread_id, request.run_id))
        )

    async def ListRuns(
        self, request: runs_pb2.ListRunsRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.ListRunsResponse:
        tenant = self.core.tenant(context, request)
        _check_id(request.thread_id, "thread_id")
        if await self.core.records.get_thread(tenant, request.thread_id) is None:
            raise NotFoundError(f"thread {request.thread_id!r} not found")
        recs = await self.core.records.list_runs(
            tenant,
            request.thread_id,
            _convert.RUN_STATUS_NAMES.get(request.status, ""),
            limit=request.limit or 10,
            offset=max(request.offset, 0),
        )
        return runs_pb2.ListRunsResponse(runs=[_convert.run_to_pb(r) for r in recs])

    async def CancelRun(
        self, request: runs_pb2.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.CancelRunResponse:
        tenant = self.core.tenant(context, request)
        rec = await self.core.cancel_run(
            tenant,
            await self._run(tenant, request.thread_id, request.run_id),
            wait=request.wait,
            action=request.action,
        )
        return runs_pb2.CancelRunResponse(run=_convert.run_to_pb(rec))

    async def JoinRun(
        self, request: runs_pb2.JoinRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[runs_pb2.JoinRunResponse]:
        tenant = self.core.tenant(context, request)
        rec = await self._run(tenant, request.thread_id, request.run_id)
        modes = {MODE_NAMES[m] for m in request.stream_modes if m in MODE_NAMES}
        # A run that already ended is replayed as far as its (bounded) log goes; a live one
        # is followed until its final event.
        follow = rec.status not in TERMINAL_STATUSES
        async for ev in self.core.eventlog.replay(rec.run_id, request.after_seq, follow=follow):
            if modes and ev.mode != "lifecycle" and ev.mode not in modes:
                continue
            yield runs_pb2.JoinRunResponse(event=ev)


class AssistantServicer(assistants_pb2_grpc.AssistantServiceServicer):
    def __init__(self, core: GatewayCore) -> None:
        self.core = core

    async def ListAssistants(
        self, request: assistants_pb2.ListAssistantsRequest, context: grpc.aio.ServicerContext
    ) -> assistants_pb2.ListAssistantsResponse:
        self.core.tenant(context, request)
        graphs = await self.core.graphs(refresh=True)
        return assistants_pb2.ListAssistantsResponse(assistants=[graphs[k] for k in sorted(graphs)])

    async def GetAssistant(
        self, request: assistants_pb2.GetAssistantRequest, context: grpc.aio.ServicerContext
    ) -> assistants_pb2.GetAssistantResponse:
        self.core.tenant(context, request)
        return assistants_pb2.GetAssistantResponse(
            assistant=await self.core.require_graph(request.assistant_id)
        )

"""The runtimes as the gateway's engine sees them: plain calls over RuntimeService.

With ``_convert`` and the servicers, one of the gateway modules that touch protobuf.
Reads go to any runtime (the thread's owner first, for its cache). Writes to a thread's
checkpoints go to the runtime that owns the thread (or the one placement would give it
to); a runtime that lost it meanwhile says so (MOVED / TRY_ELSEWHERE reasons) and the
call goes to the next one. State snapshots pass through untouched (``StateMessage``):
the servicer hands them to the client as the runtime made them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from lgmesh.runtime.v1 import runtime_pb2, runtime_pb2_grpc

from gateway._tokens import TenantTokens
from gateway.dispatch import ChannelPool, PassthroughError, rpc_error_reason
from gateway.placement import Placement
from mesh_core.adapters.redis.records import scoped_thread_id
from mesh_core.errors import NotFoundError
from mesh_core.jsonvalue import from_struct, to_struct, to_value
from mesh_core.reasons import MOVED, TRY_ELSEWHERE

__all__ = ["GraphInfo", "RuntimeClient", "StateMessage"]

T = TypeVar("T")
#: a ThreadState message from a runtime, handed to the client as it is
StateMessage = Any

_TIMEOUT = 10.0
_WRITE_TIMEOUT = 30.0
_ATTEMPTS = 4


@dataclass(frozen=True)
class GraphInfo:
    """A graph a runtime serves (what the gateway needs to validate runs on it)."""

    graph_id: str
    description: str = ""
    nodes: tuple[str, ...] = ()
    input_schema: dict[str, Any] = field(default_factory=dict)


class RuntimeClient:
    def __init__(self, placement: Placement, channels: ChannelPool, tokens: TenantTokens) -> None:
        self.placement = placement
        self.channels = channels
        self.tokens = tokens
        self._graphs: dict[str, GraphInfo] = {}
        self._graphs_at = 0.0

    def _stub(self, address: str) -> runtime_pb2_grpc.RuntimeServiceStub:
        return self.channels.stub(address)

    async def _call(
        self,
        scoped: str,
        fn: Callable[[runtime_pb2_grpc.RuntimeServiceStub], Awaitable[T]],
    ) -> T:
        """``fn`` on the thread's owner (else its placement), moving on while a runtime
        says the thread went elsewhere or it cannot take work now."""
        exclude: set[str] = set()
        last: grpc.aio.AioRpcError | None = None
        for _ in range(_ATTEMPTS):
            address = (await self.placement.candidates(scoped, exclude=exclude))[0]
            try:
                return await fn(self._stub(address))
            except grpc.aio.AioRpcError as err:
                last = err
                code, reason = err.code(), rpc_error_reason(err)
                if code == grpc.StatusCode.UNAVAILABLE and (
                    not reason or reason in TRY_ELSEWHERE or reason in MOVED
                ):
                    exclude.add(address)
                    continue
                raise PassthroughError(err) from None
        assert last is not None
        raise PassthroughError(last) from None

    # -- graphs ----------------------------------------------------------------------------
    async def graphs(self, *, refresh: bool = False) -> dict[str, GraphInfo]:
        if refresh or not self._graphs or time.monotonic() - self._graphs_at > 30:
            last_err: grpc.aio.AioRpcError | None = None
            for rt in await self.placement.runtimes(fresh=refresh):
                try:
                    resp = await self._stub(rt.address).ListGraphs(
                        runtime_pb2.ListGraphsRequest(), timeout=5
                    )
                except grpc.aio.AioRpcError as err:
                    last_err = err
                    continue
                self._graphs = {
                    g.assistant_id: GraphInfo(
                        g.assistant_id, g.description, tuple(g.nodes), from_struct(g.input_schema)
                    )
                    for g in resp.graphs
                }
                self._graphs_at = time.monotonic()
                break
            else:
                if not self._graphs and last_err is not None:
                    raise PassthroughError(last_err)
        return self._graphs

    async def graph(self, graph_id: str) -> GraphInfo:
        graphs = await self.graphs()
        if graph_id not in graphs:
            graphs = await self.graphs(refresh=True)
        if graph_id not in graphs:
            raise NotFoundError(f"graph {graph_id!r} not found", metadata={"graph_id": graph_id})
        return graphs[graph_id]

    async def _any(self, fn: Callable[[runtime_pb2_grpc.RuntimeServiceStub], Awaitable[T]]) -> T:
        return await self._call("", fn)

    async def graph_json(self, graph_id: str, xray: int) -> dict[str, Any]:
        resp = await self._any(
            lambda s: s.GetGraph(
                runtime_pb2.GetGraphRequest(graph_id=graph_id, xray=xray), timeout=_TIMEOUT
            )
        )
        return from_struct(resp.graph)

    async def schemas(self, graph_id: str) -> dict[str, Any]:
        resp = await self._any(
            lambda s: s.GetGraphSchemas(
                runtime_pb2.GetGraphSchemasRequest(graph_id=graph_id), timeout=_TIMEOUT
            )
        )
        return from_struct(resp.schemas)

    async def subgraphs(self, graph_id: str, namespace: str, recurse: bool) -> dict[str, Any]:
        resp = await self._any(
            lambda s: s.GetSubgraphs(
                runtime_pb2.GetSubgraphsRequest(
                    graph_id=graph_id, namespace=namespace, recurse=recurse
                ),
                timeout=_TIMEOUT,
            )
        )
        return from_struct(resp.subgraphs)

    # -- thread reads ----------------------------------------------------------------------
    async def state(
        self,
        scoped: str,
        tenant_id: str,
        thread_id: str,
        graph_id: str,
        *,
        checkpoint_id: str = "",
        checkpoint_ns: str = "",
        subgraphs: bool = False,
    ) -> StateMessage:
        resp = await self._call(
            scoped,
            lambda s: s.GetThreadState(
                runtime_pb2.GetThreadStateRequest(
                    tenant_id=tenant_id,
                    thread_id=thread_id,
                    assistant_id=graph_id,
                    checkpoint_id=checkpoint_id,
                    checkpoint_ns=checkpoint_ns,
                    subgraphs=subgraphs,
                ),
                timeout=_TIMEOUT,
                metadata=self.tokens.call(tenant_id),
            ),
        )
        return resp.state

    async def history(
        self,
        scoped: str,
        tenant_id: str,
        thread_id: str,
        graph_id: str,
        *,
        limit: int,
        before: str,
        metadata: dict[str, Any],
        checkpoint_ns: str,
        checkpoint_id: str,
    ) -> list[StateMessage]:
        resp = await self._call(
            scoped,
            lambda s: s.GetThreadHistory(
                runtime_pb2.GetThreadHistoryRequest(
                    tenant_id=tenant_id,
                    thread_id=thread_id,
                    graph_id=graph_id,
                    limit=limit,
                    before=before,
                    metadata=to_struct(metadata),
                    checkpoint_ns=checkpoint_ns,
                    checkpoint_id=checkpoint_id,
                ),
                timeout=_TIMEOUT,
                metadata=self.tokens.call(tenant_id),
            ),
        )
        return list(resp.states)

    async def complete_output(self, tenant_id: str, thread_id: str, event: Any) -> Any:
        """``event`` (a RunEvent) with its output: a final event read from the run event
        log names the checkpoint that holds a large output instead of carrying it; it is
        read from there (on the thread's owner, else any runtime). Other events, and one
        whose checkpoint the thread no longer keeps, go as they are."""
        out = event.lifecycle.output
        if event.HasField("data") or not out.checkpoint_id or event.mode != "lifecycle":
            return event
        resp = await self._call(
            scoped_thread_id(tenant_id, thread_id),
            lambda s: s.GetRunOutput(
                runtime_pb2.GetRunOutputRequest(
                    tenant_id=tenant_id,
                    thread_id=thread_id,
                    output=out,
                    interrupts=event.lifecycle.interrupts,
                ),
                timeout=_TIMEOUT,
                metadata=self.tokens.call(tenant_id),
            ),
        )
        if resp.found:
            event.data.CopyFrom(resp.values)
        return event

    # -- thread writes (on the owner) ------------------------------------------------------
    async def update_state(
        self,
        scoped: str,
        tenant_id: str,
        thread_id: str,
        graph_id: str,
        values: Any,
        *,
        as_node: str,
        checkpoint_id: str,
        checkpoint_ns: str,
    ) -> tuple[str, str]:
        resp = await self._call(
            scoped,
            lambda s: s.UpdateThreadState(
                runtime_pb2.UpdateThreadStateRequest(
                    tenant_id=tenant_id,
                    thread_id=thread_id,
                    graph_id=graph_id,
                    values=to_value(values),
                    as_node=as_node,
                    checkpoint_id=checkpoint_id,
                    checkpoint_ns=checkpoint_ns,
                ),
                timeout=_WRITE_TIMEOUT,
                metadata=self.tokens.call(tenant_id),
            ),
        )
        return resp.checkpoint_id, resp.checkpoint_ns

    async def delete_thread(
        self, scoped: str, tenant_id: str, thread_id: str, *, checkpoints_only: bool = False
    ) -> None:
        await self._call(
            scoped,
            lambda s: s.DeleteThread(
                runtime_pb2.DeleteThreadRequest(
                    tenant_id=tenant_id, thread_id=thread_id, checkpoints_only=checkpoints_only
                ),
                timeout=_WRITE_TIMEOUT,
                metadata=self.tokens.call(tenant_id),
            ),
        )

    async def copy_thread(
        self, target_scoped: str, tenant_id: str, source: str, target: str
    ) -> None:
        await self._call(
            target_scoped,
            lambda s: s.CopyThread(
                runtime_pb2.CopyThreadRequest(
                    tenant_id=tenant_id, source_thread_id=source, target_thread_id=target
                ),
                timeout=_WRITE_TIMEOUT,
                metadata=self.tokens.call(tenant_id),
            ),
        )

    async def prune_thread(self, scoped: str, tenant_id: str, thread_id: str) -> None:
        await self._call(
            scoped,
            lambda s: s.PruneThread(
                runtime_pb2.PruneThreadRequest(tenant_id=tenant_id, thread_id=thread_id),
                timeout=_WRITE_TIMEOUT,
                metadata=self.tokens.call(tenant_id),
            ),
        )

    async def cancel_run(
        self, scoped: str, tenant_id: str, thread_id: str, run_id: str, action: str
    ) -> None:
        """Tell the runtime driving a run to stop it (best effort: the record says so too)."""
        owner = await self.placement.owner(scoped)
        if owner is None or not owner.address:
            return
        # best effort: its driver also sees the recorded request at its next step
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self._stub(owner.address).CancelRun(
                runtime_pb2.CancelRunRequest(
                    tenant_id=tenant_id,
                    thread_id=thread_id,
                    run_id=run_id,
                    action=2 if action == "rollback" else 1,
                ),
                timeout=_TIMEOUT,
                metadata=self.tokens.call(tenant_id),
            )

"""A thread's state outside a run: read it, and write it as its owner.

Reads (state, history, the graph's shape) go to any runtime. Writes (update_state,
delete, copy onto a new thread, prune) run here only while this runtime holds the
thread's lease (``RunManager.holding``), through the fenced checkpointer: the same
two guards as a run's writes (self-fencing on the lease, the Redis fence on the token).
A thread with an active run is not written to: FAILED_PRECONDITION, as LangGraph's
Agent Server answers 409 for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.errors import InvalidUpdateError
from langgraph.pregel import Pregel
from langgraph.types import StateSnapshot

from mesh_core.adapters.redis.records import ACTIVE_STATUSES, RecordStore, scoped_thread_id
from mesh_core.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
)
from mesh_core.jsonvalue import to_jsonable
from mesh_core.reasons import Reason
from runtime_svc.fencing import FencedCheckpointer

__all__ = [
    "ThreadStore",
    "delete_thread_data",
    "graph_json",
    "graph_schemas",
    "require_checkpoint",
    "subgraph_schemas",
]


async def require_checkpoint(
    checkpointer: Any, scoped: str, checkpoint_id: str, checkpoint_ns: str = ""
) -> None:
    """NOT_FOUND unless the thread has this checkpoint."""
    found = await checkpointer.aget_tuple(
        {
            "configurable": {
                "thread_id": scoped,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint_id,
            }
        }
    )
    if found is None:
        raise NotFoundError(
            f"checkpoint {checkpoint_id!r} not found", metadata={"checkpoint_id": checkpoint_id}
        )


async def delete_thread_data(
    checkpointer: Any, records: RecordStore, lease: Any, tenant_id: str, thread_id: str
) -> None:
    """Delete a thread's checkpoints (fenced) and its records, holding its lease."""
    scoped = scoped_thread_id(tenant_id, thread_id)
    await FencedCheckpointer(checkpointer, lease).adelete_thread(scoped)
    lease.check()
    await records.delete_thread(tenant_id, thread_id)


class ThreadStore:
    """Thread reads and owner writes of one runtime (plain Python in, LangGraph out)."""

    def __init__(self, checkpointer: Any, records: RecordStore, manager: Any) -> None:
        self.checkpointer = checkpointer
        self.records = records
        self.manager = manager

    @staticmethod
    def _config(scoped: str, checkpoint_id: str = "", ns: str = "") -> RunnableConfig:
        conf: dict[str, Any] = {"thread_id": scoped, "checkpoint_ns": ns}
        if checkpoint_id:
            conf["checkpoint_id"] = checkpoint_id
        return {"configurable": conf}

    @staticmethod
    def _bound(graph: Pregel, saver: Any) -> Pregel:
        """The graph with ``saver`` as its checkpointer. (Handing the saver over in the
        config instead would make LangGraph read a subgraph's namespace with the root
        graph's nodes: it takes a config carrying a checkpointer for a call from inside.)"""
        return graph.copy(update={"checkpointer": saver})

    # -- reads ---------------------------------------------------------------------------
    async def state(
        self,
        graph: Pregel,
        tenant_id: str,
        thread_id: str,
        *,
        checkpoint_id: str = "",
        checkpoint_ns: str = "",
        subgraphs: bool = False,
    ) -> StateSnapshot:
        scoped = scoped_thread_id(tenant_id, thread_id)
        if checkpoint_id:
            await require_checkpoint(self.checkpointer, scoped, checkpoint_id, checkpoint_ns)
        config = self._config(scoped, checkpoint_id, checkpoint_ns)
        return await self._bound(graph, self.checkpointer).aget_state(config, subgraphs=subgraphs)

    async def history(
        self,
        graph: Pregel,
        tenant_id: str,
        thread_id: str,
        *,
        limit: int = 10,
        before: str = "",
        metadata: dict[str, Any] | None = None,
        checkpoint_ns: str = "",
        checkpoint_id: str = "",
    ) -> list[StateSnapshot]:
        scoped = scoped_thread_id(tenant_id, thread_id)
        config = self._config(scoped, checkpoint_id, checkpoint_ns)
        before_cfg: RunnableConfig | None = (
            {"configurable": {"checkpoint_id": before}} if before else None
        )
        return [
            s
            async for s in self._bound(graph, self.checkpointer).aget_state_history(
                config, filter=metadata or None, before=before_cfg, limit=limit
            )
        ]

    # -- owner writes --------------------------------------------------------------------
    async def _idle(self, tenant_id: str, thread_id: str) -> None:
        thread = await self.records.get_thread(tenant_id, thread_id)
        if thread is None or not thread.active_run:
            return
        run = await self.records.get_run(tenant_id, thread_id, thread.active_run)
        if run is not None and run.status in ACTIVE_STATUSES:
            raise FailedPreconditionError(
                f"thread {thread_id!r} is busy with run {run.run_id}",
                reason=Reason.THREAD_BUSY,
                metadata={"thread_id": thread_id, "active_run_id": run.run_id},
            )

    async def update_state(
        self,
        graph: Pregel,
        tenant_id: str,
        thread_id: str,
        values: Any,
        *,
        as_node: str = "",
        checkpoint_id: str = "",
        checkpoint_ns: str = "",
    ) -> tuple[str, str]:
        """LangGraph's ``update_state`` as the thread's owner: (checkpoint id, ns) made."""
        if as_node and as_node not in graph.nodes:
            raise InvalidArgumentError(
                f"{as_node!r} is not a node of the graph",
                [FieldViolation("as_node", f"one of {', '.join(_user_nodes(graph))}")],
            )
        if checkpoint_ns and not _has_subgraph(graph, checkpoint_ns):
            raise InvalidArgumentError(
                f"checkpoint_ns {checkpoint_ns!r} names no subgraph of the graph",
                [FieldViolation("checkpoint_ns", "a subgraph's namespace, or empty")],
            )
        scoped = scoped_thread_id(tenant_id, thread_id)
        async with self.manager.holding(scoped) as lease:
            await self._idle(tenant_id, thread_id)
            if checkpoint_id:
                await require_checkpoint(self.checkpointer, scoped, checkpoint_id, checkpoint_ns)
            config = self._config(scoped, checkpoint_id, checkpoint_ns)
            config.setdefault("configurable", {})["fencing_token"] = lease.token
            fenced = self._bound(graph, FencedCheckpointer(self.checkpointer, lease))
            try:
                new = await fenced.aupdate_state(config, values, as_node=as_node or None)
            except InvalidUpdateError as exc:
                raise InvalidArgumentError(
                    f"invalid state update: {exc}", [FieldViolation("values", str(exc))]
                ) from None
        out = new.get("configurable") or {}
        return str(out.get("checkpoint_id", "")), str(out.get("checkpoint_ns", ""))

    async def delete(self, tenant_id: str, thread_id: str, *, checkpoints_only: bool) -> None:
        scoped = scoped_thread_id(tenant_id, thread_id)
        async with self.manager.holding(scoped) as lease:
            await self._idle(tenant_id, thread_id)
            if checkpoints_only:
                await FencedCheckpointer(self.checkpointer, lease).adelete_thread(scoped)
            else:
                await delete_thread_data(
                    self.checkpointer, self.records, lease, tenant_id, thread_id
                )

    async def copy(self, tenant_id: str, source_id: str, target_id: str) -> None:
        """Copy the source's checkpoints onto the (new) target thread, as its owner."""
        target = scoped_thread_id(tenant_id, target_id)
        async with self.manager.holding(target) as lease:
            await FencedCheckpointer(self.checkpointer, lease).acopy_thread(
                scoped_thread_id(tenant_id, source_id), target
            )

    async def prune(self, tenant_id: str, thread_id: str) -> None:
        scoped = scoped_thread_id(tenant_id, thread_id)
        async with self.manager.holding(scoped) as lease:
            await self._idle(tenant_id, thread_id)
            await FencedCheckpointer(self.checkpointer, lease).aprune_keep_last(scoped, 1)


def _user_nodes(graph: Pregel) -> list[str]:
    return [n for n in graph.nodes if not n.startswith("__")]


# -- the graph's shape ------------------------------------------------------------------
def graph_json(graph: Pregel, xray: int = 0) -> dict[str, Any]:
    """Nodes and edges, as LangGraph draws the graph (``xray``: subgraph depth, -1 all)."""
    drawable = graph.get_graph(xray=True if xray < 0 else xray)
    data = drawable.to_json()
    return {
        "nodes": [
            {k: v for k, v in n.items() if k in ("id", "type", "metadata")}
            | ({"name": n["data"].get("name")} if isinstance(n.get("data"), dict) else {})
            for n in data.get("nodes", [])
        ],
        "edges": [to_jsonable(e) for e in data.get("edges", [])],
    }


def _schema(fn: Any) -> Any:
    try:
        return to_jsonable(fn())
    except Exception:  # a schema LangGraph cannot render is left out
        return None


def graph_schemas(graph_id: str, graph: Pregel) -> dict[str, Any]:
    builder = getattr(graph, "builder", None)
    state_type = getattr(builder, "state_schema", None)

    def state() -> Any:
        from pydantic import TypeAdapter

        return TypeAdapter(state_type).json_schema() if state_type is not None else None

    return {
        "graph_id": graph_id,
        "input_schema": _schema(graph.get_input_jsonschema),
        "output_schema": _schema(graph.get_output_jsonschema),
        "state_schema": _schema(state),
        "config_schema": _schema(graph.get_config_jsonschema),
        "context_schema": _schema(graph.get_context_jsonschema),
    }


def subgraph_schemas(
    graph_id: str, graph: Pregel, namespace: str = "", recurse: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    subgraphs: Sequence[tuple[str, Any]] = list(
        graph.get_subgraphs(namespace=namespace or None, recurse=recurse)
    )
    for ns, sub in subgraphs:
        out[ns] = graph_schemas(graph_id, sub)
    return out


def _has_subgraph(graph: Pregel, checkpoint_ns: str) -> bool:
    """Whether ``checkpoint_ns`` ("node:task_id|node:task_id") names a subgraph of
    ``graph`` (LangGraph's update_state refuses any other namespace with a ValueError)."""
    path = "|".join(p.partition(":")[0] for p in checkpoint_ns.split("|") if not p.isdigit())
    return any(True for _ in graph.get_subgraphs(namespace=path, recurse=True))

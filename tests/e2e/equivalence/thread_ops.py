"""Thread operations compared with in-process LangGraph: history, update_state, forks, copies.

A *scenario* is a script over a :class:`Side` (in-process LangGraph with InMemorySaver,
or the mesh through its client) that returns what it observed; both sides run the same
script and must observe the same. Checkpoint ids differ between the two sides by
construction (time-based UUIDs), so a script names checkpoints by their position in the
thread's history, and a history is compared as, per checkpoint newest first: its values,
``next``, ``metadata.step`` and ``metadata.source``, the position of its parent, and its
tasks (name, whether it failed, its interrupts' values).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from mesh_client import MeshClient
from tests.e2e.equivalence.harness import _scrub, _wire, graph_of

__all__ = ["SCENARIOS", "InProcessSide", "MeshSide", "Scenario", "Side"]

HISTORY_LIMIT = 200


class Side(Protocol):
    async def new_thread(self) -> str: ...

    async def run(
        self,
        thread: str,
        input: Any = None,
        *,
        command: dict[str, Any] | None = None,
        checkpoint: int | None = None,
        interrupt_before: tuple[str, ...] = (),
    ) -> Any: ...

    async def history(self, thread: str) -> list[dict[str, Any]]: ...

    async def update_state(
        self, thread: str, values: Any, *, as_node: str | None = None, checkpoint: int | None = None
    ) -> int: ...

    async def copy(self, thread: str) -> str: ...

    async def subgraph_history(self, thread: str) -> list[dict[str, Any]]: ...


def _normalize(snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Histories as compared: ``snapshots`` are {id, parent, values, next, metadata, tasks}."""
    position = {s["id"]: n for n, s in enumerate(snapshots)}
    return [
        {
            "values": _scrub(_wire(s["values"])),
            "next": sorted(s["next"]),
            "step": s["metadata"].get("step"),
            "source": s["metadata"].get("source"),
            "parent": position.get(s["parent"]) if s["parent"] else None,
            "tasks": sorted(
                [t["name"], bool(t["error"]), [_scrub(_wire(v)) for v in t["interrupts"]]]
                for t in s["tasks"]
            ),
        }
        for s in snapshots
    ]


class _Positions:
    """What both sides share: checkpoints named by their position in the history."""

    def __init__(self) -> None:
        self._ids: dict[str, list[str]] = {}

    async def _raw(self, thread: str, ns: str = "") -> list[dict[str, Any]]:
        raise NotImplementedError

    async def _subgraph_ns(self, thread: str) -> str:
        raise NotImplementedError

    async def subgraph_history(self, thread: str) -> list[dict[str, Any]]:
        """The history of the subgraph the thread's pending task is in (read with
        subgraphs, then by its checkpoint namespace)."""
        return _normalize(await self._raw(thread, await self._subgraph_ns(thread)))

    async def _snapshots(self, thread: str) -> list[dict[str, Any]]:
        out = await self._raw(thread)
        self._ids[thread] = [s["id"] for s in out]
        return out

    async def _checkpoint_id(self, thread: str, position: int | None) -> str | None:
        if position is None:
            return None
        await self._snapshots(thread)
        return self._ids[thread][position]

    async def _position(self, thread: str, checkpoint_id: str) -> int:
        await self._snapshots(thread)
        return self._ids[thread].index(checkpoint_id)

    async def history(self, thread: str) -> list[dict[str, Any]]:
        return _normalize(await self._snapshots(thread))


class InProcessSide(_Positions):
    """The reference: the graph compiled with InMemorySaver, durability "sync"."""

    def __init__(self, graph_id: str) -> None:
        super().__init__()
        self.saver = InMemorySaver()
        self.graph: Any = graph_of(graph_id).copy(update={"checkpointer": self.saver})

    @staticmethod
    def _config(thread: str, checkpoint_id: str | None = None) -> dict[str, Any]:
        conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ""}
        if checkpoint_id:
            conf["checkpoint_id"] = checkpoint_id
        return {"configurable": conf}

    async def new_thread(self) -> str:
        return str(uuid.uuid4())

    async def _subgraph_ns(self, thread: str) -> str:
        state = await self.graph.aget_state(self._config(thread), subgraphs=True)
        sub = next(t.state for t in state.tasks if t.state is not None)
        return str(sub.config["configurable"]["checkpoint_ns"])

    async def _raw(self, thread: str, ns: str = "") -> list[dict[str, Any]]:
        out = []
        config = self._config(thread)
        config["configurable"]["checkpoint_ns"] = ns
        async for s in self.graph.aget_state_history(config, limit=HISTORY_LIMIT):
            out.append(
                {
                    "id": s.config["configurable"]["checkpoint_id"],
                    "parent": (s.parent_config or {}).get("configurable", {}).get("checkpoint_id"),
                    "values": s.values,
                    "next": list(s.next),
                    "metadata": dict(s.metadata or {}),
                    "tasks": [
                        {
                            "name": t.name,
                            "error": t.error,
                            "interrupts": [i.value for i in t.interrupts],
                        }
                        for t in s.tasks
                    ],
                }
            )
        return out

    async def run(
        self,
        thread: str,
        input: Any = None,
        *,
        command: dict[str, Any] | None = None,
        checkpoint: int | None = None,
        interrupt_before: tuple[str, ...] = (),
    ) -> Any:
        config = self._config(thread, await self._checkpoint_id(thread, checkpoint))
        payload = Command(**command) if command is not None else input
        out = await self.graph.ainvoke(
            payload, config, durability="sync", interrupt_before=list(interrupt_before) or None
        )
        return _scrub(_wire(out))

    async def update_state(
        self, thread: str, values: Any, *, as_node: str | None = None, checkpoint: int | None = None
    ) -> int:
        config = self._config(thread, await self._checkpoint_id(thread, checkpoint))
        new = await self.graph.aupdate_state(config, values, as_node=as_node)
        return await self._position(thread, new["configurable"]["checkpoint_id"])

    async def copy(self, thread: str) -> str:
        """Every checkpoint and pending write onto a new thread (InMemorySaver has no
        copy_thread of its own): what the mesh's checkpointer does in one step."""
        target = str(uuid.uuid4())
        tuples = [t async for t in self.saver.alist({"configurable": {"thread_id": thread}})]
        for tup in reversed(tuples):  # oldest first: parents before children
            ns = tup.config["configurable"].get("checkpoint_ns", "")
            parent = (tup.parent_config or {}).get("configurable", {}).get("checkpoint_id")
            conf: dict[str, Any] = {"thread_id": target, "checkpoint_ns": ns}
            if parent:
                conf["checkpoint_id"] = parent
            await self.saver.aput(
                {"configurable": conf},
                tup.checkpoint,
                tup.metadata,
                tup.checkpoint["channel_versions"],
            )
            by_task: dict[str, list[tuple[str, Any]]] = {}
            for task_id, channel, value in tup.pending_writes or ():
                by_task.setdefault(task_id, []).append((channel, value))
            here = {"thread_id": target, "checkpoint_ns": ns, "checkpoint_id": tup.checkpoint["id"]}
            for task_id, writes in by_task.items():
                await self.saver.aput_writes({"configurable": here}, writes, task_id)
        return target


class MeshSide(_Positions):
    """The same through the mesh's public API."""

    def __init__(self, client: MeshClient, graph_id: str) -> None:
        super().__init__()
        self.client = client
        self.graph_id = graph_id

    async def new_thread(self) -> str:
        t = await self.client.threads.create(metadata={"suite": "thread-equivalence"})
        return str(t["thread_id"])

    async def _subgraph_ns(self, thread: str) -> str:
        state = await self.client.threads.get_state(thread, subgraphs=True)
        sub = next(t["state"] for t in state["tasks"] if t["state"] is not None)
        return str(sub["checkpoint"]["checkpoint_ns"])

    async def _raw(self, thread: str, ns: str = "") -> list[dict[str, Any]]:
        states = await self.client.threads.get_history(
            thread, limit=HISTORY_LIMIT, checkpoint={"checkpoint_ns": ns} if ns else None
        )
        return [
            {
                "id": s["checkpoint_id"],
                "parent": s["parent_checkpoint_id"] or None,
                "values": s["values"],
                "next": s["next"],
                "metadata": s["metadata"],
                "tasks": [
                    {
                        "name": t["name"],
                        "error": t["error"],
                        "interrupts": [i["value"] for i in t["interrupts"]],
                    }
                    for t in s["tasks"]
                ],
            }
            for s in states
        ]

    async def run(
        self,
        thread: str,
        input: Any = None,
        *,
        command: dict[str, Any] | None = None,
        checkpoint: int | None = None,
        interrupt_before: tuple[str, ...] = (),
    ) -> Any:
        out = await self.client.runs.wait(
            thread,
            self.graph_id,
            input=input,
            command=command,
            checkpoint_id=await self._checkpoint_id(thread, checkpoint),
            interrupt_before=interrupt_before,
        )
        return _scrub(out)

    async def update_state(
        self, thread: str, values: Any, *, as_node: str | None = None, checkpoint: int | None = None
    ) -> int:
        done = await self.client.threads.update_state(
            thread,
            values,
            as_node=as_node,
            checkpoint_id=await self._checkpoint_id(thread, checkpoint),
        )
        return await self._position(thread, done["checkpoint"]["checkpoint_id"])

    async def copy(self, thread: str) -> str:
        return str((await self.client.threads.copy(thread))["thread_id"])


@dataclass(frozen=True)
class Scenario:
    id: str
    graph: str
    script: Callable[[Side], Awaitable[list[Any]]]


# -- the scenarios ----------------------------------------------------------------------------
async def _history_send(side: Side) -> list[Any]:
    """History of a Send map-reduce run (its Send tasks on remote workers in the mesh)."""
    t = await side.new_thread()
    out = await side.run(t, {"words": ["mesh", "of", "graphs"]})
    return [out, await side.history(t)]


async def _history_interrupted(side: Side) -> list[Any]:
    """History with pending interrupts in its tasks, then resumed twice."""
    t = await side.new_thread()
    obs = [await side.run(t, {"request": "h1"}), await side.history(t)]
    obs.append(await side.run(t, command={"resume": "ada"}))
    obs.append(await side.run(t, command={"resume": 5}))
    return [*obs, await side.history(t)]


async def _update_then_continue(side: Side) -> list[Any]:
    """Stopped before "big"; update_state without as_node (LangGraph attributes it to the
    last node that ran, so routing is evaluated again), then continue with no input."""
    t = await side.new_thread()
    obs = [await side.run(t, {"x": 42}, interrupt_before=("big",))]
    obs.append(await side.update_state(t, {"x": 5}))
    obs.append(await side.history(t))
    obs.append(await side.run(t, None))
    return [*obs, await side.history(t)]


async def _update_as_node_then_continue(side: Side) -> list[Any]:
    """A finished run; update_state as "classify" routes again: "small" runs next."""
    t = await side.new_thread()
    obs = [await side.run(t, {"x": 42})]
    obs.append(await side.update_state(t, {"x": 3, "path": ["manual"]}, as_node="classify"))
    obs.append(await side.history(t))
    obs.append(await side.run(t, None))
    return [*obs, await side.history(t)]


async def _fork_from_earlier(side: Side) -> list[Any]:
    """A Send run, then a fork from its first checkpoint after the input (new input), and
    a replay from the same checkpoint (no input): both branches stay in the history."""
    t = await side.new_thread()
    obs = [await side.run(t, {"words": ["a", "bb", "ccc"]})]
    history = await side.history(t)
    after_input = next(n for n, s in enumerate(history) if s["step"] == 0)
    obs.append(await side.run(t, {"words": ["dddd", "e"]}, checkpoint=after_input))
    obs.append(await side.history(t))
    step0 = next(n for n, s in enumerate(await side.history(t)) if s["step"] == 0)
    obs.append(await side.run(t, None, checkpoint=step0))
    return [*obs, await side.history(t)]


async def _update_fork(side: Side) -> list[Any]:
    """update_state from an earlier checkpoint (a fork), then continue from it."""
    t = await side.new_thread()
    obs = [await side.run(t, {"x": 42})]
    history = await side.history(t)
    first = next(n for n, s in enumerate(history) if s["step"] == 1)
    obs.append(await side.update_state(t, {"x": -3}, as_node="classify", checkpoint=first))
    obs.append(await side.run(t, None))
    return [*obs, await side.history(t)]


async def _copy_then_run_both(side: Side) -> list[Any]:
    t = await side.new_thread()
    obs = [await side.run(t, {"seed": 1})]
    c = await side.copy(t)
    obs.append(await side.history(c))
    obs.append(await side.run(t, {"seed": 2}))
    obs.append(await side.run(c, {"seed": 3}))
    obs.append(await side.history(t))
    return [*obs, await side.history(c)]


async def _copy_send_then_run_both(side: Side) -> list[Any]:
    t = await side.new_thread()
    obs = [await side.run(t, {"words": ["x", "yy"]})]
    c = await side.copy(t)
    obs.append(await side.run(t, {"words": ["zzz"]}))
    obs.append(await side.run(c, {"words": ["wwww", "v"]}))
    return [*obs, await side.history(t), await side.history(c)]


async def _subgraph_history(side: Side) -> list[Any]:
    """Interrupted inside a subgraph: the subgraph's own history, by its namespace."""
    t = await side.new_thread()
    obs = [await side.run(t, {"topic": "mesh"})]
    obs.append(await side.subgraph_history(t))
    obs.append(await side.run(t, command={"resume": "approved"}))
    return [*obs, await side.history(t)]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("history-send", "send", _history_send),
    Scenario("history-interrupted", "interrupts", _history_interrupted),
    Scenario("history-of-a-subgraph", "subgraph_interrupt", _subgraph_history),
    Scenario("update-state-then-continue", "conditional", _update_then_continue),
    Scenario("update-state-as-node-then-continue", "conditional", _update_as_node_then_continue),
    Scenario("update-state-fork", "conditional", _update_fork),
    Scenario("fork-from-earlier-checkpoint", "send", _fork_from_earlier),
    Scenario("copy-then-run-both", "parallel", _copy_then_run_both),
    Scenario("copy-send-then-run-both", "send", _copy_send_then_run_both),
)

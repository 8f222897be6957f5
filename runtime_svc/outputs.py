"""A run's output, and where it is kept once the run has ended.

A run's output is what ``Pregel.ainvoke`` returns: its last ``values`` chunk, with the
interrupts it paused on under ``"__interrupt__"``. Live followers get it in the run's
final event. The event log need not copy it: when the run's last checkpoint reads as
exactly that chunk, the final event names the checkpoint (``output_ref``), and whoever
reads the event from the log later (a joiner, a gateway after a failover, a webhook)
reads the output from the checkpoint (``read_output``) as long as the thread keeps it.
So a long chat thread's log holds a reference per run, not its whole state per run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langgraph.pregel import Pregel

from mesh_core.jsonvalue import to_jsonable
from runtime_svc.langgraph_api import achannels_from_checkpoint, read_channels

__all__ = ["output_ref", "read_output", "run_output"]

INTERRUPT_KEY = "__interrupt__"


def run_output(values: Any, interrupts: Sequence[Any]) -> Any:
    """A run's output as ``Pregel.ainvoke`` gives it: its last values, with the
    interrupts it paused on under ``"__interrupt__"``."""
    if not interrupts:
        return values
    if isinstance(values, dict):
        return {**values, INTERRUPT_KEY: list(interrupts)}
    return {INTERRUPT_KEY: list(interrupts)}


def _reads_as(values: Any, keys: str | Sequence[str], saved: Mapping[str, Any]) -> bool:
    """Whether ``values`` (a ``values`` chunk) is what a checkpoint with channel values
    ``saved`` reads as: the very objects it saved (LangGraph reads a channel as the
    object it checkpoints), for the same channels. Any doubt: False."""
    if isinstance(keys, str):
        return keys in saved and values is saved[keys]
    if not isinstance(values, dict):
        return False
    # the chunk LangGraph streams when a run pauses carries its interrupts too
    state = {k: v for k, v in values.items() if k != INTERRUPT_KEY}
    present = [k for k in keys if k in saved]
    return len(present) == len(state) and all(k in state and state[k] is saved[k] for k in present)


def output_ref(fenced: Any, graph: Pregel, graph_id: str, values: Any) -> dict[str, str] | None:
    """The checkpoint whose state is the run's last ``values``: the last root checkpoint
    the run wrote through ``fenced`` (its FencedCheckpointer), if it reads as them.

    None when the run wrote none, or anything changed after it (an interrupt applies
    the finished tasks' writes to the last values but not to the checkpoint)."""
    last = getattr(fenced, "last_root", None)
    if last is None or values is None:
        return None
    config, saved = last
    if not _reads_as(values, graph.stream_channels_asis, saved):
        return None
    conf = config["configurable"]
    return {
        "graph_id": graph_id,
        "checkpoint_id": str(conf["checkpoint_id"]),
        "checkpoint_ns": str(conf.get("checkpoint_ns") or ""),
    }


async def read_output(
    graph: Pregel,
    checkpointer: Any,
    thread_id: str,
    checkpoint_id: str,
    checkpoint_ns: str,
    interrupts: Sequence[Any],
) -> tuple[bool, Any]:
    """(found, output): the output of a run whose final event names this checkpoint,
    JSON-ready as the final event carries it; found is False once the thread no longer
    has the checkpoint."""
    saved = await checkpointer.aget_tuple(
        {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint_id,
            }
        }
    )
    if saved is None:
        return False, None
    migrate = getattr(graph, "_migrate_checkpoint", None)
    if migrate is not None:  # a checkpoint of an older LangGraph: as the loop reads it
        migrate(saved.checkpoint)
    channels, _ = await achannels_from_checkpoint(
        graph.channels, saved.checkpoint, saver=checkpointer, config=saved.config
    )
    values = read_channels(channels, graph.stream_channels_asis)
    return True, to_jsonable(run_output(values, interrupts))

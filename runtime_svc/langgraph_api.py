"""Every private LangGraph API the runtime uses, in one place.

The mesh plugs into LangGraph's Pregel loop through private hooks: the runner's task
submitter (Send fan-out to workers), rebuilding a task on a worker
(``prepare_single_task``), the retry wrapper, the call hook of ``@task`` functions,
the stream of a parent graph, the ``tasks`` stream event that comes right before a
superstep's tasks start (the owner's lease check). LangGraph is pinned to one exact
version (pyproject.toml); ``tests/contract/test_langgraph_private_api.py`` walks
``__all__`` and checks each symbol still is what the runtime expects, so an upgrade
fails there first, loudly. Import these names from here, never from
``langgraph._internal`` or ``langgraph.pregel._*`` directly.
"""

from __future__ import annotations

from langgraph._internal._constants import (
    CONF,
    CONFIG_KEY_CALL,
    CONFIG_KEY_CHECKPOINT_ID,
    CONFIG_KEY_CHECKPOINT_MAP,
    CONFIG_KEY_CHECKPOINT_NS,
    CONFIG_KEY_CHECKPOINTER,
    CONFIG_KEY_DURABILITY,
    CONFIG_KEY_RESUME_MAP,
    CONFIG_KEY_RESUMING,
    CONFIG_KEY_RUNNER_SUBMIT,
    CONFIG_KEY_RUNTIME,
    CONFIG_KEY_SCRATCHPAD,
    CONFIG_KEY_STREAM,
    CONFIG_KEY_THREAD_ID,
    INPUT,
    NS_SEP,
    NULL_TASK_ID,
    PULL,
    PUSH,
    RESUME,
)
from langgraph._internal._scratchpad import PregelScratchpad
from langgraph.func import _TaskFunction
from langgraph.pregel._algo import (
    PregelTaskWrites,
    apply_writes,
    checkpoint_null_version,
    prepare_single_task,
)
from langgraph.pregel._checkpoint import achannels_from_checkpoint
from langgraph.pregel._io import read_channels
from langgraph.pregel._messages import StreamMessagesHandler
from langgraph.pregel._retry import arun_with_retry, run_with_retry
from langgraph.pregel._task_status import read_task_statuses

__all__ = [
    "CONF",
    "CONFIG_KEY_CALL",
    "CONFIG_KEY_CHECKPOINTER",
    "CONFIG_KEY_CHECKPOINT_ID",
    "CONFIG_KEY_CHECKPOINT_MAP",
    "CONFIG_KEY_CHECKPOINT_NS",
    "CONFIG_KEY_DURABILITY",
    "CONFIG_KEY_RESUME_MAP",
    "CONFIG_KEY_RESUMING",
    "CONFIG_KEY_RUNNER_SUBMIT",
    "CONFIG_KEY_RUNTIME",
    "CONFIG_KEY_SCRATCHPAD",
    "CONFIG_KEY_STREAM",
    "CONFIG_KEY_THREAD_ID",
    "INPUT",
    "NS_SEP",
    "NULL_TASK_ID",
    "PULL",
    "PUSH",
    "RESUME",
    "PregelScratchpad",
    "PregelTaskWrites",
    "StreamMessagesHandler",
    "_TaskFunction",
    "achannels_from_checkpoint",
    "apply_writes",
    "arun_with_retry",
    "checkpoint_null_version",
    "prepare_single_task",
    "read_channels",
    "read_task_statuses",
    "run_with_retry",
]

"""Graphs and worker-process helpers shared by the remote task tests (no tests here).

Worker processes import the graphs from this module by reference
(``tests.integration.test_remote_support:<builder>``), so owner and workers run the
same graph code. Nodes record their process id in the state, and where a test needs
to count executions they drop a marker file into ``LGMESH_TEST_MARKERS`` (set in the
worker's environment).
"""

from __future__ import annotations

import operator
import os
import signal
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any, TypedDict

import redis.asyncio as aredis
from langgraph.config import get_config, get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy, Send, interrupt

from mesh_cli.launcher import ServiceProcess
from mesh_core.config import InfraSettings

ROOT = Path(__file__).resolve().parents[2]
MODULE = "tests.integration.test_remote_support"
GRAPHS_FILE = Path(__file__).with_name("remote_graphs.yaml")


class FanState(TypedDict, total=False):
    n: int
    start: int
    results: Annotated[list[int], operator.add]
    pids: Annotated[list[int], operator.add]
    total: int
    answers: Annotated[list[str], operator.add]


class Item(TypedDict):
    i: int


def _marker(tag: str) -> None:
    where = os.environ.get("LGMESH_TEST_MARKERS")
    if where:
        Path(where, f"{tag}.{os.getpid()}.{uuid.uuid4().hex[:6]}").touch()


def _fan(state: FanState) -> list[Send]:
    start = state.get("start", 0)
    return [Send("work", {"i": i}) for i in range(start, start + state["n"])]


def _reduce(state: FanState) -> dict[str, Any]:
    return {"total": sum(state.get("results", []))}


def _fan_graph(work: Any, **node_kw: Any) -> StateGraph[FanState]:
    b: StateGraph[FanState] = StateGraph(FanState)
    b.add_node("work", work, **node_kw)
    b.add_node("reduce", _reduce)
    b.add_conditional_edges(START, _fan, ["work"])
    b.add_edge("work", "reduce")
    b.add_edge("reduce", END)
    return b


# -- map-reduce: light CPU work, custom stream events ---------------------------------
def _square(item: Item) -> dict[str, Any]:
    time.sleep(0.002)
    get_stream_writer()({"square": item["i"]})
    return {"results": [item["i"] * item["i"]], "pids": [os.getpid()]}


def mapreduce() -> StateGraph[FanState]:
    return _fan_graph(_square)


# -- slow: each task takes a while (for SIGKILL mid-task) -----------------------------
async def _slow(item: Item) -> dict[str, Any]:
    import asyncio

    _marker(f"start-{item['i']}")
    await asyncio.sleep(float(os.environ.get("LGMESH_TEST_SLOW", "1.0")))
    return {"results": [item["i"] + 100], "pids": [os.getpid()]}


def slow() -> StateGraph[FanState]:
    return _fan_graph(_slow)


# -- approve: one task asks a human ---------------------------------------------------
def _approve(item: Item) -> dict[str, Any]:
    _marker(f"run-{item['i']}")
    if item["i"] == 1:
        answer = interrupt({"question": "approve item 1?"})
        return {"results": [1], "answers": [str(answer)], "pids": [os.getpid()]}
    return {"results": [item["i"]], "pids": [os.getpid()]}


def approve() -> StateGraph[FanState]:
    return _fan_graph(_approve)


# -- retrying: fails twice per item, then succeeds (RetryPolicy on the node) ----------
_attempts: defaultdict[tuple[str, int], int] = defaultdict(int)
_attempts_lock = threading.Lock()


class FlakyError(RuntimeError):
    pass


def _flaky(item: Item) -> dict[str, Any]:
    key = (get_config()["configurable"]["thread_id"], item["i"])
    with _attempts_lock:
        _attempts[key] += 1
        n = _attempts[key]
    if item["i"] >= 100:
        raise FlakyError(f"item {item['i']} always fails (attempt {n})")
    if n < 3:
        raise FlakyError(f"item {item['i']} attempt {n}")
    return {"results": [n], "pids": [os.getpid()]}


def retrying() -> StateGraph[FanState]:
    return _fan_graph(
        _flaky,
        retry_policy=RetryPolicy(
            max_attempts=3, initial_interval=0.01, jitter=False, retry_on=FlakyError
        ),
    )


# -- poison: item 1 kills whatever process runs it ------------------------------------
def _poison(item: Item) -> dict[str, Any]:
    if item["i"] == 1:
        _marker("poison")
        os.kill(os.getpid(), signal.SIGKILL)
    return {"results": [item["i"]], "pids": [os.getpid()]}


def poison() -> StateGraph[FanState]:
    return _fan_graph(_poison)


def redis_client(settings: InfraSettings) -> aredis.Redis:
    """A client whose pool waits for a free connection instead of failing: a wide
    step saves hundreds of task writes at once."""
    pool = aredis.BlockingConnectionPool.from_url(settings.redis_url, max_connections=64)
    return aredis.Redis(connection_pool=pool)


# -- worker processes -----------------------------------------------------------------
def start_worker(
    settings: InfraSettings,
    *,
    worker_id: str,
    concurrency: int = 4,
    ack_wait: float = 30.0,
    max_deliveries: int = 3,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    wait: bool = True,
) -> ServiceProcess:
    """``lgmesh runtime --role worker`` serving every test graph; by default returns once
    it consumes the queue (``wait=False``: call ``wait_ready`` later, to start several
    at once). The task queue is made first, as an owner would (workers may not)."""
    make_task_queue(settings, ack_wait=ack_wait, max_deliveries=max_deliveries)
    proc = ServiceProcess(
        worker_id,
        [
            "runtime",
            "--role",
            "worker",
            "--graphs",
            str(GRAPHS_FILE),
            "--runtime-id",
            worker_id,
            "--worker-concurrency",
            str(concurrency),
            "--task-ack-wait",
            str(ack_wait),
            "--task-max-deliveries",
            str(max_deliveries),
            "--log-level",
            "WARNING",
        ],
        {**settings_env(settings), **(env or {})},
        log_file=log,
        cwd=str(ROOT),
    ).spawn()
    if wait:
        wait_ready(proc)
    return proc


def make_task_queue(settings: InfraSettings, *, ack_wait: float, max_deliveries: int) -> None:
    """Make the mesh's task streams and consumer (idempotent), as an owner does."""
    import asyncio
    import concurrent.futures

    import nats

    from mesh_core.adapters.nats.subjects import NatsNames
    from runtime_svc.remote import TaskQueueSettings
    from runtime_svc.remote._queue import ensure_task_queue

    async def make() -> None:
        nc = await nats.connect(settings.nats_url)
        try:
            queue = TaskQueueSettings(ack_wait=ack_wait, max_deliveries=max_deliveries)
            await ensure_task_queue(nc.jetstream(), NatsNames(settings.prefix), queue)
        finally:
            await nc.close()

    # in a thread of its own: callers may be inside an event loop
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, make()).result()


def settings_env(settings: InfraSettings) -> dict[str, str]:
    return {
        "LGMESH_NATS_URL": settings.nats_url,
        "LGMESH_REDIS_URL": settings.redis_url,
        "LGMESH_ETCD_URL": settings.etcd_url,
        "LGMESH_PREFIX": settings.prefix,
    }


def wait_ready(proc: ServiceProcess) -> ServiceProcess:
    return proc.wait_ready(60)


def stop_worker(proc: ServiceProcess) -> None:
    proc.stop(15)

"""A stand-alone remote task worker process.

    python -m runtime_svc.remote.worker_main --graphs g=package.module:graph \\
        [--concurrency 4] [--worker-id w1] [--ack-wait 30] [--max-deliveries 3]

Servers and namespace come from the environment (``LGMESH_NATS_URL``,
``LGMESH_REDIS_URL``, ``LGMESH_PREFIX``; see ``InfraSettings``). A graph reference is
``id=module:attr`` (or ``module:attr``, id = attr); ``attr`` may be a compiled graph,
a ``StateGraph`` builder or a function returning either. The worker prints
``worker ready`` once it consumes the queue, and on SIGTERM/SIGINT stops fetching,
finishes or hands back its tasks and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from mesh_core.config import InfraSettings
from runtime_svc.remote._queue import DEFAULT_ACK_WAIT, DEFAULT_MAX_DELIVERIES, TaskQueueSettings
from runtime_svc.remote._worker import TaskWorker

__all__ = ["load_graph", "main", "parse_graph_refs"]


def load_graph(ref: str) -> Pregel[Any, Any, Any, Any]:
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise ValueError(f"graph reference {ref!r} must look like 'module:attr'")
    obj: Any = importlib.import_module(target)
    for part in attr.split("."):
        obj = getattr(obj, part)
    for _ in range(2):
        if isinstance(obj, Pregel):
            return obj
        if isinstance(obj, StateGraph):
            return obj.compile()
        if callable(obj):
            obj = obj()
    if isinstance(obj, Pregel):
        return obj
    raise TypeError(f"{ref} is not a compiled graph, a StateGraph or a function returning one")


def parse_graph_refs(refs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for ref in refs:
        gid, eq, path = ref.partition("=")
        if not eq:
            gid, path = ref.rpartition(":")[2].rsplit(".", 1)[-1], ref
        if not gid or gid in out:
            raise ValueError(f"graph id of {ref!r} is empty or repeated")
        out[gid] = path
    return out


async def _run(args: argparse.Namespace) -> None:
    import redis.asyncio as aredis

    from mesh_core.adapters.redis.checkpointer import MeshCheckpointer

    settings = InfraSettings.from_env()
    graphs = {gid: load_graph(ref) for gid, ref in parse_graph_refs(args.graphs).items()}
    # blocking pool: a worker's concurrent tasks wait for a connection, never fail
    pool = aredis.BlockingConnectionPool.from_url(settings.redis_url, max_connections=32)
    client = aredis.Redis(connection_pool=pool)
    checkpointer = MeshCheckpointer(client, prefix=settings.prefix)
    worker = TaskWorker(
        settings,
        graphs,
        checkpointer,
        concurrency=args.concurrency,
        worker_id=args.worker_id or f"{socket.gethostname()}-{os.getpid()}",
        queue=TaskQueueSettings(ack_wait=args.ack_wait, max_deliveries=args.max_deliveries),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await worker.start()
    print("worker ready", flush=True)
    try:
        await stop.wait()
    finally:
        await worker.stop(grace=args.grace)
        await client.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m runtime_svc.remote.worker_main")
    p.add_argument("--graphs", nargs="+", required=True, help="id=module:attr ...")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--worker-id", default="")
    p.add_argument("--ack-wait", type=float, default=DEFAULT_ACK_WAIT)
    p.add_argument("--max-deliveries", type=int, default=DEFAULT_MAX_DELIVERIES)
    p.add_argument("--grace", type=float, default=10.0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()

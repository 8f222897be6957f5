"""A thread owner that commits fenced checkpoints, for the fencing chaos test.

Run as ``python -m tests.chaos._procs.fenced_writer --etcd-url ... --redis-url ...
--prefix ... --thread ... [--no-self-fence]``. It acquires the thread, bumps the
Redis fence to its token and commits checkpoint "A1", then prints ``acquired``.
On ``commit`` (stdin) it tries to commit checkpoint "A2" (``put``) and a pending
write on "A1" (``put_writes``):

* by default it first calls ``ThreadLease.check()`` (self-fencing) and prints
  ``rejected`` with ``layer: "self"`` if that refuses;
* with ``--no-self-fence`` it skips that check and goes straight to Redis, printing
  ``rejected`` with ``layer: "redis"`` if the fence script refuses both writes.

If a write goes through it prints ``committed`` (the test then fails).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

import redis.asyncio as aredis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, empty_checkpoint

from mesh_core.adapters.etcd import EtcdSession, ThreadLeases
from mesh_core.adapters.redis.checkpointer import MeshCheckpointer
from mesh_core.config import InfraSettings
from mesh_core.errors import StaleOwnerError


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


def owner_checkpoint(saver: MeshCheckpointer, owner: str) -> tuple[Checkpoint, ChannelVersions]:
    """A checkpoint whose one channel says who wrote it."""
    checkpoint = empty_checkpoint()
    version = saver.get_next_version(None, None)
    checkpoint["channel_values"] = {"owner": owner}
    checkpoint["channel_versions"] = {"owner": version}
    return checkpoint, {"owner": version}


def fenced_config(thread_id: str, token: int, checkpoint_id: str | None = None) -> RunnableConfig:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": "", "fencing_token": token}
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--etcd-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--thread", required=True)
    parser.add_argument("--ttl", type=int, default=2)
    parser.add_argument("--no-self-fence", action="store_true")
    args = parser.parse_args(argv)
    thread_id = args.thread

    settings = InfraSettings(etcd_url=args.etcd_url, redis_url=args.redis_url, prefix=args.prefix)
    redis = aredis.Redis.from_url(settings.redis_url)
    saver = MeshCheckpointer(redis, prefix=settings.prefix)
    session = EtcdSession(settings, ttl=args.ttl)
    await session.start()
    session.on_lost(lambda: emit("lost"))
    leases = ThreadLeases(session, None, "rt-a", "addr-a")
    lease = await leases.try_acquire(thread_id)
    if lease is None:
        emit("error", message="thread already owned")
        return 1
    await saver.abump_fence(thread_id, lease.token)
    checkpoint, versions = owner_checkpoint(saver, "A")
    await saver.aput(
        fenced_config(thread_id, lease.token), checkpoint, {"source": "loop", "step": 1}, versions
    )
    emit("acquired", token=lease.token, checkpoint_id=checkpoint["id"])

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := (await reader.readline()).decode().strip():
            if line == "exit":
                break
            if line != "commit":
                emit("error", message=f"unknown command {line!r}")
                continue
            if not args.no_self_fence:
                try:
                    lease.check()
                except StaleOwnerError as exc:
                    emit("rejected", layer="self", reason=exc.reason)
                    continue
            rejected: list[str] = []
            second, second_versions = owner_checkpoint(saver, "A")
            try:
                await saver.aput(
                    fenced_config(thread_id, lease.token, checkpoint["id"]),
                    second,
                    {"source": "loop", "step": 2},
                    second_versions,
                )
            except StaleOwnerError:
                rejected.append("put")
            try:
                await saver.aput_writes(
                    fenced_config(thread_id, lease.token, checkpoint["id"]),
                    [("owner", "A-late")],
                    task_id="task-a",
                )
            except StaleOwnerError:
                rejected.append("put_writes")
            if rejected == ["put", "put_writes"]:
                emit("rejected", layer="redis", writes=rejected)
            else:
                emit("committed", rejected=rejected)
    finally:
        await session.close()
        await redis.aclose()
    emit("closed")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(asyncio.run(main(sys.argv[1:])))

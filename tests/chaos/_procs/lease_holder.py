"""A runtime-like process that holds an etcd session and obeys commands on stdin.

Run as ``python -m tests.chaos._procs.lease_holder --etcd-url ... --prefix ... --holder-id ...``.
It prints one JSON object per line on stdout (``{"event": ...}``) and reads one
command per line on stdin:

    acquire <thread_id>      try_acquire; if busy print "busy", then acquire (watch) and
                             print "acquired" with the token
    release <thread_id>      release the held lease, print "released"
    register <runtime_id>    put itself in the runtime registry, print "registered"
    exit                     close the session (revoking the lease) and exit 0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

from mesh_core.adapters.etcd import (
    EtcdSession,
    RuntimeInfo,
    RuntimeRegistry,
    ThreadLease,
    ThreadLeases,
)
from mesh_core.config import InfraSettings


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--etcd-url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--holder-id", required=True)
    parser.add_argument("--ttl", type=int, default=2)
    args = parser.parse_args(argv)

    settings = InfraSettings(etcd_url=args.etcd_url, prefix=args.prefix)
    session = EtcdSession(settings, ttl=args.ttl)
    await session.start()
    session.on_lost(lambda: emit("lost"))
    leases = ThreadLeases(session, None, args.holder_id, f"addr-of-{args.holder_id}")
    registry = RuntimeRegistry(session)
    held: dict[str, ThreadLease] = {}
    emit("ready", lease_id=session.lease_id, holder_id=args.holder_id)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := (await reader.readline()).decode().strip():
            cmd, _, arg = line.partition(" ")
            if cmd == "acquire":
                lease = await leases.try_acquire(arg)
                if lease is None:
                    emit("busy", thread_id=arg)
                    lease = await leases.acquire(arg, timeout=60)
                held[arg] = lease
                emit("acquired", thread_id=arg, token=lease.token)
            elif cmd == "release":
                ok = await leases.release(held.pop(arg))
                emit("released", thread_id=arg, ok=ok)
            elif cmd == "register":
                await registry.register(RuntimeInfo(arg, f"addr-of-{arg}", capacity=4))
                emit("registered", runtime_id=arg)
            elif cmd == "exit":
                break
            else:
                emit("error", message=f"unknown command {cmd!r}")
    finally:
        await session.close()
    emit("closed")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(asyncio.run(main(sys.argv[1:])))

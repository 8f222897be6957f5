"""Build and serve one runtime process (owner role, worker role, or both)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from lgmesh.runtime.v1 import runtime_pb2_grpc
from prometheus_client import Gauge

from mesh_core.adapters.etcd.keys import EtcdKeys
from mesh_core.adapters.etcd.leases import ThreadLeases, read_thread_owner
from mesh_core.adapters.etcd.registry import RuntimeInfo, RuntimeRegistry
from mesh_core.adapters.etcd.session import EtcdSession
from mesh_core.adapters.nats.eventlog import RunEventLog, connect_nats
from mesh_core.adapters.nats.subjects import NatsNames
from mesh_core.adapters.redis.checkpointer import MeshCheckpointer
from mesh_core.adapters.redis.client import connect_redis
from mesh_core.adapters.redis.records import RecordStore
from mesh_core.config import InfraSettings
from mesh_core.rpc import MeshServer
from mesh_core.telemetry import current_tracing, start_metrics_server
from runtime_svc import _convert
from runtime_svc.graphs import GraphRegistry
from runtime_svc.manager import RunManager, RunManagerSettings
from runtime_svc.runs import Event
from runtime_svc.servicer import SERVICE_NAME, RuntimeServicer
from runtime_svc.sweeper import Sweeper

__all__ = ["Runtime", "RuntimeSettings", "serve"]

log = logging.getLogger("lgmesh.runtime")

RUNNING_RUNS = Gauge(
    "lgmesh_runtime_running_runs", "Runs this runtime is driving now.", ["runtime_id"]
)
CAPACITY = Gauge("lgmesh_runtime_capacity", "Runs this runtime accepts at once.", ["runtime_id"])


@dataclass(frozen=True)
class RuntimeSettings:
    """One runtime process.

    Attributes:
        graphs_path: graph config file (graph id -> "module:attr").
        role: "owner" (drives runs), "worker" (runs remote tasks) or "both".
        lease_ttl: etcd lease TTL in seconds; a dead owner's runs move after about this long.
        advertise_host: the host gateways use to reach this runtime.
    """

    infra: InfraSettings
    graphs_path: str
    host: str = "127.0.0.1"
    port: int = 0
    advertise_host: str = "127.0.0.1"
    metrics_port: int | None = None
    role: str = "both"
    runtime_id: str = field(
        default_factory=lambda: f"rt-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    capacity: int = 64
    lease_ttl: int = 5
    lease_margin: float = 0.5
    drain_timeout: float = 30.0
    sweep_interval: float = 1.0
    sweep_grace: float = 2.0
    worker_concurrency: int = 4
    max_message_bytes: int = 8 * 1024 * 1024
    # Which tasks go to workers over NATS: "send" (Send fan-out), "all", or "off".
    remote: str = "send"
    # Put into every run's config["configurable"], e.g. lgmesh_llm_target / lgmesh_tools_target.
    extra_configurable: dict[str, str] = field(default_factory=dict)


class Runtime:
    """A running runtime process: servers, clients and background loops."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.graphs = GraphRegistry.from_file(settings.graphs_path)
        self.server: MeshServer | None = None
        self.manager: RunManager | None = None
        self.sweeper: Sweeper | None = None
        self._closers: list[Any] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.address = ""
        self.worker: Any = None

    async def start(self) -> None:
        s = self.settings
        infra = s.infra
        self.redis = connect_redis(infra.redis_url)
        self._closers.append(self.redis.aclose)
        self.checkpointer = MeshCheckpointer(self.redis, prefix=infra.prefix)
        self.records = RecordStore(self.redis, infra.prefix)
        self.nc = await connect_nats(infra.nats_url, s.runtime_id)
        self._closers.append(self.nc.close)
        names = NatsNames(infra.prefix)
        self.eventlog = RunEventLog(self.nc, names)
        await self.eventlog.ensure_stream()
        self.session = EtcdSession(infra, ttl=s.lease_ttl, margin=s.lease_margin)
        await self.session.start()
        self._closers.append(self.session.close)
        if s.role in ("worker", "both"):
            await self._start_worker(names)
        if s.role in ("owner", "both"):
            await self._start_owner()

    async def _start_worker(self, names: NatsNames) -> None:
        from runtime_svc.remote import TaskWorker  # the worker role (Send fan-out)

        self.worker = TaskWorker(
            self.settings.infra,
            {gid: e.graph for gid, e in self.graphs.items()},
            self.checkpointer,
            concurrency=self.settings.worker_concurrency,
            worker_id=self.settings.runtime_id,
            nc=self.nc,
        )
        print(f"LGMESH_WORKER {self.settings.runtime_id} pid={os.getpid()}", flush=True)
        await self.worker.start()
        self._closers.append(self.worker.stop)

    async def _start_owner(self) -> None:
        s = self.settings
        infra = s.infra
        self.server = MeshServer(
            f"runtime {s.runtime_id}", f"{s.host}:{s.port}", max_message_bytes=s.max_message_bytes
        )
        port_placeholder = s.port
        # Bind first: the address goes into the thread keys and the registry.
        self.address = f"{s.advertise_host}:{port_placeholder}"
        self.leases = ThreadLeases(self.session, infra.prefix, s.runtime_id, self.address)
        eventlog = self.eventlog

        async def sink(ev: Event) -> None:
            await eventlog.publish(_convert.event_to_pb(ev), durable=ev.final)

        remote = await self._start_remote() if s.remote != "off" else None
        self.manager = RunManager(
            RunManagerSettings(
                runtime_id=s.runtime_id,
                capacity=s.capacity,
                acquire_timeout=s.lease_ttl * 3 + 2,
                drain_timeout=s.drain_timeout,
                extra_configurable=dict(s.extra_configurable),
            ),
            self.graphs,
            self.checkpointer,
            self.records,
            self.leases,
            sink,
            last_seq=eventlog.last_seq,
            bump_fence=self.checkpointer.abump_fence,
            remote=remote,
            remote_mode=s.remote,
        )
        servicer = RuntimeServicer(self.manager, self.graphs, self.checkpointer)
        self.server.add(
            runtime_pb2_grpc.add_RuntimeServiceServicer_to_server, servicer, SERVICE_NAME
        )
        port = await self.server.start()
        self.address = f"{s.advertise_host}:{port}"
        self.leases.holder_address = self.address
        self.registry = RuntimeRegistry(self.session, infra.prefix)
        await self.registry.register(
            RuntimeInfo(
                runtime_id=s.runtime_id, address=self.address, capacity=s.capacity, running=0
            )
        )
        CAPACITY.labels(s.runtime_id).set(s.capacity)
        keys = EtcdKeys(infra.prefix)
        client = self.session.client

        async def owner_of(scoped: str) -> Any:
            return await read_thread_owner(client, keys, scoped)

        self.sweeper = Sweeper(
            self.manager, self.records, owner_of, interval=s.sweep_interval, grace=s.sweep_grace
        )
        self.sweeper.start()
        self._tasks.append(asyncio.create_task(self._report_load()))

    async def _start_remote(self) -> Any:
        """The owner side of Send fan-out: sends remote-eligible tasks to the worker queue."""
        from runtime_svc.remote import RemoteExecutor

        remote = RemoteExecutor(
            self.settings.infra, self.checkpointer, owner_id=self.settings.runtime_id, nc=self.nc
        )
        await remote.start()
        self._closers.append(remote.stop)
        return remote

    async def _report_load(self) -> None:
        last = -1
        while True:
            await asyncio.sleep(0.5)
            if self.manager is None:
                continue
            running = self.manager.running
            RUNNING_RUNS.labels(self.settings.runtime_id).set(running)
            if running != last:
                with contextlib.suppress(Exception):
                    await self.registry.update(running=running)
                last = running

    async def drain_and_stop(self) -> None:
        """SIGTERM: NOT_SERVING, leave the registry, finish or hand over runs, release leases."""
        log.info("draining runtime %s", self.settings.runtime_id)
        if self.server is not None:
            await self.server.set_not_serving()
        if self.sweeper is not None:
            await self.sweeper.stop()
        if self.manager is not None:
            with contextlib.suppress(Exception):
                await self.registry.deregister()
            await self.manager.drain(self.settings.drain_timeout)
        await self.stop()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.sweeper is not None:
            await self.sweeper.stop()
        if self.server is not None:
            await self.server.stop(grace=1.0)
        for close in reversed(self._closers):
            with contextlib.suppress(Exception):
                await close()


async def serve(settings: RuntimeSettings) -> None:
    runtime = Runtime(settings)
    await runtime.start()
    if settings.metrics_port is not None:
        start_metrics_server(settings.metrics_port)
    log.info(
        "runtime %s ready (role=%s) on %s",
        settings.runtime_id,
        settings.role,
        runtime.address or "-",
    )
    print(f"LGMESH_READY runtime {runtime.address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runtime.drain_and_stop()
    current_tracing().shutdown()  # flush the spans still batched

"""Build and serve one runtime process (owner role, worker role, or both).

Besides wiring, the runtime supervises its own ability to work:

* **etcd session lost** (etcd away past the lease deadline, the process paused, the
  lease revoked): it stops owning at once (every run it drives is handed over), reports
  NOT_SERVING, refuses new runs, stops adopting; the session grants a new lease as soon
  as etcd answers, and the runtime registers again and serves.
* **Redis or NATS unreachable**: NOT_SERVING and no new runs. Runs in flight wait
  within the retry budget. If the outage lasts longer than ``handover_after`` and
  another registered runtime still reaches both (so the problem is this runtime's),
  it gives up its etcd lease, releasing every thread at once, so a runtime that can do
  the work takes them over; it takes a new lease once the backends are back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lgmesh.runtime.v1 import runtime_pb2_grpc
from prometheus_client import Gauge

from mesh_core.adapters.etcd.keys import EtcdKeys
from mesh_core.adapters.etcd.leases import ThreadLeases, read_thread_owner
from mesh_core.adapters.etcd.registry import RuntimeInfo, RuntimeRegistry
from mesh_core.adapters.etcd.session import EtcdSession
from mesh_core.adapters.nats.eventlog import (
    DEFAULT_EVENT_MAX_AGE,
    DEFAULT_EVENT_MAX_BYTES,
    LogPosition,
    RunEventLog,
    call_nats,
    connect_nats,
)
from mesh_core.adapters.nats.subjects import NatsNames
from mesh_core.adapters.redis.checkpointer import MeshCheckpointer
from mesh_core.adapters.redis.client import connect_redis
from mesh_core.adapters.redis.records import RecordStore
from mesh_core.adapters.redis.schedule import DELAYED_RUNS, THREAD_TTL, WEBHOOKS, Schedule
from mesh_core.config import InfraSettings
from mesh_core.errors import MeshError
from mesh_core.lifecycle import (
    HealthSupervisor,
    LifecycleSettings,
    Probe,
    Service,
    nats_probe,
    redis_probe,
    run_service,
)
from mesh_core.limits import LimitsTable
from mesh_core.retry import DEFAULT_RETRY_BUDGET, Retry
from mesh_core.rpc import MeshServer
from mesh_core.security import inbox_prefix
from mesh_core.security._codec import PayloadCodec
from runtime_svc import _convert
from runtime_svc.graphs import GraphRegistry
from runtime_svc.manager import RunManager, RunManagerSettings
from runtime_svc.runs import Event
from runtime_svc.scheduler import Scheduler
from runtime_svc.servicer import SERVICE_NAME, RuntimeServicer
from runtime_svc.sweeper import Sweeper

__all__ = ["Runtime", "RuntimeSettings", "serve"]

log = logging.getLogger("lgmesh.runtime")

RUNNING_RUNS = Gauge(
    "lgmesh_runtime_running_runs", "Runs this runtime is driving now.", ["runtime_id"]
)
CAPACITY = Gauge("lgmesh_runtime_capacity", "Runs this runtime accepts at once.", ["runtime_id"])
SESSION_RENEWALS = Gauge(
    "lgmesh_runtime_etcd_session_generation",
    "Number of the etcd lease this runtime holds (grows by one after each lost session).",
    ["runtime_id"],
)


@dataclass(frozen=True)
class RuntimeSettings:
    """One runtime process.

    Attributes:
        graphs_path: graph config file (graph id -> "module:attr").
        role: "owner" (drives runs), "worker" (runs remote tasks) or "both".
        lease_ttl: etcd lease TTL in seconds; a dead owner's runs move after about this long.
        advertise_host: the host gateways use to reach this runtime.
        retry_budget: seconds a Redis/NATS/etcd outage may last before runs give up.
        handover_after: seconds Redis or NATS may be unreachable (while a peer reaches
            them) before this runtime gives its threads to others.
        task_ack_wait: seconds a remote task may go without a heartbeat before another
            worker gets it (a dead worker's task is redelivered after this).
        task_max_deliveries: deliveries a remote task may run; the next dead-letters it
            and fails the run with the task's error (a task that kills its worker).
        webhook_allow_hosts: hosts a run's webhook may name (checked again before POST).
        schedule_visibility: seconds a claimed delayed run or webhook stays invisible to
            other runtimes (a runtime killed mid-job leaves it to them after this long).
        lease_idle: seconds a thread's lease is kept after its last run (hot threads).
        checkpoint_keep: checkpoints kept per thread namespace (None: all of them).
        thread_ttl: seconds a thread's checkpoints live after its last write (None: forever).
        event_max_age / event_max_bytes: how long, and in how many bytes, the run event
            log keeps events (the gateways use the same figures).
        limits: per-tenant limits; a runtime enforces concurrent runs and the creation
            rate at admission, run duration, Send tasks per superstep and state size.
        payload_codec: seals checkpoints, run events, remote task messages, the user
            data of run records and scheduled jobs (``--payload-keys``; None: plain).
    """

    infra: InfraSettings
    graphs_path: str
    host: str = "127.0.0.1"
    port: int = 0
    advertise_host: str = "127.0.0.1"
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
    retry_budget: float = DEFAULT_RETRY_BUDGET
    handover_after: float = 3.0
    task_ack_wait: float = 5.0
    task_max_deliveries: int = 3
    # Hosts run webhooks may be POSTed to (a leading dot allows subdomains; empty: none).
    webhook_allow_hosts: tuple[str, ...] = ()
    schedule_visibility: float = 30.0
    lease_idle: float = 2.0
    checkpoint_keep: int | None = 100
    thread_ttl: float | None = None
    event_max_age: float = DEFAULT_EVENT_MAX_AGE
    event_max_bytes: int = DEFAULT_EVENT_MAX_BYTES
    limits: LimitsTable = field(default_factory=LimitsTable)
    payload_codec: PayloadCodec | None = None


class _RuntimeEventLog:
    """The event log as the run manager sees it: plain events in, protobuf on the wire."""

    def __init__(self, log: RunEventLog, writer: str) -> None:
        self._log = log
        self._writer = writer

    async def position(
        self, run_id: str, *, abort: Callable[[], None] | None = None
    ) -> LogPosition:
        return await self._log.position(run_id, abort=abort)

    async def append(
        self, event: Event, *, expected: int, abort: Callable[[], None] | None = None
    ) -> int:
        event.wire, data = _convert.logged_event(event)
        return await self._log.append(
            event.wire, expected=expected, writer=self._writer, abort=abort, data=data
        )


class Runtime(Service):
    """A running runtime process: servers, clients and background loops."""

    kind = "runtime"

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.graphs = GraphRegistry.from_file(settings.graphs_path)
        self._server: MeshServer | None = None
        self.manager: RunManager | None = None
        self.sweeper: Sweeper | None = None
        self.scheduler: Scheduler | None = None
        self.registry: RuntimeRegistry | None = None
        self.health: HealthSupervisor | None = None
        self._closers: list[Any] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._address = ""
        self.worker: Any = None
        self._backends_ok = True
        self._serving_since = time.time()
        self._registry_lock = asyncio.Lock()

    # -- Service -------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return self._address

    @property
    def server(self) -> MeshServer | None:
        return self._server

    def bind_health(self, health: HealthSupervisor) -> None:
        self.health = health

    def probes(self) -> list[Probe]:
        return [redis_probe(self.redis), nats_probe(self.nc)]

    async def start(self) -> None:
        s = self.settings
        infra = s.infra
        retry = Retry(budget=s.retry_budget)
        # A runtime in the worker role is the "worker" tier: it reads checkpoints (for
        # subgraphs inside a task) and pulls tasks, nothing else -- no etcd, no run
        # records, no event log (see mesh_core.security._infra).
        tier = "worker" if s.role == "worker" else "runtime"
        self.redis = connect_redis(infra.redis_url)
        self._closers.append(self.redis.aclose)
        self.checkpointer = MeshCheckpointer(
            self.redis, prefix=infra.prefix, retry=retry, ttl=s.thread_ttl, codec=s.payload_codec
        )
        self.nc = await connect_nats(infra.nats_url, s.runtime_id, inbox=inbox_prefix(tier))
        self._closers.append(self.nc.close)
        if s.role in ("worker", "both"):
            await self._start_worker(create_queue=s.role == "both")
        if s.role == "worker":
            return
        self.records = RecordStore(self.redis, infra.prefix, retry=retry, codec=s.payload_codec)
        names = NatsNames(infra.prefix)
        self.eventlog = RunEventLog(
            self.nc,
            names,
            max_age=s.event_max_age,
            max_bytes=s.event_max_bytes,
            retry=retry,
            codec=s.payload_codec,
        )
        await call_nats(retry, "event stream setup", self.eventlog.ensure_stream)
        self.session = EtcdSession(infra, ttl=s.lease_ttl, margin=s.lease_margin)
        await self.session.start()
        self._closers.append(self.session.close)
        self.session.set_renew_gate(lambda: self._backends_ok)
        self.session.on_lost(self._on_session_lost)
        self.session.on_renewed(self._on_session_renewed)
        SESSION_RENEWALS.labels(s.runtime_id).set(1)
        await self._start_owner()
        self._tasks.append(asyncio.create_task(self._supervise(), name="runtime-supervise"))

    async def on_health(self, serving: bool) -> None:
        health = self.health
        ok = health is None or all(health.up.values())
        if ok and not self._backends_ok:
            self._serving_since = time.time()
        self._backends_ok = ok
        if self.registry is not None and self.session.valid:
            await self._publish_registry()

    async def drain(self) -> None:
        """NOT_SERVING (done by the runner), leave the registry, finish or hand over runs."""
        log.info("draining runtime %s", self.settings.runtime_id)
        for t in self._tasks:
            t.cancel()
        if self.sweeper is not None:
            await self.sweeper.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.manager is not None and self.registry is not None:
            with contextlib.suppress(Exception):
                await self.registry.deregister()
            await self.manager.drain(self.settings.drain_timeout)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.sweeper is not None:
            await self.sweeper.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self._server is not None:
            await self._server.stop(grace=1.0)
        for close in reversed(self._closers):
            with contextlib.suppress(Exception):
                await close()
        self._closers.clear()

    # -- roles -----------------------------------------------------------------------------
    async def _start_worker(self, *, create_queue: bool) -> None:
        from runtime_svc.remote import TaskWorker  # the worker role

        self.worker = TaskWorker(
            self.settings.infra,
            {gid: e.graph for gid, e in self.graphs.items()},
            self.checkpointer,
            concurrency=self.settings.worker_concurrency,
            worker_id=self.settings.runtime_id,
            nc=self.nc,
            queue=self._queue_settings(),
            create_queue=create_queue,
            serde=self._task_serde(),
        )
        await self.worker.start()
        self._closers.append(self.worker.stop)

    def _task_serde(self) -> Any:
        """The serde of remote task messages: the checkpointer's, sealed with a codec."""
        from runtime_svc.remote import SealedSerde

        return SealedSerde(self.checkpointer.serde, self.settings.payload_codec)

    def _queue_settings(self) -> Any:
        from runtime_svc.remote import TaskQueueSettings

        s = self.settings
        return TaskQueueSettings(ack_wait=s.task_ack_wait, max_deliveries=s.task_max_deliveries)

    async def _start_owner(self) -> None:
        s = self.settings
        infra = s.infra
        self._server = MeshServer(
            f"runtime {s.runtime_id}", f"{s.host}:{s.port}", max_message_bytes=s.max_message_bytes
        )
        self.leases = ThreadLeases(self.session, infra.prefix, s.runtime_id, "")
        remote = await self._start_remote() if s.remote != "off" else None
        self.manager = RunManager(
            RunManagerSettings(
                runtime_id=s.runtime_id,
                capacity=s.capacity,
                acquire_timeout=s.lease_ttl * 3 + 2,
                drain_timeout=s.drain_timeout,
                extra_configurable=dict(s.extra_configurable),
                lease_idle=s.lease_idle,
                checkpoint_keep=s.checkpoint_keep,
                limits=s.limits,
            ),
            self.graphs,
            self.checkpointer,
            self.records,
            self.leases,
            _RuntimeEventLog(self.eventlog, s.runtime_id),
            remote=remote,
            remote_mode=s.remote,
            not_accepting=self._not_accepting,
            on_ended=self._run_ended,
        )
        servicer = RuntimeServicer(self.manager, self.graphs, self.checkpointer)
        self._server.add(
            runtime_pb2_grpc.add_RuntimeServiceServicer_to_server, servicer, SERVICE_NAME
        )
        port = await self._server.start()
        self._address = f"{s.advertise_host}:{port}"
        self.leases.holder_address = self._address
        self.registry = RuntimeRegistry(self.session, infra.prefix)
        await self._publish_registry()
        CAPACITY.labels(s.runtime_id).set(s.capacity)
        keys = EtcdKeys(infra.prefix)
        client = self.session.client

        async def owner_of(scoped: str) -> Any:
            return await read_thread_owner(client, keys, scoped)

        self.sweeper = Sweeper(
            self.manager,
            self.records,
            owner_of,
            interval=s.sweep_interval,
            grace=s.sweep_grace,
            active=lambda: self._not_accepting() is None,
        )
        self.sweeper.start()

        def schedule(kind: str) -> Schedule:
            return Schedule(
                self.redis, infra.prefix, kind, retry=self.records.retry, codec=s.payload_codec
            )

        self.scheduler = Scheduler(
            self.manager,
            self.records,
            schedule(DELAYED_RUNS),
            schedule(WEBHOOKS),
            self.eventlog,
            schedule(THREAD_TTL),
            allow_hosts=s.webhook_allow_hosts,
            visibility=s.schedule_visibility,
            active=lambda: self._not_accepting() is None,
        )
        self.scheduler.start()

    async def _run_ended(self, handle: Any) -> None:
        if self.scheduler is not None:
            await self.scheduler.run_ended(handle)

    async def _start_remote(self) -> Any:
        """The owner side of Send fan-out: sends remote-eligible tasks to the worker queue."""
        from runtime_svc.remote import RemoteExecutor

        remote = RemoteExecutor(
            self.settings.infra,
            self.checkpointer,
            owner_id=self.settings.runtime_id,
            nc=self.nc,
            queue=self._queue_settings(),
            serde=self._task_serde(),
        )
        await remote.start()
        self._closers.append(remote.stop)
        return remote

    # -- supervision -------------------------------------------------------------------------
    def _not_accepting(self) -> str | None:
        if not self.session.valid:
            return "no etcd session"
        if not self._backends_ok:
            failing = self.health.failing if self.health is not None else []
            return "cannot reach " + (", ".join(failing) or "its backends")
        return None

    def _on_session_lost(self) -> None:
        if self.health is not None:
            self.health.set_condition("etcd", False, "no etcd session")
        if self.manager is not None:
            asyncio.get_running_loop().create_task(
                self.manager.hand_over_all("this runtime lost its etcd session")
            )

    def _on_session_renewed(self) -> None:
        gen = self.session.generation
        SESSION_RENEWALS.labels(self.settings.runtime_id).set(gen.number if gen else 0)
        log.info("runtime %s has a new etcd session; serving again", self.settings.runtime_id)
        if self.health is not None:
            self.health.set_condition("etcd", True)
        if self.registry is not None:
            asyncio.get_running_loop().create_task(self._publish_registry())

    async def _publish_registry(self) -> None:
        """Put this runtime's entry (bound to the current lease: after a new session the
        old entry went with the old lease) with its load and whether it serves."""
        registry = self.registry
        if registry is None:
            return
        s = self.settings
        running = self.manager.running if self.manager is not None else 0
        info = RuntimeInfo(
            s.runtime_id,
            self._address,
            s.capacity,
            running,
            serving=self._backends_ok,
            serving_since=self._serving_since,
        )
        async with self._registry_lock:
            try:
                await registry.register(info)
            except MeshError as exc:
                log.info("registry update deferred: %s", exc.message)

    async def _supervise(self) -> None:
        last_running = -1
        registered_gen = 0
        while True:
            await asyncio.sleep(0.5)
            try:
                gen = self.session.generation
                if self.manager is not None:
                    running = self.manager.running
                    RUNNING_RUNS.labels(self.settings.runtime_id).set(running)
                    if self.session.valid and (
                        running != last_running or (gen and gen.number != registered_gen)
                    ):
                        await self._publish_registry()
                        last_running = running
                        registered_gen = gen.number if gen else 0
                await self._maybe_hand_over()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep supervising; the next pass retries
                log.info("runtime supervision pass failed: %s", type(exc).__name__)

    async def _maybe_hand_over(self) -> None:
        health = self.health
        if health is None or self._backends_ok or not self.session.valid:
            return
        down = [b for b in ("redis", "nats") if health.down_for(b) > self.settings.handover_after]
        if not down or self.registry is None:
            return
        # A peer that has reached the backends all through our outage shows the fault is
        # ours (a partition); one that just recovered with us shows it was everyone's.
        steady = time.time() - max(health.down_for(b) for b in down)
        peers = [
            r
            for r in await self.registry.list()
            if r.runtime_id != self.settings.runtime_id
            and r.serving
            and 0 < r.serving_since <= steady
        ]
        if not peers:
            return  # nobody can do better: keep the threads and wait out the outage
        why = f"cannot reach {', '.join(down)} while {peers[0].runtime_id} can"
        log.warning(
            "runtime %s gives its threads to other runtimes: %s", self.settings.runtime_id, why
        )
        if self.manager is not None:
            await self.manager.hand_over_all(why)
        await self.session.relinquish(why)


async def serve(settings: RuntimeSettings, lifecycle: LifecycleSettings) -> None:
    """Serve until SIGTERM/SIGINT, then drain (hand over what is left) and stop."""
    runtime = Runtime(settings)
    await run_service(runtime, lifecycle)

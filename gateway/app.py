"""Build and serve one gateway process."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from lgmesh.api.v1 import (
    assistants_pb2,
    assistants_pb2_grpc,
    runs_pb2,
    runs_pb2_grpc,
    threads_pb2,
    threads_pb2_grpc,
)

from gateway._runtime import RuntimeClient
from gateway.assistants import AssistantsEngine
from gateway.auth import ApiKeyAuth
from gateway.dispatch import ChannelPool, RunDispatcher
from gateway.placement import MeshView, Placement
from gateway.runs import RunsEngine
from gateway.servicer import ApiContext, AssistantServicer, RunServicer, ThreadServicer
from gateway.threads import ThreadsEngine
from mesh_core.adapters.etcd.session import new_etcd_client
from mesh_core.adapters.nats.eventlog import (
    DEFAULT_EVENT_MAX_AGE,
    DEFAULT_EVENT_MAX_BYTES,
    RunEventLog,
    connect_nats,
)
from mesh_core.adapters.nats.subjects import NatsNames
from mesh_core.adapters.redis.assistants import AssistantStore
from mesh_core.adapters.redis.client import connect_redis
from mesh_core.adapters.redis.records import RecordStore
from mesh_core.adapters.redis.schedule import DELAYED_RUNS, THREAD_TTL, WEBHOOKS, Schedule
from mesh_core.config import InfraSettings
from mesh_core.lifecycle import (
    LifecycleSettings,
    Probe,
    Service,
    etcd_client_probe,
    nats_probe,
    redis_probe,
    run_service,
)
from mesh_core.limits import LimitsTable
from mesh_core.retry import DEFAULT_RETRY_BUDGET, Retry
from mesh_core.rpc import MeshServer
from mesh_core.security import inbox_prefix
from mesh_core.security._codec import PayloadCodec

__all__ = ["Gateway", "GatewaySettings", "serve"]

log = logging.getLogger("lgmesh.gateway")

DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class GatewaySettings:
    """One gateway process.

    Attributes:
        api_keys_file: YAML/JSON file of tenants and their API keys (see gateway.auth).
        api_keys: ``tenant=key,...`` (from LGMESH_API_KEYS); merged with the file.
        max_request_bytes: larger requests get RESOURCE_EXHAUSTED.
        webhook_allow_hosts: hosts a run's webhook may name (a leading dot: subdomains too).
        thread_ttl: seconds without an update after which a new thread is deleted, unless
            it asks for its own TTL (0: threads stay).
        limits: per-tenant limits; the gateway enforces concurrent streams and the
            largest recursion_limit (the runtimes the rest).
        payload_codec: seals run records' user data and delayed runs, opens run events
            (``--payload-keys``; the runtimes' key ring).
    """

    infra: InfraSettings
    host: str = "127.0.0.1"
    port: int = 0
    api_keys_file: str | None = None
    api_keys: str | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    name: str = "gateway"
    retry_budget: float = DEFAULT_RETRY_BUDGET
    webhook_allow_hosts: tuple[str, ...] = ()
    thread_ttl: float = 0.0
    event_max_age: float = DEFAULT_EVENT_MAX_AGE
    event_max_bytes: int = DEFAULT_EVENT_MAX_BYTES
    limits: LimitsTable = field(default_factory=LimitsTable)
    payload_codec: PayloadCodec | None = None


def _service(module: Any, name: str) -> str:
    return str(module.DESCRIPTOR.services_by_name[name].full_name)


class Gateway(Service):
    kind = "gateway"

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.port = 0
        self._closers: list[Any] = []
        self._server: MeshServer | None = None

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}" if self.port else ""

    @property
    def server(self) -> MeshServer | None:
        return self._server

    def probes(self) -> list[Probe]:
        return [redis_probe(self.redis), nats_probe(self.nc), etcd_client_probe(self.etcd)]

    async def start(self) -> None:
        s = self.settings
        infra = s.infra
        auth = ApiKeyAuth.from_sources(s.api_keys_file, s.api_keys)
        if not auth.enabled:
            raise ValueError("no API keys configured: set LGMESH_API_KEYS or --api-keys-file")
        retry = Retry(budget=s.retry_budget)
        self.redis = connect_redis(infra.redis_url)
        self._closers.append(self.redis.aclose)
        codec = s.payload_codec

        def schedule(kind: str) -> Schedule:
            return Schedule(self.redis, infra.prefix, kind, retry=retry, codec=codec)

        records = RecordStore(self.redis, infra.prefix, retry=retry, codec=codec)
        self.nc = await connect_nats(infra.nats_url, s.name, inbox=inbox_prefix("gateway"))
        self._closers.append(self.nc.close)
        eventlog = RunEventLog(
            self.nc,
            NatsNames(infra.prefix),
            max_age=s.event_max_age,
            max_bytes=s.event_max_bytes,
            retry=retry,
            codec=codec,
        )
        # The runtimes make the event stream; a gateway's NATS user may only read it.
        self.etcd = new_etcd_client(infra)
        await self.etcd.connect()
        self._closers.append(self.etcd.close)
        view = MeshView(self.etcd, infra.prefix)
        view.start()
        self._closers.append(view.stop)
        placement = Placement(self.etcd, infra.prefix, view=view)
        channels = ChannelPool()
        self._closers.append(channels.close)
        dispatcher = RunDispatcher(placement, channels, records, eventlog)
        runtime = RuntimeClient(placement, channels)
        assistants = AssistantsEngine(
            AssistantStore(self.redis, infra.prefix, retry=retry), runtime
        )
        runs = RunsEngine(
            records,
            runtime,
            dispatcher,
            eventlog,
            assistants,
            schedule(DELAYED_RUNS),
            schedule(WEBHOOKS),
            webhook_allow_hosts=s.webhook_allow_hosts,
            limits=s.limits,
        )
        api = ApiContext(
            auth,
            ThreadsEngine(
                records,
                runtime,
                runs,
                schedule(THREAD_TTL),
                default_ttl=s.thread_ttl,
            ),
            runs,
            assistants,
            max_request_bytes=s.max_request_bytes,
        )
        server = self._server = MeshServer(
            s.name, f"{s.host}:{s.port}", max_message_bytes=2 * s.max_request_bytes
        )
        server.add(
            threads_pb2_grpc.add_ThreadServiceServicer_to_server,
            ThreadServicer(api),
            _service(threads_pb2, "ThreadService"),
        )
        server.add(
            runs_pb2_grpc.add_RunServiceServicer_to_server,
            RunServicer(api),
            _service(runs_pb2, "RunService"),
        )
        server.add(
            assistants_pb2_grpc.add_AssistantServiceServicer_to_server,
            AssistantServicer(api),
            _service(assistants_pb2, "AssistantService"),
        )
        self.port = await server.start()

    async def stop(self, grace: float = 5.0) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.stop(grace)
        for close in reversed(self._closers):
            with contextlib.suppress(Exception):
                await close()
        self._closers.clear()


async def serve(settings: GatewaySettings, lifecycle: LifecycleSettings) -> None:
    """Serve until SIGTERM/SIGINT, then drain and stop."""
    await run_service(Gateway(settings), lifecycle)

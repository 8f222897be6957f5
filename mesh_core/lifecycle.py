"""One lifecycle for every mesh service: start, ready, health, drain, stop.

A service (gateway, runtime, LLM gateway, tools) implements :class:`Service`; a
:class:`ServiceRunner` runs it the same way everywhere::

    async with ServiceRunner(service, settings) as runner:   # start + supervise
        await runner.wait()                                   # until SIGTERM / shutdown()

* **Start**: ``service.start()`` binds its gRPC server and connects its backends, then
  the runner serves ``/metrics`` (on the gRPC host unless told otherwise), starts
  supervision and announces readiness: one log line, and a JSON line on the file
  descriptor ``ready_fd`` when a launcher passed one (``lgmesh dev``, the tests).
* **Health**: :class:`HealthSupervisor` probes each backend the service needs (Redis
  PING, NATS connection, the etcd session) every ``probe_interval``; gRPC health is
  NOT_SERVING while any probe fails and SERVING again as soon as all pass. The
  service hears every change (``on_health``), e.g. to leave the runtime registry.
* **Shutdown** (SIGTERM, SIGINT, or ``shutdown()``; safe to repeat): NOT_SERVING,
  ``service.drain()`` (finish or hand over work), ``service.stop()``, flush spans.
* The event loop's lag is exported (``lgmesh_event_loop_lag_seconds``): a loop
  blocked by heavy work shows there before anything times out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from prometheus_client import Gauge, Histogram

from mesh_core.rpc import MeshServer
from mesh_core.telemetry import current_tracing, start_metrics_server

__all__ = [
    "HealthSupervisor",
    "LifecycleSettings",
    "Probe",
    "Service",
    "ServiceRunner",
    "etcd_client_probe",
    "nats_probe",
    "redis_probe",
    "run_service",
]

log = logging.getLogger("lgmesh.lifecycle")

BACKEND_UP = Gauge(
    "lgmesh_backend_up",
    "1 while the service reaches the backend (redis, nats, etcd), 0 while it does not.",
    ["service", "backend"],
)
SERVING = Gauge("lgmesh_serving", "1 while the service reports SERVING.", ["service"])
LOOP_LAG = Histogram(
    "lgmesh_event_loop_lag_seconds",
    "How late the event loop ran a timer that was due (a blocked loop shows here).",
    ["service"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

ProbeFn = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Probe:
    """A backend check: ``check()`` returns when the backend works and raises when not.
    ``where``: the backend's address, named when it cannot be reached (no credentials)."""

    backend: str
    check: ProbeFn
    where: str = ""


def _redis_where(client: Any) -> str:
    kw = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None) or {}
    if "host" in kw:
        return f"redis://{kw['host']}:{kw.get('port', 6379)}/{kw.get('db', 0)}"
    return f"unix://{kw['path']}" if "path" in kw else ""


def redis_probe(client: Any, timeout: float = 1.0) -> Probe:
    async def check() -> None:
        async with asyncio.timeout(timeout):
            await client.ping()

    return Probe("redis", check, _redis_where(client))


def nats_probe(nc: Any, timeout: float = 1.0, ping_every: float = 5.0) -> Probe:
    """The connection's state on every check; a round trip (PING) at most every
    ``ping_every`` seconds, so a silently dead connection is noticed too."""
    last_ping = [0.0]

    async def check() -> None:
        if not nc.is_connected:
            raise ConnectionError("NATS connection is down")
        now = time.monotonic()
        if now - last_ping[0] >= ping_every:
            await nc.flush(timeout=timeout)
            last_ping[0] = now

    try:  # ParseResults; without user and password
        where = ", ".join(f"{u.scheme}://{u.hostname}:{u.port}" for u in nc.servers)
    except Exception:
        where = ""
    return Probe("nats", check, where)


def etcd_client_probe(client: Any, timeout: float = 1.0) -> Probe:
    async def check() -> None:
        async with asyncio.timeout(timeout):
            await client.status()

    host, port = getattr(client, "_host", None), getattr(client, "_port", None)
    return Probe("etcd", check, f"http://{host}:{port}" if host else "")


class HealthSupervisor:
    """Probes backends; health NOT_SERVING while any fails, SERVING when all pass."""

    def __init__(
        self,
        name: str,
        server: MeshServer | None,
        probes: Sequence[Probe],
        *,
        interval: float = 0.5,
        on_change: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self.server = server
        self.probes = list(probes)
        self.interval = interval
        self.on_change = on_change
        self.up: dict[str, bool] = {p.backend: True for p in self.probes}
        self._down_since: dict[str, float] = {}
        self.serving: bool | None = None
        self._extra_down: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def down_for(self, backend: str) -> float:
        """Seconds ``backend`` has been failing (0 if it works)."""
        since = self._down_since.get(backend)
        return 0.0 if since is None else time.monotonic() - since

    @property
    def failing(self) -> list[str]:
        return sorted([b for b, ok in self.up.items() if not ok] + list(self._extra_down))

    def set_condition(self, name: str, ok: bool, why: str = "") -> None:
        """A non-probe condition (e.g. "no etcd session") that also makes it NOT_SERVING."""
        if ok:
            self._extra_down.pop(name, None)
        else:
            self._extra_down[name] = why or name
        self._changed.set()

    async def check_once(self) -> bool:
        results = await asyncio.gather(*(p.check() for p in self.probes), return_exceptions=True)
        before = dict(self.up)
        for probe, res in zip(self.probes, results, strict=True):
            ok = not isinstance(res, BaseException)
            was = self.up.get(probe.backend, True)
            self.up[probe.backend] = ok
            BACKEND_UP.labels(self.name, probe.backend).set(1 if ok else 0)
            if ok and not was:
                down = self.down_for(probe.backend)
                self._down_since.pop(probe.backend, None)
                log.info("%s reaches %s again (after %.1fs)", self.name, probe.backend, down)
            elif not ok and was:
                self._down_since[probe.backend] = time.monotonic()
                at = f" at {probe.where}" if probe.where else ""
                log.warning(
                    "%s cannot reach %s%s: %s", self.name, probe.backend, at, _describe(res)
                )
        await self._apply(not self.failing, backends_changed=before != self.up)
        return bool(self.serving)

    async def _apply(self, serving: bool, *, backends_changed: bool = False) -> None:
        if serving == self.serving:
            if backends_changed and self.on_change is not None:
                await self.on_change(serving)  # e.g. Redis is back, but no etcd session yet
            return
        first = self.serving is None
        self.serving = serving
        SERVING.labels(self.name).set(1 if serving else 0)
        if self.server is not None:
            await self.server.set_serving(serving)
        if not first or not serving:
            if serving:
                log.info("%s is SERVING", self.name)
            else:
                log.warning("%s is NOT_SERVING (%s)", self.name, ", ".join(self.failing))
        if self.on_change is not None:
            await self.on_change(serving)

    async def _loop(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:  # a probe bug must not end supervision
                log.exception("health supervision of %s failed", self.name)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"health-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class Service(ABC):
    """What a service process is to its :class:`ServiceRunner`."""

    #: "gateway", "runtime", "llm-gateway", "tools"
    kind: str = "service"

    @property
    @abstractmethod
    def address(self) -> str:
        """``host:port`` its gRPC server listens on ("" if it serves no gRPC)."""

    @property
    def server(self) -> MeshServer | None:
        """The gRPC server whose health the runner sets (None: no gRPC)."""
        return None

    @abstractmethod
    async def start(self) -> None:
        """Connect backends, bind the gRPC server (health stays as the server set it)."""

    def probes(self) -> list[Probe]:
        """The backends this service cannot work without."""
        return []

    async def on_health(self, serving: bool) -> None:  # noqa: B027 - optional hook
        """Called when the health or any backend's reachability changes (after start)."""

    async def drain(self) -> None:  # noqa: B027 - optional hook
        """Stop taking work; finish or hand over what is in flight."""

    def bind_health(self, health: HealthSupervisor) -> None:  # noqa: B027 - optional hook
        """Called before ``start``: conditions beyond the probes (e.g. the etcd session)."""

    @abstractmethod
    async def stop(self) -> None:
        """Close servers and clients. Called once, after ``drain``."""


@dataclass(frozen=True)
class LifecycleSettings:
    """How a service process runs.

    Attributes:
        name: the service's name in logs and metrics (e.g. "gateway", "runtime-1").
        metrics_host: where /metrics binds (the gRPC host by default, never wider).
        metrics_port: None = no /metrics; 0 = a free port.
        health_port: None = health only on the service's own port; else also a
            plaintext port (0: a free one) that answers grpc.health.v1 and nothing else,
            for probes that cannot present a client certificate (Kubernetes).
        ready_fd: a file descriptor to write one JSON readiness line to (launchers).
        probe_interval: seconds between backend probes.
        handle_signals: install SIGTERM/SIGINT handlers that start the shutdown.
    """

    name: str
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    health_port: int | None = None
    ready_fd: int | None = None
    probe_interval: float = 0.5
    handle_signals: bool = True
    extra_ready: dict[str, Any] = field(default_factory=dict)


class ServiceRunner:
    """Runs one :class:`Service`: ``start``, ``wait``, ``shutdown`` (each safe to repeat)."""

    def __init__(self, service: Service, settings: LifecycleSettings) -> None:
        self.service = service
        self.settings = settings
        self.health: HealthSupervisor | None = None
        self.metrics_port: int | None = None
        self.health_port: int | None = None
        self._stopping = asyncio.Event()
        self._started = False
        self._shutdown_task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        s = self.settings
        health = self.health = HealthSupervisor(
            s.name, None, [], interval=s.probe_interval, on_change=self.service.on_health
        )
        self.service.bind_health(health)
        await self.service.start()
        health.server = self.service.server
        health.probes = self.service.probes()
        if s.metrics_port is not None:
            self.metrics_port = start_metrics_server(s.metrics_port, host=s.metrics_host)
        server = self.service.server
        if s.health_port is not None and server is not None:
            self.health_port = await server.serve_plain_health(f"{s.metrics_host}:{s.health_port}")
        await health.check_once()
        health.start()
        self._lag_task = asyncio.create_task(_watch_loop_lag(s.name), name="loop-lag")
        if s.handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self._stopping.set)
        self._announce()

    def _announce(self) -> None:
        s = self.settings
        address = self.service.address
        log.info(
            "%s ready%s%s",
            s.name,
            f" on {address}" if address else "",
            f" (metrics on {s.metrics_host}:{self.metrics_port})" if self.metrics_port else "",
        )
        if self.health_port:
            log.info("%s: plaintext health on %s:%d", s.name, s.metrics_host, self.health_port)
        if s.ready_fd is not None:
            line = {
                "kind": self.service.kind,
                "name": s.name,
                "address": address,
                "pid": os.getpid(),
                "metrics_port": self.metrics_port,
                "health_port": self.health_port,
                **s.extra_ready,
            }
            with contextlib.suppress(OSError):
                os.write(s.ready_fd, (json.dumps(line) + "\n").encode())
                os.close(s.ready_fd)

    async def wait(self) -> None:
        """Until a signal or ``shutdown()``; then the shutdown completes."""
        await self._stopping.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        """NOT_SERVING, drain, stop, flush spans. Safe to call more than once."""
        self._stopping.set()
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.create_task(self._shutdown())
        await asyncio.shield(self._shutdown_task)

    async def _shutdown(self) -> None:
        name = self.settings.name
        log.info("%s shutting down: draining", name)
        if self.health is not None:
            await self.health.stop()
        server = self.service.server
        if server is not None:
            await server.set_not_serving()
        try:
            await self.service.drain()
        except Exception:
            log.exception("%s: drain failed; stopping anyway", name)
        try:
            await self.service.stop()
        finally:
            if self._lag_task is not None:
                self._lag_task.cancel()
            current_tracing().shutdown()  # flush the spans still batched
            log.info("%s stopped", name)

    async def __aenter__(self) -> ServiceRunner:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()


async def run_service(service: Service, settings: LifecycleSettings) -> None:
    """Start ``service``, serve until SIGTERM/SIGINT, then drain and stop."""
    runner = ServiceRunner(service, settings)
    try:
        await runner.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await service.stop()
        raise
    await runner.wait()


async def _watch_loop_lag(name: str, interval: float = 0.25) -> None:
    hist = LOOP_LAG.labels(name)
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        hist.observe(max(0.0, loop.time() - due))


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "?"
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

"""One etcd lease per runtime process at a time, kept alive off the event loop, self-healing.

Every key a process owns (thread owners, its registry entry) is bound to its session
lease, so when the process dies or stalls, etcd deletes them all after the TTL. The
process must also notice *by itself* that it may no longer act as owner: a lease is
valid until ``last successful keepalive + TTL - margin`` on the local monotonic clock.
The "last successful keepalive" is the time the request was *sent*, which is never
later than the moment etcd renewed the lease, so the local deadline always falls
before etcd's.

Two things make the session robust:

* **Keepalives run on a thread of their own** (with its own event loop and etcd
  client), so a busy event loop (large inputs, thousands of streams) cannot starve
  them. A paused process (SIGSTOP, a VM freeze) stops that thread too, as it must.
* **Generations.** Each granted lease is a generation. When one is lost (etcd away
  past the deadline, the lease revoked, a pause) it stays lost for good: a
  :class:`~mesh_core.adapters.etcd.leases.ThreadLease` bound to it never becomes
  valid again. The session then grants a new lease with backoff as soon as etcd
  answers (and the owner allows it, see :meth:`EtcdSession.set_renew_gate`) and
  tells its listeners (``on_lost`` / ``on_renewed``), which re-register.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aetcd
import aetcd.exceptions

from mesh_core.adapters.etcd._client import MeshEtcdClient
from mesh_core.config import InfraSettings
from mesh_core.errors import InternalError, SessionLostError, UnavailableError
from mesh_core.reasons import Reason
from mesh_core.retry import Backoff

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_TTL",
    "SESSION_LOST",
    "EtcdSession",
    "Generation",
    "new_etcd_client",
    "translate_etcd_errors",
]

log = logging.getLogger(__name__)

DEFAULT_TTL = 5
DEFAULT_MARGIN = 0.5
DEFAULT_REQUEST_TIMEOUT = 5.0
DEFAULT_START_TIMEOUT = 10.0

#: ``reason`` of the error raised when acting on a lost session.
SESSION_LOST = Reason.ETCD_SESSION_LOST.value

# etcd's message when a put names a lease it no longer has (revoked or expired).
_LEASE_NOT_FOUND = "requested lease not found"

# gRPC's own reconnect backoff defaults to 1 s growing to 120 s: far longer than a
# lease TTL. Keep it short so a restarted etcd is found again within a keepalive or two.
_CHANNEL_OPTIONS: dict[str, Any] = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
}


@contextlib.contextmanager
def translate_etcd_errors(action: str, client: Any = None) -> Iterator[None]:
    """Map aetcd errors onto the mesh's exception tree (the cause stays chained).

    ``client``: told when etcd rejected its token, so it authenticates again at once.
    """
    try:
        yield
    except aetcd.exceptions.UnauthenticatedError as exc:
        rejected = getattr(client, "token_rejected", None)
        if rejected is not None:
            rejected()
        raise UnavailableError(
            f"etcd refused the credentials during {action}", reason=Reason.ETCD_UNAVAILABLE
        ) from exc
    except (
        aetcd.ConnectionFailedError,
        aetcd.ConnectionTimeoutError,
        aetcd.WatchTimeoutError,
        TimeoutError,
    ) as exc:
        raise UnavailableError(
            f"etcd unavailable during {action}", reason=Reason.ETCD_UNAVAILABLE
        ) from exc
    except aetcd.ClientError as exc:
        raise InternalError(f"etcd error during {action}", reason="ETCD_ERROR") from exc


def new_etcd_client(
    settings: InfraSettings, *, request_timeout: float = DEFAULT_REQUEST_TIMEOUT
) -> MeshEtcdClient:
    """An (unconnected) etcd client for ``settings.etcd_url`` (``http://[user:pass@]host:port``)
    with short reconnect backoff; with credentials it keeps itself authenticated."""
    host, port = settings.etcd_host_port()
    user, password = settings.etcd_credentials()
    return MeshEtcdClient(
        host=host,
        port=port,
        username=user,
        password=password,
        timeout=request_timeout,  # grpc takes float seconds
        options=dict(_CHANNEL_OPTIONS),
    )


def _token_rejected(client: Any) -> None:
    rejected = getattr(client, "token_rejected", None)
    if rejected is not None:
        rejected()


@dataclass
class Generation:
    """One granted lease. Once lost, never valid again."""

    number: int
    lease_id: int
    granted_ttl: float
    last_ok: float
    margin: float
    lost_reason: str | None = None
    revoked: bool = False

    @property
    def deadline(self) -> float:
        return self.last_ok + self.granted_ttl - self.margin

    @property
    def lost(self) -> bool:
        return self.lost_reason is not None


class EtcdSession:
    """A process-wide etcd lease, kept alive (and renewed after a loss) by a thread.

    Use ``async with EtcdSession(settings, ttl=5) as session:`` or ``start()`` /
    ``close()``. ``close()`` revokes the lease, which deletes every key bound to it.
    """

    def __init__(
        self,
        settings: InfraSettings,
        *,
        ttl: int = DEFAULT_TTL,
        margin: float = DEFAULT_MARGIN,
        keepalive_interval: float | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        lease_client_factory: Callable[[], Any] | None = None,
        renew: bool = True,
    ) -> None:
        """``lease_client_factory`` builds the client the keepalive thread uses (created
        on that thread; tests pass fakes). ``renew=False``: a lost session stays lost."""
        if ttl < 1:
            raise ValueError("ttl must be at least 1 second")
        if not 0 <= margin < ttl:
            raise ValueError("margin must be >= 0 and smaller than ttl")
        interval = ttl / 3 if keepalive_interval is None else keepalive_interval
        if not 0 < interval < ttl - margin:
            raise ValueError("keepalive_interval must be > 0 and shorter than ttl - margin")
        self.settings = settings
        self.ttl = ttl
        self.margin = margin
        self.keepalive_interval = interval
        self.request_timeout = request_timeout
        self.renew = renew
        self.client: aetcd.Client = new_etcd_client(settings, request_timeout=request_timeout)
        self._lease_client_factory = lease_client_factory or (
            lambda: new_etcd_client(settings, request_timeout=request_timeout)
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._gen: Generation | None = None
        self._count = 0
        self._state = "new"  # new -> running -> closed
        self._lost_cbs: list[Callable[[], object]] = []
        self._renewed_cbs: list[Callable[[], object]] = []
        self._renew_gate: Callable[[], bool] = lambda: True
        self._paused = False
        self._owner_loop: asyncio.AbstractEventLoop | None = None
        self._owner_thread: int | None = None
        self._thread: threading.Thread | None = None
        self._ka_loop: asyncio.AbstractEventLoop | None = None
        self._ka_wake: asyncio.Event | None = None
        self._first = threading.Event()
        self._grant_failures = 0
        self._start_error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Grant the lease (retrying while etcd is unreachable) and keep it alive.

        Raises UnavailableError if no lease could be granted within ``timeout``.
        """
        if self._state != "new":
            raise RuntimeError(f"EtcdSession.start() called in state {self._state!r}")
        self._state = "running"
        self._owner_loop = asyncio.get_running_loop()
        self._owner_thread = threading.get_ident()
        self._thread = threading.Thread(
            target=self._thread_main, name="etcd-keepalive", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._first.is_set():
            if time.monotonic() > deadline:
                await self.close()
                raise UnavailableError(
                    f"etcd at {self.settings.etcd_url} granted no lease within {timeout:.0f}s",
                    reason=Reason.ETCD_UNAVAILABLE,
                )
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        """Stop keepalives, revoke the lease (deleting its keys) and close the clients."""
        if self._state == "closed":
            return
        self._state = "closed"
        self._wake_thread()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, self.request_timeout + 2)
            self._thread = None
        await self.client.close()

    async def __aenter__(self) -> EtcdSession:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what owners ask -----------------------------------------------------------------
    @property
    def generation(self) -> Generation | None:
        """The current lease generation (lost or not), None before the first grant."""
        return self._gen

    @property
    def lease_id(self) -> int:
        gen = self._gen
        return gen.lease_id if gen is not None else 0

    @property
    def deadline(self) -> float:
        """Monotonic time after which this process must not act on its lease any more."""
        gen = self._gen
        return gen.deadline if gen is not None else float("-inf")

    def generation_valid(self, gen: Generation) -> bool:
        """True while keys bound to ``gen`` may be acted on (see module docstring)."""
        if gen.lost or self._state != "running":
            return False
        if self._clock() >= gen.deadline:
            self._mark_lost(gen, "no successful keepalive before the self-fencing deadline")
            return False
        return True

    @property
    def valid(self) -> bool:
        """True while the current generation may be acted on."""
        gen = self._gen
        return gen is not None and self.generation_valid(gen)

    @property
    def lost_reason(self) -> str | None:
        gen = self._gen
        return gen.lost_reason if gen is not None else None

    def require_valid(self, action: str) -> Generation:
        """The current generation; SessionLostError unless it is valid."""
        gen = self._gen
        if gen is None or not self.generation_valid(gen):
            raise SessionLostError(f"etcd session lost: this runtime cannot {action} now")
        return gen

    def on_lost(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` (on the owner's event loop) each time a generation is lost.

        Not on ``close()``. If the session is lost right now, the callback runs at once.
        """
        self._lost_cbs.append(callback)
        gen = self._gen
        if gen is not None and gen.lost:
            self._run_callback(callback, "on_lost")

    def on_renewed(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` (on the owner's event loop) after each new lease that
        replaces a lost one (not after the first)."""
        self._renewed_cbs.append(callback)

    def set_renew_gate(self, gate: Callable[[], bool]) -> None:
        """After a loss, grant a new lease only while ``gate()`` is true.

        A runtime that cannot reach Redis or NATS keeps the gate shut, so it does not
        own threads it could not work on. Called from the keepalive thread: ``gate``
        must only read flags.
        """
        self._renew_gate = gate

    async def relinquish(self, reason: str) -> None:
        """Give the current lease up now: every key bound to it goes at once.

        The generation is lost (listeners are told); a new one is granted when the
        renew gate opens.
        """
        gen = self._gen
        if gen is None or gen.lost:
            return
        self._mark_lost(gen, reason)
        try:
            async with asyncio.timeout(self.request_timeout):
                await self.client.revoke_lease(gen.lease_id)
            gen.revoked = True
        except (aetcd.ClientError, TimeoutError) as exc:
            log.warning(
                "could not revoke etcd lease %x (it expires within its TTL): %s",
                gen.lease_id,
                type(exc).__name__,
            )
        self._wake_thread()

    @contextlib.contextmanager
    def lease_bound(self, action: str, gen: Generation | None = None) -> Iterator[None]:
        """``translate_etcd_errors`` for writes bound to a lease.

        If etcd says the lease is gone (revoked from outside, expired), the generation
        is lost and SessionLostError is raised.
        """
        try:
            with translate_etcd_errors(action, self.client):
                yield
        except InternalError as exc:
            if _LEASE_NOT_FOUND not in str(exc.__cause__):
                raise
            target = gen or self._gen
            if target is not None:
                self._mark_lost(target, "etcd reports the lease is gone")
            raise SessionLostError(f"etcd session lost during {action}") from exc.__cause__

    # -- test hooks --------------------------------------------------------------------
    def pause_keepalive(self) -> None:
        """Stop sending keepalives (tests: simulate a stalled process on a live loop)."""
        self._paused = True

    def resume_keepalive(self) -> None:
        self._paused = False
        self._wake_thread()

    # -- internals: callbacks ------------------------------------------------------------
    def _run_callback(self, callback: Callable[[], object], kind: str) -> None:
        try:
            callback()
        except Exception:
            log.exception("etcd session %s callback failed", kind)

    def _notify(self, callbacks: list[Callable[[], object]], kind: str) -> None:
        def fire() -> None:
            for cb in list(callbacks):
                self._run_callback(cb, kind)

        loop = self._owner_loop
        if threading.get_ident() == self._owner_thread or loop is None:
            fire()
        elif not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(fire)

    def _mark_lost(self, gen: Generation, reason: str) -> None:
        with self._lock:
            if gen.lost:
                return
            gen.lost_reason = reason
        if self._state != "running":
            return
        log.warning("etcd session lease %x lost: %s", gen.lease_id, reason)
        if gen is self._gen:
            self._notify(self._lost_cbs, "on_lost")
        self._wake_thread()

    def _wake_thread(self) -> None:
        loop, wake = self._ka_loop, self._ka_wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    # -- internals: the keepalive thread -------------------------------------------------
    def _thread_main(self) -> None:
        try:
            asyncio.run(self._keepalive_main())
        except BaseException as exc:  # never let the thread die silently
            log.exception("etcd keepalive thread crashed")
            self._start_error = exc
            gen = self._gen
            if gen is not None:
                self._mark_lost(gen, "keepalive thread crashed")

    async def _nap(self, seconds: float) -> None:
        assert self._ka_wake is not None
        self._ka_wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ka_wake.wait(), max(0.001, seconds))

    async def _keepalive_main(self) -> None:
        self._ka_loop = asyncio.get_running_loop()
        self._ka_wake = asyncio.Event()
        client = self._lease_client_factory()
        backoff = Backoff(initial=min(0.1, self.keepalive_interval), maximum=1.0)
        failures = 0
        try:
            while self._state == "running":
                gen = self._gen
                if gen is None or gen.lost:
                    if gen is not None and not gen.revoked:
                        await self._revoke(client, gen)
                    if gen is not None and not self.renew:
                        await self._nap(1.0)
                        continue
                    if gen is not None and not self._renew_gate():
                        await self._nap(0.1)
                        continue
                    if await self._grant(client):
                        failures = 0
                    else:
                        await self._nap(backoff.delay(failures))
                        failures += 1
                    continue
                if not self.generation_valid(gen):
                    continue
                wait = self.keepalive_interval
                if not self._paused:
                    if await self._refresh_once(client, gen):
                        failures = 0
                    else:
                        wait = backoff.delay(failures)
                        failures += 1
                await self._nap(min(wait, gen.deadline - self._clock()))
            gen = self._gen
            if gen is not None and not gen.revoked:  # lost or not: its keys go now
                await self._revoke(client, gen)
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    async def _grant(self, client: Any) -> bool:
        sent_at = self._clock()
        try:
            async with asyncio.timeout(self.request_timeout):
                lease = await client.lease(self.ttl)
        except (aetcd.ClientError, TimeoutError, OSError) as exc:
            if isinstance(exc, aetcd.exceptions.UnauthenticatedError):
                _token_rejected(client)
            self._grant_failures += 1
            if self._grant_failures in (1, 10) or self._grant_failures % 100 == 0:
                log.warning(
                    "etcd at %s did not grant a lease (%s, %d tries so far); retrying",
                    self.settings.etcd_url,
                    type(exc).__name__,
                    self._grant_failures,
                )
            return False
        self._grant_failures = 0
        if self._state != "running":
            with contextlib.suppress(Exception):
                await client.revoke_lease(int(lease.id))
            return False
        self._count += 1
        first = self._gen is None
        gen = Generation(
            number=self._count,
            lease_id=int(lease.id),
            granted_ttl=float(lease.ttl),
            last_ok=sent_at,
            margin=self.margin,
        )
        self._gen = gen
        log.info("etcd session lease %x granted (ttl %ss)", gen.lease_id, lease.ttl)
        if first:
            self._first.set()
        else:
            self._notify(self._renewed_cbs, "on_renewed")
        return True

    async def _revoke(self, client: Any, gen: Generation) -> None:
        gen.revoked = True
        try:
            async with asyncio.timeout(min(self.request_timeout, 2.0)):
                await client.revoke_lease(gen.lease_id)
        except (aetcd.ClientError, TimeoutError, OSError) as exc:
            log.info(
                "could not revoke etcd lease %x (it expires within its TTL): %s",
                gen.lease_id,
                type(exc).__name__,
            )

    async def _refresh_once(self, client: Any, gen: Generation) -> bool:
        sent_at = self._clock()
        budget = min(self.keepalive_interval, gen.deadline - sent_at)
        try:
            async with asyncio.timeout(max(budget, 0.01)):
                reply = await client.refresh_lease(gen.lease_id)
        except TimeoutError:
            log.warning("etcd keepalive for lease %x timed out", gen.lease_id)
            return False
        except (aetcd.ClientError, OSError) as exc:
            if isinstance(exc, aetcd.exceptions.UnauthenticatedError):
                _token_rejected(client)
            log.warning("etcd keepalive for lease %x failed: %s", gen.lease_id, type(exc).__name__)
            return False
        if reply is None:
            log.warning("etcd keepalive for lease %x got no reply", gen.lease_id)
            return False
        if reply.TTL <= 0:
            gen.revoked = True  # etcd has no such lease any more
            self._mark_lost(gen, "etcd reports the lease expired")
            return False
        with self._lock:
            if not gen.lost:
                gen.last_ok = max(gen.last_ok, sent_at)
                gen.granted_ttl = float(reply.TTL)
        return True

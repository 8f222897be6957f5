"""One etcd lease per runtime process, kept alive in the background, with self-fencing.

Every key a process owns (thread owners, its registry entry) is bound to its
session lease, so when the process dies or stalls, etcd deletes them all after
the TTL. The process must also notice *by itself* that it may no longer act as
owner: :attr:`EtcdSession.valid` turns False once ``last successful keepalive +
TTL - margin`` has passed on the local monotonic clock. The "last successful
keepalive" is the time the request was *sent*, which is never later than the
moment etcd renewed the lease, so the local deadline always falls before etcd's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aetcd

from mesh_core.config import InfraSettings
from mesh_core.errors import InternalError, UnavailableError

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_TTL",
    "SESSION_LOST",
    "Backoff",
    "EtcdSession",
    "new_etcd_client",
    "translate_etcd_errors",
]

log = logging.getLogger(__name__)

DEFAULT_TTL = 5
DEFAULT_MARGIN = 0.5
DEFAULT_REQUEST_TIMEOUT = 5.0
DEFAULT_START_TIMEOUT = 10.0

#: ``reason`` of the UnavailableError raised when acting on a lost session.
SESSION_LOST = "ETCD_SESSION_LOST"

# etcd's message when a put names a lease it no longer has (revoked or expired).
_LEASE_NOT_FOUND = "requested lease not found"

# gRPC's own reconnect backoff defaults to 1 s growing to 120 s: far longer than a
# lease TTL. Keep it short so a restarted etcd is found again within a keepalive or two.
_CHANNEL_OPTIONS: dict[str, Any] = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
}


@dataclass
class Backoff:
    """Exponential backoff with full jitter on the upper half: ``next()`` then ``reset()``."""

    initial: float = 0.05
    maximum: float = 1.0
    factor: float = 2.0
    _attempt: int = field(default=0, init=False)

    def next(self) -> float:
        base = min(self.maximum, self.initial * self.factor**self._attempt)
        self._attempt += 1
        return base / 2 + random.random() * base / 2

    def reset(self) -> None:
        self._attempt = 0


@contextlib.contextmanager
def translate_etcd_errors(action: str) -> Iterator[None]:
    """Map aetcd errors onto the mesh's exception tree (the cause stays chained)."""
    try:
        yield
    except (
        aetcd.ConnectionFailedError,
        aetcd.ConnectionTimeoutError,
        aetcd.WatchTimeoutError,
        TimeoutError,
    ) as exc:
        raise UnavailableError(
            f"etcd unavailable during {action}", reason="ETCD_UNAVAILABLE"
        ) from exc
    except aetcd.ClientError as exc:
        raise InternalError(f"etcd error during {action}", reason="ETCD_ERROR") from exc


def new_etcd_client(
    settings: InfraSettings, *, request_timeout: float = DEFAULT_REQUEST_TIMEOUT
) -> aetcd.Client:
    """An (unconnected) aetcd client for ``settings.etcd_url`` with short reconnect backoff."""
    host, port = settings.etcd_host_port()
    return aetcd.Client(
        host=host,
        port=port,
        timeout=request_timeout,  # grpc takes float seconds
        options=dict(_CHANNEL_OPTIONS),
    )


class EtcdSession:
    """A process-wide etcd lease, kept alive by a background task.

    Use ``async with EtcdSession(settings, ttl=5) as session:`` or ``start()`` /
    ``close()``. ``close()`` revokes the lease, which deletes every key bound to it.
    Once the session is lost (keepalives failed until the deadline, or etcd reports
    the lease gone) it stays invalid; create a new session to own things again.
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
    ) -> None:
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
        self.client: aetcd.Client = new_etcd_client(settings, request_timeout=request_timeout)
        self.lease_id: int = 0
        self._clock = clock
        self._granted_ttl: float = float(ttl)
        self._last_ok: float = float("-inf")
        self._state = "new"  # new -> running -> lost | closed
        self._lost_reason: str | None = None
        self._callbacks: list[Callable[[], object]] = []
        self._task: asyncio.Task[None] | None = None
        self._paused = False

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Grant the lease (retrying with backoff while etcd is unreachable) and keep it alive."""
        if self._state != "new":
            raise RuntimeError(f"EtcdSession.start() called in state {self._state!r}")
        deadline = time.monotonic() + timeout
        backoff = Backoff(initial=0.1, maximum=1.0)
        while True:
            sent_at = self._clock()
            try:
                with translate_etcd_errors("lease grant"):
                    lease = await self.client.lease(self.ttl)
                break
            except UnavailableError as exc:
                delay = backoff.next()
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("etcd lease grant failed (%s); retrying in %.2fs", exc.__cause__, delay)
                await asyncio.sleep(delay)
        self.lease_id = int(lease.id)
        self._granted_ttl = float(lease.ttl)
        self._last_ok = sent_at
        self._state = "running"
        self._task = asyncio.create_task(
            self._keepalive_loop(), name=f"etcd-keepalive-{self.lease_id:x}"
        )
        log.info("etcd session started: lease %x, ttl %ss", self.lease_id, lease.ttl)

    async def close(self) -> None:
        """Stop keepalives, revoke the lease (deleting its keys) and close the client."""
        if self._state == "closed":
            return
        was_running = self._state == "running"
        self._state = "closed"
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if was_running and self.lease_id:
            try:
                async with asyncio.timeout(self.request_timeout):
                    await self.client.revoke_lease(self.lease_id)
            except (aetcd.ClientError, TimeoutError) as exc:
                log.warning(
                    "could not revoke etcd lease %x on close (it expires within its TTL): %r",
                    self.lease_id,
                    exc,
                )
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

    # -- self-fencing ------------------------------------------------------------------
    @property
    def deadline(self) -> float:
        """Monotonic time after which this process must not act on its lease any more."""
        return self._last_ok + self._granted_ttl - self.margin

    @property
    def valid(self) -> bool:
        """True while keys bound to this lease may be acted on (see module docstring)."""
        if self._state != "running":
            return False
        if self._clock() >= self.deadline:
            self._mark_lost("no successful keepalive before the self-fencing deadline")
            return False
        return True

    @property
    def lost_reason(self) -> str | None:
        return self._lost_reason

    def on_lost(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once when the session becomes invalid (not on ``close()``).

        If the session is already lost, the callback runs right away.
        """
        if self._state == "lost":
            self._run_callback(callback)
        else:
            self._callbacks.append(callback)

    def require_valid(self, action: str) -> None:
        """Raise UnavailableError (reason ``SESSION_LOST``) unless the session is valid."""
        if not self.valid:
            raise UnavailableError(
                f"etcd session lost: this runtime cannot {action}", reason=SESSION_LOST
            )

    @contextlib.contextmanager
    def lease_bound(self, action: str) -> Iterator[None]:
        """``translate_etcd_errors`` for writes bound to this lease.

        If etcd says the lease is gone (revoked from outside), the session is marked
        lost and UnavailableError (reason ``SESSION_LOST``) is raised.
        """
        try:
            with translate_etcd_errors(action):
                yield
        except InternalError as exc:
            if _LEASE_NOT_FOUND not in str(exc.__cause__):
                raise
            self._mark_lost("etcd reports the lease is gone")
            raise UnavailableError(
                f"etcd session lost during {action}", reason=SESSION_LOST
            ) from exc.__cause__

    # -- test hooks --------------------------------------------------------------------
    def pause_keepalive(self) -> None:
        """Stop sending keepalives (tests: simulate a stalled process on a live loop)."""
        self._paused = True

    def resume_keepalive(self) -> None:
        self._paused = False

    # -- internals ---------------------------------------------------------------------
    def _run_callback(self, callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception:
            log.exception("etcd session on_lost callback failed")

    def _mark_lost(self, reason: str) -> None:
        if self._state != "running":
            return
        self._state = "lost"
        self._lost_reason = reason
        log.warning("etcd session lease %x lost: %s", self.lease_id, reason)
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            self._run_callback(cb)

    async def _refresh_once(self) -> bool:
        sent_at = self._clock()
        budget = min(self.keepalive_interval, self.deadline - sent_at)
        try:
            async with asyncio.timeout(max(budget, 0.01)):
                reply = await self.client.refresh_lease(self.lease_id)
        except TimeoutError:
            log.warning("etcd keepalive for lease %x timed out", self.lease_id)
            return False
        except aetcd.ClientError as exc:
            log.warning("etcd keepalive for lease %x failed: %r", self.lease_id, exc)
            return False
        if reply is None:
            log.warning("etcd keepalive for lease %x got no reply", self.lease_id)
            return False
        if reply.TTL <= 0:
            self._mark_lost("etcd reports the lease expired")
            return False
        if self._state == "running":
            self._last_ok = max(self._last_ok, sent_at)
            self._granted_ttl = float(reply.TTL)
        return True

    async def _keepalive_loop(self) -> None:
        backoff = Backoff(
            initial=min(0.1, self.keepalive_interval), maximum=self.keepalive_interval
        )
        try:
            while self._state == "running":
                if not self.valid:  # marks the session lost at the deadline
                    return
                wait = self.keepalive_interval
                if not self._paused:
                    if await self._refresh_once():
                        backoff.reset()
                    else:
                        wait = backoff.next()
                    if self._state != "running":
                        return
                until_deadline = self.deadline - self._clock()
                await asyncio.sleep(max(0.001, min(wait, until_deadline)))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("etcd keepalive task crashed")
            self._mark_lost("keepalive task crashed")

"""Retry with jittered exponential backoff, bounded by a time budget.

Every Redis, NATS and etcd call on the run path goes through one :class:`Retry`: a
backend that is away for less than the budget (default 30 s, ``LGMESH_RETRY_BUDGET``)
pauses the caller, which then continues; a longer outage raises the last error,
translated by the adapter (``UnavailableError``), and leaves the work resumable.

Whether an error is worth retrying is decided by its type (:func:`is_retryable`):
network failures, timeouts and servers that are restarting are; a rejected fencing
token, a bad request or a lost session are not. Every call that is retried must be
idempotent (the mesh's writes are: checkpoints by id, writes by task id and index,
records by key, events by ``Nats-Msg-Id``).

``abort`` lets a caller stop retrying early, e.g. an owner whose thread lease
expired while it waited for Redis: the predicate raises, and that error wins.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from mesh_core.logs import RateLimitedLog

__all__ = [
    "DEFAULT_RETRY_BUDGET",
    "Backoff",
    "Retry",
    "is_retryable",
    "transient_error_types",
]

log = logging.getLogger(__name__)
_rate_limited: RateLimitedLog | None = None


def _warn(what: str, exc: BaseException, left: float) -> None:
    global _rate_limited
    if _rate_limited is None:
        from mesh_core.logs import RateLimitedLog

        _rate_limited = RateLimitedLog(log, interval=10.0, burst=2)
    _rate_limited.warning(
        what, "%s failed (%s); retrying for up to %.0fs", what, _describe(exc), left
    )


T = TypeVar("T")

DEFAULT_RETRY_BUDGET = 30.0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: the n-th retry (0-based) has the ceiling
    ``min(maximum, initial * factor**n)``.

    ``jitter="half"`` (the default) sleeps within the upper half of the ceiling: never
    zero (no busy loop), never in lockstep with other clients. ``jitter="full"`` sleeps
    anywhere below it (the LLM gateway's provider retries: many callers, spread widest).
    """

    initial: float = 0.05
    maximum: float = 1.0
    factor: float = 2.0
    jitter: Literal["half", "full"] = "half"

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")

    def ceiling(self, attempt: int) -> float:
        return min(self.maximum, self.initial * self.factor ** min(attempt, 64))

    def delay(self, attempt: int) -> float:
        top = self.ceiling(attempt)
        if self.jitter == "full":
            return random.random() * top
        return top / 2 + random.random() * top / 2


def _optional_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [TimeoutError, ConnectionError]
    try:
        from redis import exceptions as rx

        found += [
            rx.ConnectionError,
            rx.TimeoutError,
            rx.BusyLoadingError,
            rx.TryAgainError,
            rx.ClusterDownError,
            rx.MasterDownError,
            rx.ReadOnlyError,
        ]
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    try:
        from nats import errors as nx
        from nats.js import errors as jx

        found += [
            nx.ConnectionClosedError,
            nx.ConnectionReconnectingError,
            nx.NoServersError,
            nx.StaleConnectionError,
            nx.TimeoutError,
            nx.OutboundBufferLimitError,
            nx.NoRespondersError,
            jx.ServiceUnavailableError,
            jx.ServerError,
        ]
    except ImportError:  # pragma: no cover - nats-py is a dependency
        pass
    try:
        import aetcd

        found += [aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError]
    except ImportError:  # pragma: no cover - aetcd is a dependency
        pass
    return tuple(found)


_TRANSIENT: tuple[type[BaseException], ...] | None = None


def transient_error_types() -> tuple[type[BaseException], ...]:
    """Backend exception types that mean "not now", not "never" (computed once)."""
    global _TRANSIENT
    if _TRANSIENT is None:
        _TRANSIENT = _optional_types()
    return _TRANSIENT


def is_retryable(exc: BaseException) -> bool:
    """True for transient backend failures: network errors, timeouts, restarting servers.

    A :class:`~mesh_core.errors.MeshError` says so itself (``retryable``); errors that
    carry a verdict (a stale fencing token, a lost session, bad input) are not retried.
    """
    from mesh_core.errors import MeshError

    if isinstance(exc, MeshError):
        return bool(exc.retryable)
    return isinstance(exc, transient_error_types())


@dataclass(frozen=True)
class Retry:
    """Call an async function again while it fails with a retryable error.

    Attributes:
        budget: seconds, counted from the first failure, after which the last error
            is raised. 0 = a single attempt.
        backoff: the delay between attempts.
        retryable: which errors to retry (default :func:`is_retryable`).
    """

    budget: float = DEFAULT_RETRY_BUDGET
    backoff: Backoff = field(default_factory=Backoff)
    retryable: Callable[[BaseException], bool] = is_retryable

    def __post_init__(self) -> None:
        if self.budget < 0:
            raise ValueError("retry budget must be >= 0")

    def with_budget(self, budget: float) -> Retry:
        return replace(self, budget=budget)

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        what: str = "",
        abort: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> T:
        """``await fn()`` until it succeeds, a non-retryable error, or the budget is spent.

        ``abort`` is called before every retry; whatever it raises ends the retries.
        """
        first_failure: float | None = None
        attempt = 0
        while True:
            try:
                return await fn()
            except Exception as exc:
                if not self.retryable(exc):
                    raise
                now = clock()
                if first_failure is None:
                    first_failure = now
                delay = self.backoff.delay(attempt)
                attempt += 1
                if now + delay - first_failure > self.budget:
                    raise
                if abort is not None:
                    abort()
                if attempt == 1:
                    _warn(what or "backend call", exc, self.budget - (now - first_failure))
                await asyncio.sleep(delay)
                if abort is not None:
                    abort()


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:120] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

"""The ``ErrorInfo.reason`` values services exchange to decide what to do next.

A gateway reads the reason of a runtime's error to choose between "try another
runtime", "the run goes on elsewhere: follow it" and "tell the client". Both sides
name the reasons from this one enum, so a rename cannot silently break failover.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["MOVED", "TRY_ELSEWHERE", "Reason"]


class Reason(StrEnum):
    # -- a runtime is fine but cannot take this run now: try another one -----------------
    DRAINING = "DRAINING"
    """The runtime got SIGTERM and takes no new runs."""
    AT_CAPACITY = "AT_CAPACITY"
    """The runtime already drives as many runs as it accepts."""
    NO_RUNTIME = "NO_RUNTIME"
    """No live runtime is registered."""
    NOT_SERVING = "NOT_SERVING"
    """The runtime cannot do its job now (no etcd session, Redis or NATS unreachable)."""

    # -- the run goes on, but not here: resume it elsewhere or follow its event log ------
    RUN_HANDED_OVER = "RUN_HANDED_OVER"
    """This runtime stopped driving the run (lost the thread, drained, lost a backend)."""
    THREAD_OWNED_ELSEWHERE = "THREAD_OWNED_ELSEWHERE"
    """Another runtime holds the thread's lease."""
    ETCD_SESSION_LOST = "ETCD_SESSION_LOST"
    """The runtime's etcd session expired; it cannot own threads until it has a new one."""
    STALE_OWNER = "STALE_OWNER"
    """A write carried a fencing token older than the thread's current owner's."""

    # -- answers for the client ----------------------------------------------------------
    THREAD_BUSY = "THREAD_BUSY"
    """The thread has an active run and the strategy is ``reject``."""
    NO_INTERRUPT = "NO_INTERRUPT"
    """A resume command for a thread that is not interrupted."""
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    """Redis, NATS or etcd stayed unreachable for longer than the retry budget."""
    ETCD_UNAVAILABLE = "ETCD_UNAVAILABLE"
    REDIS_UNAVAILABLE = "REDIS_UNAVAILABLE"
    NATS_UNAVAILABLE = "NATS_UNAVAILABLE"


#: The runtime cannot take the run, but another one may.
TRY_ELSEWHERE = frozenset(
    {Reason.DRAINING, Reason.AT_CAPACITY, Reason.NO_RUNTIME, Reason.NOT_SERVING}
)

#: The run is alive and continues on another runtime (or will): resume or follow it.
MOVED = frozenset(
    {
        Reason.RUN_HANDED_OVER,
        Reason.THREAD_OWNED_ELSEWHERE,
        Reason.ETCD_SESSION_LOST,
        Reason.STALE_OWNER,
    }
)

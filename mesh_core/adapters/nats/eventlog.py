"""The run event log: every run's events on a JetStream subject of their own.

Events are protobuf ``lgmesh.api.v1.RunEvent`` messages. The log is kept for a bounded
time (``max_age``) so ``JoinRun`` on any gateway can replay a run from a cursor and then
follow it live, and a new owner continues the run's sequence numbers after a failover.

**One linear history per run, even with zombies.** :meth:`RunEventLog.append` publishes
with ``Nats-Expected-Last-Subject-Sequence``: the stream sequence of the run's previous
event as this writer saw it. An owner that lost the run (paused past its lease, cut
off) cannot append after the new owner did: its append fails with
:class:`EventLogConflictError`. A new owner starts from :meth:`RunEventLog.position`
and, if an old owner's last event slipped in meanwhile, re-reads and continues after
it. So event sequence numbers are gap-free and never reused, in the log and on every
client. ``Nats-Msg-Id`` = ``<run_id>:<seq>:<writer>`` lets a retried append whose ack
was lost recognise its own message.

With a payload codec (``--payload-keys``) every event is stored sealed, bound to its
run: the log shows subjects (run ids) and headers, no event content. Readers open
events with the same key ring; events from before the codec read as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import nats
from lgmesh.api.v1 import types_pb2
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.api import RawStreamMsg
from nats.js.errors import APIError, NotFoundError

from mesh_core.adapters.nats.subjects import NatsNames
from mesh_core.config import redact_url
from mesh_core.errors import BackendUnavailableError, StaleOwnerError
from mesh_core.logs import RateLimitedLog
from mesh_core.reasons import Reason
from mesh_core.retry import Retry, transient_error_types
from mesh_core.security._codec import (
    PayloadCodec,
    SealedDataError,
    open_payload,
    seal_payload,
)

__all__ = [
    "DEFAULT_EVENT_MAX_AGE",
    "DEFAULT_EVENT_MAX_BYTES",
    "EventLogConflictError",
    "LogPosition",
    "RunEventLog",
    "call_nats",
    "connect_nats",
    "is_final_event",
]

log = logging.getLogger(__name__)
_rate_limited = RateLimitedLog(log, interval=30.0, burst=2)

T = TypeVar("T")

DEFAULT_EVENT_MAX_AGE = 24 * 3600.0
DEFAULT_EVENT_MAX_BYTES = 1024**3
# JetStream's error code for a failed Nats-Expected-Last-Subject-Sequence check.
_WRONG_LAST_SEQUENCE = 10071


async def connect_nats(url: str, name: str, *, inbox: str = "_INBOX") -> NatsClient:
    """Connect with reconnects forever (backoff handled by nats-py).

    ``inbox``: the prefix of this connection's reply subjects; each tier has its own
    (``mesh_core.security.inbox_prefix``) so its NATS user may read only its own.
    Connection errors are logged a few times per half minute, naming the server.
    """

    where = redact_url(url)
    client: list[NatsClient] = []

    async def _err(exc: Exception) -> None:
        _rate_limited.warning(
            f"{name}:{type(exc).__name__}",
            "%s: cannot reach NATS at %s (%s); retrying (is nats-server running there? "
            "--nats-url / LGMESH_NATS_URL)",
            name,
            where,
            type(exc).__name__,
        )

    async def _disconnected() -> None:
        if client and client[0].is_closed:  # our own close(), at shutdown
            return
        log.warning("%s: disconnected from NATS at %s; reconnecting", name, where)

    async def _reconnected() -> None:
        log.info("%s: reconnected to NATS at %s", name, where)

    nc = await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.25,
        error_cb=_err,
        disconnected_cb=_disconnected,
        reconnected_cb=_reconnected,
        connect_timeout=5,
        inbox_prefix=inbox.encode(),
    )
    client.append(nc)
    return nc


async def call_nats(
    retry: Retry,
    what: str,
    fn: Callable[[], Awaitable[T]],
    *,
    abort: Callable[[], None] | None = None,
) -> T:
    """``await fn()`` with ``retry``; a NATS outage longer than its budget becomes
    ``BackendUnavailableError`` (reason NATS_UNAVAILABLE)."""
    try:
        return await retry.call(fn, what=f"NATS {what}", abort=abort)
    except transient_error_types() as exc:
        raise BackendUnavailableError(
            f"NATS unreachable during {what}", backend="nats", reason=Reason.NATS_UNAVAILABLE
        ) from exc


@dataclass(frozen=True)
class LogPosition:
    """The last event of a run's log: its stream sequence (0: none yet), its event seq,
    and whether it is the run's final event."""

    stream_seq: int = 0
    seq: int = 0
    final: bool = False


def _place(run_id: str) -> str:
    return "run-event\0" + run_id


class EventLogConflictError(StaleOwnerError):
    """Another writer appended to the run's log after the event this writer expected."""

    reason = Reason.STALE_OWNER


def is_final_event(ev: types_pb2.RunEvent) -> bool:
    return ev.mode == "lifecycle" and ev.lifecycle.kind == types_pb2.LIFECYCLE_KIND_ENDED


class RunEventLog:
    def __init__(
        self,
        nc: NatsClient,
        names: NatsNames,
        *,
        max_age: float = DEFAULT_EVENT_MAX_AGE,
        max_bytes: int = DEFAULT_EVENT_MAX_BYTES,
        retry: Retry | None = None,
        codec: PayloadCodec | None = None,
    ) -> None:
        """The log keeps a run's events for ``max_age`` seconds and all runs' events in at
        most ``max_bytes`` (the oldest go first); every service of a mesh must agree.
        ``codec``: seal events (see the module docstring)."""
        self.codec = codec
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.names = names
        self.max_age = max_age
        self.max_bytes = max_bytes
        self.retry = retry or Retry()

    def _event(self, run_id: str, data: bytes) -> types_pb2.RunEvent:
        ev = types_pb2.RunEvent()
        ev.ParseFromString(
            open_payload(self.codec, data, f"an event of run {run_id!r}", _place(run_id))
        )
        return ev

    async def ensure_stream(self) -> None:
        cfg = api.StreamConfig(
            name=self.names.events_stream,
            subjects=[self.names.events_wildcard],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            max_age=self.max_age,
            max_bytes=self.max_bytes,
            duplicate_window=120.0,
            discard=api.DiscardPolicy.OLD,
        )
        try:
            await self.js.add_stream(cfg)
        except nats.js.errors.BadRequestError:
            await self.js.update_stream(cfg)

    async def append(
        self,
        event: types_pb2.RunEvent,
        *,
        expected: int,
        writer: str,
        abort: Callable[[], None] | None = None,
        data: bytes | None = None,
    ) -> int:
        """Append ``event`` after the message with stream sequence ``expected`` (0: the
        run's first event); returns the new event's stream sequence. ``data``: the bytes
        to keep for it, when not the whole event (a final event without its output).

        Retries through NATS outages (the budget of ``retry``). Raises
        :class:`EventLogConflictError` if another writer appended meanwhile.
        """
        subject = self.names.run_events(event.run_id)
        msg_id = f"{event.run_id}:{event.seq}:{writer}"
        headers = {"Nats-Msg-Id": msg_id, "Nats-Expected-Last-Subject-Sequence": str(expected)}
        if data is None:
            data = event.SerializeToString()
        data = seal_payload(self.codec, data, _place(event.run_id))

        async def attempt() -> int:
            try:
                ack = await self.js.publish(subject, data, headers=headers, timeout=5)
                return int(ack.seq)
            except APIError as exc:
                if exc.err_code != _WRONG_LAST_SEQUENCE:
                    raise
            # Either our earlier try was stored (its ack lost) or someone else wrote.
            last = await self._last_msg(event.run_id)
            if last is not None and (last.headers or {}).get("Nats-Msg-Id") == msg_id:
                return int(last.seq or 0)
            raise EventLogConflictError(
                f"run {event.run_id}'s event log moved on: another runtime drives the run",
                metadata={"run_id": event.run_id},
            )

        return await call_nats(self.retry, "event append", attempt, abort=abort)

    async def _last_msg(self, run_id: str) -> RawStreamMsg | None:
        try:
            return await self.js.get_last_msg(
                self.names.events_stream, self.names.run_events(run_id)
            )
        except NotFoundError:
            return None

    async def last_event(
        self, run_id: str, *, abort: Callable[[], None] | None = None
    ) -> tuple[int, types_pb2.RunEvent] | None:
        """(stream sequence, event) of the run's last event, or None."""
        msg = await call_nats(
            self.retry, "event log read", lambda: self._last_msg(run_id), abort=abort
        )
        if msg is None:
            return None
        return int(msg.seq or 0), self._event(run_id, msg.data or b"")

    async def position(
        self, run_id: str, *, abort: Callable[[], None] | None = None
    ) -> LogPosition:
        last = await self.last_event(run_id, abort=abort)
        if last is None:
            return LogPosition()
        return LogPosition(last[0], last[1].seq, is_final_event(last[1]))

    async def last_seq(self, run_id: str) -> int:
        return (await self.position(run_id)).seq

    async def replay(
        self,
        run_id: str,
        after_seq: int = 0,
        *,
        follow: bool = True,
        idle_timeout: float | None = None,
    ) -> AsyncGenerator[types_pb2.RunEvent, None]:
        """Events with seq > after_seq in order; with ``follow``, keep going live until
        the run's final lifecycle event. ``idle_timeout`` ends the replay when no event
        arrives for that long (None: wait forever)."""
        queue: asyncio.Queue[types_pb2.RunEvent] = asyncio.Queue()

        failed: list[BaseException] = []

        async def on_msg(msg: Msg) -> None:
            try:
                queue.put_nowait(self._event(run_id, msg.data))
            except SealedDataError as exc:  # surfaced to the reader, not lost in a callback
                failed.append(exc)
                queue.put_nowait(types_pb2.RunEvent())

        sub = await self.js.subscribe(
            self.names.run_events(run_id),
            cb=on_msg,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.ALL,
        )
        try:
            if not follow:
                last = await self.last_seq(run_id)
                if last <= after_seq:
                    return
            expected = after_seq
            while True:
                try:
                    ev = await asyncio.wait_for(queue.get(), idle_timeout)
                except TimeoutError:
                    return
                if failed:
                    raise failed[0]
                if ev.seq <= expected:
                    continue  # already seen (or a duplicate publish)
                expected = ev.seq
                yield ev
                if is_final_event(ev):
                    return
                if not follow and queue.empty() and ev.seq >= await self.last_seq(run_id):
                    return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

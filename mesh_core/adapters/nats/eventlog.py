"""The run event log: every run's events on a JetStream subject of their own.

Events are protobuf ``lgmesh.api.v1.RunEvent`` messages. The log is kept for a bounded
time (``max_age``) so ``JoinRun`` on any gateway can replay a run from a cursor and then
follow it live, and a new owner continues the run's sequence numbers after a failover.
``Nats-Msg-Id`` = ``<run_id>:<seq>`` makes a re-published event a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import nats
from lgmesh.api.v1 import types_pb2
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from mesh_core.adapters.nats.subjects import NatsNames

__all__ = ["DEFAULT_EVENT_MAX_AGE", "RunEventLog", "connect_nats", "is_final_event"]

log = logging.getLogger(__name__)

DEFAULT_EVENT_MAX_AGE = 24 * 3600.0


async def connect_nats(url: str, name: str) -> NatsClient:
    """Connect with reconnects forever (backoff handled by nats-py)."""

    async def _err(exc: Exception) -> None:
        log.warning("nats error (%s): %s", name, type(exc).__name__)

    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=_err,
        connect_timeout=5,
    )


def is_final_event(ev: types_pb2.RunEvent) -> bool:
    return ev.mode == "lifecycle" and ev.lifecycle.kind == types_pb2.LIFECYCLE_KIND_ENDED


class RunEventLog:
    def __init__(
        self, nc: NatsClient, names: NatsNames, *, max_age: float = DEFAULT_EVENT_MAX_AGE
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.names = names
        self.max_age = max_age

    async def ensure_stream(self) -> None:
        cfg = api.StreamConfig(
            name=self.names.events_stream,
            subjects=[self.names.events_wildcard],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            max_age=self.max_age,
            duplicate_window=120.0,
            discard=api.DiscardPolicy.OLD,
        )
        try:
            await self.js.add_stream(cfg)
        except nats.js.errors.BadRequestError:
            await self.js.update_stream(cfg)

    async def publish(self, event: types_pb2.RunEvent, *, durable: bool = False) -> None:
        """Append an event. ``durable`` waits for the server's ack (and so for every
        earlier event published on this connection, which NATS keeps in order)."""
        subject = self.names.run_events(event.run_id)
        headers = {"Nats-Msg-Id": f"{event.run_id}:{event.seq}"}
        data = event.SerializeToString()
        if durable:
            await self.js.publish(subject, data, headers=headers, timeout=5)
        else:
            await self.nc.publish(subject, data, headers=headers)

    async def last_event(self, run_id: str) -> types_pb2.RunEvent | None:
        try:
            msg = await self.js.get_last_msg(
                self.names.events_stream, self.names.run_events(run_id)
            )
        except NotFoundError:
            return None
        ev = types_pb2.RunEvent()
        ev.ParseFromString(msg.data or b"")
        return ev

    async def last_seq(self, run_id: str) -> int:
        ev = await self.last_event(run_id)
        return ev.seq if ev is not None else 0

    async def replay(
        self,
        run_id: str,
        after_seq: int = 0,
        *,
        follow: bool = True,
        idle_timeout: float | None = None,
    ) -> AsyncIterator[types_pb2.RunEvent]:
        """Events with seq > after_seq in order; with ``follow``, keep going live until
        the run's final lifecycle event. ``idle_timeout`` ends the replay when no event
        arrives for that long (None: wait forever)."""
        queue: asyncio.Queue[types_pb2.RunEvent] = asyncio.Queue()

        async def on_msg(msg: Msg) -> None:
            ev = types_pb2.RunEvent()
            ev.ParseFromString(msg.data)
            queue.put_nowait(ev)

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

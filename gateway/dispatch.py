"""Send a run to its runtime and keep the client's stream going across owner failures.

The runtime's ExecuteRun stream carries the run's events with sequence numbers. When it
breaks (the runtime died, drained, or lost the thread), the run is re-dispatched as a
resume to the next runtime, which waits out the old lease and continues from the last
checkpoint; if someone else already drives it, the rest is read from the run's
JetStream event log. Events at or below the client's cursor are never sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING

import grpc
from google.rpc import error_details_pb2, status_pb2
from lgmesh.api.v1 import types_pb2
from lgmesh.runtime.v1 import runtime_pb2, runtime_pb2_grpc

from gateway._convert import final_event_from_record, spec_to_pb
from gateway._tokens import TenantTokens
from gateway.placement import Placement
from mesh_core.adapters.nats.eventlog import RunEventLog, is_final_event
from mesh_core.adapters.redis.records import TERMINAL_STATUSES, RecordStore, scoped_thread_id
from mesh_core.errors import MeshError, UnavailableError
from mesh_core.reasons import MOVED, TRY_ELSEWHERE
from mesh_core.retry import Backoff
from mesh_core.security import PLAINTEXT, InternalSecurity
from mesh_core.telemetry import current_tracing

if TYPE_CHECKING:
    from gateway.runs import RunSpec

__all__ = ["ChannelPool", "PassthroughError", "RunDispatcher", "rpc_error_reason"]

log = logging.getLogger(__name__)

_DETAILS_KEY = "grpc-status-details-bin"


def _status_of(err: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    for key, value in err.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            st = status_pb2.Status()
            st.ParseFromString(value)
            return st
    return None


def rpc_error_reason(err: grpc.aio.AioRpcError) -> str:
    st = _status_of(err)
    if st is None:
        return ""
    for d in st.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info.reason
    return ""


class PassthroughError(MeshError):
    """An error status from a runtime, handed to the client as it was (code, message, details)."""

    def __init__(self, err: grpc.aio.AioRpcError) -> None:
        super().__init__(err.details() or err.code().name)
        self.code = err.code()
        self._status = _status_of(err)

    def details(self):  # type: ignore[no-untyped-def]
        return list(self._status.details) if self._status is not None else super().details()


class ChannelPool:
    """One channel per runtime address; mutual TLS with ``security`` (the runtime's
    certificate must name the runtime tier)."""

    def __init__(
        self, security: InternalSecurity = PLAINTEXT, max_message_bytes: int = 8 * 1024 * 1024
    ) -> None:
        self.security = security
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._opts = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
        ]

    def stub(self, address: str) -> runtime_pb2_grpc.RuntimeServiceStub:
        ch = self._channels.get(address)
        if ch is None:
            ch = self._channels[address] = self.security.channel(
                address,
                "runtime",
                options=self._opts,
                interceptors=current_tracing().client_interceptors(),
            )
        return runtime_pb2_grpc.RuntimeServiceStub(ch)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()


class RunDispatcher:
    def __init__(
        self,
        placement: Placement,
        channels: ChannelPool,
        records: RecordStore,
        eventlog: RunEventLog,
        *,
        tokens: TenantTokens,
        max_failovers: int = 16,
    ) -> None:
        self.placement = placement
        self.channels = channels
        self.records = records
        self.eventlog = eventlog
        self.tokens = tokens
        self.max_failovers = max_failovers

    async def execute(
        self,
        tenant_id: str,
        run_id: str,
        run: RunSpec,
        *,
        after_seq: int = 0,
        new_thread: bool = False,
    ) -> AsyncGenerator[types_pb2.RunEvent, None]:
        """The run's events (seq > after_seq) until it ends, across runtime failures.

        ``new_thread``: the thread was just created, so it has no owner to look up.
        """
        spec = spec_to_pb(run)
        scoped = scoped_thread_id(tenant_id, spec.thread_id)
        cursor = after_seq
        resume = False
        exclude: set[str] = set()
        failovers = 0
        backoff = Backoff(initial=0.05, maximum=1.0)
        while True:
            try:
                address = (
                    await self.placement.candidates(
                        scoped, exclude=exclude, owner_lookup=not new_thread or bool(exclude)
                    )
                )[0]
            except UnavailableError:
                if not resume:
                    raise
                address = ""
            if not address:
                async for ev in self.follow_log(tenant_id, spec.thread_id, run_id, cursor):
                    yield ev
                return
            request = runtime_pb2.ExecuteRunRequest(
                tenant_id=tenant_id,
                run_id=run_id,
                spec=spec,
                resume=resume,
                after_seq=cursor,
                graph_id=run.graph_id,
            )
            moved = False
            try:
                async for ev in self._stream_from(address, scoped, request):
                    if ev.seq <= cursor:
                        continue
                    if ev.seq > cursor + 1:
                        # The previous owner's last events reached the log but not us:
                        # every event a runtime streams is in the log, so read them there.
                        for missed in await self._from_log(run_id, cursor, ev.seq):
                            cursor = missed.seq
                            yield missed
                    cursor = ev.seq
                    yield ev
                    if is_final_event(ev):
                        return
                moved = True  # ended without its final event: the run went elsewhere
            except grpc.aio.AioRpcError as err:
                reason = rpc_error_reason(err)
                if err.code() == grpc.StatusCode.UNAVAILABLE and reason in TRY_ELSEWHERE:
                    exclude.add(address)
                    failovers += 1
                    if failovers > self.max_failovers:
                        raise PassthroughError(err) from None
                    continue
                if err.code() == grpc.StatusCode.UNAVAILABLE and reason in MOVED:
                    exclude.add(address)
                    moved = True
                elif (
                    err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
                    and not reason
                ):
                    # The connection broke: the runtime died (or is unreachable).
                    exclude.add(address)
                    moved = True
                else:
                    raise PassthroughError(err) from None
            except _OwnerMoved:
                exclude.add(address)
                moved = True
            if moved:
                failovers += 1
                record = await self.records.get_run(tenant_id, spec.thread_id, run_id)
                if record is None:
                    resume = False  # never recorded: start it afresh elsewhere
                elif record.status in TERMINAL_STATUSES or failovers > self.max_failovers:
                    async for ev in self.follow_log(tenant_id, spec.thread_id, run_id, cursor):
                        yield ev
                    return
                else:
                    resume = True
                if failovers > 2:
                    exclude.clear()  # every runtime may have recovered meanwhile
                    await asyncio.sleep(backoff.delay(failovers))
                log.info("run %s: re-dispatching (resume=%s) after %s", run_id, resume, address)

    async def _stream_from(
        self, address: str, scoped: str, request: runtime_pb2.ExecuteRunRequest
    ) -> AsyncIterator[types_pb2.RunEvent]:
        """The runtime's events; raises _OwnerMoved once it stopped owning the thread."""
        call = self.channels.stub(address).ExecuteRun(
            request, metadata=self.tokens.run(request.tenant_id, request.run_id)
        )
        view = self.placement.view if self.placement.live else None
        watcher: asyncio.Task[None] | None = None
        ended = False
        try:
            async for resp in call:
                if watcher is None and view is not None:
                    # From its first reply on, the runtime owns the thread: if it stops
                    # owning it (paused past its lease, cut off), follow the new owner.
                    watcher = asyncio.create_task(view.owner_moved(scoped, address))
                    watcher.add_done_callback(lambda _t: call.cancel())
                if not resp.HasField("event"):
                    continue  # "taken here", before a waited-for run's first event
                ended = is_final_event(resp.event)
                yield resp.event
        except asyncio.CancelledError:
            if watcher is not None and watcher.done() and not watcher.cancelled():
                raise _OwnerMoved() from None
            raise
        except grpc.aio.AioRpcError as err:
            if (
                err.code() == grpc.StatusCode.CANCELLED
                and watcher is not None
                and watcher.done()
                and not watcher.cancelled()
            ):
                raise _OwnerMoved() from None
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
            if ended and not call.done():
                # The runtime closes the stream right after the final event: let it,
                # rather than cancelling a call that is about to end by itself.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(call.code(), 1.0)
            call.cancel()

    async def _from_log(self, run_id: str, after: int, before: int) -> list[types_pb2.RunEvent]:
        """The logged events with after < seq < before."""
        out: list[types_pb2.RunEvent] = []
        events = self.eventlog.replay(run_id, after, follow=False)
        try:
            async for ev in events:
                if ev.seq >= before:
                    break
                out.append(ev)
        finally:
            await events.aclose()
        return out

    async def follow_log(
        self, tenant_id: str, thread_id: str, run_id: str, cursor: int
    ) -> AsyncIterator[types_pb2.RunEvent]:
        """The run's events from its log until its final event. A run that ended without
        one in the log (cancelled while queued on a runtime that died) gets a final event
        made from its record, the same on every gateway."""
        while True:
            async for ev in self.eventlog.replay(run_id, cursor, follow=True, idle_timeout=2.0):
                cursor = ev.seq
                yield ev
                if is_final_event(ev):
                    return
            record = await self.records.get_run(tenant_id, thread_id, run_id)
            if record is None or record.status in TERMINAL_STATUSES:
                async for ev in self.eventlog.replay(run_id, cursor, follow=False):
                    cursor = ev.seq
                    yield ev
                    if is_final_event(ev):
                        return
                if record is not None:
                    yield final_event_from_record(record, cursor + 1)
                return


class _OwnerMoved(Exception):
    """The runtime we stream from no longer owns the thread."""

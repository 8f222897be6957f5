"""Timed work every runtime shares: delayed runs fire, webhooks are delivered.

Both are jobs on a Redis :class:`~mesh_core.adapters.redis.schedule.Schedule`, claimed
by one script per tick so exactly one runtime takes each due job; a runtime killed
mid-job leaves it to be claimed again once its visibility runs out (nothing lost).

* A **delayed run** was recorded by the gateway as ``scheduled``. When due, it is
  submitted here like any run (lease first, then the one admission script, which
  admits a scheduled run exactly once); if another runtime holds its thread it is tried
  again a moment later. A run its strategy rejects (reject, thread busy) ends as error.
* A **webhook** job was put on the schedule by the gateway before the client heard of
  the run. It is delivered once the run has ended: right away by the runtime that ended
  it (``run_ended``), else by whoever polls it (its owner died). POSTs are retried with
  backoff on 5xx/429/timeouts; every attempt carries the run id as ``Idempotency-Key``.

``run_ended`` also deletes a stateless run's thread (``on_completion="delete"``) while
the run's lease is still held.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from mesh_core.adapters.nats.eventlog import RunEventLog
from mesh_core.adapters.redis.records import SCHEDULED, TERMINAL_STATUSES, RecordStore, RunRecord
from mesh_core.adapters.redis.schedule import Job, Schedule
from mesh_core.errors import FailedPreconditionError, MeshError, NotFoundError, UnavailableError
from mesh_core.jsonvalue import from_value
from mesh_core.retry import Backoff
from mesh_core.security._codec import SealedDataError
from mesh_core.webhooks import ATTEMPT_HEADER, IDEMPOTENCY_HEADER, check_webhook
from runtime_svc._convert import interrupts_from_pb, request_from_bytes
from runtime_svc.outputs import read_output
from runtime_svc.runs import RunHandle
from runtime_svc.threads import delete_thread_data

__all__ = ["Scheduler", "run_json"]

log = logging.getLogger(__name__)

DEFAULT_VISIBILITY = 30.0
WEBHOOK_TIMEOUT = 5.0
WEBHOOK_MAX_ATTEMPTS = 6
#: how often a webhook whose run has not ended is looked at again: the runtime that ends
#: the run makes it due at once, so this only covers one that died right after the end
WEBHOOK_POLL = 5.0
#: how long a webhook job may wait for its run to be recorded (the gateway arms the
#: webhook before the runtime admits the run; a run never admitted leaves it behind)
MISSING_RUN_GRACE = 120.0


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, tz=datetime.UTC).isoformat()


def run_json(rec: RunRecord, values: Any = None) -> dict[str, Any]:
    """A webhook's body: the run as the API shows it, and its output."""
    return {
        "run_id": rec.run_id,
        "thread_id": rec.thread_id,
        "assistant_id": rec.assistant_id,
        "status": rec.status,
        "metadata": rec.metadata,
        "multitask_strategy": rec.multitask_strategy,
        "created_at": _iso(rec.created_at),
        "updated_at": _iso(rec.updated_at),
        "error": rec.error,
        "attempts": rec.attempts,
        "values": values,
    }


class Scheduler:
    def __init__(
        self,
        manager: Any,
        records: RecordStore,
        delayed: Schedule,
        webhooks: Schedule,
        eventlog: RunEventLog | None,
        expiries: Schedule | None = None,
        *,
        allow_hosts: Iterable[str] = (),
        interval: float = 0.5,
        visibility: float = DEFAULT_VISIBILITY,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.manager = manager
        self.records = records
        self.delayed = delayed
        self.webhooks = webhooks
        self.eventlog = eventlog
        self.expiries = expiries
        self.allow_hosts = tuple(allow_hosts)
        self.interval = interval
        self.visibility = visibility
        self._active = active
        self._task: asyncio.Task[None] | None = None
        # a POST ends well before its claim runs out (else another runtime would send too)
        timeout = min(WEBHOOK_TIMEOUT, visibility / 3)
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._backoff = Backoff(initial=0.5, maximum=10.0)
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not self._http.is_closed:
            await self._http.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # keep scheduling; the next tick retries
                log.warning("scheduler tick failed: %s", type(exc).__name__)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    async def tick(self) -> None:
        if getattr(self.manager, "draining", False) or not self._active():
            return
        for job in await self.delayed.claim(visibility=self.visibility):
            try:
                await self._fire(job)
            except SealedDataError as exc:  # its record does not open: the others go on
                log.warning("delayed run %s not started: %s", job.id, exc.message)
        jobs = await self.webhooks.claim(visibility=self.visibility)
        if jobs:
            await asyncio.gather(*(self._deliver(job) for job in jobs))
        if self.expiries is not None:
            expired = await self.expiries.claim(visibility=self.visibility)
            if expired:
                await asyncio.gather(*(self._expire(job) for job in expired))

    # -- thread TTLs ---------------------------------------------------------------------
    async def _expire(self, job: Job) -> None:
        """Delete a thread that went its TTL without an update (as its owner); a thread
        updated since waits until its new expiry, a busy one until it is idle."""
        assert self.expiries is not None
        tenant, thread_id = str(job.payload["tenant_id"]), str(job.payload["thread_id"])
        thread = await self.records.get_thread(tenant, thread_id)
        if thread is None or not thread.ttl:
            await self.expiries.done(job.id)
            return
        due = thread.updated_at + thread.ttl
        if due > time.time() or thread.status == "busy":
            await self.expiries.later(job.id, max(due, time.time() + self.interval))
            return
        try:
            async with self.manager.holding(thread.scoped_id) as lease:
                fresh = await self.records.get_thread(tenant, thread_id)
                if fresh is None or fresh.status == "busy" or fresh.updated_at != thread.updated_at:
                    await self.expiries.later(job.id, time.time() + self.interval)
                    return
                await delete_thread_data(
                    self.manager.checkpointer, self.records, lease, tenant, thread_id
                )
        except MeshError as exc:
            log.info("thread %s not expired yet: %s", thread.scoped_id, exc.message)
            await self.expiries.later(job.id, time.time() + 1.0)
            return
        await self.expiries.done(job.id)
        log.info("thread %s expired after %ss without an update", thread.scoped_id, thread.ttl)

    # -- delayed runs ----------------------------------------------------------------------
    async def _fire(self, job: Job) -> None:
        rec = await self.records.get_run_scoped(str(job.payload.get("scoped", "")), job.id)
        if rec is None or rec.status != SCHEDULED:
            await self.delayed.done(job.id)  # cancelled, deleted, or admitted already
            return
        req = request_from_bytes(
            rec.tenant_id,
            rec.run_id,
            base64.b64decode(str(job.payload.get("spec", ""))),
            str(job.payload.get("graph_id", "")),
        )
        try:
            await self.manager.submit(req, wait_for_lease=False)
        except (FailedPreconditionError, NotFoundError) as exc:
            log.info("delayed run %s not started: %s", job.id, exc.message)
            await self.records.finish_run(
                rec, "error", error={"type": type(exc).__name__, "message": exc.message}
            )
        except (UnavailableError, MeshError) as exc:
            log.debug("delayed run %s: try again (%s)", job.id, exc)
            await self.delayed.later(job.id, time.time() + 1.0)
            return
        await self.delayed.done(job.id)
        log.info("delayed run %s of %s fired", job.id, rec.scoped_thread)

    # -- after a run ended here -------------------------------------------------------------
    async def run_ended(self, handle: RunHandle) -> None:
        req = handle.req
        if req.on_completion == "delete" and handle.lease is not None:
            await delete_thread_data(
                self.manager.checkpointer, self.records, handle.lease, req.tenant_id, req.thread_id
            )
        if req.webhook:
            job = await self.webhooks.get(req.run_id)
            if job is not None:
                body = run_json(handle.record, handle.output)
                await self.webhooks.later(req.run_id, time.time(), {**job.payload, "body": body})
                self._wake.set()

    # -- webhooks ------------------------------------------------------------------------
    async def _body(self, job: Job) -> dict[str, Any] | None:
        """The body to POST, or None while the run has not ended (then tried later)."""
        body = job.payload.get("body")
        if isinstance(body, dict):
            return body
        rec = await self.records.get_run_scoped(str(job.payload.get("scoped", "")), job.id)
        if rec is None:
            if time.time() - float(job.payload.get("created", 0)) > MISSING_RUN_GRACE:
                log.info("webhook of run %s dropped: the run was never recorded", job.id)
                await self.webhooks.done(job.id)
            else:
                await self.webhooks.later(job.id, time.time() + WEBHOOK_POLL)
            return None
        if rec.status not in TERMINAL_STATUSES:
            await self.webhooks.later(job.id, time.time() + WEBHOOK_POLL)
            return None
        values = None
        if self.eventlog is not None:
            last = await self.eventlog.last_event(rec.run_id)
            if last is not None:
                values = await self._output_of(rec, last[1])
        return run_json(rec, values)

    async def _output_of(self, rec: RunRecord, final: Any) -> Any:
        """The output a run's final event carries, or the one it names (a checkpoint)."""
        if final.HasField("data"):
            return from_value(final.data)
        ref = final.lifecycle.output
        if not ref.checkpoint_id:
            return None
        _, values = await read_output(
            self.manager.graphs.get_graph(ref.graph_id),
            self.manager.checkpointer,
            rec.scoped_thread,
            ref.checkpoint_id,
            ref.checkpoint_ns,
            interrupts_from_pb(final.lifecycle.interrupts),
        )
        return values

    async def _deliver(self, job: Job) -> None:
        body = await self._body(job)
        if body is None:
            return
        url = str(job.payload.get("url", ""))
        try:
            check_webhook(url, self.allow_hosts)
        except MeshError as exc:
            log.warning("webhook of run %s dropped: %s", job.id, exc.message)
            await self.webhooks.done(job.id)
            return
        attempt = int(job.payload.get("attempts", 0)) + 1
        status, retry = await self._post(url, body, job.id, attempt)
        if not retry:
            if status >= 300:
                log.warning("webhook of run %s refused with HTTP %s", job.id, status)
            await self.webhooks.done(job.id)
            return
        if attempt >= WEBHOOK_MAX_ATTEMPTS:
            log.warning("webhook of run %s given up after %s attempts", job.id, attempt)
            await self.webhooks.done(job.id)
            return
        payload = {**job.payload, "body": body, "attempts": attempt}
        await self.webhooks.later(job.id, time.time() + self._backoff.delay(attempt), payload)

    async def _post(
        self, url: str, body: dict[str, Any], run_id: str, attempt: int
    ) -> tuple[int, bool]:
        """(HTTP status or 0, whether to try again)."""
        headers = {IDEMPOTENCY_HEADER: run_id, ATTEMPT_HEADER: str(attempt)}
        try:
            resp = await self._http.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            log.info("webhook of run %s: %s (attempt %s)", run_id, type(exc).__name__, attempt)
            return 0, True
        code = resp.status_code
        return code, code >= 500 or code in (408, 429)

"""Thread and run records in Redis: what the gateway lists and the sweeper adopts.

A run is recorded here before its client is told it exists (invariant 3). Threads are
scoped by tenant: the id every backend sees is ``<tenant>:<thread_id>``, so a tenant
can never reach another tenant's thread, not even by guessing its id.

With a payload codec (``--payload-keys``) the fields that carry user data (a run's
``spec``: input, command, config, ...; ``metadata``; ``error``; ``interrupts``; a
thread's ``metadata``) are stored sealed, each bound to its record and field; ids,
statuses, owners and times stay plain (the admission and turn scripts read them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, TypeVar

import redis.asyncio as aioredis

from mesh_core.adapters.redis import _records_lua as lua
from mesh_core.adapters.redis.client import call_redis
from mesh_core.adapters.redis.keys import RedisKeys
from mesh_core.errors import AlreadyExistsError, QuotaExceededError
from mesh_core.limits import TenantLimits
from mesh_core.retry import Retry
from mesh_core.security._codec import PayloadCodec, open_payload, seal_payload

T = TypeVar("T")
#: Called before each retry; raises to stop waiting (an owner passes its lease check).
Abort = Callable[[], None] | None

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "Admission",
    "FinishOutcome",
    "RecordStore",
    "RunRecord",
    "ThreadRecord",
    "scoped_thread_id",
]

ACTIVE_STATUSES = frozenset({"pending", "running"})
#: a delayed run not yet due (shown to clients as pending)
SCHEDULED = "scheduled"
TERMINAL_STATUSES = frozenset({"success", "error", "interrupted", "cancelled", "timeout"})


def scoped_thread_id(tenant_id: str, thread_id: str) -> str:
    return f"{tenant_id}:{thread_id}"


@dataclass
class ThreadRecord:
    tenant_id: str
    thread_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    status: str = "idle"
    created_at: float = 0.0
    updated_at: float = 0.0
    active_run: str = ""
    assistant_id: str = ""
    #: the graph its checkpoints belong to (set by its first run)
    graph_id: str = ""
    #: seconds after its last update when the thread is deleted (0: never)
    ttl: float = 0.0

    @property
    def scoped_id(self) -> str:
        return scoped_thread_id(self.tenant_id, self.thread_id)


@dataclass
class RunRecord:
    run_id: str
    tenant_id: str
    thread_id: str
    assistant_id: str
    status: str = "pending"
    spec: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    multitask_strategy: str = "reject"
    created_at: float = 0.0
    updated_at: float = 0.0
    error: dict[str, Any] | None = None
    interrupts: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    owner: str = ""
    # "interrupt" / "rollback" once somebody asked the run to stop.
    cancel_action: str = ""

    @property
    def scoped_thread(self) -> str:
        return scoped_thread_id(self.tenant_id, self.thread_id)


@dataclass(frozen=True)
class Admission:
    """What admitting a run did: ``outcome`` is running, queued, rejected, no_thread or
    existing (admitted by an earlier try; ``active_run`` is then its status)."""

    outcome: str
    active_run: str = ""
    superseded: tuple[str, ...] = ()


def _quota_error(tenant: str, limit: str, limits: TenantLimits, wait: str) -> QuotaExceededError:
    if limit == "concurrent_runs":
        return QuotaExceededError(
            f"the tenant has {limits.concurrent_runs} runs accepted and not finished, its "
            "limit; retry when one ends",
            tenant=tenant,
            limit=limit,
            value=limits.concurrent_runs,
            retry_after=1.0,
        )
    return QuotaExceededError(
        f"the tenant creates runs faster than its limit of {limits.runs_per_second:g} per "
        f"second (bursts of {limits.run_burst})",
        tenant=tenant,
        limit=limit,
        value=int(limits.runs_per_second),
        retry_after=max(0.001, float(wait or 0)),
    )


class FinishOutcome(Enum):
    ENDED = 1
    NOT_OWNER = 0
    ALREADY_ENDED = -1


_JSON_FIELDS = {"metadata", "spec", "error", "interrupts"}
_INT_FIELDS = {"attempts"}
_FLOAT_FIELDS = {"created_at", "updated_at", "ttl"}


def _place(rec: Mapping[str, Any]) -> str:
    """Where a record's sealed fields belong: its run, or its (scoped) thread."""
    if rec.get("run_id"):
        return f"run-record\0{rec['run_id']}"
    return f"thread-record\0{rec.get('tenant_id', '')}:{rec.get('thread_id', '')}"


def _value(codec: PayloadCodec | None, place: str, k: str, v: Any) -> str | bytes:
    if k not in _JSON_FIELDS:
        return str(v)
    if codec is None:
        return json.dumps(v)
    return seal_payload(codec, json.dumps(v).encode(), f"{place}\0{k}")


def _encode(obj: Any, codec: PayloadCodec | None) -> dict[str, str | bytes]:
    fields = asdict(obj)
    place = _place(fields)
    return {k: _value(codec, place, k, v) for k, v in fields.items()}


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


_RUN_FIELDS = {f for f in RunRecord.__dataclass_fields__}
_THREAD_FIELDS = {f for f in ThreadRecord.__dataclass_fields__}


def _decode(raw: Any, known: set[str], codec: PayloadCodec | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sealed: dict[str, bytes] = {}
    for k, v in raw.items():
        key = k.decode() if isinstance(k, bytes) else k
        if key not in known:
            continue  # written by a newer version
        if key in _JSON_FIELDS:
            sealed[key] = v if isinstance(v, bytes) else str(v).encode()
            continue
        val = v.decode() if isinstance(v, bytes) else v
        if key in _INT_FIELDS:
            out[key] = int(val)
        elif key in _FLOAT_FIELDS:
            out[key] = float(val)
        else:
            out[key] = val
    place = _place(out)
    for key, data in sealed.items():
        what = f"the {key} of a {'run' if out.get('run_id') else 'thread'} record"
        out[key] = json.loads(open_payload(codec, data, what, f"{place}\0{key}"))
    return out


class RecordStore:
    """Thread and run records. Every call retries through Redis outages up to
    ``retry``'s budget (then ``BackendUnavailableError``); every write is idempotent or
    guarded by status, so a retried call whose first reply was lost does no harm."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        *,
        retry: Retry | None = None,
        codec: PayloadCodec | None = None,
    ) -> None:
        self.redis = redis
        self.codec = codec
        self.keys = RedisKeys(prefix)
        self.retry = retry or Retry()
        self._read_hash = redis.register_script(lua.READ_HASH)
        self._create_thread = redis.register_script(lua.CREATE_THREAD)
        self._admit_run = redis.register_script(lua.ADMIT_RUN)
        self._claim_turn = redis.register_script(lua.CLAIM_TURN)
        self._finish_run = redis.register_script(lua.FINISH_RUN)
        self._request_cancel = redis.register_script(lua.REQUEST_CANCEL)
        self._delete_run = redis.register_script(lua.DELETE_RUN)
        self._delete_thread = redis.register_script(lua.DELETE_THREAD)
        self._schedule_run = redis.register_script(lua.SCHEDULE_RUN)

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]], abort: Abort = None) -> T:
        return await call_redis(self.retry, what, fn, abort=abort)

    async def _record(self, what: str, key: str, abort: Abort = None) -> dict[Any, Any]:
        """A record's hash ({} if absent)."""
        flat = await self._call(what, lambda: self._read_hash(keys=[key]), abort)
        it = iter(flat or ())
        return dict(zip(it, it, strict=True))

    # -- threads ---------------------------------------------------------------------
    async def create_thread(
        self,
        tenant_id: str,
        thread_id: str,
        metadata: dict[str, Any] | None = None,
        *,
        if_exists_return: bool = False,
        assistant_id: str = "",
        graph_id: str = "",
        ttl: float = 0.0,
    ) -> ThreadRecord:
        now = time.time()
        rec = ThreadRecord(
            tenant_id,
            thread_id,
            dict(metadata or {}),
            "idle",
            now,
            now,
            assistant_id=assistant_id,
            graph_id=graph_id,
            ttl=ttl,
        )
        flat = [x for kv in _encode(rec, self.codec).items() for x in kv]
        created = await self._call(
            "create thread",
            lambda: self._create_thread(
                keys=[self.keys.thread_record(rec.scoped_id), self.keys.threads_index(tenant_id)],
                args=[now, thread_id, *flat],
            ),
        )
        if not created:
            existing = await self.get_thread(tenant_id, thread_id)
            if existing is not None and existing.created_at == rec.created_at:
                return existing  # our own earlier try, whose reply was lost
            if not if_exists_return:
                raise AlreadyExistsError(f"thread {thread_id!r} already exists")
            if existing is None:  # deleted in between
                return await self.create_thread(
                    tenant_id, thread_id, metadata, graph_id=graph_id, ttl=ttl
                )
            return existing
        return rec

    async def get_thread(self, tenant_id: str, thread_id: str) -> ThreadRecord | None:
        key = self.keys.thread_record(scoped_thread_id(tenant_id, thread_id))
        raw = await self._record("read thread", key)
        if not raw:
            return None
        return ThreadRecord(**_decode(raw, _THREAD_FIELDS, self.codec))

    async def update_thread(self, tenant_id: str, thread_id: str, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        place = _place({"tenant_id": tenant_id, "thread_id": thread_id})
        enc: dict[Any, Any] = {k: _value(self.codec, place, k, v) for k, v in fields.items()}
        key = self.keys.thread_record(scoped_thread_id(tenant_id, thread_id))
        index = self.keys.threads_index(tenant_id)

        async def update() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.exists(key)
                pipe.hset(key, mapping=enc)
                pipe.zadd(index, {thread_id: fields["updated_at"]})
                existed, *_ = await pipe.execute()
            if not existed:  # never resurrect a deleted thread as a half record
                await self.redis.delete(key)
                await self.redis.zrem(index, thread_id)

        await self._call("update thread", update)

    async def delete_thread(self, tenant_id: str, thread_id: str) -> bool:
        """Delete the thread's record and its runs' (one script: one round trip)."""
        scoped = scoped_thread_id(tenant_id, thread_id)
        keys = [
            self.keys.thread_record(scoped),
            self.keys.threads_index(tenant_id),
            self.keys.thread_runs(scoped),
            self.keys.thread_queue(scoped),
            self.keys.active_runs(),
            self.keys.tenant_active_runs(tenant_id),
        ]
        args = [thread_id, self.keys.run_record(scoped, ""), self.keys.run_index("")]
        deleted = await self._call(
            "delete thread", lambda: self._delete_thread(keys=keys, args=args)
        )
        return bool(deleted)

    async def search_threads(
        self,
        tenant_id: str,
        metadata: dict[str, Any] | None = None,
        status: str = "",
        limit: int = 10,
        offset: int = 0,
    ) -> list[ThreadRecord]:
        index = self.keys.threads_index(tenant_id)
        ids = await self._call("search threads", lambda: self.redis.zrevrange(index, 0, -1))
        out: list[ThreadRecord] = []
        skipped = 0
        for raw_id in ids:
            rec = await self.get_thread(tenant_id, _text(raw_id))
            if rec is None:
                continue
            if metadata and any(rec.metadata.get(k) != v for k, v in metadata.items()):
                continue
            if status and rec.status != status:
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(rec)
            if len(out) >= limit:
                break
        return out

    # -- runs: admission, turns, ending -----------------------------------------------
    def _run_keys(self, run: RunRecord) -> tuple[str, str, str, str, str]:
        """(run, thread, active_runs, queue, tenant's active runs) keys of a run."""
        scoped = run.scoped_thread
        return (
            self.keys.run_record(scoped, run.run_id),
            self.keys.thread_record(scoped),
            self.keys.active_runs(),
            self.keys.thread_queue(scoped),
            self.keys.tenant_active_runs(run.tenant_id),
        )

    async def admit_run(
        self,
        run: RunRecord,
        strategy: str,
        *,
        resumes_interrupt: bool = False,
        limits: TenantLimits | None = None,
        abort: Abort = None,
    ) -> Admission:
        """Record ``run`` and give it the thread, queue it, or reject it, in one step.

        ``strategy``: reject, enqueue, interrupt or rollback (see ``_records_lua``).
        ``resumes_interrupt``: the run answers an interrupt, so the thread must be
        interrupted (or the run queued behind the run that will interrupt it).
        ``limits``: the tenant's; a run past its concurrent runs or creation rate is
        not recorded (:class:`QuotaExceededError`).
        """
        now = time.time()
        run.created_at = run.created_at or now
        run.updated_at = now
        scoped = run.scoped_thread
        flat = [x for kv in _encode(run, self.codec).items() for x in kv]
        reply = await self._call(
            "admit run",
            lambda: self._admit_run(
                keys=[
                    self.keys.thread_record(scoped),
                    self.keys.run_record(scoped, run.run_id),
                    self.keys.thread_runs(scoped),
                    self.keys.active_runs(),
                    self.keys.run_index(run.run_id),
                    self.keys.thread_queue(scoped),
                    self.keys.tenant_active_runs(run.tenant_id),
                    self.keys.tenant_run_bucket(run.tenant_id),
                ],
                args=[
                    run.run_id,
                    now,
                    scoped,
                    strategy,
                    "1" if resumes_interrupt else "0",
                    limits.concurrent_runs if limits else 0,
                    limits.runs_per_second if limits else 0,
                    limits.run_burst if limits else 0,
                    self.keys.prefix,
                    *flat,
                ],
            ),
            abort,
        )
        outcome, active, superseded = (_text(x) for x in reply)
        if outcome == "quota":
            assert limits is not None
            raise _quota_error(run.tenant_id, active, limits, superseded)
        if outcome == "running":
            run.status = "running"
        elif outcome == "queued":
            run.status = "pending"
        elif outcome == "existing":
            run.status = active
        return Admission(outcome, active, tuple(x for x in superseded.split(",") if x))

    async def schedule_run(
        self, run: RunRecord, due: float, schedule_key: str, data_key: str, payload: str | bytes
    ) -> int:
        """Record a delayed run as ``scheduled`` and put it on a schedule (``due``: epoch
        seconds) in one step: 1, 0 (no such thread) or -1 (the run exists)."""
        now = time.time()
        run.created_at = run.created_at or now
        run.updated_at = now
        run.status = SCHEDULED
        scoped = run.scoped_thread
        flat = [x for kv in _encode(run, self.codec).items() for x in kv]
        return int(
            await self._call(
                "schedule run",
                lambda: self._schedule_run(
                    keys=[
                        self.keys.thread_record(scoped),
                        self.keys.run_record(scoped, run.run_id),
                        self.keys.thread_runs(scoped),
                        self.keys.run_index(run.run_id),
                        schedule_key,
                        data_key,
                    ],
                    args=[run.run_id, now, scoped, due, payload, *flat],
                ),
            )
        )

    async def claim_turn(
        self, run: RunRecord, *, owner: str, add_attempt: bool = False, abort: Abort = None
    ) -> tuple[str, str]:
        """Ask for the thread: ("running", id) when the run has it now (recorded as
        running, driven by ``owner``), ("waiting", other) while another run has it or is
        ahead, else (its terminal status or "missing", "")."""
        run_key, thread_key, _, queue_key, _ = self._run_keys(run)
        reply = await self._call(
            "claim thread",
            lambda: self._claim_turn(
                keys=[thread_key, run_key, queue_key],
                args=[run.run_id, time.time(), owner, 1 if add_attempt else 0],
            ),
            abort,
        )
        state, other = (_text(x) for x in reply)
        if state == "running":
            run.status = "running"
            run.owner = owner
            run.attempts += 1 if add_attempt else 0
        return state, other

    async def finish_run(
        self, run: RunRecord, status: str, *, owner: str = "", abort: Abort = None, **fields: Any
    ) -> FinishOutcome:
        """Mark a run ended and free its thread (thread status follows the run's), atomically.

        With ``owner``, nothing is written unless the run record still names that owner:
        a runtime that lost the run to another (a paused "zombie") cannot end it. A run
        that has ended already is never ended again (ALREADY_ENDED).
        """
        now = time.time()
        fields["status"] = status
        fields["updated_at"] = now
        place = _place({"run_id": run.run_id})
        flat = [x for k, v in fields.items() for x in (k, _value(self.codec, place, k, v))]
        thread_status = {"interrupted": "interrupted", "error": "error", "timeout": "error"}.get(
            status, "idle"
        )
        done = await self._call(
            "finish run",
            lambda: self._finish_run(
                keys=list(self._run_keys(run)), args=[run.run_id, owner, thread_status, now, *flat]
            ),
            abort,
        )
        outcome = FinishOutcome(int(done))
        if outcome is FinishOutcome.ENDED:
            for k, v in fields.items():
                setattr(run, k, v)
        return outcome

    async def request_cancel(self, run: RunRecord, action: str = "interrupt") -> str:
        """Ask a run to stop: a pending run is cancelled at once, a running one is marked
        (its driver or whoever resumes it ends it). Returns its status afterwards."""
        status = await self._call(
            "cancel run",
            lambda: self._request_cancel(
                keys=list(self._run_keys(run)), args=[run.run_id, action, time.time()]
            ),
        )
        return _text(status)

    async def delete_run(self, run: RunRecord, *, owner: str = "", abort: Abort = None) -> bool:
        """Forget a run (rollback): its record and its place in the thread's indexes."""
        scoped = run.scoped_thread
        done = await self._call(
            "delete run",
            lambda: self._delete_run(
                keys=[
                    *self._run_keys(run)[:4],
                    self.keys.thread_runs(scoped),
                    self.keys.run_index(run.run_id),
                    self.keys.tenant_active_runs(run.tenant_id),
                ],
                args=[run.run_id, owner, time.time()],
            ),
            abort,
        )
        return bool(done)

    async def update_run(self, run: RunRecord, *, abort: Abort = None, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        for k, v in fields.items():
            setattr(run, k, v)
        place = _place({"run_id": run.run_id})
        enc: dict[Any, Any] = {k: _value(self.codec, place, k, v) for k, v in fields.items()}
        key = self.keys.run_record(run.scoped_thread, run.run_id)
        await self._call("update run", lambda: self.redis.hset(key, mapping=enc), abort)

    # -- runs: reading ---------------------------------------------------------------
    async def get_run(
        self, tenant_id: str, thread_id: str, run_id: str, *, abort: Abort = None
    ) -> RunRecord | None:
        return await self.get_run_scoped(
            scoped_thread_id(tenant_id, thread_id), run_id, abort=abort
        )

    async def get_run_scoped(
        self, scoped_thread: str, run_id: str, *, abort: Abort = None
    ) -> RunRecord | None:
        key = self.keys.run_record(scoped_thread, run_id)
        raw = await self._record("read run", key, abort)
        return RunRecord(**_decode(raw, _RUN_FIELDS, self.codec)) if raw else None

    async def find_run(self, tenant_id: str, run_id: str) -> RunRecord | None:
        key = self.keys.run_index(run_id)
        scoped = await self._call("find run", lambda: self.redis.get(key))
        if scoped is None:
            return None
        tenant, _, thread_id = _text(scoped).partition(":")
        if tenant != tenant_id:
            return None
        return await self.get_run(tenant, thread_id, run_id)

    async def list_runs(
        self, tenant_id: str, thread_id: str, status: str = "", limit: int = 10, offset: int = 0
    ) -> list[RunRecord]:
        scoped = scoped_thread_id(tenant_id, thread_id)
        key = self.keys.thread_runs(scoped)
        ids = await self._call("list runs", lambda: self.redis.zrevrange(key, 0, -1))
        out: list[RunRecord] = []
        skipped = 0
        for rid in ids:
            rec = await self.get_run(tenant_id, thread_id, _text(rid))
            if rec is None or (status and rec.status != status):
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(rec)
            if len(out) >= limit:
                break
        return out

    async def active_runs(self) -> list[tuple[str, str]]:
        """(run_id, scoped thread id) of every run recorded as pending or running."""
        key = self.keys.active_runs()
        raw = await self._call("list active runs", lambda: self.redis.hgetall(key))
        return [(_text(k), _text(v)) for k, v in raw.items()]

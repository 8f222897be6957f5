"""Thread and run records in Redis: what the gateway lists and the sweeper adopts.

A run is recorded here before its client is told it exists (invariant 3). Threads are
scoped by tenant: the id every backend sees is ``<tenant>:<thread_id>``, so a tenant
can never reach another tenant's thread, not even by guessing its id.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio as aioredis

from mesh_core.adapters.redis.keys import RedisKeys
from mesh_core.errors import AlreadyExistsError

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "RecordStore",
    "RunRecord",
    "ThreadRecord",
    "scoped_thread_id",
]

ACTIVE_STATUSES = frozenset({"pending", "running"})
TERMINAL_STATUSES = frozenset({"success", "error", "interrupted", "cancelled"})


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

    @property
    def scoped_thread(self) -> str:
        return scoped_thread_id(self.tenant_id, self.thread_id)


_JSON_FIELDS = {"metadata", "spec", "error", "interrupts"}
_INT_FIELDS = {"attempts"}
_FLOAT_FIELDS = {"created_at", "updated_at"}


def _encode(obj: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in asdict(obj).items():
        out[k] = json.dumps(v) if k in _JSON_FIELDS else str(v)
    return out


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _decode(raw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in raw.items():
        key = k.decode() if isinstance(k, bytes) else k
        val = v.decode() if isinstance(v, bytes) else v
        if key in _JSON_FIELDS:
            out[key] = json.loads(val)
        elif key in _INT_FIELDS:
            out[key] = int(val)
        elif key in _FLOAT_FIELDS:
            out[key] = float(val)
        else:
            out[key] = val
    return out


# Create a thread record if absent; returns 1 if created, 0 if it existed.
_CREATE_THREAD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# Record a run and try to make it the thread's active run.
# KEYS: thread, run, thread_runs, active_runs, run_index
# ARGV: run_id, now, scoped_thread, then run hash fields
# Returns the id of the run that is active on the thread afterwards.
_BEGIN_RUN = """
local active = redis.call('HGET', KEYS[1], 'active_run')
if active and active ~= '' and active ~= ARGV[1] then
  local prefix = string.sub(KEYS[2], 1, string.len(KEYS[2]) - string.len(ARGV[1]))
  local st = redis.call('HGET', prefix .. active, 'status')
  if st ~= 'pending' and st ~= 'running' then active = nil end
else
  active = nil
end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('SET', KEYS[5], ARGV[3])
if active then return active end
redis.call('HSET', KEYS[1], 'active_run', ARGV[1], 'status', 'busy', 'updated_at', ARGV[2])
redis.call('HSET', KEYS[2], 'status', 'running')
return ARGV[1]
"""

# Make a queued run active if the thread's active run is not (still) running.
_CLAIM_THREAD = """
local active = redis.call('HGET', KEYS[1], 'active_run')
if active and active ~= '' and active ~= ARGV[1] then
  local prefix = string.sub(KEYS[2], 1, string.len(KEYS[2]) - string.len(ARGV[1]))
  local st = redis.call('HGET', prefix .. active, 'status')
  if st == 'pending' or st == 'running' then return active end
end
redis.call('HSET', KEYS[1], 'active_run', ARGV[1], 'status', 'busy', 'updated_at', ARGV[2])
return ARGV[1]
"""


# End a run: KEYS run, thread, active_runs; ARGV run_id, owner ('' = any), thread status,
# now, then the run's fields to set. Returns 0 (and writes nothing) if owner mismatches.
_FINISH_RUN = """
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[2], 'active_run') == ARGV[1] then
  redis.call('HSET', KEYS[2], 'active_run', '', 'status', ARGV[3], 'updated_at', ARGV[4])
end
return 1
"""


class RecordStore:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.keys = RedisKeys(prefix)
        self._create_thread = redis.register_script(_CREATE_THREAD)
        self._begin_run = redis.register_script(_BEGIN_RUN)
        self._claim_thread = redis.register_script(_CLAIM_THREAD)
        self._finish_run = redis.register_script(_FINISH_RUN)

    # -- threads ---------------------------------------------------------------------
    async def create_thread(
        self,
        tenant_id: str,
        thread_id: str,
        metadata: dict[str, Any] | None = None,
        *,
        if_exists_return: bool = False,
        assistant_id: str = "",
    ) -> ThreadRecord:
        now = time.time()
        rec = ThreadRecord(
            tenant_id, thread_id, dict(metadata or {}), "idle", now, now, assistant_id=assistant_id
        )
        flat = [x for kv in _encode(rec).items() for x in kv]
        created = await self._create_thread(
            keys=[self.keys.thread_record(rec.scoped_id), self.keys.threads_index(tenant_id)],
            args=[now, thread_id, *flat],
        )
        if not created:
            if not if_exists_return:
                raise AlreadyExistsError(f"thread {thread_id!r} already exists")
            existing = await self.get_thread(tenant_id, thread_id)
            if existing is None:  # deleted in between
                return await self.create_thread(tenant_id, thread_id, metadata)
            return existing
        return rec

    async def get_thread(self, tenant_id: str, thread_id: str) -> ThreadRecord | None:
        raw = await self.redis.hgetall(
            self.keys.thread_record(scoped_thread_id(tenant_id, thread_id))
        )
        if not raw:
            return None
        return ThreadRecord(**_decode(raw))

    async def update_thread(self, tenant_id: str, thread_id: str, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        enc: dict[Any, Any] = {
            k: json.dumps(v) if k in _JSON_FIELDS else str(v) for k, v in fields.items()
        }
        key = self.keys.thread_record(scoped_thread_id(tenant_id, thread_id))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.exists(key)
            pipe.hset(key, mapping=enc)
            pipe.zadd(self.keys.threads_index(tenant_id), {thread_id: fields["updated_at"]})
            existed, *_ = await pipe.execute()
        if not existed:  # never resurrect a deleted thread as a half record
            await self.redis.delete(key)
            await self.redis.zrem(self.keys.threads_index(tenant_id), thread_id)

    async def delete_thread(self, tenant_id: str, thread_id: str) -> bool:
        scoped = scoped_thread_id(tenant_id, thread_id)
        run_ids = await self.redis.zrange(self.keys.thread_runs(scoped), 0, -1)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.thread_record(scoped))
            pipe.zrem(self.keys.threads_index(tenant_id), thread_id)
            pipe.delete(self.keys.thread_runs(scoped), self.keys.thread_queue(scoped))
            for rid in run_ids:
                r = _text(rid)
                pipe.delete(self.keys.run_record(scoped, r), self.keys.run_index(r))
                pipe.hdel(self.keys.active_runs(), r)
            deleted, *_ = await pipe.execute()
        return bool(deleted)

    async def search_threads(
        self,
        tenant_id: str,
        metadata: dict[str, Any] | None = None,
        status: str = "",
        limit: int = 10,
        offset: int = 0,
    ) -> list[ThreadRecord]:
        ids = await self.redis.zrevrange(self.keys.threads_index(tenant_id), 0, -1)
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

    # -- runs ------------------------------------------------------------------------
    async def begin_run(self, run: RunRecord) -> str:
        """Record ``run`` and make it the thread's active run if the thread is free.

        Returns the id of the thread's active run afterwards: ``run.run_id`` when it
        got the thread (the run is then recorded as "running"), otherwise the run that
        holds it (the new run stays "pending").
        """
        now = time.time()
        run.created_at = run.created_at or now
        run.updated_at = now
        scoped = run.scoped_thread
        flat = [x for kv in _encode(run).items() for x in kv]
        active = await self._begin_run(
            keys=[
                self.keys.thread_record(scoped),
                self.keys.run_record(scoped, run.run_id),
                self.keys.thread_runs(scoped),
                self.keys.active_runs(),
                self.keys.run_index(run.run_id),
            ],
            args=[run.run_id, now, scoped, *flat],
        )
        if _text(active) == run.run_id:
            run.status = "running"
        return _text(active)

    async def claim_thread(self, run: RunRecord) -> str:
        """Try again to make a waiting run the thread's active run; returns the active run id."""
        scoped = run.scoped_thread
        active = await self._claim_thread(
            keys=[self.keys.thread_record(scoped), self.keys.run_record(scoped, run.run_id)],
            args=[run.run_id, time.time()],
        )
        return _text(active)

    async def get_run(self, tenant_id: str, thread_id: str, run_id: str) -> RunRecord | None:
        raw = await self.redis.hgetall(
            self.keys.run_record(scoped_thread_id(tenant_id, thread_id), run_id)
        )
        return RunRecord(**_decode(raw)) if raw else None

    async def find_run(self, tenant_id: str, run_id: str) -> RunRecord | None:
        scoped = await self.redis.get(self.keys.run_index(run_id))
        if scoped is None:
            return None
        tenant, _, thread_id = _text(scoped).partition(":")
        if tenant != tenant_id:
            return None
        return await self.get_run(tenant, thread_id, run_id)

    async def update_run(self, run: RunRecord, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        for k, v in fields.items():
            setattr(run, k, v)
        enc: dict[Any, Any] = {
            k: json.dumps(v) if k in _JSON_FIELDS else str(v) for k, v in fields.items()
        }
        scoped = run.scoped_thread
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.run_record(scoped, run.run_id), mapping=enc)
            if fields.get("status") in TERMINAL_STATUSES:
                pipe.hdel(self.keys.active_runs(), run.run_id)
            await pipe.execute()

    async def finish_run(
        self, run: RunRecord, status: str, *, owner: str = "", **fields: Any
    ) -> bool:
        """Mark a run ended and free its thread (thread status follows the run's), atomically.

        With ``owner``, nothing is written unless the run record still names that owner:
        a runtime that lost the run to another (a paused "zombie") cannot end it.
        Returns whether the run was ended.
        """
        now = time.time()
        fields["status"] = status
        fields["updated_at"] = now
        flat = [
            x
            for k, v in fields.items()
            for x in (k, json.dumps(v) if k in _JSON_FIELDS else str(v))
        ]
        thread_status = {"interrupted": "interrupted", "error": "error"}.get(status, "idle")
        done = await self._finish_run(
            keys=[
                self.keys.run_record(run.scoped_thread, run.run_id),
                self.keys.thread_record(run.scoped_thread),
                self.keys.active_runs(),
            ],
            args=[run.run_id, owner, thread_status, now, *flat],
        )
        if done:
            for k, v in fields.items():
                setattr(run, k, v)
        return bool(done)

    async def list_runs(
        self, tenant_id: str, thread_id: str, status: str = "", limit: int = 10, offset: int = 0
    ) -> list[RunRecord]:
        scoped = scoped_thread_id(tenant_id, thread_id)
        ids = await self.redis.zrevrange(self.keys.thread_runs(scoped), 0, -1)
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
        raw = await self.redis.hgetall(self.keys.active_runs())
        return [(_text(k), _text(v)) for k, v in raw.items()]

    async def get_run_scoped(self, scoped_thread: str, run_id: str) -> RunRecord | None:
        raw = await self.redis.hgetall(self.keys.run_record(scoped_thread, run_id))
        return RunRecord(**_decode(raw)) if raw else None

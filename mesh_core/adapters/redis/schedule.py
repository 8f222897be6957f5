"""Jobs due at a time, held in Redis and claimed exactly once per tick.

Delayed runs (``after_seconds``), webhook deliveries and thread expiries are jobs of this kind: a sorted
set ``job id -> due time`` and a hash ``job id -> payload``. Every runtime's scheduler
polls; :meth:`Schedule.claim` is one script that takes the due jobs and pushes their
due time ``visibility`` seconds ahead, so no other claimer sees them meanwhile. The
claimer finishes a job (``done``) or sets its next try (``later``); a claimer that dies
(SIGKILL) simply stops, and the job is due again once its visibility ran out. So a job
is never lost, and runs twice only if its claimer died (or stalled past the visibility)
mid-way: the job itself is idempotent (a delayed run is admitted once, by its record's
status; a webhook carries an idempotency key).

With a payload codec (``--payload-keys``) payloads (a delayed run's request, a webhook's
body: user data) are stored sealed, bound to their schedule and job id.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis

from mesh_core.adapters.redis.client import call_redis
from mesh_core.adapters.redis.keys import RedisKeys
from mesh_core.logs import RateLimitedLog
from mesh_core.retry import Retry
from mesh_core.security._codec import (
    PayloadCodec,
    SealedDataError,
    open_payload,
    seal_payload,
)

__all__ = ["DELAYED_RUNS", "THREAD_TTL", "WEBHOOKS", "Job", "Schedule"]

T = TypeVar("T")

log = logging.getLogger(__name__)
_unreadable = RateLimitedLog(log, interval=60.0, burst=2)

DELAYED_RUNS = "delayed-runs"
WEBHOOKS = "webhooks"
THREAD_TTL = "thread-ttl"

# KEYS: 1 zset, 2 data. ARGV: 1 now, 2 visible again at, 3 max jobs.
# Returns {id1, payload1, id2, payload2, ...} of the jobs claimed.
_CLAIM = r"""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
end
return out
"""


@dataclass(frozen=True)
class Job:
    id: str
    payload: dict[str, Any]


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class Schedule:
    """One kind of timed job (see the module docstring)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        kind: str,
        *,
        retry: Retry | None = None,
        codec: PayloadCodec | None = None,
    ) -> None:
        self.redis = redis
        self.kind = kind
        self.codec = codec
        keys = RedisKeys(prefix)
        self.key = keys.schedule(kind)
        self.data_key = keys.schedule_data(kind)
        self.retry = retry or Retry()
        self._claim = redis.register_script(_CLAIM)

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await call_redis(self.retry, what, fn)

    def pack(self, job_id: str, payload: dict[str, Any]) -> str | bytes:
        """The stored form of a job's payload (sealed with a codec)."""
        if self.codec is None:
            return json.dumps(payload)
        return seal_payload(self.codec, json.dumps(payload).encode(), self._place(job_id))

    def _unpack(self, job_id: str, raw: Any) -> dict[str, Any]:
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        if not data:
            return {}
        what = f"the {self.kind} job {job_id!r}"
        loaded: dict[str, Any] = json.loads(
            open_payload(self.codec, data, what, self._place(job_id))
        )
        return loaded

    def _place(self, job_id: str) -> str:
        return f"schedule\0{self.kind}\0{job_id}"

    async def add(self, job_id: str, due: float, payload: dict[str, Any]) -> None:
        data = self.pack(job_id, payload)

        async def add() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.data_key, job_id, data)
                pipe.zadd(self.key, {job_id: due})
                await pipe.execute()

        await self._call("schedule job", add)

    async def claim(self, *, visibility: float, limit: int = 16) -> list[Job]:
        """Take the due jobs: nobody else sees them for ``visibility`` seconds."""
        now = time.time()
        raw = await self._call(
            "claim jobs",
            lambda: self._claim(
                keys=[self.key, self.data_key], args=[now, now + visibility, limit]
            ),
        )
        jobs: list[Job] = []
        for i in range(0, len(raw), 2):
            job_id = _text(raw[i])
            try:
                jobs.append(Job(job_id, self._unpack(job_id, raw[i + 1])))
            except SealedDataError as exc:  # tried again after the visibility (keys fixed?)
                _unreadable.warning(self.kind, "%s", exc.message)
        return jobs

    async def later(self, job_id: str, due: float, payload: dict[str, Any] | None = None) -> None:
        """Try the job again at ``due`` (with a new payload, e.g. its attempt count)."""
        if payload is not None:
            await self.add(job_id, due, payload)
        else:
            await self._call("reschedule job", lambda: self.redis.zadd(self.key, {job_id: due}))

    async def done(self, job_id: str) -> None:
        async def done() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self.key, job_id)
                pipe.hdel(self.data_key, job_id)
                await pipe.execute()

        await self._call("finish job", done)

    async def get(self, job_id: str) -> Job | None:
        raw = await self._call("read job", lambda: self.redis.hget(self.data_key, job_id))
        return Job(job_id, self._unpack(job_id, raw)) if raw else None

    async def due_at(self, job_id: str) -> float | None:
        score = await self._call("read job", lambda: self.redis.zscore(self.key, job_id))
        return float(score) if score is not None else None

"""Assistants of a tenant in Redis: a graph with its own config, context and metadata.

One hash per assistant holds every version (``v<N>`` -> JSON), the number of its
latest (``latest``) and of its newest version (``max``, bumped atomically, so two
concurrent updates never make the same version). A per-tenant sorted set lists the
tenant's assistants by update time. Graphs' default assistants (id == graph id) are
not stored: the gateway makes them from the runtimes' graph list.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

import redis.asyncio as aioredis

from mesh_core.adapters.redis.client import call_redis
from mesh_core.adapters.redis.keys import RedisKeys
from mesh_core.errors import AlreadyExistsError, NotFoundError
from mesh_core.retry import Retry

__all__ = ["AssistantRecord", "AssistantStore"]

T = TypeVar("T")

# KEYS: 1 assistant hash, 2 tenant index. ARGV: 1 id, 2 now, 3 version JSON (version 1).
# Returns 1 if created, 0 if the assistant exists.
_CREATE = r"""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v1', ARGV[3], 'latest', 1, 'max', 1)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

# KEYS: 1 assistant hash, 2 tenant index. ARGV: 1 id, 2 now, 3 version JSON. Stores it
# as version max + 1 (the field name carries the number) and returns that number (0 if
# the assistant does not exist).
_ADD_VERSION = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'max', 1)
redis.call('HSET', KEYS[1], 'v' .. n, ARGV[3], 'latest', n)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return n
"""


@dataclass
class AssistantRecord:
    assistant_id: str
    graph_id: str
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    description: str = ""
    version: int = 1
    created_at: float = 0.0
    updated_at: float = 0.0


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _decode(raw: Any, version: int) -> AssistantRecord:
    data = json.loads(_text(raw))
    known = AssistantRecord.__dataclass_fields__
    rec = AssistantRecord(**{k: v for k, v in data.items() if k in known})
    rec.version = version
    return rec


class AssistantStore:
    def __init__(self, redis: aioredis.Redis, prefix: str, *, retry: Retry | None = None) -> None:
        self.redis = redis
        self.keys = RedisKeys(prefix)
        self.retry = retry or Retry()
        self._create = redis.register_script(_CREATE)
        self._add_version = redis.register_script(_ADD_VERSION)

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await call_redis(self.retry, what, fn)

    def _key(self, tenant_id: str, assistant_id: str) -> str:
        return self.keys.assistant(tenant_id, assistant_id)

    async def create(
        self, tenant_id: str, rec: AssistantRecord, *, if_exists_return: bool = False
    ) -> AssistantRecord:
        now = time.time()
        rec = replace(rec, version=1, created_at=now, updated_at=now)
        created = await self._call(
            "create assistant",
            lambda: self._create(
                keys=[
                    self._key(tenant_id, rec.assistant_id),
                    self.keys.assistants_index(tenant_id),
                ],
                args=[rec.assistant_id, now, json.dumps(asdict(rec))],
            ),
        )
        if not created:
            existing = await self.get(tenant_id, rec.assistant_id)
            if existing is not None and if_exists_return:
                return existing
            raise AlreadyExistsError(
                f"assistant {rec.assistant_id!r} already exists",
                metadata={"assistant_id": rec.assistant_id},
            )
        return rec

    async def add_version(self, tenant_id: str, rec: AssistantRecord) -> AssistantRecord:
        """Store ``rec`` as the assistant's next version, which becomes its latest."""
        now = time.time()
        rec = replace(rec, version=0, updated_at=now)
        n = await self._call(
            "update assistant",
            lambda: self._add_version(
                keys=[
                    self._key(tenant_id, rec.assistant_id),
                    self.keys.assistants_index(tenant_id),
                ],
                args=[rec.assistant_id, now, json.dumps(asdict(rec))],
            ),
        )
        if not n:
            raise NotFoundError(f"assistant {rec.assistant_id!r} not found")
        return replace(rec, version=int(n))

    async def get(
        self, tenant_id: str, assistant_id: str, version: int | None = None
    ) -> AssistantRecord | None:
        key = self._key(tenant_id, assistant_id)
        if version is None:
            latest = await self._call("read assistant", lambda: self.redis.hget(key, "latest"))
            if latest is None:
                return None
            version = int(_text(latest))
        raw = await self._call("read assistant", lambda: self.redis.hget(key, f"v{version}"))
        return _decode(raw, version) if raw is not None else None

    async def versions(self, tenant_id: str, assistant_id: str) -> list[AssistantRecord]:
        """Every version, newest first."""
        key = self._key(tenant_id, assistant_id)
        raw = await self._call("read assistant", lambda: self.redis.hgetall(key))
        out = [_decode(v, int(_text(k)[1:])) for k, v in raw.items() if _text(k).startswith("v")]
        return sorted(out, key=lambda r: r.version, reverse=True)

    async def set_latest(self, tenant_id: str, assistant_id: str, version: int) -> AssistantRecord:
        rec = await self.get(tenant_id, assistant_id, version)
        if rec is None:
            raise NotFoundError(
                f"assistant {assistant_id!r} has no version {version}",
                metadata={"assistant_id": assistant_id, "version": str(version)},
            )
        key = self._key(tenant_id, assistant_id)
        await self._call("update assistant", lambda: self.redis.hset(key, "latest", version))
        return rec

    async def delete(self, tenant_id: str, assistant_id: str) -> bool:
        key = self._key(tenant_id, assistant_id)
        index = self.keys.assistants_index(tenant_id)

        async def delete() -> bool:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.zrem(index, assistant_id)
                deleted, _ = await pipe.execute()
            return bool(deleted)

        return await self._call("delete assistant", delete)

    async def list(self, tenant_id: str) -> list[AssistantRecord]:
        """The latest version of each of the tenant's assistants, newest update first."""
        index = self.keys.assistants_index(tenant_id)
        ids = await self._call("list assistants", lambda: self.redis.zrevrange(index, 0, -1))
        out: list[AssistantRecord] = []
        for raw_id in ids:
            rec = await self.get(tenant_id, _text(raw_id))
            if rec is not None:
                out.append(rec)
        return out

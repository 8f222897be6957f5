"""The Redis client every service uses, and the one way to call it with retries.

- A step with hundreds of parallel tasks saves their writes concurrently: the pool is
  bounded (``max_connections``) and callers wait for a free connection instead of failing
  with "Too many connections".
- Lua scripts (every write of a run) run over lean pipelined connections (``_lean``);
  everything else over redis-py's pool.
- redis-py itself retries a failed command once, at once: that replaces a pooled
  connection that died with a restarted server. Everything longer (an outage) is
  :func:`call_redis`'s job: it retries with backoff for the whole retry budget (every
  mesh write is idempotent: checkpoints by id, writes by task id and index, records by
  key and guarded by status), then raises ``BackendUnavailableError``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mesh_core.adapters.redis._lean import LeanScript, LeanScripts
from mesh_core.errors import BackendUnavailableError
from mesh_core.reasons import Reason
from mesh_core.retry import Retry, transient_error_types

__all__ = ["DEFAULT_MAX_CONNECTIONS", "MeshRedis", "call_redis", "connect_redis"]

T = TypeVar("T")

DEFAULT_MAX_CONNECTIONS = 64


class MeshRedis(aioredis.Redis):
    """redis-py's client whose registered scripts run over lean pipelined connections
    (``_lean``): the mesh's hot path is all scripts. Everything else is redis-py's."""

    def __init__(self, *args: Any, lean: LeanScripts | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lean = lean

    def register_script(self, script: Any) -> Any:
        fallback = super().register_script(script)
        if self.lean is None:
            return fallback
        return LeanScript(
            self.lean, fallback, script if isinstance(script, str) else script.decode()
        )

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self.lean is not None:
            await self.lean.aclose()
        await super().aclose(close_connection_pool)


def connect_redis(
    url: str,
    *,
    socket_timeout: float = 5.0,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    lean_scripts: bool = True,
) -> aioredis.Redis:
    """The mesh's Redis client for ``url``; ``lean_scripts``: scripts run over lean
    connections of their own (a redis:// URL), see ``_lean``."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=30,
        socket_timeout=socket_timeout,
        socket_connect_timeout=2.0,
        retry=RedisRetry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, BusyLoadingError],
        health_check_interval=30,
    )
    lean = (
        LeanScripts(url, socket_timeout=socket_timeout, connect_timeout=2.0)
        if lean_scripts and url.startswith("redis://")
        else None
    )
    return MeshRedis(connection_pool=pool, lean=lean)


async def call_redis(
    retry: Retry,
    what: str,
    fn: Callable[[], Awaitable[T]],
    *,
    abort: Callable[[], None] | None = None,
) -> T:
    """``await fn()`` with ``retry``; a Redis outage longer than its budget becomes
    ``BackendUnavailableError`` (reason REDIS_UNAVAILABLE)."""
    try:
        return await retry.call(fn, what=f"Redis {what}", abort=abort)
    except transient_error_types() as exc:
        raise BackendUnavailableError(
            f"Redis unreachable during {what}", backend="redis", reason=Reason.REDIS_UNAVAILABLE
        ) from exc

"""The Redis client every service uses: a bounded, blocking pool and retries with backoff.

- A step with hundreds of parallel tasks saves their writes concurrently: the pool is
  bounded (``max_connections``) and callers wait for a free connection instead of failing
  with "Too many connections".
- redis-py 8 gives reads a 5 s socket timeout by default; a transient stall or a restart
  of the server is retried a few times with exponential backoff (every mesh write is
  idempotent: checkpoints by id, writes by task id and index, records by key) before the
  error surfaces (as UNAVAILABLE once translated).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["DEFAULT_MAX_CONNECTIONS", "connect_redis"]

DEFAULT_MAX_CONNECTIONS = 64


def connect_redis(
    url: str,
    *,
    retries: int = 4,
    socket_timeout: float = 10.0,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> aioredis.Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=30,
        socket_timeout=socket_timeout,
        socket_connect_timeout=5.0,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=pool)

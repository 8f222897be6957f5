"""The Redis client every service uses: bounded retries with backoff on connection errors.

redis-py 8 gives reads a 5 s socket timeout by default; a transient stall or a restart
of the server is retried a few times with exponential backoff (every mesh write is
idempotent: checkpoints by id, writes by task id and index, records by key) before the
error surfaces as UNAVAILABLE.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["connect_redis"]


def connect_redis(url: str, *, retries: int = 4, socket_timeout: float = 10.0) -> aioredis.Redis:
    return aioredis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=5.0,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )

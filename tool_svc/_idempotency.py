"""Idempotent tool calls: a completed call's result is kept in Redis under its key.

Per key there are two Redis keys (same hash tag, so one script can touch both):

* the *result* (``RedisKeys.tool_idempotency``): the stored outcome, kept ``ttl`` seconds;
* the *lock* (``RedisKeys.tool_idempotency_lock``): "a replica is running this call",
  set with NX and a short TTL that the running replica keeps renewing.

The first caller takes the lock, runs the tool, then stores the result and drops the
lock in one script, so a waiter either sees the lock or the result, never neither while
the tool runs. A waiter polls until the result appears (it returns it) or the lock is
gone without a result (the runner failed or died: the waiter may run the tool itself).

With a payload codec (``--payload-keys``) the stored result is sealed, bound to its own
result key (tenant, tool and caller's key, hashed), so a result copied to another key
does not open there; locks (their tokens) stay plain. A result that does not open is
DATA_LOSS (:class:`~mesh_core.security.SealedDataError`), never a second run of the tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from mesh_core.adapters.redis.keys import RedisKeys
from mesh_core.errors import InternalError, UnavailableError
from mesh_core.security._codec import PayloadCodec, open_payload, seal_payload
from tool_svc._metrics import IDEMPOTENCY_STORE_ERRORS

__all__ = ["IdempotencyLock", "IdempotencyStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# KEYS[1] result, KEYS[2] lock; ARGV[1] token, ARGV[2] lock ttl ms
# -> {1, result} stored | {2, ''} lock taken by us | {3, ''} someone else runs it
_BEGIN = """
local r = redis.call('GET', KEYS[1])
if r then return {1, r} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, ''} end
if redis.call('GET', KEYS[2]) == ARGV[1] then return {2, ''} end  -- a retried call
return {3, ''}
"""
# KEYS[1] result, KEYS[2] lock; ARGV[1] payload, ARGV[2] ttl ms, ARGV[3] token
_COMPLETE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""
# KEYS[1] lock; ARGV[1] token, ARGV[2] ttl ms (renew) or '0' (release)
_RENEW_OR_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


async def _guard(op: str, fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return await fn()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        IDEMPOTENCY_STORE_ERRORS.labels(op).inc()
        raise UnavailableError(
            "the idempotency store (Redis) is unavailable; retry",
            reason="IDEMPOTENCY_STORE_UNAVAILABLE",
        ) from exc
    except redis.exceptions.RedisError as exc:
        IDEMPOTENCY_STORE_ERRORS.labels(op).inc()
        raise InternalError(
            "the idempotency store (Redis) failed", reason="IDEMPOTENCY_STORE_ERROR"
        ) from exc


class IdempotencyLock:
    """This replica is running the call for ``key``; renewed until completed or released."""

    def __init__(self, store: IdempotencyStore, key: str, token: str) -> None:
        self._store = store
        self.key = key
        self.token = token
        self._renewer = asyncio.create_task(self._renew(), name=f"idem-renew-{key}")

    async def _renew(self) -> None:
        interval = self._store.lock_ttl / 3
        lock_key = self._store.keys.tool_idempotency_lock(self.key)
        while True:
            await asyncio.sleep(interval)
            try:
                held = await self._store._renew_or_release(
                    keys=[lock_key], args=[self.token, self._store.lock_ttl_ms]
                )
            except redis.exceptions.RedisError:
                IDEMPOTENCY_STORE_ERRORS.labels("renew").inc()
                log.warning("cannot renew the idempotency lock; retrying")
                continue
            if not held:
                log.warning("lost the idempotency lock of a running tool call")
                return

    async def _stop(self) -> None:
        self._renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewer

    async def complete(self, payload: str) -> None:
        """Store the result (kept ``ttl``) and drop the lock, atomically."""
        await self._stop()
        keys = self._store.keys
        sealed = seal_payload(self._store.codec, payload.encode(), _place(self.key))
        await _guard(
            "complete",
            lambda: self._store._complete(
                keys=[keys.tool_idempotency(self.key), keys.tool_idempotency_lock(self.key)],
                args=[sealed, self._store.ttl_ms, self.token],
            ),
        )

    async def release(self) -> None:
        """Drop the lock without a result (the call failed in a way worth retrying)."""
        await self._stop()
        lock_key = self._store.keys.tool_idempotency_lock(self.key)
        await _guard(
            "release",
            lambda: self._store._renew_or_release(keys=[lock_key], args=[self.token, "0"]),
        )


class IdempotencyStore:
    """Results of completed keyed calls, and "running" locks, in Redis."""

    def __init__(
        self,
        redis_client: aioredis.Redis,
        keys: RedisKeys,
        *,
        ttl: float,
        lock_ttl: float = 10.0,
        poll_min: float = 0.005,
        poll_max: float = 0.1,
        codec: PayloadCodec | None = None,
    ) -> None:
        self.redis = redis_client
        self.keys = keys
        self.codec = codec
        self.ttl_ms = max(1, int(ttl * 1000))
        self.lock_ttl = lock_ttl
        self.lock_ttl_ms = max(1, int(lock_ttl * 1000))
        self.poll_min = poll_min
        self.poll_max = poll_max
        self._begin = redis_client.register_script(_BEGIN)
        self._complete = redis_client.register_script(_COMPLETE)
        self._renew_or_release = redis_client.register_script(_RENEW_OR_RELEASE)

    @staticmethod
    def scoped_key(tenant_id: str, tool: str, key: str) -> str:
        """The stored key for a caller's key: per tenant and tool, hashed, hash-tagged."""
        digest = hashlib.sha256(f"{tenant_id}\0{tool}\0{key}".encode()).hexdigest()[:40]
        return "{" + digest + "}"

    async def begin(self, key: str) -> tuple[str | None, IdempotencyLock | None]:
        """One round trip: ``(result, None)`` if stored, ``(None, lock)`` if this caller
        now runs the call, ``(None, None)`` if another caller is running it."""
        token = uuid.uuid4().hex
        keys = [self.keys.tool_idempotency(key), self.keys.tool_idempotency_lock(key)]
        state, raw = await _guard(
            "begin", lambda: self._begin(keys=keys, args=[token, self.lock_ttl_ms])
        )
        if int(state) == 1:
            return self._open(key, raw), None
        if int(state) == 2:
            return None, IdempotencyLock(self, key, token)
        return None, None

    async def wait(self, key: str, timeout: float) -> str | None:
        """Wait while another caller runs ``key``: its result, or None if it gave up.

        Raises TimeoutError when neither happens within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        result_key = self.keys.tool_idempotency(key)
        lock_key = self.keys.tool_idempotency_lock(key)
        delay = self.poll_min
        while True:
            raw, lock = await _guard("wait", lambda: self.redis.mget(result_key, lock_key))
            if raw is not None:
                return self._open(key, raw)
            if lock is None:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, self.poll_max)

    def _open(self, key: str, raw: Any) -> str:
        """A stored result as text; SealedDataError (DATA_LOSS) when it does not open."""
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        what = "the stored result of this idempotency key"
        return open_payload(self.codec, data, what, _place(key)).decode()


def _place(key: str) -> str:
    """Where a stored result belongs: its scoped key (tenant, tool, caller's key)."""
    return f"tool-idem\0{key}"

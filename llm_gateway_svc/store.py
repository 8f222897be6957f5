"""The gateway's shared state in Redis: rate-limit windows, idempotency, cache, usage.

Everything here is shared by all replicas, which is what makes the limits hold
across them. Key names come from :class:`mesh_core.adapters.redis.RedisKeys`.

Rate limits use sliding-window counters: one counter per scope and fixed window,
and the estimate ``previous * (1 - elapsed fraction) + current``. One Lua script
checks every scope of a request and charges all of them, or none.

With a payload codec (``--payload-keys``) the answers stored here (for an idempotency
key, in the response cache) are sealed, each bound to its own key (and an idempotent
answer to its request's digest too), so one copied to another key does not open there.
Claims, request digests and usage counters stay plain. A cached answer that does not
open is a cache miss; a stored idempotent answer that does not open is DATA_LOSS
(:class:`~mesh_core.security.SealedDataError`): never a second, billed execution.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mesh_core.adapters.redis.keys import RedisKeys
from mesh_core.errors import UnavailableError
from mesh_core.logs import RateLimitedLog
from mesh_core.security._codec import (
    PayloadCodec,
    SealedDataError,
    open_payload,
    seal_payload,
)

__all__ = ["Admission", "IdemState", "LlmStore", "RateScope", "RedisLlmStore"]

log = logging.getLogger(__name__)
_unreadable = RateLimitedLog(log, interval=60.0, burst=1)

_PENDING = b"P|"
_DONE = b"D|"

_ADMIT = """
local frac = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local left_ms = tonumber(ARGV[3])
local window_ms = tonumber(ARGV[4])
local n = #KEYS / 2
for i = 1, n do
  local limit = tonumber(ARGV[3 + 2 * i])
  local cost = tonumber(ARGV[4 + 2 * i])
  local cur = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local prev = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  local est = prev * (1 - frac) + cur + cost
  if est > limit then
    local wait = left_ms
    if cur + cost <= limit and prev > 0 then
      wait = math.min(left_ms, (est - limit) * window_ms / prev)
    end
    return {0, i, math.ceil(wait)}
  end
end
for i = 1, n do
  redis.call('INCRBY', KEYS[2 * i - 1], ARGV[4 + 2 * i])
  redis.call('PEXPIRE', KEYS[2 * i - 1], ttl)
end
return {1, 0, 0}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@contextlib.contextmanager
def _backend(op: str) -> Iterator[None]:
    """Redis down or slow -> UNAVAILABLE (retryable), never a bare INTERNAL."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise UnavailableError(
            f"the gateway's shared state (Redis) is unavailable ({op})",
            reason="STORE_UNAVAILABLE",
            metadata={"op": op, "error": type(exc).__name__},
        ) from None


@dataclass(frozen=True)
class RateScope:
    """One limit to check: e.g. name='tenant:acme:rpm', limit=60, cost=1."""

    name: str
    limit: int
    cost: int


@dataclass(frozen=True)
class Admission:
    admitted: bool
    scope: str = ""
    retry_after: float = 0.0


@dataclass(frozen=True)
class IdemState:
    """What the idempotency store holds for a key (None: we just claimed it).

    A sealed answer is opened by :meth:`answer`, after the caller has compared digests:
    a key reused for another request is refused as such even when its stored answer
    cannot be opened here."""

    done: bool
    digest: str = ""
    payload: bytes = b""
    opener: Callable[[], bytes] | None = None

    def answer(self) -> bytes:
        """The stored answer (DataLossError when it does not open here)."""
        return self.opener() if self.opener is not None else self.payload


class LlmStore(Protocol):
    async def admit(self, scopes: Sequence[RateScope], window_s: float) -> Admission: ...
    async def charge(self, scopes: Sequence[RateScope], window_s: float) -> None: ...
    async def idem_claim(self, key: str, token: str, ttl_s: float) -> IdemState | None: ...
    async def idem_release(self, key: str, token: str) -> None: ...
    async def cache_get(self, digest: str) -> bytes | None: ...
    async def record(
        self,
        *,
        tenant: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        idem: tuple[str, str, bytes, float] | None,
        cache: tuple[str, bytes, float] | None,
    ) -> None: ...
    async def add_usage(self, rows: Sequence[tuple[str, str, int, int, int]]) -> None: ...
    async def usage(self, tenant: str) -> dict[str, int]: ...
    async def aclose(self) -> None: ...


class RedisLlmStore:
    """:class:`LlmStore` on one Redis/Valkey server."""

    def __init__(
        self,
        redis: Redis,
        keys: RedisKeys,
        clock: Any = time.time,
        *,
        codec: PayloadCodec | None = None,
    ) -> None:
        self._r = redis
        self._keys = keys
        self._clock = clock
        self._codec = codec
        self._admit = redis.register_script(_ADMIT)
        self._release = redis.register_script(_RELEASE)

    @classmethod
    def from_url(cls, url: str, prefix: str, *, codec: PayloadCodec | None = None) -> RedisLlmStore:
        return cls(Redis.from_url(url), RedisKeys(prefix), codec=codec)

    async def aclose(self) -> None:
        await self._r.aclose()

    async def ping(self) -> None:
        """Raise unless Redis answers (the service's health probe)."""
        await self._r.ping()

    def _windows(self, window_s: float) -> tuple[int, float, float]:
        now = self._clock()
        index = math.floor(now / window_s)
        elapsed = now - index * window_s
        return index, elapsed / window_s, window_s - elapsed

    async def admit(self, scopes: Sequence[RateScope], window_s: float) -> Admission:
        """Check every scope; if all allow, charge all (atomically across replicas)."""
        if not scopes:
            return Admission(True)
        index, frac, left = self._windows(window_s)
        keys: list[str] = []
        args: list[Any] = [
            repr(frac),
            int(window_s * 2000) + 1000,
            int(left * 1000),
            int(window_s * 1000),
        ]
        for s in scopes:
            keys += [
                self._keys.rate_bucket(s.name, index),
                self._keys.rate_bucket(s.name, index - 1),
            ]
            args += [s.limit, s.cost]
        with _backend("admit"):
            ok, which, wait_ms = await self._admit(keys=keys, args=args)
        if int(ok) == 1:
            return Admission(True)
        return Admission(False, scopes[int(which) - 1].name, int(wait_ms) / 1000.0)

    async def charge(self, scopes: Sequence[RateScope], window_s: float) -> None:
        """Add (or with a negative cost, give back) spend without checking limits."""
        index = self._windows(window_s)[0]
        pipe = self._r.pipeline(transaction=False)
        for s in scopes:
            if s.cost:
                key = self._keys.rate_bucket(s.name, index)
                pipe.incrby(key, s.cost)
                pipe.pexpire(key, int(window_s * 2000) + 1000)
        await pipe.execute()

    async def idem_claim(self, key: str, token: str, ttl_s: float) -> IdemState | None:
        """Claim ``key`` for this call (None) or return what is stored for it."""
        with _backend("idempotency"):
            return await self._idem_claim(key, token, ttl_s)

    async def _idem_claim(self, key: str, token: str, ttl_s: float) -> IdemState | None:
        rkey = self._keys.llm_idempotency(key)
        marker = _PENDING + token.encode()
        ok = await self._r.set(rkey, marker, nx=True, px=max(1, int(ttl_s * 1000)))
        if ok:
            return None
        raw = cast(bytes | None, await self._r.get(rkey))
        if raw is None:  # expired between the two calls: try once more
            ok = await self._r.set(rkey, marker, nx=True, px=max(1, int(ttl_s * 1000)))
            return None if ok else IdemState(done=False)
        if raw.startswith(_DONE):
            digest, _, sealed = raw[len(_DONE) :].partition(b"|")
            where = _idem_place(key, digest.decode())
            what = "the stored answer of this idempotency key"
            return IdemState(
                done=True,
                digest=digest.decode(),
                opener=functools.partial(open_payload, self._codec, sealed, what, where),
            )
        return IdemState(done=False)

    async def idem_release(self, key: str, token: str) -> None:
        with _backend("idempotency"):
            await self._release(
                keys=[self._keys.llm_idempotency(key)], args=[_PENDING + token.encode()]
            )

    async def cache_get(self, digest: str) -> bytes | None:
        """The cached answer, or None (also for one that does not open here: a miss)."""
        with _backend("cache"):
            raw = cast(bytes | None, await self._r.get(self._keys.llm_cache(digest)))
        if raw is None:
            return None
        try:
            return open_payload(self._codec, raw, "a cached answer", _cache_place(digest))
        except SealedDataError as exc:
            _unreadable.warning(
                "cache", "%s; treated as a cache miss (%s)", exc.message, exc.reason
            )
            return None

    async def record(
        self,
        *,
        tenant: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        idem: tuple[str, str, bytes, float] | None,
        cache: tuple[str, bytes, float] | None,
    ) -> None:
        """Account usage and store the response for its idempotency key / the cache."""
        pipe = self._r.pipeline(transaction=True)
        self._usage_cmds(pipe, tenant, model, 1, input_tokens, output_tokens)
        if idem is not None:
            key, digest, payload, ttl = idem
            sealed = seal_payload(self._codec, payload, _idem_place(key, digest))
            value = _DONE + digest.encode() + b"|" + sealed
            pipe.set(self._keys.llm_idempotency(key), value, px=max(1, int(ttl * 1000)))
        if cache is not None:
            digest, payload, ttl = cache
            sealed = seal_payload(self._codec, payload, _cache_place(digest))
            pipe.set(self._keys.llm_cache(digest), sealed, px=max(1, int(ttl * 1000)))
        with _backend("record"):
            await pipe.execute()

    def _usage_cmds(
        self,
        pipe: Any,
        tenant: str,
        model: str,
        requests: int,
        input_tokens: int,
        output_tokens: int,
    ) -> None:
        ukey = self._keys.llm_usage(tenant)
        for field, n in (
            ("requests", requests),
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
        ):
            pipe.hincrby(ukey, field, n)
            pipe.hincrby(ukey, f"model:{model}:{field}", n)

    async def add_usage(self, rows: Sequence[tuple[str, str, int, int, int]]) -> None:
        """Add (tenant, model, requests, input tokens, output tokens) rows."""
        pipe = self._r.pipeline(transaction=False)
        for tenant, model, requests, input_tokens, output_tokens in rows:
            self._usage_cmds(pipe, tenant, model, requests, input_tokens, output_tokens)
        await pipe.execute()

    async def usage(self, tenant: str) -> dict[str, int]:
        raw = cast(dict[bytes, bytes], await self._r.hgetall(self._keys.llm_usage(tenant)))
        return {k.decode(): int(v) for k, v in raw.items()}


def _idem_place(key: str, digest: str) -> str:
    """Where a stored idempotent answer belongs: its key (``tenant:key``) and request."""
    return f"llm-idem\0{key}\0{digest}"


def _cache_place(digest: str) -> str:
    """Where a cached answer belongs: its cache key (``tenant:digest``)."""
    return f"llm-cache\0{digest}"

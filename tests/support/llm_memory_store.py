"""An in-process :class:`LlmStore` for unit tests (one replica, no Redis)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from llm_gateway_svc.store import Admission, IdemState, RateScope

__all__ = ["MemoryLlmStore"]


class MemoryLlmStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.buckets: dict[tuple[str, int], int] = {}
        self.idem: dict[str, tuple[float, bytes]] = {}
        self.cache: dict[str, tuple[float, bytes]] = {}
        self.usage_by_tenant: dict[str, dict[str, int]] = {}
        self.closed = False

    def _window(self, window_s: float) -> tuple[int, float]:
        now = self.clock()
        index = math.floor(now / window_s)
        return index, (now - index * window_s) / window_s

    async def admit(self, scopes: Sequence[RateScope], window_s: float) -> Admission:
        index, frac = self._window(window_s)
        for s in scopes:
            cur = self.buckets.get((s.name, index), 0)
            prev = self.buckets.get((s.name, index - 1), 0)
            if prev * (1 - frac) + cur + s.cost > s.limit:
                return Admission(False, s.name, (1 - frac) * window_s)
        for s in scopes:
            self.buckets[(s.name, index)] = self.buckets.get((s.name, index), 0) + s.cost
        return Admission(True)

    async def charge(self, scopes: Sequence[RateScope], window_s: float) -> None:
        index, _ = self._window(window_s)
        for s in scopes:
            self.buckets[(s.name, index)] = self.buckets.get((s.name, index), 0) + s.cost

    def _live(self, table: dict[str, tuple[float, bytes]], key: str) -> bytes | None:
        entry = table.get(key)
        if entry is None or entry[0] <= self.clock():
            table.pop(key, None)
            return None
        return entry[1]

    async def idem_claim(self, key: str, token: str, ttl_s: float) -> IdemState | None:
        raw = self._live(self.idem, key)
        if raw is None:
            self.idem[key] = (self.clock() + ttl_s, b"P|" + token.encode())
            return None
        if raw.startswith(b"D|"):
            digest, _, payload = raw[2:].partition(b"|")
            return IdemState(done=True, digest=digest.decode(), payload=payload)
        return IdemState(done=False)

    async def idem_release(self, key: str, token: str) -> None:
        if self._live(self.idem, key) == b"P|" + token.encode():
            del self.idem[key]

    async def cache_get(self, digest: str) -> bytes | None:
        return self._live(self.cache, digest)

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
        u = self.usage_by_tenant.setdefault(tenant, {})
        for field, n in (
            ("requests", 1),
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
        ):
            u[field] = u.get(field, 0) + n
            u[f"model:{model}:{field}"] = u.get(f"model:{model}:{field}", 0) + n
        if idem is not None:
            key, digest, payload, ttl = idem
            self.idem[key] = (self.clock() + ttl, b"D|" + digest.encode() + b"|" + payload)
        if cache is not None:
            digest, payload, ttl = cache
            self.cache[digest] = (self.clock() + ttl, payload)

    async def add_usage(self, rows: Sequence[tuple[str, str, int, int, int]]) -> None:
        for tenant, model, requests, input_tokens, output_tokens in rows:
            u = self.usage_by_tenant.setdefault(tenant, {})
            for field, n in (
                ("requests", requests),
                ("input_tokens", input_tokens),
                ("output_tokens", output_tokens),
            ):
                u[field] = u.get(field, 0) + n
                u[f"model:{model}:{field}"] = u.get(f"model:{model}:{field}", 0) + n

    async def usage(self, tenant: str) -> dict[str, int]:
        return dict(self.usage_by_tenant.get(tenant, {}))

    async def aclose(self) -> None:
        self.closed = True

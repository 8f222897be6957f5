"""Usage and token-limit corrections, buffered and written to Redis in batches.

The hot path must not wait on Redis for bookkeeping: each request adds to an
in-memory ledger and one pipeline per ``interval`` writes it all. Answers stored
for an idempotency key or the cache are written synchronously instead (with their
usage), because a re-executed task must find them. On shutdown the ledger flushes.
A failed flush keeps the rows for the next one, counts the error and logs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from llm_gateway_svc import metrics
from llm_gateway_svc.store import LlmStore, RateScope

__all__ = ["DEFAULT_FLUSH_INTERVAL_S", "UsageLedger"]

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL_S = 0.2


class UsageLedger:
    def __init__(
        self, store: LlmStore, window_s: float, interval: float = DEFAULT_FLUSH_INTERVAL_S
    ) -> None:
        self._store = store
        self._window_s = window_s
        self._interval = interval
        self._usage: dict[tuple[str, str], list[int]] = {}
        self._charges: dict[tuple[str, int], int] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def add_usage(self, tenant: str, model: str, input_tokens: int, output_tokens: int) -> None:
        row = self._usage.setdefault((tenant, model), [0, 0, 0])
        row[0] += 1
        row[1] += input_tokens
        row[2] += output_tokens
        self._ensure_running()

    def add_charges(self, scopes: Sequence[RateScope]) -> None:
        for s in scopes:
            if s.cost:
                key = (s.name, s.limit)
                self._charges[key] = self._charges.get(key, 0) + s.cost
        self._ensure_running()

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()
            if not self._usage and not self._charges:
                return  # idle: the next add starts a new loop

    async def flush(self) -> None:
        usage, self._usage = self._usage, {}
        charges, self._charges = self._charges, {}
        if not usage and not charges:
            return
        try:
            if charges:
                scopes = [RateScope(name, limit, cost) for (name, limit), cost in charges.items()]
                await self._store.charge(scopes, self._window_s)
                charges = {}
            if usage:
                await self._store.add_usage(
                    [(t, m, row[0], row[1], row[2]) for (t, m), row in usage.items()]
                )
        except Exception as exc:
            metrics.BACKEND_ERRORS.labels("usage").inc()
            log.error("LLM usage accounting failed, will retry: %s", type(exc).__name__)
            for ckey, cost in charges.items():
                self._charges[ckey] = self._charges.get(ckey, 0) + cost
            for ukey, row in usage.items():
                cur = self._usage.setdefault(ukey, [0, 0, 0])
                for i in range(3):
                    cur[i] += row[i]

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

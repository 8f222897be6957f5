"""Concurrency slots shared fairly between tenants.

A :class:`FairSlots` guards a pool of ``capacity`` slots (a tool's concurrency, a
provider's upstream calls). Each tenant may hold at most its own cap of them, and when
callers wait, free slots go to the waiting tenants in turn (round robin), not to
whoever queued most. One tenant's burst therefore fills at most its share of the pool,
and another tenant's call waits for at most about one slot release per waiting tenant.

Plain asyncio; one instance per event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from dataclasses import dataclass, field

__all__ = ["FairSlots", "share_cap"]


def share_cap(capacity: int, share: float) -> int:
    """The slots a tenant with ``share`` (0 < share <= 1) of ``capacity`` may hold."""
    return max(1, min(capacity, math.floor(capacity * share + 1e-9)))


@dataclass
class _Waiter:
    future: asyncio.Future[None]
    cap: int


@dataclass
class _Tenant:
    held: int = 0
    waiters: deque[_Waiter] = field(default_factory=deque)


class FairSlots:
    """``capacity`` slots; a tenant holds at most its cap; waiters are served in turn."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._total = 0
        self._tenants: dict[str, _Tenant] = {}
        self._turns: deque[str] = deque()  # tenants with waiters, in serving order

    @property
    def in_use(self) -> int:
        return self._total

    def held(self, tenant: str) -> int:
        t = self._tenants.get(tenant)
        return t.held if t else 0

    def waiting(self, tenant: str | None = None) -> int:
        """Callers waiting for a slot (``tenant``'s only, when given)."""
        if tenant is not None:
            t = self._tenants.get(tenant)
            return len(t.waiters) if t else 0
        return sum(len(t.waiters) for t in self._tenants.values())

    def try_acquire(self, tenant: str, cap: int | None = None) -> bool:
        """Take a slot now if one is free for ``tenant`` and nobody eligible waits."""
        cap = self.capacity if cap is None else cap
        t = self._tenants.get(tenant)
        if self._total >= self.capacity or (t is not None and t.held >= cap):
            return False
        if self._turns and self._someone_eligible_waits():
            return False
        self._grant(tenant)
        return True

    async def acquire(
        self, tenant: str, cap: int | None = None, timeout: float | None = None
    ) -> None:
        """Wait for a slot; :class:`TimeoutError` after ``timeout`` seconds."""
        if self.try_acquire(tenant, cap):
            return
        if timeout is not None and timeout <= 0:
            raise TimeoutError
        t = self._tenants.setdefault(tenant, _Tenant())
        waiter = _Waiter(
            asyncio.get_running_loop().create_future(), self.capacity if cap is None else cap
        )
        t.waiters.append(waiter)
        if tenant not in self._turns:
            self._turns.append(tenant)
        try:
            async with asyncio.timeout(timeout):
                await waiter.future
        except BaseException:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(tenant)  # granted just as we gave up
            else:
                waiter.future.cancel()
                self._forget(tenant, waiter)
            raise

    def release(self, tenant: str) -> None:
        t = self._tenants.get(tenant)
        if t is None or t.held <= 0:
            raise RuntimeError(f"release of a slot {tenant!r} does not hold")
        t.held -= 1
        self._total -= 1
        if t.held == 0 and not t.waiters:
            del self._tenants[tenant]
        self._dispatch()

    # -- internals ---------------------------------------------------------------------
    def _grant(self, tenant: str) -> None:
        t = self._tenants.setdefault(tenant, _Tenant())
        t.held += 1
        self._total += 1

    def _someone_eligible_waits(self) -> bool:
        for name in self._turns:
            t = self._tenants[name]
            if t.waiters and t.held < t.waiters[0].cap:
                return True
        return False

    def _forget(self, tenant: str, waiter: _Waiter) -> None:
        t = self._tenants.get(tenant)
        if t is None:
            return
        with contextlib.suppress(ValueError):
            t.waiters.remove(waiter)
        if not t.waiters:
            with contextlib.suppress(ValueError):
                self._turns.remove(tenant)
            if t.held == 0:
                del self._tenants[tenant]
        self._dispatch()  # the waiter we dropped may have blocked others

    def _dispatch(self) -> None:
        """Hand free slots to waiting tenants, one per tenant per round."""
        while self._total < self.capacity and self._turns:
            granted = False
            for _ in range(len(self._turns)):
                name = self._turns[0]
                self._turns.rotate(-1)
                t = self._tenants[name]
                while t.waiters and t.waiters[0].future.done():
                    t.waiters.popleft()  # cancelled, not yet forgotten
                if not t.waiters:
                    self._turns.remove(name)
                    if t.held == 0:
                        del self._tenants[name]
                    break  # the rotation changed; start the round again
                if t.held >= t.waiters[0].cap:
                    continue
                waiter = t.waiters.popleft()
                t.held += 1
                self._total += 1
                waiter.future.set_result(None)
                if not t.waiters:
                    self._turns.remove(name)
                granted = True
                break
            else:
                return  # every waiting tenant is at its cap
            if not granted and not self._turns:
                return

"""Circuit breaker and deadline: small objects the router composes (backoff is
:class:`mesh_core.retry.Backoff`, shared with every other retry in the mesh)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["CircuitBreaker", "Deadline"]

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class Deadline:
    """An absolute point on the monotonic clock."""

    at: float

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds)

    def remaining(self, clock: Callable[[], float] = time.monotonic) -> float:
        return self.at - clock()

    def expired(self, clock: Callable[[], float] = time.monotonic) -> bool:
        return self.remaining(clock) <= 0


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``reset_s`` lets one probe in.

    A success closes it; a failed probe opens it again for another ``reset_s``.
    """

    def __init__(
        self, threshold: int, reset_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.reset_s = reset_s
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._state: BreakerState = "closed"
        self._probe_out = False

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_s:
            self._state = "half_open"
            self._probe_out = False
        return self._state

    def retry_in(self) -> float:
        """Seconds until the breaker lets a probe through (0 if it does now)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self._opened_at + self.reset_s - self._clock())

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_out:
            self._probe_out = True
            return True
        return False

    def on_success(self) -> None:
        self._failures = 0
        self._state = "closed"
        self._probe_out = False

    def on_failure(self) -> None:
        self._failures += 1
        if self._state == "half_open" or self._failures >= self.threshold:
            self._state = "open"
            self._opened_at = self._clock()
            self._probe_out = False

    def on_abandon(self) -> None:
        """A call that was let through ended without a verdict (cancelled)."""
        self._probe_out = False

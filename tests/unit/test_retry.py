"""mesh_core.retry: backoff bounds, the budget, what is retried, aborting."""

from __future__ import annotations

import aetcd
import nats.errors
import pytest
import redis.exceptions

from mesh_core.errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    SessionLostError,
    StaleOwnerError,
    UnavailableError,
)
from mesh_core.retry import Backoff, Retry, is_retryable


def test_backoff_grows_to_its_maximum_with_jitter_on_the_upper_half() -> None:
    b = Backoff(initial=0.1, maximum=0.8)
    delays = [b.delay(n) for n in range(8)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(0.4 <= d <= 0.8 for d in delays[3:])
    assert len({round(b.delay(5), 6) for _ in range(20)}) > 1  # jittered
    assert b.delay(10_000) <= 0.8  # no overflow


@pytest.mark.parametrize("kw", [{"initial": 0}, {"initial": 1, "maximum": 0.5}, {"factor": 0.5}])
def test_backoff_rejects_nonsense(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kw)


@pytest.mark.parametrize(
    "exc",
    [
        redis.exceptions.ConnectionError("x"),
        redis.exceptions.TimeoutError("x"),
        redis.exceptions.BusyLoadingError("x"),
        nats.errors.TimeoutError(),
        nats.errors.NoRespondersError(),
        nats.errors.ConnectionClosedError(),
        aetcd.ConnectionFailedError("x"),
        TimeoutError(),
        ConnectionRefusedError(),
        UnavailableError("etcd away"),
    ],
)
def test_transient_errors_are_retried(exc: BaseException) -> None:
    assert is_retryable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        redis.exceptions.ResponseError("LGMESH_STALE_OWNER 7"),
        StaleOwnerError("fenced"),
        SessionLostError("no session"),
        BackendUnavailableError("spent", backend="redis"),
        InvalidArgumentError("bad"),
        ValueError("bug"),
        KeyError("bug"),
    ],
)
def test_verdicts_and_bugs_are_not_retried(exc: BaseException) -> None:
    assert not is_retryable(exc)


class Flaky:
    def __init__(self, failures: int, exc: BaseException) -> None:
        self.failures, self.exc, self.calls = failures, exc, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return "ok"


FAST = Backoff(initial=0.001, maximum=0.004)


async def test_retries_until_success_within_the_budget() -> None:
    fn = Flaky(5, redis.exceptions.ConnectionError("down"))
    assert await Retry(budget=5, backoff=FAST).call(fn) == "ok"
    assert fn.calls == 6


async def test_gives_up_with_the_last_error_once_the_budget_is_spent() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # each failure costs a second
        return now[0]

    fn = Flaky(100, redis.exceptions.ConnectionError("down"))
    with pytest.raises(redis.exceptions.ConnectionError):
        await Retry(budget=3, backoff=FAST).call(fn, clock=clock)
    assert 2 <= fn.calls <= 5


async def test_a_zero_budget_is_a_single_attempt() -> None:
    fn = Flaky(1, TimeoutError())
    with pytest.raises(TimeoutError):
        await Retry(budget=0, backoff=FAST).call(fn)
    assert fn.calls == 1


async def test_non_retryable_errors_pass_at_once() -> None:
    fn = Flaky(1, StaleOwnerError("fenced"))
    with pytest.raises(StaleOwnerError):
        await Retry(budget=5, backoff=FAST).call(fn)
    assert fn.calls == 1


async def test_abort_ends_the_retries_with_its_own_error() -> None:
    fn = Flaky(100, redis.exceptions.ConnectionError("down"))
    state = {"n": 0}

    def abort() -> None:
        state["n"] += 1
        if state["n"] >= 3:
            raise StaleOwnerError("lease expired while waiting")

    with pytest.raises(StaleOwnerError):
        await Retry(budget=30, backoff=FAST).call(fn, abort=abort)
    assert fn.calls <= 3

"""A step's pending writes: a failed save reaches every waiter and logs nothing else."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from mesh_core.adapters.redis._checkpoint_steps import StepWrites, settle_all
from mesh_core.errors import StaleOwnerError


async def test_a_failed_save_reaches_waiters_and_leaves_no_unretrieved_future() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
    steps = StepWrites()
    key = ("t", "", "c1")
    saver = steps.add(key, ["w1"], "7")  # the task that saves the group (raises itself)
    waiter = steps.add(key, ["w2"], "7")  # a task that awaits its entry
    taken = steps.take_if_waiting(key, saver)
    assert taken == [saver, waiter]
    exc = StaleOwnerError("owned by a newer holder")
    settle_all(taken, exc)
    with pytest.raises(StaleOwnerError):
        await waiter.future
    del saver, waiter, taken
    gc.collect()
    await asyncio.sleep(0)
    assert not [c for c in reported if "never retrieved" in str(c.get("message", ""))]

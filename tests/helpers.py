"""Test helpers shared by every suite."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from mesh_core.localservers import find_free_port

__all__ = ["assert_eventually", "assert_eventually_sync", "find_free_port", "unique_prefix"]

T = TypeVar("T")


def unique_prefix(tag: str = "t") -> str:
    return f"{tag}{uuid.uuid4().hex[:10]}"


async def assert_eventually(
    fn: Callable[[], Awaitable[T]] | Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition not met",
) -> T:
    """Call ``fn`` until it returns a truthy value without raising AssertionError."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            res = fn()
            if asyncio.iscoroutine(res) or isinstance(res, Awaitable):
                res = await res  # type: ignore[misc]
            if res:
                return res  # type: ignore[return-value]
            last = None
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout}s") from last
        await asyncio.sleep(interval)


def assert_eventually_sync(
    fn: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition not met",
) -> T:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            res = fn()
            if res:
                return res
            last = None
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout}s") from last
        time.sleep(interval)


def process_alive(pid: int) -> bool:
    """``pid`` runs (exists and is no zombie); Linux /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False

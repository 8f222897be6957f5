"""A superstep's last writes and its checkpoint in one round trip.

Under durability "sync", LangGraph saves each finished task's writes (``aput_writes``)
as soon as the task ends, then the step's checkpoint (``aput``) once every task of the
step has ended. For the last task of a step the two are submitted in the same
synchronous stretch of the loop. :class:`StepWrites` holds a task's writes for one turn
of the event loop: if the checkpoint whose parent they belong to is put meanwhile, the
writes travel inside that checkpoint's script call; if not (siblings still running),
they are saved at once, alone. So a finished task's writes still survive a crash of
its siblings, and a single-task step costs one round trip instead of two.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

__all__ = ["PendingWrites", "StepWrites"]

Key = tuple[str, str, str]  # (thread_id, checkpoint_ns, checkpoint_id the writes belong to)


@dataclass(eq=False)
class PendingWrites:
    args: list[str | bytes]
    token: str
    future: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, exc: BaseException | None = None) -> None:
        if self.future.done():
            return
        if exc is None:
            self.future.set_result(None)
        elif isinstance(exc, asyncio.CancelledError):
            self.future.cancel()
        else:
            self.future.set_exception(exc)
            # The caller that saved the group raises ``exc`` itself and does not await its
            # own entry: mark the exception seen, or asyncio logs "Future exception was
            # never retrieved" with a traceback when the entry is collected. Waiters that
            # await their entry still get ``exc``.
            self.future.exception()


class StepWrites:
    """Writes waiting (one loop turn) to ride along with their step's checkpoint."""

    def __init__(self) -> None:
        self._pending: dict[Key, list[PendingWrites]] = {}

    def add(self, key: Key, args: list[str | bytes], token: str) -> PendingWrites:
        entry = PendingWrites(args, token)
        self._pending.setdefault(key, []).append(entry)
        return entry

    def take(self, key: Key, token: str) -> list[PendingWrites]:
        """Claim every waiting entry of ``key`` written under ``token``."""
        group = self._pending.get(key)
        if not group:
            return []
        mine = [e for e in group if e.token == token]
        rest = [e for e in group if e.token != token]
        if rest:
            self._pending[key] = rest
        else:
            del self._pending[key]
        return mine

    def take_if_waiting(self, key: Key, entry: PendingWrites) -> list[PendingWrites] | None:
        """If ``entry`` is still waiting, claim it with its peers (to save them now);
        None if a checkpoint put already took it."""
        group = self._pending.get(key)
        if group is None or entry not in group:
            return None
        return self.take(key, entry.token)


def joined(entries: list[PendingWrites]) -> list[str | bytes]:
    out: list[str | bytes] = []
    for e in entries:
        out.extend(e.args)
    return out


def settle_all(entries: list[PendingWrites], exc: BaseException | None = None) -> None:
    for e in entries:
        e.settle(exc)

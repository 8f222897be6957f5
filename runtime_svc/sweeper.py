"""Adopt orphaned runs: recorded as running, but nobody holds their thread any more.

Every runtime runs one. A gateway that was streaming an orphaned run re-dispatches it
itself; the sweeper is for runs nobody watches (background runs, a dead gateway). It
waits ``grace`` seconds after the run's last update so the streaming gateway goes first,
and adopts only by taking the thread's lease (so exactly one runtime adopts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from mesh_core.adapters.redis.records import ACTIVE_STATUSES, RecordStore
from mesh_core.errors import MeshError
from runtime_svc.manager import RunManager
from runtime_svc.runs import RunRequest

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(
        self,
        manager: RunManager,
        records: RecordStore,
        owner_of: Any,
        *,
        interval: float = 1.0,
        grace: float = 2.0,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        """``active()``: whether this runtime may adopt now (it has an etcd session and
        reaches its backends); a runtime that could not drive a run never takes one."""
        self.manager = manager
        self.records = records
        self._owner_of = owner_of
        self.interval = interval
        self.grace = grace
        self._active = active
        self._task: asyncio.Task[None] | None = None
        self.adopted: list[str] = []

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception as exc:  # keep sweeping; the next pass retries
                log.warning("sweep failed: %s", type(exc).__name__)
            await asyncio.sleep(self.interval)

    async def sweep_once(self) -> list[str]:
        adopted: list[str] = []
        if self.manager.draining or not self._active():
            return adopted
        for run_id, scoped in await self.records.active_runs():
            if run_id in self.manager.runs:
                continue
            if await self._owner_of(scoped) is not None:
                continue
            rec = await self.records.get_run_scoped(scoped, run_id)
            if rec is None or rec.status not in ACTIVE_STATUSES:
                continue
            if time.time() - rec.updated_at < self.grace:
                continue
            try:
                await self.manager.submit(RunRequest.from_record(rec, resume=True))
            except MeshError as exc:
                log.info("sweeper: could not adopt run %s: %s", run_id, exc.message)
                continue
            log.info("sweeper adopted run %s of thread %s", run_id, scoped)
            adopted.append(run_id)
            self.adopted.append(run_id)
        return adopted

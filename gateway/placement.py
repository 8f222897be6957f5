"""Where a thread runs: its current owner, else rendezvous hashing over live runtimes.

:class:`MeshView` keeps the gateway's copy of etcd's ownership and registry keys (one
list, then one watch on the mesh's prefix; a broken watch lists again). Placement
reads it without a round trip, and the dispatcher learns within moments that a
thread changed owner (its owner paused past the lease, was cut off, or died), so a
client's stream moves to the new owner after about the lease TTL, not after a TCP
timeout. While the view is not in sync (etcd away), placement reads etcd directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Iterable

import aetcd
import aetcd.exceptions

from mesh_core.adapters.etcd.keys import EtcdKeys
from mesh_core.adapters.etcd.leases import ThreadOwner, decode_thread_owner, read_thread_owner
from mesh_core.adapters.etcd.registry import RuntimeInfo, list_runtimes
from mesh_core.errors import UnavailableError
from mesh_core.reasons import Reason
from mesh_core.retry import Backoff

__all__ = ["MeshView", "Placement", "rendezvous_order"]

log = logging.getLogger(__name__)


def _score(thread_id: str, runtime_id: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(f"{thread_id}|{runtime_id}".encode(), digest_size=8).digest(), "big"
    )


def rendezvous_order(thread_id: str, runtimes: Iterable[RuntimeInfo]) -> list[RuntimeInfo]:
    """Runtimes by preference for ``thread_id`` (highest random weight first)."""
    return sorted(runtimes, key=lambda r: _score(thread_id, r.runtime_id), reverse=True)


class MeshView:
    """A live copy of the thread owners and the runtime registry (list + watch)."""

    def __init__(self, client: aetcd.Client, prefix: str) -> None:
        self.client = client
        self.keys = EtcdKeys(prefix)
        self._owners: dict[str, ThreadOwner] = {}
        self._runtimes: dict[str, RuntimeInfo] = {}
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._sync_loop(), name="mesh-view")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- reading -------------------------------------------------------------------------
    def owner(self, scoped_thread: str) -> ThreadOwner | None:
        return self._owners.get(scoped_thread)

    def runtimes(self) -> list[RuntimeInfo]:
        return sorted(self._runtimes.values(), key=lambda r: r.runtime_id)

    async def owner_moved(self, scoped_thread: str, address: str, *, grace: float = 0.2) -> None:
        """Return once ``address`` has not owned the thread for ``grace`` seconds."""
        waiter = asyncio.Event()
        self._waiters.setdefault(scoped_thread, set()).add(waiter)
        try:
            while True:
                owner = self._owners.get(scoped_thread)
                if self.synced.is_set() and (owner is None or owner.address != address):
                    waiter.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waiter.wait(), grace)
                    owner = self._owners.get(scoped_thread)
                    if owner is None or owner.address != address:
                        return
                    continue
                waiter.clear()
                await waiter.wait()
        finally:
            waiters = self._waiters.get(scoped_thread)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    self._waiters.pop(scoped_thread, None)

    # -- syncing -------------------------------------------------------------------------
    def _notify(self, scoped_thread: str | None = None) -> None:
        groups = (
            [self._waiters.get(scoped_thread, set())]
            if scoped_thread is not None
            else list(self._waiters.values())
        )
        for group in groups:
            for w in group:
                w.set()

    def _apply(self, key: str, value: aetcd.KeyValue | None) -> None:
        threads, runtimes = self.keys.threads_prefix, self.keys.runtimes_prefix
        if key.startswith(threads):
            scoped = key[len(threads) :]
            if value is None:
                self._owners.pop(scoped, None)
            else:
                self._owners[scoped] = decode_thread_owner(scoped, value)
            self._notify(scoped)
        elif key.startswith(runtimes):
            rid = key[len(runtimes) :]
            if value is None:
                self._runtimes.pop(rid, None)
                return
            try:
                self._runtimes[rid] = RuntimeInfo.decode(value.value)
            except ValueError:
                log.warning("skipping malformed runtime registry entry %r", rid)

    async def _list(self) -> int:
        got = await self.client.get_prefix(self.keys.root.encode())
        self._owners.clear()
        self._runtimes.clear()
        for kv in got:
            self._apply(kv.key.decode(errors="replace"), kv)
        self._notify()
        return int(got.header.revision)

    async def _sync_loop(self) -> None:
        backoff = Backoff(initial=0.1, maximum=2.0)
        failures = 0
        while True:
            try:
                revision = await self._list()
                watch = await self.client.watch_prefix(
                    self.keys.root.encode(), start_revision=revision + 1
                )
                self.synced.set()
                failures = 0
                try:
                    async for event in watch:
                        kv = event.kv
                        key = kv.key.decode(errors="replace")
                        self._apply(key, None if event.kind == aetcd.EventKind.DELETE else kv)
                finally:
                    with contextlib.suppress(Exception):
                        await watch.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, aetcd.exceptions.UnauthenticatedError):
                    rejected = getattr(self.client, "token_rejected", None)
                    if rejected is not None:
                        rejected()
                if failures == 0:
                    log.warning("etcd view out of sync (%s); re-listing", type(exc).__name__)
            self.synced.clear()
            self._notify()
            await asyncio.sleep(backoff.delay(failures))
            failures += 1


class Placement:
    def __init__(
        self,
        client: aetcd.Client,
        prefix: str,
        *,
        view: MeshView | None = None,
        cache_ttl: float = 1.0,
    ) -> None:
        self.client = client
        self.keys = EtcdKeys(prefix)
        self.view = view
        self.cache_ttl = cache_ttl
        self._cache: list[RuntimeInfo] = []
        self._cached_at = 0.0

    @property
    def live(self) -> bool:
        return self.view is not None and self.view.synced.is_set()

    async def owner(self, scoped_thread: str) -> ThreadOwner | None:
        if self.view is not None and self.live:
            return self.view.owner(scoped_thread)
        return await read_thread_owner(self.client, self.keys, scoped_thread)

    async def runtimes(self, *, fresh: bool = False) -> list[RuntimeInfo]:
        if self.view is not None and self.live:
            return [r for r in self.view.runtimes() if "owner" in r.roles]
        now = time.monotonic()
        if fresh or now - self._cached_at > self.cache_ttl or not self._cache:
            self._cache = [
                r for r in await list_runtimes(self.client, self.keys) if "owner" in r.roles
            ]
            self._cached_at = now
        return self._cache

    async def candidates(
        self, scoped_thread: str, *, exclude: Iterable[str] = (), owner_lookup: bool = True
    ) -> list[str]:
        """Addresses to try for the thread, best first: its owner, then by rendezvous hash."""
        skip = set(exclude)
        out: list[str] = []
        owner = await self.owner(scoped_thread) if owner_lookup else None
        if owner is not None and owner.address and owner.address not in skip:
            out.append(owner.address)
        live = await self.runtimes(fresh=bool(skip))
        ordered = rendezvous_order(scoped_thread, live)
        with_room = [r for r in ordered if r.has_room] or ordered
        out += [r.address for r in with_room if r.address not in skip and r.address not in out]
        if not out:
            raise UnavailableError("no runtime is available", reason=Reason.NO_RUNTIME)
        return out

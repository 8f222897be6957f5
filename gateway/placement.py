"""Where a thread runs: its current owner, else rendezvous hashing over live runtimes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable

import aetcd

from mesh_core.adapters.etcd.keys import EtcdKeys
from mesh_core.adapters.etcd.leases import read_thread_owner
from mesh_core.adapters.etcd.registry import RuntimeInfo, list_runtimes
from mesh_core.errors import UnavailableError

__all__ = ["Placement", "rendezvous_order"]


def _score(thread_id: str, runtime_id: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(f"{thread_id}|{runtime_id}".encode(), digest_size=8).digest(), "big"
    )


def rendezvous_order(thread_id: str, runtimes: Iterable[RuntimeInfo]) -> list[RuntimeInfo]:
    """Runtimes by preference for ``thread_id`` (highest random weight first)."""
    return sorted(runtimes, key=lambda r: _score(thread_id, r.runtime_id), reverse=True)


class Placement:
    def __init__(self, client: aetcd.Client, prefix: str, *, cache_ttl: float = 1.0) -> None:
        self.client = client
        self.keys = EtcdKeys(prefix)
        self.cache_ttl = cache_ttl
        self._cache: list[RuntimeInfo] = []
        self._cached_at = 0.0

    async def runtimes(self, *, fresh: bool = False) -> list[RuntimeInfo]:
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
        owner = (
            await read_thread_owner(self.client, self.keys, scoped_thread) if owner_lookup else None
        )
        if owner is not None and owner.address and owner.address not in skip:
            out.append(owner.address)
        live = await self.runtimes(fresh=bool(skip))
        ordered = rendezvous_order(scoped_thread, live)
        with_room = [r for r in ordered if r.has_room] or ordered
        out += [r.address for r in with_room if r.address not in skip and r.address not in out]
        if not out:
            raise UnavailableError("no runtime is available", reason="NO_RUNTIME")
        return out

"""Thread ownership leases in etcd, with fencing tokens.

A runtime owns thread T while the key ``/<prefix>/threads/<T>`` exists with its
session lease attached. The key is created by a transaction that only succeeds
if the key does not exist (``create_revision == 0``), so at most one runtime owns
T at a time. The key's ``create_revision`` is the **fencing token**: it grows
with every new owner, and every checkpoint write for T carries it so that Redis
rejects writes of an older owner (a zombie paused past its TTL).

Waiting for a busy thread uses an etcd watch for the key's deletion (released by
the owner, or deleted by etcd when the owner's lease expired), not polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass

import aetcd
import aetcd.exceptions

from mesh_core.adapters.etcd.keys import EtcdKeys
from mesh_core.adapters.etcd.session import EtcdSession, Generation, translate_etcd_errors
from mesh_core.errors import (
    DeadlineExceededError,
    SessionLostError,
    StaleOwnerError,
    UnavailableError,
)
from mesh_core.retry import Backoff, Retry

__all__ = [
    "ThreadLease",
    "ThreadLeases",
    "ThreadOwner",
    "decode_thread_owner",
    "read_thread_owner",
]

log = logging.getLogger(__name__)

DEFAULT_RELEASE_TIMEOUT = 10.0


@dataclass(frozen=True)
class ThreadOwner:
    """Who owns a thread right now, as stored in etcd."""

    thread_id: str
    holder_id: str
    address: str
    token: int
    lease_id: int


class ThreadLease:
    """Ownership of one thread by this process; ``token`` is the fencing token.

    Bound to the session generation (lease) it was taken under: once that generation
    is lost, the thread lease is invalid for good, even after the session healed.
    """

    def __init__(
        self,
        session: EtcdSession,
        thread_id: str,
        token: int,
        holder_id: str,
        generation: Generation | None = None,
    ) -> None:
        self.thread_id = thread_id
        self.token = token
        self.holder_id = holder_id
        self._session = session
        gen = generation or session.generation
        if gen is None:
            raise SessionLostError("etcd session has no lease yet")
        self._gen = gen
        self._released = False

    @property
    def generation(self) -> Generation:
        return self._gen

    @property
    def valid(self) -> bool:
        """True while this process may still commit for the thread (self-fencing)."""
        return not self._released and self._session.generation_valid(self._gen)

    def check(self) -> None:
        """Raise :class:`StaleOwnerError` unless this process may still commit for the thread.

        Call it right before every commit. It is the first line of defence; the
        Redis fence (the token) is the second, for stalls between check and write.
        """
        if self._released:
            raise StaleOwnerError("thread lease was released", metadata=self._error_metadata())
        if not self._session.generation_valid(self._gen):
            raise StaleOwnerError(
                "thread lease expired: this runtime no longer owns the thread",
                metadata=self._error_metadata(),
            )

    def _error_metadata(self) -> dict[str, str]:
        return {"thread_id": self.thread_id, "fencing_token": str(self.token)}

    def __repr__(self) -> str:
        return (
            f"ThreadLease(thread_id={self.thread_id!r}, token={self.token}, "
            f"holder_id={self.holder_id!r}, released={self._released})"
        )


def _encode_owner(holder_id: str, address: str) -> bytes:
    return json.dumps({"holder_id": holder_id, "address": address}).encode()


def decode_thread_owner(thread_id: str, kv: aetcd.KeyValue) -> ThreadOwner:
    """The owner stored in a thread key's value (address unknown if malformed)."""
    holder_id = address = ""
    try:
        data = json.loads(kv.value)
        holder_id = str(data["holder_id"])
        address = str(data["address"])
    except (ValueError, KeyError, TypeError):
        log.warning("thread owner key for %r has a malformed value; owner unknown", thread_id)
    return ThreadOwner(
        thread_id=thread_id,
        holder_id=holder_id,
        address=address,
        token=int(kv.create_revision),
        lease_id=int(kv.lease),
    )


async def read_thread_owner(
    client: aetcd.Client, keys: EtcdKeys, thread_id: str
) -> ThreadOwner | None:
    """The current owner of a thread, or None (for readers without a session, e.g. the gateway)."""
    with translate_etcd_errors("thread owner lookup", client):
        got = await client.get(keys.thread_owner(thread_id).encode())
    return None if got is None else decode_thread_owner(thread_id, got)


class ThreadLeases:
    """Acquire, wait for and release thread ownership for one holder (a runtime process).

    Use one instance per holder: it remembers which threads it holds, which makes
    ``try_acquire`` safe to retry after a lost reply (it adopts its own key) while
    a second ``try_acquire`` of a thread it already holds returns None.
    """

    def __init__(
        self,
        session: EtcdSession,
        prefix: str | None,
        holder_id: str,
        holder_address: str,
    ) -> None:
        if not holder_id:
            raise ValueError("holder_id must not be empty")
        self.session = session
        self.keys = EtcdKeys(session.settings.prefix if prefix is None else prefix)
        self.holder_id = holder_id
        self.holder_address = holder_address
        self._held: dict[str, ThreadLease] = {}

    @property
    def client(self) -> aetcd.Client:
        return self.session.client

    def held(self, thread_id: str) -> ThreadLease | None:
        """The lease this holder has on the thread, if any (not checked against etcd)."""
        return self._held.get(thread_id)

    async def _try(self, thread_id: str) -> tuple[ThreadLease | None, int]:
        """One acquire attempt: the lease (or None) and the store revision it saw."""
        gen = self.session.require_valid("own threads")
        key = self.keys.thread_owner(thread_id).encode()
        t = self.client.transactions
        with self.session.lease_bound("thread lease acquire", gen):
            ok, responses = await self.client.transaction(
                compare=[t.create(key) == 0],
                success=[
                    t.put(
                        key,
                        _encode_owner(self.holder_id, self.holder_address),
                        gen.lease_id,
                    ),
                    t.get(key),
                ],
                failure=[t.get(key)],
            )
        found = responses[-1]
        _, kv = found[0]
        revision = int(kv.header.revision)
        if ok:
            lease = ThreadLease(
                self.session, thread_id, int(kv.create_revision), self.holder_id, gen
            )
            self._held[thread_id] = lease
            return lease, revision
        current = decode_thread_owner(thread_id, kv)
        if (
            current.lease_id == gen.lease_id
            and current.holder_id == self.holder_id
            and (thread_id not in self._held or not self._held[thread_id].valid)
        ):
            # Created by an earlier attempt of ours whose reply was lost: adopt it.
            lease = ThreadLease(self.session, thread_id, current.token, self.holder_id, gen)
            self._held[thread_id] = lease
            return lease, revision
        return None, revision

    async def try_acquire(self, thread_id: str) -> ThreadLease | None:
        """Take the thread if nobody owns it; None if it is owned (also by this holder)."""
        lease, _ = await self._try(thread_id)
        return lease

    async def _wait_deleted(self, key: bytes, start_revision: int) -> bool:
        """Wait for ``key`` to be deleted at or after ``start_revision``.

        True on a deletion; False if the watch ended without one (compaction, client
        shutdown, a watch stream broken by an etcd restart): the caller re-reads the key.
        """
        with translate_etcd_errors("thread lease watch", self.client):
            try:
                watch = await self.client.watch(
                    key, start_revision=start_revision, kind=aetcd.EventKind.DELETE
                )
            except (aetcd.RevisionCompactedError, aetcd.exceptions.InternalError):
                return False
            try:
                async for _event in watch:
                    return True
            except (aetcd.RevisionCompactedError, aetcd.exceptions.InternalError):
                return False
            finally:
                with contextlib.suppress(Exception):
                    await watch.cancel()
        return False

    async def acquire(self, thread_id: str, timeout: float | None = None) -> ThreadLease:
        """Take the thread, waiting (by watch) for the owner to release it or to expire.

        Raises DeadlineExceededError after ``timeout`` seconds, SessionLostError if the
        session is lost. etcd outages while waiting are retried with backoff.
        """
        key = self.keys.thread_owner(thread_id).encode()
        backoff = Backoff(initial=0.05, maximum=1.0)
        failures = 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        lease, revision = await self._try(thread_id)
                        if lease is not None:
                            return lease
                        if await self._wait_deleted(key, revision + 1):
                            failures = 0
                        else:
                            await asyncio.sleep(backoff.delay(failures))
                            failures += 1
                    except SessionLostError:
                        raise
                    except UnavailableError as exc:
                        delay = backoff.delay(failures)
                        failures += 1
                        log.warning(
                            "waiting for thread %r: %s (%s); retrying in %.2fs",
                            thread_id,
                            exc.message,
                            type(exc.__cause__).__name__,
                            delay,
                        )
                        await asyncio.sleep(delay)
        except TimeoutError as exc:
            raise DeadlineExceededError(
                f"thread still owned by another runtime after {timeout}s",
                reason="THREAD_BUSY",
                metadata={"thread_id": thread_id},
            ) from exc

    async def release(self, lease: ThreadLease, timeout: float = DEFAULT_RELEASE_TIMEOUT) -> bool:
        """Give the thread up: delete the key only if it is still this lease's (same token).

        The lease is invalid from the first moment of the call. Returns True if the key
        was deleted, False if it was already gone or taken over. etcd outages are retried
        with backoff for up to ``timeout`` seconds, then UnavailableError is raised (the
        key then goes away with the session lease at the latest).
        """
        lease._released = True
        if self._held.get(lease.thread_id) is lease:
            del self._held[lease.thread_id]
        if lease.generation.revoked:
            return False  # the key went with its lease
        key = self.keys.thread_owner(lease.thread_id).encode()
        t = self.client.transactions

        async def attempt() -> bool:
            with translate_etcd_errors("thread lease release", self.client):
                ok, _ = await self.client.transaction(
                    compare=[t.create(key) == lease.token], success=[t.delete(key)], failure=[]
                )
            return bool(ok)

        return await Retry(budget=timeout).call(
            attempt, what=f"releasing thread {lease.thread_id!r}"
        )

    async def owner(self, thread_id: str) -> ThreadOwner | None:
        """The thread's current owner (any holder), or None."""
        return await read_thread_owner(self.client, self.keys, thread_id)

    async def wait_released(self, thread_id: str, timeout: float) -> bool:
        """Wait until nobody owns the thread; False if it is still owned after ``timeout``."""
        key = self.keys.thread_owner(thread_id).encode()
        backoff = Backoff(initial=0.05, maximum=1.0)
        failures = 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        with translate_etcd_errors("thread owner lookup", self.client):
                            got = await self.client.get(key)
                        if got is None:
                            return True
                        if await self._wait_deleted(key, int(got.header.revision) + 1):
                            return True
                    except UnavailableError as exc:
                        log.warning(
                            "waiting for thread %r release: %s; retrying",
                            thread_id,
                            type(exc.__cause__).__name__,
                        )
                    await asyncio.sleep(backoff.delay(failures))
                    failures += 1
        except TimeoutError:
            return False

"""Thread leases against a real etcd: exclusivity, fencing tokens, watch-based waiting, expiry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from mesh_core.adapters.etcd import SESSION_LOST, EtcdSession, ThreadLeases
from mesh_core.config import InfraSettings
from mesh_core.errors import DeadlineExceededError, StaleOwnerError, UnavailableError

pytestmark = pytest.mark.integration

TTL = 2

SessionFactory = Callable[..., Awaitable[EtcdSession]]


@pytest.fixture
async def new_session(infra_settings: InfraSettings) -> AsyncIterator[SessionFactory]:
    sessions: list[EtcdSession] = []

    async def make(ttl: int = TTL, margin: float = 0.5, renew: bool = True) -> EtcdSession:
        session = EtcdSession(infra_settings, ttl=ttl, margin=margin, renew=renew)
        await session.start()
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        await session.close()


async def test_try_acquire_is_exclusive_and_the_token_is_the_create_revision(
    new_session: SessionFactory,
) -> None:
    a = ThreadLeases(await new_session(), None, "rt-a", "127.0.0.1:1001")
    b = ThreadLeases(await new_session(), None, "rt-b", "127.0.0.1:1002")

    lease = await a.try_acquire("t1")
    assert lease is not None
    assert await b.try_acquire("t1") is None
    assert await a.try_acquire("t1") is None  # not re-entrant within one holder
    assert a.held("t1") is lease

    raw = await a.client.get(a.keys.thread_owner("t1").encode())
    assert raw is not None
    assert lease.token == raw.create_revision
    assert raw.lease == a.session.lease_id

    owner = await b.owner("t1")
    assert owner is not None
    assert (owner.holder_id, owner.address, owner.token) == ("rt-a", "127.0.0.1:1001", lease.token)
    assert await b.owner("nobody-owns-this") is None
    lease.check()


async def test_tokens_grow_with_each_owner_and_release_is_fenced(
    new_session: SessionFactory,
) -> None:
    a = ThreadLeases(await new_session(), None, "rt-a", "a")
    b = ThreadLeases(await new_session(), None, "rt-b", "b")

    first = await a.try_acquire("t")
    assert first is not None
    assert await a.release(first) is True
    with pytest.raises(StaleOwnerError, match="released"):
        first.check()

    second = await b.try_acquire("t")
    assert second is not None
    assert second.token > first.token
    # A stale release (old token) must not delete the new owner's key.
    assert await a.release(first) is False
    owner = await a.owner("t")
    assert owner is not None
    assert owner.holder_id == "rt-b"
    assert owner.token == second.token


async def test_try_acquire_adopts_its_own_key_after_a_lost_reply(
    new_session: SessionFactory,
) -> None:
    session = await new_session()
    first_try = ThreadLeases(session, None, "rt-a", "a")
    lease = await first_try.try_acquire("t")
    assert lease is not None
    # A retry by the same holder that never saw the reply (fresh bookkeeping):
    retry = ThreadLeases(session, None, "rt-a", "a")
    adopted = await retry.try_acquire("t")
    assert adopted is not None
    assert adopted.token == lease.token
    # Same session but another holder id does not adopt it.
    assert await ThreadLeases(session, None, "rt-other", "o").try_acquire("t") is None


async def test_acquire_waits_by_watch_and_wins_right_after_release(
    new_session: SessionFactory,
) -> None:
    a = ThreadLeases(await new_session(), None, "rt-a", "a")
    b = ThreadLeases(await new_session(), None, "rt-b", "b")
    held = await a.try_acquire("t")
    assert held is not None

    waiter = asyncio.create_task(b.acquire("t", timeout=10))
    assert not await b.wait_released("t", timeout=0.3)
    assert not waiter.done()

    released_at = time.monotonic()
    assert await a.release(held)
    won = await asyncio.wait_for(waiter, timeout=5)
    latency = time.monotonic() - released_at
    assert won.holder_id == "rt-b"
    assert won.token > held.token
    assert latency < 0.5, f"watch wake-up took {latency:.3f}s"


async def test_acquire_times_out_with_deadline_exceeded(new_session: SessionFactory) -> None:
    a = ThreadLeases(await new_session(), None, "rt-a", "a")
    b = ThreadLeases(await new_session(), None, "rt-b", "b")
    assert await a.try_acquire("t") is not None
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError) as info:
        await b.acquire("t", timeout=0.4)
    assert 0.35 < time.monotonic() - started < 2
    assert info.value.reason == "THREAD_BUSY"
    assert info.value.metadata == {"thread_id": "t"}


async def test_stalled_holder_fences_itself_before_the_next_owner_takes_over(
    new_session: SessionFactory,
) -> None:
    stalled = await new_session(renew=False)  # fencing alone (healing: test_session_heals...)
    a = ThreadLeases(stalled, None, "rt-a", "a")
    b = ThreadLeases(await new_session(), None, "rt-b", "b")
    lease_a = await a.try_acquire("t")
    assert lease_a is not None

    lost_at: list[float] = []
    stalled.on_lost(lambda: lost_at.append(time.monotonic()))
    paused_at = time.monotonic()
    stalled.pause_keepalive()

    lease_b = await b.acquire("t", timeout=TTL + 3)
    acquired_at = time.monotonic()

    assert len(lost_at) == 1, "on_lost must fire exactly once"
    assert lost_at[0] < acquired_at, "A must stop committing before B can own the thread"
    assert acquired_at - paused_at < TTL + 1
    assert lease_b.token > lease_a.token
    with pytest.raises(StaleOwnerError):
        lease_a.check()
    # A lost session can no longer acquire anything.
    with pytest.raises(UnavailableError) as info:
        await a.try_acquire("other")
    assert info.value.reason == SESSION_LOST


async def test_close_revokes_the_lease_and_frees_its_threads_at_once(
    new_session: SessionFactory, infra_settings: InfraSettings
) -> None:
    observer = ThreadLeases(await new_session(), None, "rt-b", "b")
    session = EtcdSession(infra_settings, ttl=30)
    await session.start()
    leases = ThreadLeases(session, None, "rt-a", "a")
    lease = await leases.try_acquire("t")
    assert lease is not None

    waiting = asyncio.create_task(observer.wait_released("t", timeout=10))
    started = time.monotonic()
    await session.close()
    assert await waiting is True
    assert time.monotonic() - started < 2  # far below the 30 s TTL
    assert await observer.owner("t") is None
    with pytest.raises(StaleOwnerError):
        lease.check()


async def test_wait_released_on_a_free_thread_returns_at_once(
    new_session: SessionFactory,
) -> None:
    leases = ThreadLeases(await new_session(), None, "rt-a", "a")
    assert await leases.wait_released("free", timeout=1) is True


async def test_lease_revoked_from_outside_loses_the_session(
    new_session: SessionFactory, infra_settings: InfraSettings
) -> None:
    session = await new_session(ttl=30)
    lost = asyncio.Event()
    session.on_lost(lost.set)
    leases = ThreadLeases(session, None, "rt-a", "a")
    lease = await leases.try_acquire("t")
    assert lease is not None
    outsider = await new_session()
    await outsider.client.revoke_lease(session.lease_id)  # e.g. an operator's etcdctl

    with pytest.raises(UnavailableError) as info:
        await leases.try_acquire("t2")
    assert info.value.reason == SESSION_LOST
    await asyncio.wait_for(lost.wait(), timeout=2)
    with pytest.raises(StaleOwnerError):
        lease.check()


async def test_session_heals_after_a_loss_and_owns_threads_again(
    new_session: SessionFactory,
) -> None:
    """A lost session grants itself a new lease: it re-acquires under a new token, while
    a lease taken under the lost one stays invalid."""
    session = await new_session()
    leases = ThreadLeases(session, None, "rt-a", "a")
    old = await leases.try_acquire("t")
    assert old is not None
    renewed = asyncio.Event()
    session.on_renewed(renewed.set)
    first = session.lease_id
    session.pause_keepalive()
    await asyncio.sleep(TTL)  # past the self-fencing deadline
    session.resume_keepalive()
    await asyncio.wait_for(renewed.wait(), timeout=TTL + 3)
    assert session.valid and session.lease_id != first
    with pytest.raises(StaleOwnerError):
        old.check()
    again = await leases.acquire("t", timeout=TTL + 3)  # the old key went with its lease
    assert again.token > old.token

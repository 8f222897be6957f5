"""EtcdSession's self-fencing arithmetic, healing and lifecycle, against an in-process fake
lease API (the real etcd is in tests/integration)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aetcd
import pytest

from mesh_core.adapters.etcd import EtcdSession, ThreadLease
from mesh_core.config import InfraSettings
from mesh_core.errors import StaleOwnerError, UnavailableError
from tests.helpers import assert_eventually


@dataclass
class _Granted:
    id: int
    ttl: int


@dataclass
class _KeepAliveReply:
    TTL: int


class FakeLeaseClient:
    """The four lease calls EtcdSession makes, with a switchable keepalive outcome."""

    def __init__(self) -> None:
        self.refreshes = 0
        self.grants = 0
        self.revoked: list[int] = []
        self.closed = False
        self.mode = "ok"  # ok | fail | expired
        self.grant_mode = "ok"  # ok | fail
        self.ttl = 1
        self.expired: set[int] = set()  # leases etcd forgot (e.g. after a long outage)

    async def lease(self, ttl: int) -> _Granted:
        if self.grant_mode == "fail":
            raise aetcd.ConnectionFailedError("etcd is down")
        self.grants += 1
        self.ttl = ttl
        return _Granted(id=0xABC + self.grants - 1, ttl=ttl)

    async def refresh_lease(self, lease_id: int) -> _KeepAliveReply:
        self.refreshes += 1
        if self.mode == "fail":
            raise aetcd.ConnectionFailedError("etcd is down")
        gone = self.mode == "expired" or lease_id in self.expired
        return _KeepAliveReply(TTL=0 if gone else self.ttl)

    async def revoke_lease(self, lease_id: int) -> None:
        self.revoked.append(lease_id)

    async def close(self) -> None:
        self.closed = True


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _session(fake: FakeLeaseClient, **kw: Any) -> EtcdSession:
    return EtcdSession(InfraSettings(prefix="unit"), lease_client_factory=lambda: fake, **kw)


@pytest.mark.parametrize(
    "kw",
    [
        {"ttl": 0},
        {"ttl": 2, "margin": 2},
        {"ttl": 2, "margin": -1},
        {"ttl": 2, "margin": 0.5, "keepalive_interval": 1.5},
    ],
)
def test_rejects_unsafe_settings(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EtcdSession(InfraSettings(), **kw)


async def test_valid_until_ttl_minus_margin_after_the_last_keepalive_was_sent() -> None:
    clock = ManualClock()
    fake = FakeLeaseClient()
    # The keepalive task sleeps ~20 real seconds: only the manual clock moves here.
    session = _session(fake, ttl=60, margin=5, keepalive_interval=20, clock=clock, renew=False)
    lost: list[str] = []
    session.on_lost(lambda: lost.append("lost"))
    await session.start()
    try:
        assert session.valid
        assert session.deadline == pytest.approx(1000.0 + 60 - 5)
        clock.now = 1054.9
        assert session.valid
        lease = ThreadLease(session, "t", token=7, holder_id="h")
        lease.check()
        clock.now = 1055.0
        assert not session.valid
        assert not lease.valid
        with pytest.raises(StaleOwnerError) as info:
            lease.check()
        assert info.value.metadata == {"thread_id": "t", "fencing_token": "7"}
        await assert_eventually(lambda: lost == ["lost"])
        # Once lost, always lost; callbacks fire once; late subscribers are called at once.
        clock.now = 1000.0
        assert not session.valid
        late: list[str] = []
        session.on_lost(lambda: late.append("late"))
        assert lost == ["lost"]
        assert late == ["late"]
    finally:
        await session.close()


async def test_keepalives_keep_it_valid_past_the_ttl() -> None:
    fake = FakeLeaseClient()
    session = _session(fake, ttl=1, margin=0.5, keepalive_interval=0.05)
    await session.start()
    try:
        start_deadline = session.deadline
        await assert_eventually(lambda: session.deadline > start_deadline + 1.0, timeout=5)
        assert session.valid
        assert fake.refreshes >= 10
    finally:
        await session.close()
    assert fake.revoked == [0xABC]
    assert fake.closed
    assert not session.valid


async def test_failing_keepalives_lose_the_session_at_the_deadline() -> None:
    fake = FakeLeaseClient()
    fake.mode = "fail"
    session = _session(fake, ttl=1, margin=0.5, keepalive_interval=0.1, renew=False)
    lost = asyncio.Event()
    session.on_lost(lost.set)
    await session.start()
    started = asyncio.get_running_loop().time()
    try:
        await asyncio.wait_for(lost.wait(), timeout=5)
        elapsed = asyncio.get_running_loop().time() - started
        assert elapsed <= 0.5 + 0.2  # ttl - margin, plus scheduling slack
        assert fake.refreshes >= 2  # it kept retrying until the deadline
        assert session.lost_reason is not None
        assert "deadline" in session.lost_reason
    finally:
        await session.close()
    # A lost lease is revoked (best effort) so its keys go at once, never twice.
    assert fake.revoked == [0xABC]


async def test_lease_reported_expired_by_etcd_loses_the_session_at_once() -> None:
    fake = FakeLeaseClient()
    fake.mode = "expired"
    session = _session(fake, ttl=30, margin=1, keepalive_interval=0.05, renew=False)
    lost = asyncio.Event()
    session.on_lost(lost.set)
    await session.start()
    try:
        await asyncio.wait_for(lost.wait(), timeout=2)
        assert session.lost_reason == "etcd reports the lease expired"
        assert not session.valid
    finally:
        await session.close()


async def test_close_does_not_fire_on_lost_and_a_failing_callback_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeLeaseClient()
    session = _session(fake, ttl=2)
    fired: list[int] = []
    session.on_lost(lambda: fired.append(1))
    async with session:
        assert session.valid
    assert fired == []
    assert not session.valid

    clock = ManualClock()
    session2 = _session(
        FakeLeaseClient(), ttl=60, margin=1, keepalive_interval=20, clock=clock, renew=False
    )

    def boom() -> None:
        raise RuntimeError("callback bug")

    session2.on_lost(boom)
    session2.on_lost(lambda: fired.append(2))
    await session2.start()
    try:
        clock.now += 100
        assert not session2.valid
        await assert_eventually(lambda: fired == [2])
    finally:
        await session2.close()
    assert fired == [2]  # a failing callback does not stop the others
    assert "on_lost callback failed" in caplog.text


async def test_pause_keepalive_stops_refreshes() -> None:
    fake = FakeLeaseClient()
    session = _session(fake, ttl=1, margin=0.5, keepalive_interval=0.05, renew=False)
    lost = asyncio.Event()
    session.on_lost(lost.set)
    await session.start()
    try:
        await assert_eventually(lambda: fake.refreshes >= 2)
        session.pause_keepalive()
        before = fake.refreshes
        await asyncio.wait_for(lost.wait(), timeout=3)
        assert fake.refreshes <= before + 1  # at most one already in flight
    finally:
        await session.close()


async def test_a_lost_session_heals_with_a_new_lease_and_old_thread_leases_stay_invalid() -> None:
    fake = FakeLeaseClient()
    session = _session(fake, ttl=1, margin=0.5, keepalive_interval=0.05)
    lost, renewed = asyncio.Event(), asyncio.Event()
    session.on_lost(lost.set)
    session.on_renewed(renewed.set)
    await session.start()
    try:
        old = ThreadLease(session, "t", token=1, holder_id="h")
        first = session.lease_id
        fake.expired.add(first)  # etcd forgot the lease (an outage longer than the TTL)
        await asyncio.wait_for(lost.wait(), timeout=3)
        await asyncio.wait_for(renewed.wait(), timeout=3)
        assert session.valid
        assert session.lease_id != first
        assert session.generation is not None and session.generation.number == 2
        assert not old.valid  # bound to the lost generation: never valid again
        with pytest.raises(StaleOwnerError):
            old.check()
        ThreadLease(session, "t", token=2, holder_id="h").check()
    finally:
        await session.close()


async def test_the_renew_gate_holds_a_new_lease_back_until_it_opens() -> None:
    fake = FakeLeaseClient()
    session = _session(fake, ttl=1, margin=0.5, keepalive_interval=0.05)
    gate_open = False
    asked: list[bool] = []  # each time the keepalive thread asked the gate, its answer

    def gate() -> bool:
        asked.append(gate_open)
        return gate_open

    session.set_renew_gate(gate)
    renewed = asyncio.Event()
    session.on_renewed(renewed.set)
    await session.start()
    try:
        await session.relinquish("backends unreachable")
        assert not session.valid
        assert 0xABC in fake.revoked  # its keys went at once
        # held back: the gate was asked (and said no) several times, and no lease came
        await assert_eventually(lambda: asked.count(False) >= 3, message="the gate asked")
        assert fake.grants == 1 and not renewed.is_set()
        gate_open = True
        await asyncio.wait_for(renewed.wait(), timeout=3)
        assert session.valid and fake.grants == 2
    finally:
        await session.close()


async def test_keepalives_go_on_while_the_event_loop_is_blocked() -> None:
    """Heavy work that blocks the loop for longer than the TTL does not cost the lease."""
    fake = FakeLeaseClient()
    session = _session(fake, ttl=1, margin=0.3, keepalive_interval=0.1)
    lost: list[int] = []
    session.on_lost(lambda: lost.append(1))
    await session.start()
    try:
        before = fake.refreshes
        time.sleep(2.0)  # blocks the event loop (the keepalive thread keeps going)
        assert fake.refreshes >= before + 5
        assert session.valid
        # two more keepalive rounds: the first was answered and looked at before the
        # second was sent, so a loss it found is queued on this loop by now; sleep(0)
        # lets anything queued run first
        after = fake.refreshes
        await assert_eventually(lambda: fake.refreshes >= after + 2, message="keepalives")
        await asyncio.sleep(0)
        assert lost == [] and session.valid
    finally:
        await session.close()


async def test_start_fails_clearly_when_etcd_never_answers() -> None:
    fake = FakeLeaseClient()
    fake.grant_mode = "fail"
    session = _session(fake, ttl=2)
    with pytest.raises(UnavailableError, match="granted no lease"):
        await session.start(timeout=0.5)

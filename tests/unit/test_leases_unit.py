"""Unit tests of the etcd adapter's pure parts: key names, codecs, errors, backoff."""

from __future__ import annotations

import aetcd
import pytest

from mesh_core.adapters.etcd import EtcdKeys, RuntimeInfo
from mesh_core.adapters.etcd.session import translate_etcd_errors
from mesh_core.errors import InternalError, UnavailableError


def test_keys_are_namespaced_and_invertible() -> None:
    keys = EtcdKeys("mesh1")
    assert keys.root == "/mesh1/"
    assert keys.thread_owner("t-1") == "/mesh1/threads/t-1"
    assert keys.thread_owner("a/b").startswith(keys.threads_prefix)
    assert keys.thread_id_of(keys.thread_owner("a/b")) == "a/b"
    assert keys.runtime("rt-9") == "/mesh1/runtimes/rt-9"
    # Two meshes never share a key, and threads never collide with runtimes.
    assert not EtcdKeys("mesh2").thread_owner("t").startswith(keys.root)
    assert not keys.thread_owner("x").startswith(keys.runtimes_prefix)


@pytest.mark.parametrize("bad", ["", "a\x00b"])
def test_keys_reject_bad_ids(bad: str) -> None:
    keys = EtcdKeys("p")
    with pytest.raises(ValueError):
        keys.thread_owner(bad)
    with pytest.raises(ValueError):
        keys.runtime(bad)


def test_thread_id_of_rejects_foreign_keys() -> None:
    with pytest.raises(ValueError):
        EtcdKeys("p").thread_id_of("/q/threads/t")


def test_runtime_info_round_trip() -> None:
    info = RuntimeInfo("rt-1", "127.0.0.1:5001", capacity=8, running=3, roles=("owner",))
    assert RuntimeInfo.decode(info.encode()) == info
    assert info.has_room
    assert not RuntimeInfo("rt", "a", capacity=2, running=2).has_room


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"{}", b'{"runtime_id": "x", "address": "a", "capacity": "many"}']
)
def test_runtime_info_decode_rejects_garbage(raw: bytes) -> None:
    with pytest.raises(ValueError, match="malformed"):
        RuntimeInfo.decode(raw)


@pytest.mark.parametrize(
    ("exc", "expected", "reason"),
    [
        (aetcd.ConnectionFailedError("down"), UnavailableError, "ETCD_UNAVAILABLE"),
        (aetcd.ConnectionTimeoutError("slow"), UnavailableError, "ETCD_UNAVAILABLE"),
        (TimeoutError(), UnavailableError, "ETCD_UNAVAILABLE"),
        (aetcd.InvalidArgumentError("bad"), InternalError, "ETCD_ERROR"),
    ],
)
def test_etcd_errors_map_onto_the_mesh_tree(
    exc: Exception, expected: type[Exception], reason: str
) -> None:
    with pytest.raises(expected) as info, translate_etcd_errors("testing"):
        raise exc
    assert info.value.reason == reason  # type: ignore[attr-defined]
    assert info.value.__cause__ is exc
    assert "testing" in str(info.value)


def test_other_errors_pass_through_untranslated() -> None:
    with pytest.raises(KeyError), translate_etcd_errors("testing"):
        raise KeyError("x")


def test_public_api_is_exactly_all() -> None:
    import mesh_core.adapters.etcd as etcd

    public = {n for n in dir(etcd) if not n.startswith("_")} - {
        "keys",
        "leases",
        "registry",
        "session",
    }
    assert public == set(etcd.__all__)

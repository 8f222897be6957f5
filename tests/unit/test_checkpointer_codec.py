"""Unit tests of the checkpointer's codec, key names and plumbing (no Redis needed)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from langgraph.checkpoint.base import Checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from mesh_core.adapters.redis import MeshCheckpointer, RedisKeys
from mesh_core.adapters.redis._checkpoint_codec import (
    decode_tuple,
    encode_put,
    encode_writes,
    fencing_token,
    target,
)
from mesh_core.adapters.redis._checkpoint_io import redis_errors
from mesh_core.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    StaleOwnerError,
    UnavailableError,
)

SERDE = JsonPlusSerializer()


def _ck(cid: str = "1f0-aaa", **values: Any) -> Checkpoint:
    return Checkpoint(
        v=1,
        id=cid,
        ts="2026-01-01T00:00:00+00:00",
        channel_values=dict(values),
        channel_versions=dict.fromkeys(values, 1),
        versions_seen={},
        updated_channels=None,
    )


def test_target_validates_and_defaults() -> None:
    assert target({"configurable": {"thread_id": 7}}) == ("7", "", None)
    assert target({"configurable": {"thread_id": "t", "checkpoint_ns": "a:b"}}) == (
        "t",
        "a:b",
        None,
    )
    with pytest.raises(InvalidArgumentError) as err:
        target({"configurable": {}})
    assert err.value.violations[0].field == "configurable.thread_id"
    with pytest.raises(InvalidArgumentError):
        target({"configurable": {"thread_id": "t", "checkpoint_ns": "a\x00b"}})
    with pytest.raises(InvalidArgumentError):
        target({"configurable": {"thread_id": "t", "checkpoint_id": "x\x00"}})


@pytest.mark.parametrize("bad", [True, -1, "5", 1.5])
def test_fencing_token_must_be_a_non_negative_int(bad: object) -> None:
    with pytest.raises(InvalidArgumentError):
        fencing_token({"configurable": {"fencing_token": bad}}, None)


def test_fencing_token_resolution() -> None:
    assert fencing_token({"configurable": {}}, None) == ""
    assert fencing_token({"configurable": {}}, 4) == "4"
    assert fencing_token({"configurable": {"fencing_token": 9}}, 4) == "9"
    assert fencing_token(None, None) == ""
    assert fencing_token({"configurable": {"fencing_token": 2**70}}, None) == str(2**70)


def test_encode_put_layout() -> None:
    cfg = {"configurable": {"thread_id": "t", "checkpoint_ns": "n", "fencing_token": 3}}
    ck = _ck(a=[1], b="x")
    ck["channel_versions"]["gone"] = 2
    plan = encode_put(SERDE, cfg, ck, {"run_id": "r1", "step": 1}, {"a": 1, "gone": 2})
    ns, member, _record, _fields, run_member, *blobs = plan.args
    assert (ns, member, run_member) == ("n", "n\x001f0-aaa", "r1\x00n\x001f0-aaa")
    pairs = dict(zip(blobs[::2], blobs[1::2], strict=True))
    assert set(pairs) == {"n\x00a\x001", "n\x00gone\x002"}
    assert pairs["n\x00gone\x002"] == b"empty\x00"  # in new_versions but no value
    assert plan.config == {
        "configurable": {"thread_id": "t", "checkpoint_ns": "n", "checkpoint_id": "1f0-aaa"}
    }


def test_roundtrip_through_script_reply_shape_sorts_writes() -> None:
    cfg = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "fencing_token": 3}}
    plan = encode_put(SERDE, cfg, _ck(a=[1, 2], b="x"), {"step": 4}, {"a": 1, "b": 1})
    _ns, _member, record, fields, _run, *blobs = plan.args
    w1 = encode_writes(SERDE, "", "1f0-aaa", [("a", 1), ("b", 2)], "task-b", "~1")
    w2 = encode_writes(SERDE, "", "1f0-aaa", [("a", 3)], "task-a", "~0")
    values = [w1[1], w1[4], w2[1]]
    reply = [b"1f0-aaa", record, fields, blobs[1::2], values]
    tup = decode_tuple(SERDE, "t", "", reply)
    assert tup is not None
    assert tup.checkpoint["channel_values"] == {"a": [1, 2], "b": "x"}
    assert tup.metadata == {"step": 4}  # fencing_token is not copied into metadata
    assert tup.parent_config is None
    assert tup.pending_writes == [("task-a", "a", 3), ("task-b", "a", 1), ("task-b", "b", 2)]
    assert decode_tuple(SERDE, "t", "", None) is None


def test_special_writes_overwrite_regular_ones_are_set_once() -> None:
    args = encode_writes(SERDE, "", "c", [("__error__", "boom"), ("x", 1)], "t", "")
    assert args[0] == "\x00c\x00t\x00-1" and args[2] == "1"
    assert args[3] == "\x00c\x00t\x001" and args[5] == "0"


def test_checkpoint_keys_share_the_hash_tag_and_prefix() -> None:
    keys = RedisKeys("pfx").checkpoint_keys("th:1")
    assert len(set(keys.all())) == 9
    assert all(k.startswith("pfx:{th:1}:") for k in keys.all())
    assert keys.fence == RedisKeys("pfx").thread_fence("th:1")


def test_latest_pattern_escapes_glob_and_parses_thread_ids() -> None:
    keys = RedisKeys("a*b[1]")
    assert keys.checkpoint_latest_pattern() == "a\\*b\\[1\\]:{*}:cp:latest"
    latest = keys.checkpoint_keys("x}y:z").latest
    assert keys.thread_of_checkpoint_latest(latest) == "x}y:z"
    assert keys.thread_of_checkpoint_latest("other:{x}:cp:latest") is None


def test_redis_errors_mapping() -> None:
    with pytest.raises(StaleOwnerError) as err, redis_errors("t", "3"):
        raise ResponseError("LGMESH_STALE_OWNER 8")
    assert err.value.metadata == {"thread_id": "t", "token": "3", "stored_token": "8"}
    with pytest.raises(UnavailableError), redis_errors("t"):
        raise RedisConnectionError("refused")
    with pytest.raises(ResponseError), redis_errors("t"):
        raise ResponseError("WRONGTYPE")


def test_constructor_guards() -> None:
    with pytest.raises(FailedPreconditionError):
        MeshCheckpointer(aredis.Redis(decode_responses=True), prefix="p")
    with pytest.raises(FailedPreconditionError):
        MeshCheckpointer(aredis.Redis(), prefix="p", sync_redis=redis.Redis(decode_responses=True))
    with pytest.raises(FailedPreconditionError):
        MeshCheckpointer(aredis.Redis(), prefix="p", ttl=0)
    saver = MeshCheckpointer(aredis.Redis(), prefix="p")
    with pytest.raises(FailedPreconditionError):
        saver.get_tuple({"configurable": {"thread_id": "t"}})
    assert saver.serde.pickle_fallback is False  # type: ignore[attr-defined]


def test_versions_increase_and_never_collide() -> None:
    saver = MeshCheckpointer(aredis.Redis(), prefix="p")
    v1 = saver.get_next_version(None, None)
    v2 = saver.get_next_version(v1, None)
    assert v1 < v2 and v2.startswith("0" * 31 + "2.")
    assert saver.get_next_version(v1, None) != v2

"""The payload codec: sealed values open only with their key and in their place."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import ormsgpack
import pytest

from mesh_core.config import ConfigError
from mesh_core.security import (
    PayloadCodec,
    SealedDataError,
    is_sealed,
    load_payload_codec,
    new_payload_key,
)


def test_seal_and_open_bound_to_their_place() -> None:
    codec = PayloadCodec([os.urandom(32)])
    plain = ormsgpack.packb({"messages": ["secret"]})
    sealed = codec.seal(plain, b"thread-1")
    assert is_sealed(sealed) and b"secret" not in sealed
    assert codec.open(sealed, b"thread-1") == plain
    with pytest.raises(SealedDataError):
        codec.open(sealed, b"thread-2")  # copied elsewhere
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SealedDataError):
        codec.open(tampered, b"thread-1")


def test_values_from_before_the_codec_pass_through() -> None:
    codec = PayloadCodec([os.urandom(32)])
    for plain in (ormsgpack.packb([1, 2]), b'{"event": "values"}', b""):
        assert not is_sealed(plain)
        assert codec.open(plain, b"x") == plain


def test_keys_rotate(tmp_path: Path) -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = PayloadCodec([old]).seal(b"v", b"t")
    ring = PayloadCodec([new, old])
    assert ring.open(before, b"t") == b"v"
    after = ring.seal(b"v", b"t")
    with pytest.raises(SealedDataError, match="not in the key ring"):
        PayloadCodec([old]).open(after, b"t")
    path = tmp_path / "keys"
    path.write_text(f"{new_payload_key()}\n\n{base64.b64encode(old).decode()}\n")
    codec = load_payload_codec(path)
    assert codec is not None and codec.open(before, b"t") == b"v"
    assert load_payload_codec("") is None


@pytest.mark.parametrize("text", ["", "bm90IGEga2V5\n", "!!!\n"])
def test_bad_key_files_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "keys"
    path.write_text(text)
    with pytest.raises(ConfigError, match="payload key file") as info:
        load_payload_codec(path)
    assert "bm90" not in str(info.value)  # never echo key material


def test_sealed_checkpoint_args_and_the_state_size_they_count() -> None:
    from langgraph.checkpoint.base import Checkpoint
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from mesh_core.adapters.redis._checkpoint_codec import encode_put, encode_writes

    serde = JsonPlusSerializer()
    ck = Checkpoint(
        v=1,
        id="c1",
        ts="2026-01-01T00:00:00+00:00",
        channel_values={"msg": "secret" * 100},
        channel_versions={"msg": 1},
        versions_seen={},
        updated_channels=None,
    )
    cfg = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
    codec = PayloadCodec([os.urandom(32)])
    plain = encode_put(serde, cfg, ck, {"step": 0}, {"msg": 1})  # type: ignore[arg-type]
    sealed = encode_put(serde, cfg, ck, {"step": 0}, {"msg": 1}, codec)  # type: ignore[arg-type]
    # a tenant's state-size limit means the same with the codec on (plain sizes)
    assert sealed.blob_sizes == plain.blob_sizes
    assert not [a for a in sealed.args if isinstance(a, bytes) and b"secret" in a]
    writes = encode_writes(
        serde, "", "c1", [("msg", "secret")], "task", "", thread_id="t1", codec=codec
    )
    assert not [a for a in writes if isinstance(a, bytes) and b"secret" in a]

"""Encoding of checkpoints, blobs and pending writes for the Redis checkpointer.

Pure functions (no I/O), shared by the sync and async halves of
:class:`~mesh_core.adapters.redis.checkpointer.MeshCheckpointer`.

Layout of the stored values:

* checkpoint record: msgpack ``[checkpoint_type, checkpoint_bytes, metadata_type,
  metadata_bytes, parent_checkpoint_id | None]`` (``channel_values`` stripped: the
  values live in blobs, one per channel version, as in LangGraph's own savers);
* blob-field list: msgpack list of the blob fields the checkpoint reads (Lua unpacks
  it to fetch them in the same round trip as the record);
* blob: ``type \\0 bytes`` (``empty \\0`` for a channel that was emptied);
* pending write: msgpack ``[task_id, channel, type, bytes, task_path, idx]``.

With a payload codec (``--payload-keys``), records, blobs and pending writes are stored
sealed (``mesh_core.security._codec``), each bound to its thread and its field (a
record or write to ``thread \0 ns \0 checkpoint id``, a blob to ``thread \0 blob
field``), so a value moved to another thread or field does not open. Values stored
before the codec was turned on read as they are. The state size a tenant's limit counts
is the plain size (the same with or without the codec).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ormsgpack
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from mesh_core.errors import FieldViolation, InvalidArgumentError
from mesh_core.security._codec import PayloadCodec, open_payload, seal_payload

__all__ = [
    "FENCING_TOKEN_KEY",
    "PutPlan",
    "decode_tuple",
    "encode_put",
    "encode_writes",
    "fencing_token",
    "member",
    "metadata_matches",
    "reseal_copy",
    "target",
]

FENCING_TOKEN_KEY = "fencing_token"
#: configurable key (never stored: "__" keys stay out of metadata) with the most bytes a
#: thread's state may take; set by the owner for the run's tenant
MAX_STATE_BYTES_KEY = "__lgmesh_max_state_bytes"
"""``config["configurable"]`` key carrying the owner's fencing token (etcd create_revision)."""

SEP = "\x00"
_EMPTY = b"empty"


def _bad(field: str, description: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"invalid checkpoint config: {field} {description}",
        violations=[FieldViolation(field, description)],
    )


def _no_nul(field: str, value: str) -> str:
    if SEP in value:
        raise _bad(field, "must not contain NUL bytes")
    return value


def target(config: RunnableConfig) -> tuple[str, str, str | None]:
    """``(thread_id, checkpoint_ns, checkpoint_id | None)`` of a config, validated."""
    conf = config.get("configurable") or {}
    thread_id = conf.get("thread_id")
    if thread_id is None or thread_id == "":
        raise _bad("configurable.thread_id", "is required")
    ns = conf.get("checkpoint_ns") or ""
    if not isinstance(ns, str):
        raise _bad("configurable.checkpoint_ns", "must be a string")
    cid = conf.get("checkpoint_id") or None
    if cid is not None and not isinstance(cid, str):
        raise _bad("configurable.checkpoint_id", "must be a string")
    _no_nul("configurable.checkpoint_ns", ns)
    if cid is not None:
        _no_nul("configurable.checkpoint_id", cid)
    return str(thread_id), ns, cid


def fencing_token(config: RunnableConfig | None, bound: int | None) -> str:
    """The token to check, as a canonical decimal string ("" = unfenced write).

    The config's ``fencing_token`` wins; ``bound`` (from ``with_fencing_token``) is
    used when the config has none.
    """
    conf = (config or {}).get("configurable") or {}
    raw = conf.get(FENCING_TOKEN_KEY)
    if raw is None:
        raw = bound
    if raw is None:
        return ""
    return str(check_token(raw, f"configurable.{FENCING_TOKEN_KEY}"))


def check_token(raw: object, field: str = "token") -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise _bad(field, "must be a non-negative integer")
    return raw


def member(ns: str, checkpoint_id: str) -> str:
    return ns + SEP + checkpoint_id


def _pack_blob(typed: tuple[str, bytes]) -> bytes:
    return typed[0].encode() + b"\x00" + typed[1]


def _place(thread_id: str, field: str) -> str:
    """Where a sealed value of a thread belongs (its associated data)."""
    return thread_id + SEP + field


def _open(codec: PayloadCodec | None, data: bytes, thread_id: str, field: str) -> bytes:
    return open_payload(
        codec, data, f"checkpoint data of thread {thread_id!r}", _place(thread_id, field)
    )


@dataclass(frozen=True)
class PutPlan:
    thread_id: str
    ns: str
    checkpoint_id: str
    args: list[str | bytes]  # everything after (token, ttl) in the PUT script's ARGV
    config: RunnableConfig  # what put() returns
    blob_sizes: dict[str, int]  # channel -> bytes of the value this put writes for it


def encode_put(
    serde: SerializerProtocol,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
    codec: PayloadCodec | None = None,
) -> PutPlan:
    thread_id, ns, parent_id = target(config)
    cid = _no_nul("checkpoint.id", str(checkpoint["id"]))
    c: dict[str, Any] = dict(checkpoint)
    values: dict[str, Any] = c.pop("channel_values", None) or {}
    blob_args: list[str | bytes] = []
    blob_sizes: dict[str, int] = {}
    for channel, version in new_versions.items():
        field = ns + SEP + channel + SEP + str(version)
        blob_args.append(field)
        if channel in values:
            blob = _pack_blob(serde.dumps_typed(values[channel]))
            blob_sizes[channel] = len(blob)
            blob = seal_payload(codec, blob, _place(thread_id, field))
        else:
            blob = _EMPTY + b"\x00"
            blob_sizes[channel] = len(blob)
        blob_args.append(blob)
    blob_fields = [
        ns + SEP + channel + SEP + str(version)
        for channel, version in checkpoint["channel_versions"].items()
    ]
    md = dict(get_checkpoint_metadata(config, metadata))
    if FENCING_TOKEN_KEY not in metadata:
        md.pop(FENCING_TOKEN_KEY, None)  # an ownership detail, not the user's metadata
    ck_type, ck_bytes = serde.dumps_typed(c)
    md_type, md_bytes = serde.dumps_typed(md)
    record = seal_payload(
        codec,
        ormsgpack.packb([ck_type, ck_bytes, md_type, md_bytes, parent_id]),
        _place(thread_id, member(ns, cid)),
    )
    run_id = md.get("run_id")
    run_member = f"{run_id}{SEP}{ns}{SEP}{cid}" if isinstance(run_id, str) and run_id else ""
    args: list[str | bytes] = [
        ns,
        member(ns, cid),
        record,
        ormsgpack.packb(blob_fields),
        run_member,
        *blob_args,
    ]
    out: RunnableConfig = {
        "configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": cid}
    }
    return PutPlan(thread_id, ns, cid, args, out, blob_sizes)


def encode_writes(
    serde: SerializerProtocol,
    ns: str,
    checkpoint_id: str,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
    *,
    thread_id: str = "",
    codec: PayloadCodec | None = None,
) -> list[str | bytes]:
    """(field, value, overwrite) triples: special channels overwrite, others are set-once."""
    args: list[str | bytes] = []
    place = _place(thread_id, member(ns, checkpoint_id))
    prefix = member(ns, checkpoint_id) + SEP + task_id + SEP
    for idx, (channel, value) in enumerate(writes):
        widx = WRITES_IDX_MAP.get(channel, idx)
        typ, data = serde.dumps_typed(value)
        args.append(prefix + str(widx))
        packed = ormsgpack.packb([task_id, channel, typ, data, task_path, widx])
        args.append(seal_payload(codec, packed, place))
        args.append("1" if widx < 0 else "0")
    return args


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def decode_tuple(
    serde: SerializerProtocol,
    thread_id: str,
    ns: str,
    reply: Any,
    codec: PayloadCodec | None = None,
) -> CheckpointTuple | None:
    """Build the tuple from the GET_TUPLE script's reply (None when absent)."""
    if not reply:
        return None
    raw_id, raw_record, raw_fields, blob_values, write_values = reply
    cid = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
    where = member(ns, cid)
    ck_type, ck_bytes, md_type, md_bytes, parent_id = ormsgpack.unpackb(
        _open(codec, raw_record, thread_id, where)
    )
    checkpoint = serde.loads_typed((ck_type, ck_bytes))
    values: dict[str, Any] = {}
    if raw_fields:
        for field, raw in zip(ormsgpack.unpackb(raw_fields), blob_values, strict=False):
            if raw is None:
                continue
            typ, _, data = _open(codec, raw, thread_id, field).partition(b"\x00")
            if typ == _EMPTY:
                continue
            channel = field[len(ns) + 1 : field.rindex(SEP)]
            values[channel] = serde.loads_typed((typ.decode(), data))
    checkpoint["channel_values"] = values
    decoded = [
        ormsgpack.unpackb(_open(codec, w, thread_id, where)) for w in write_values if w is not None
    ]
    decoded.sort(key=lambda w: writes_sort_key(w[4], w[0], w[5]))
    pending: list[PendingWrite] = [(w[0], w[1], serde.loads_typed((w[2], w[3]))) for w in decoded]
    return CheckpointTuple(
        config=_config(thread_id, ns, cid),
        checkpoint=checkpoint,
        metadata=serde.loads_typed((md_type, md_bytes)),
        parent_config=_config(thread_id, ns, parent_id) if parent_id else None,
        pending_writes=pending,
    )


def reseal_copy(
    codec: PayloadCodec | None,
    source: str,
    target_thread: str,
    records: Mapping[bytes, bytes],
    blobs: Mapping[bytes, bytes],
    writes: Mapping[bytes, bytes],
) -> tuple[dict[bytes, bytes], dict[bytes, bytes], dict[bytes, bytes]]:
    """A thread's records, blobs and writes (raw hashes) sealed for ``target_thread``
    instead of ``source`` (each value is bound to its thread); as they are without a codec."""
    if codec is None:
        return dict(records), dict(blobs), dict(writes)

    def move(value: bytes, place: str) -> bytes:
        plain = _open(codec, value, source, place)
        return seal_payload(codec, plain, _place(target_thread, place))

    def checkpoint_of(field: bytes) -> str:  # "ns \0 id \0 task \0 idx" -> "ns \0 id"
        return SEP.join(field.decode().split(SEP)[:2])

    return (
        {f: move(v, f.decode()) for f, v in records.items()},
        {f: move(v, f.decode()) for f, v in blobs.items()},
        {f: move(v, checkpoint_of(f)) for f, v in writes.items()},
    )


def metadata_matches(metadata: Mapping[str, Any], flt: Mapping[str, Any] | None) -> bool:
    return not flt or all(metadata.get(k) == v for k, v in flt.items())

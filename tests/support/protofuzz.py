"""Hypothesis strategies built from protobuf descriptors, and wire-level corruptions.

``messages(descriptor)`` draws request bytes for any message type: every field (scalars,
enums with numbers the enum does not name, nested messages, repeated and map fields,
oneofs) gets random values, ``google.protobuf.Struct``/``Value``/``ListValue`` get JSON
trees that may hold NaN/Infinity or nest past protobuf's decode limit (100), and unknown
fields may be appended. ``corrupted(descriptor)`` draws bytes the server cannot (or can
barely) decode: truncations, bit flips, invalid UTF-8 in a string field, random bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

__all__ = ["corrupted", "messages", "requests", "values"]

_F = FieldDescriptor
_INT_RANGES = {
    _F.TYPE_INT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _F.TYPE_INT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _F.TYPE_UINT32: (0, 2**32 - 1),
    _F.TYPE_FIXED32: (0, 2**32 - 1),
    _F.TYPE_UINT64: (0, 2**64 - 1),
    _F.TYPE_FIXED64: (0, 2**64 - 1),
}
# Strings protobuf can encode (no lone surrogates), with the awkward ones made likely.
_EDGE_TEXT = st.sampled_from(
    [
        "",
        "\x00",
        "a\x00b",
        "\u202egnp.exe",
        "\ufeff",
        "e\u0301" * 50,
        "\U0001f600" * 20,
        "../../etc/passwd",
        "{thread}",
        "*",
        ">",
        "x" * 5000,
        "\n\r\t",
        "Ω≈ç√∫",
        "\uffff",
    ]
)
_TEXT = st.one_of(
    _EDGE_TEXT, st.text(st.characters(exclude_categories=("Cs",)), max_size=40), st.just("steps")
)


def _deep(depth: int, leaf: Any) -> Any:
    out = leaf
    for i in range(depth):
        out = [out] if i % 2 else {"k": out}
    return out


def values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """JSON-like trees for Struct/Value fields, with NaN/Infinity and past-limit nesting."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 2.0**53 + 1]),
        _TEXT,
    )
    tree = st.recursive(
        leaves,
        lambda kids: st.one_of(
            st.lists(kids, max_size=4), st.dictionaries(_TEXT, kids, max_size=4)
        ),
        max_leaves=max_leaves,
    )
    deep = st.builds(_deep, st.integers(90, 140), leaves)
    wide = st.builds(lambda n: list(range(n)), st.integers(0, 20_000))
    return st.one_of(tree, tree, tree, deep, wide)


def _set_value(v: struct_pb2.Value, data: Any) -> None:
    if data is None:
        v.null_value = struct_pb2.NULL_VALUE
    elif isinstance(data, bool):
        v.bool_value = data
    elif isinstance(data, int | float):
        v.number_value = float(data)
    elif isinstance(data, str):
        v.string_value = data
    elif isinstance(data, list):
        lv = v.list_value
        lv.SetInParent()
        for item in data:
            _set_value(lv.values.add(), item)
    else:
        st_ = v.struct_value
        st_.SetInParent()
        for k, item in data.items():
            _set_value(st_.fields[k], item)


def _fill_wkt(msg: Message, data: Any) -> None:
    """Fill a Struct/Value/ListValue by hand (NaN and Infinity included, no json checks)."""
    if isinstance(msg, struct_pb2.Value):
        _set_value(msg, data)
    elif isinstance(msg, struct_pb2.Struct):
        for k, item in (data if isinstance(data, dict) else {"v": data}).items():
            _set_value(msg.fields[k], item)
    else:
        for item in data if isinstance(data, list) else [data]:
            _set_value(msg.values.add(), item)


_WKT = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}


Hints = Mapping[str, st.SearchStrategy[Any]]
_HINTED_ONLY = {"webhook"}


def _scalar(field: FieldDescriptor, hints: Hints) -> st.SearchStrategy[Any]:
    if field.name in _HINTED_ONLY:
        # A URL the mesh would call: only loopback ones (tests never contact the outside).
        return hints.get(field.name, st.just(""))
    if field.name in hints:
        # Real ids and names most of the time, so requests get past the first checks.
        return st.one_of(hints[field.name], hints[field.name], hints[field.name], _plain(field))
    return _plain(field)


def _plain(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t in _INT_RANGES:
        lo, hi = _INT_RANGES[t]
        return st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, -1 if lo else 1]))
    if t == _F.TYPE_BOOL:
        return st.booleans()
    if t in (_F.TYPE_DOUBLE, _F.TYPE_FLOAT):
        return st.floats(
            allow_nan=True, allow_infinity=True, width=64 if t == _F.TYPE_DOUBLE else 32
        )
    if t == _F.TYPE_STRING:
        return _TEXT
    if t == _F.TYPE_BYTES:
        return st.binary(max_size=64)
    if t == _F.TYPE_ENUM:
        named = [v.number for v in field.enum_type.values]
        # Open enums: numbers the enum does not name must be refused, not crash.
        return st.one_of(st.sampled_from(named), st.integers(-(2**31), 2**31 - 1))
    raise AssertionError(f"unhandled field type {t} of {field.full_name}")


@st.composite
def _message(draw: st.DrawFn, desc: Descriptor, depth: int, hints: Hints) -> Message:
    cls = GetMessageClass(desc)
    msg = cls()
    if desc.full_name in _WKT:
        _fill_wkt(msg, draw(values()))
        return msg
    if (
        desc.full_name == "google.protobuf.Timestamp"
        or desc.full_name == "google.protobuf.Duration"
    ):
        # Out-of-range seconds and nanos are valid on the wire: the server must cope.
        msg.seconds = draw(st.integers(-(2**63), 2**63 - 1))  # type: ignore[attr-defined]
        msg.nanos = draw(st.integers(-(2**31), 2**31 - 1))  # type: ignore[attr-defined]
        return msg
    chosen_oneofs = {o.name: draw(st.sampled_from(list(o.fields))).name for o in desc.oneofs}
    for field in desc.fields:
        oneof = field.containing_oneof
        if oneof is not None and chosen_oneofs[oneof.name] != field.name:
            continue
        if not draw(st.booleans()):
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_f, val_f = (
                field.message_type.fields_by_name["key"],
                field.message_type.fields_by_name["value"],
            )
            target = getattr(msg, field.name)
            for _ in range(draw(st.integers(0, 3))):
                k = draw(_scalar(key_f, hints))
                if val_f.message_type is not None:
                    target[k].CopyFrom(draw(_message(val_f.message_type, depth + 1, hints)))
                else:
                    target[k] = draw(_scalar(val_f, hints))
            continue
        repeated = field.is_repeated
        if field.message_type is not None:
            if depth > 4:
                continue
            if repeated:
                target = getattr(msg, field.name)
                for _ in range(draw(st.integers(0, 3))):
                    target.add().CopyFrom(draw(_message(field.message_type, depth + 1, hints)))
            else:
                getattr(msg, field.name).CopyFrom(
                    draw(_message(field.message_type, depth + 1, hints))
                )
            continue
        if repeated:
            many = st.integers(0, 4) if depth else st.sampled_from([0, 1, 3, 1000, 20_000])
            n = draw(many)
            item = draw(_scalar(field, hints))
            if n > 4 and isinstance(item, str | bytes):
                item = item[:16]
            # Huge repeated fields (within the 4 MiB limit): the same item many times.
            getattr(msg, field.name).extend(
                [item] * n if n > 4 else [draw(_scalar(field, hints)) for _ in range(n)]
            )
        else:
            setattr(msg, field.name, draw(_scalar(field, hints)))
    return msg


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _unknown_field(number: int, wire: int) -> bytes:
    key = _varint((number << 3) | wire)
    if wire == 0:
        return key + _varint(number * 7919)
    if wire == 1:
        return key + b"\x01" * 8
    if wire == 5:
        return key + b"\x02" * 4
    return key + _varint(3) + b"abc"


def messages(desc: Descriptor, hints: Hints | None = None) -> st.SearchStrategy[bytes]:
    """Serialized requests of type ``desc``, sometimes with unknown fields appended.

    ``hints`` maps field names (``thread_id``, ``model``, ...) to values worth trying
    there (real ids, known names); they are drawn most of the time."""
    unknown = st.lists(
        st.builds(_unknown_field, st.integers(1000, 536_870_911), st.sampled_from([0, 1, 2, 5])),
        max_size=3,
    ).map(b"".join)
    return st.builds(
        lambda m, extra: m.SerializeToString() + extra, _message(desc, 0, hints or {}), unknown
    )


def _string_fields(desc: Descriptor) -> list[FieldDescriptor]:
    return [f for f in desc.fields if f.type == _F.TYPE_STRING]


@st.composite
def corrupted(draw: st.DrawFn, desc: Descriptor, hints: Hints | None = None) -> bytes:
    """Bytes that are not (quite) a valid ``desc``."""
    kind = draw(st.sampled_from(["truncate", "flip", "utf8", "random", "deep"]))
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=512))
    if kind == "utf8":
        strings = _string_fields(desc)
        nested = [
            f for f in desc.fields if f.message_type is not None and _string_fields(f.message_type)
        ]
        bad = draw(
            st.sampled_from(
                [b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"a\x80b", b"\xf8\x88\x80\x80\x80"]
            )
        )
        if strings and (not nested or draw(st.booleans())):
            f = draw(st.sampled_from(strings))
            return _varint((f.number << 3) | 2) + _varint(len(bad)) + bad
        if nested:
            outer = draw(st.sampled_from(nested))
            inner_f = draw(st.sampled_from(_string_fields(outer.message_type)))
            inner = _varint((inner_f.number << 3) | 2) + _varint(len(bad)) + bad
            return _varint((outer.number << 3) | 2) + _varint(len(inner)) + inner
        return b"\x0a\x02" + bad
    if kind == "deep":
        # A length-delimited field nested far past any decoder's limit.
        field = draw(st.sampled_from([f for f in desc.fields] or [None]))
        number = field.number if field is not None else 1
        data = b""
        for _ in range(draw(st.integers(101, 400))):
            data = _varint((number << 3) | 2) + _varint(len(data)) + data
        return data
    good = draw(messages(desc, hints))
    if not good:
        return b"\x0a\xff"
    if kind == "truncate":
        return good[: draw(st.integers(0, max(len(good) - 1, 0)))] + b"\x0a\x7f"
    data = bytearray(good)
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


def requests(desc: Descriptor, hints: Hints | None = None) -> st.SearchStrategy[bytes]:
    """What a fuzz batch sends: two generated requests for one corrupted one."""
    return st.one_of(messages(desc, hints), messages(desc, hints), corrupted(desc, hints))

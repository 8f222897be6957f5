"""Turn graph values (messages, Send, Interrupt, pydantic models...) into JSON and back to protobuf.

Users pass input, state, config and metadata as ``google.protobuf.Struct``/``Value`` so a
grpcurl user writes plain JSON; graph outputs travel back the same way.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import uuid
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2

__all__ = ["from_struct", "from_value", "to_jsonable", "to_struct", "to_value"]


def to_jsonable(obj: Any, _depth: int = 0) -> Any:
    """A JSON-compatible copy of ``obj`` (dicts with str keys, lists, str, float/int, bool, None)."""
    if _depth > 64:
        return repr(obj)
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    d = _depth + 1
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, d) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v, d) for v in obj]
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    if isinstance(obj, datetime.datetime | datetime.date):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value, d)
    # LangChain messages and other pydantic models
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            return to_jsonable(dump(), d)
        except Exception:  # a model that cannot dump itself is shown by repr
            return repr(obj)
    cls = type(obj).__name__
    if cls == "Send":
        return {"node": obj.node, "arg": to_jsonable(obj.arg, d)}
    if cls == "Interrupt":
        return {"id": getattr(obj, "id", ""), "value": to_jsonable(obj.value, d)}
    if cls == "Command":
        return {
            k: to_jsonable(getattr(obj, k), d)
            for k in ("graph", "update", "resume", "goto")
            if getattr(obj, k, None) not in (None, (), [])
        }
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name), d) for f in dataclasses.fields(obj)}
    if hasattr(obj, "_asdict"):
        return to_jsonable(obj._asdict(), d)
    if isinstance(obj, BaseException):
        return {"type": type(obj).__name__, "message": str(obj)}
    return repr(obj)


def to_value(obj: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    json_format.ParseDict(to_jsonable(obj), value)
    return value


def to_struct(obj: Mapping[str, Any] | None) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    if obj:
        json_format.ParseDict(to_jsonable(obj), s)
    return s


_MAX_SAFE_INT = 2**53


def _ints(obj: Any) -> Any:
    """JSON numbers arrive as doubles; give integral ones back as int (as json.loads would)."""
    if isinstance(obj, float):
        return int(obj) if obj.is_integer() and abs(obj) < _MAX_SAFE_INT else obj
    if isinstance(obj, dict):
        return {k: _ints(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_ints(v) for v in obj]
    return obj


def from_value(value: struct_pb2.Value | None) -> Any:
    if value is None or value.WhichOneof("kind") is None:
        return None
    return _ints(json_format.MessageToDict(value))


def from_struct(s: struct_pb2.Struct | None) -> dict[str, Any]:
    if s is None:
        return {}
    out = _ints(json_format.MessageToDict(s))
    assert isinstance(out, dict)
    return out

"""JSON schemas of a graph's input, output and context, computed once when it is loaded.

The gateway validates run input against the input schema, so a schema that silently
comes out empty turns validation off. LangGraph renders schemas with pydantic, which
refuses ``typing.TypedDict`` before Python 3.12 (it needs ``typing_extensions``'s);
a graph whose state is a plain ``typing.TypedDict`` is common, so its types are
rebuilt with ``typing_extensions.TypedDict`` (same fields, same required keys, nested
TypedDicts too) and rendered again. A schema that still cannot be rendered is logged
once, naming the graph and why, and left empty.
"""

from __future__ import annotations

import logging
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any

import typing_extensions

__all__ = ["GraphSchemas", "graph_schemas"]

log = logging.getLogger("lgmesh.graphs")


@dataclass(frozen=True)
class GraphSchemas:
    input: dict[str, Any]
    output: dict[str, Any]
    context: dict[str, Any]


def _is_typing_typeddict(tp: Any) -> bool:
    return typing_extensions.is_typeddict(tp) and type(tp).__module__ == "typing"


def _unwrap_required(tp: Any) -> Any:
    while typing.get_origin(tp) in (typing.Required, typing.NotRequired):
        tp = typing.get_args(tp)[0]
    return tp


def portable(tp: Any, _seen: dict[Any, Any] | None = None) -> Any:
    """``tp`` with every ``typing.TypedDict`` in it rebuilt as ``typing_extensions``'s."""
    seen = {} if _seen is None else _seen
    if _is_typing_typeddict(tp):
        if tp in seen:
            return seen[tp]
        seen[tp] = tp  # a self-reference stays as it is
        hints = typing.get_type_hints(tp, include_extras=True)
        fields = {}
        for name, hint in hints.items():
            field = portable(_unwrap_required(hint), seen)
            required = name in tp.__required_keys__
            wrap = typing_extensions.Required if required else typing_extensions.NotRequired
            fields[name] = wrap[field]
        make: Any = typing_extensions.TypedDict  # the functional form
        new = make(tp.__name__, fields)
        new.__doc__ = tp.__doc__
        new.__module__ = tp.__module__
        seen[tp] = new
        return new
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return typing.Annotated[(portable(args[0], seen), *tp.__metadata__)]
    if not args:
        return tp
    new_args = tuple(portable(a, seen) for a in args)
    if new_args == args:
        return tp
    if origin is typing.Union or origin is types.UnionType:
        return typing.Union[new_args]  # noqa: UP007
    if isinstance(tp, types.GenericAlias):
        return types.GenericAlias(origin, new_args)
    copy_with = getattr(tp, "copy_with", None)
    return copy_with(new_args) if copy_with is not None else tp


def _render(graph: Any, which: str) -> dict[str, Any]:
    getter = getattr(graph, f"get_{which}_jsonschema")
    try:
        return dict(getter() or {})
    except Exception:
        typ = getattr(getattr(graph, "builder", None), f"{which}_schema", None)
        if not (sys.version_info < (3, 12) and typ is not None and _is_typing_typeddict(typ)):
            raise
    from pydantic import TypeAdapter

    return dict(TypeAdapter(portable(typ)).json_schema())


def graph_schemas(graph_id: str, graph: Any) -> GraphSchemas:
    out: dict[str, dict[str, Any]] = {}
    for which in ("input", "output", "context"):
        try:
            out[which] = _render(graph, which)
        except Exception as exc:
            out[which] = {}
            log.warning(
                "graph %r: its %s schema cannot be rendered (%s: %s); %s",
                graph_id,
                which,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
                "run input is not validated" if which == "input" else "clients see none",
            )
    return GraphSchemas(out["input"], out["output"], out["context"])

"""The graphs a runtime can run, loaded from a config file like ``langgraph.json``.

The file maps a graph id to ``"module:attr"`` (or ``"path/to/file.py:attr"``), either
directly or as ``{"path": "module:attr", "description": "..."}``; YAML or JSON, with or
without a top-level ``graphs:`` key. ``attr`` may be a compiled graph, a ``StateGraph``
builder, or a function returning either (called once, with no arguments).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from mesh_core.errors import NotFoundError

__all__ = ["GraphEntry", "GraphRegistry", "load_object"]


def load_object(ref: str, base_dir: Path | None = None) -> Any:
    """Import ``module:attr`` or ``path/file.py:attr``."""
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise ValueError(f"graph reference {ref!r} must look like 'module:attr'")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        name = f"_lgmesh_graph_{abs(hash(str(path)))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ValueError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _as_graph(obj: Any, ref: str) -> Pregel:
    if isinstance(obj, Pregel):
        return obj
    if isinstance(obj, StateGraph):
        return obj.compile()
    if callable(obj):
        return _as_graph(obj(), ref)
    raise TypeError(f"{ref} is neither a compiled graph, a StateGraph nor a function returning one")


@dataclass(frozen=True)
class GraphEntry:
    graph_id: str
    ref: str
    graph: Pregel
    description: str = ""


class GraphRegistry(Mapping[str, GraphEntry]):
    def __init__(self, entries: Mapping[str, GraphEntry]) -> None:
        self._entries = dict(entries)

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any], base_dir: Path | None = None) -> GraphRegistry:
        if "graphs" in spec and isinstance(spec["graphs"], Mapping):
            spec = spec["graphs"]
        entries: dict[str, GraphEntry] = {}
        for graph_id, value in spec.items():
            if isinstance(value, str):
                ref, desc = value, ""
            else:
                ref, desc = str(value["path"]), str(value.get("description", ""))
            graph = _as_graph(load_object(ref, base_dir), ref)
            entries[str(graph_id)] = GraphEntry(str(graph_id), ref, graph, desc)
        return cls(entries)

    @classmethod
    def from_file(cls, path: str | Path) -> GraphRegistry:
        p = Path(path)
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
        if not isinstance(data, Mapping):
            raise ValueError(f"{p}: expected a mapping of graph id to 'module:attr'")
        return cls.from_mapping(data, p.parent)

    def get_graph(self, graph_id: str) -> Pregel:
        entry = self._entries.get(graph_id)
        if entry is None:
            raise NotFoundError(
                f"graph {graph_id!r} not found", metadata={"assistant_id": graph_id}
            )
        return entry.graph

    def __getitem__(self, key: str) -> GraphEntry:
        return self._entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

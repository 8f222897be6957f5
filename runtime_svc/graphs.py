"""The graphs a runtime can run, loaded from a config file like ``langgraph.json``.

The file maps a graph id to ``"module:attr"`` (or ``"path/to/file.py:attr"``), either
directly or as ``{"path": "module:attr", "description": "..."}``; YAML or JSON, with or
without a top-level ``graphs:`` key. ``attr`` may be a compiled graph, a ``StateGraph``
builder, or a function returning either (called once, with no arguments).

Paths are the file's business, not the current directory's: module paths resolve from
the directory holding the file (then the installed packages), ``.py`` paths relative to
it. Of ``langgraph.json``'s other keys, the runtime acts on two:

* ``dependencies``: a local directory (``"."``, ``"./src"``) becomes importable; a
  package (``"langchain-openai"``) must be installed already, or loading stops, saying
  which one (the runtime installs nothing).
* ``env``: variables (a mapping, or a ``.env`` file relative to the file) set for the
  graphs' code where the process environment does not set them already.

Build-time keys of the LangGraph CLI (``python_version``, ``dockerfile_lines``, ...) and
server features the mesh does not take from this file (``auth``, ``store``, ``http``,
...) are named in one warning each, never silently dropped. Any problem with the file
or a graph in it is a :class:`GraphConfigError`: one line naming the file, the graph
and what is wrong.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from mesh_core.config import ConfigError
from mesh_core.errors import NotFoundError
from runtime_svc._schemas import GraphSchemas, graph_schemas

__all__ = ["GraphConfigError", "GraphEntry", "GraphRegistry", "load_object"]

log = logging.getLogger("lgmesh.graphs")

_BUILD_KEYS = frozenset(
    {
        "python_version",
        "node_version",
        "pip_config_file",
        "pip_installer",
        "dockerfile_lines",
        "base_image",
        "image_distro",
        "api_version",
        "keep_pkg_tools",
        "$schema",
    }
)


# The distribution name at the start of a requirement ("langchain-openai>=0.3", "x[y]").
_REQUIREMENT_NAME = re.compile(
    r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:[\[<>=!~;@ ]|$)"
)


class GraphConfigError(ConfigError):
    """The graphs file, or a graph it names, cannot be loaded."""


def _user_frame(exc: BaseException) -> str:
    """``file:line`` of the innermost frame outside the import machinery."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "importlib" not in f.filename]
    return f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def _import_module(target: str) -> Any:
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (target == missing or target.startswith(missing + ".")):
            raise GraphConfigError(f"no module named {missing!r}") from None
        raise GraphConfigError(
            f"importing {target} failed: ModuleNotFoundError: {exc}{_user_frame(exc)}"
        ) from None
    except Exception as exc:
        raise GraphConfigError(
            f"importing {target} failed: {type(exc).__name__}: {exc}{_user_frame(exc)}"
        ) from None


def _exec_file(path: Path) -> Any:
    if not path.is_file():
        raise GraphConfigError(f"no file {path}")
    name = f"_lgmesh_graph_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise GraphConfigError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise GraphConfigError(
            f"running {path} failed: {type(exc).__name__}: {exc}{_user_frame(exc)}"
        ) from None
    return module


def load_object(ref: str, base_dir: Path | None = None) -> Any:
    """Import ``module:attr`` or ``path/file.py:attr`` (relative to ``base_dir``)."""
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise GraphConfigError(f"{ref!r} must look like 'module:attr' or 'path/file.py:attr'")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        module = _exec_file(path)
    else:
        module = _import_module(target)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise GraphConfigError(f"{target} has no attribute {part!r}") from None
    return obj


def _as_graph(obj: Any, ref: str) -> Pregel:
    if isinstance(obj, Pregel):
        return obj
    if isinstance(obj, StateGraph):
        return obj.compile()
    if callable(obj):
        try:
            made = obj()
        except Exception as exc:
            raise GraphConfigError(
                f"calling {ref} failed: {type(exc).__name__}: {exc}{_user_frame(exc)}"
            ) from None
        if isinstance(made, (Pregel, StateGraph)):
            return _as_graph(made, ref)
    raise GraphConfigError(
        f"{ref} is neither a compiled graph, a StateGraph nor a function returning one"
    )


@dataclass(frozen=True)
class GraphEntry:
    graph_id: str
    ref: str
    graph: Pregel
    description: str = ""
    schemas: GraphSchemas = field(default_factory=lambda: GraphSchemas({}, {}, {}))


def _add_path(directory: Path) -> None:
    d = str(directory.resolve())
    if d not in sys.path:
        sys.path.insert(0, d)


def _dependencies(deps: Any, base: Path) -> None:
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise GraphConfigError("'dependencies' must be a list of strings")
    for dep in deps:
        if dep.startswith((".", "/")):
            path = (base / dep).resolve()
            if not path.is_dir():
                raise GraphConfigError(f"dependency {dep!r}: no directory {path}")
            _add_path(path)
            if (path / "src").is_dir():
                _add_path(path / "src")
            continue
        m = _REQUIREMENT_NAME.match(dep)
        if m is None:
            raise GraphConfigError(f"dependency {dep!r} is not a package requirement")
        name = m.group(1)
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise GraphConfigError(
                f"dependency {dep!r} is not installed here: pip install '{dep}' "
                "(the runtime installs nothing)"
            ) from None


def _dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise GraphConfigError(f"'env': no file {path}")
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.removeprefix("export ").partition("=")
        if not eq or not key.strip():
            raise GraphConfigError(f"'env': {path}:{n} is not KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def _env(env: Any, base: Path) -> None:
    if isinstance(env, str):
        values = _dotenv(base / env)
    elif isinstance(env, Mapping):
        values = {str(k): str(v) for k, v in env.items()}
    else:
        raise GraphConfigError("'env' must be a mapping or the path of a .env file")
    for key, value in values.items():
        os.environ.setdefault(key, value)  # the process environment wins


class GraphRegistry(Mapping[str, GraphEntry]):
    def __init__(self, entries: Mapping[str, GraphEntry]) -> None:
        self._entries = dict(entries)

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any], base_dir: Path | None = None) -> GraphRegistry:
        base = base_dir or Path.cwd()
        if "graphs" in spec and isinstance(spec["graphs"], Mapping):
            for key in spec:
                if key == "graphs":
                    continue
                if key == "dependencies":
                    _dependencies(spec[key], base)
                elif key == "env":
                    _env(spec[key], base)
                elif key in _BUILD_KEYS:
                    log.warning("graphs file: %r is a build-time setting; ignored here", key)
                else:
                    log.warning("graphs file: %r is not used by LangGraph Mesh; ignored", key)
            spec = spec["graphs"]
        if base_dir is not None:
            _add_path(base_dir)  # module paths resolve from the file's directory
        entries: dict[str, GraphEntry] = {}
        for graph_id, value in spec.items():
            try:
                if isinstance(value, str):
                    ref, desc = value, ""
                elif isinstance(value, Mapping) and isinstance(value.get("path"), str):
                    ref, desc = str(value["path"]), str(value.get("description", ""))
                else:
                    raise GraphConfigError("expected 'module:attr' or {path: 'module:attr'}")
                graph = _as_graph(load_object(ref, base_dir), ref)
            except GraphConfigError as exc:
                raise GraphConfigError(f"graph {graph_id!r}: {exc}") from None
            gid = str(graph_id)
            entries[gid] = GraphEntry(gid, ref, graph, desc, graph_schemas(gid, graph))
        return cls(entries)

    @classmethod
    def from_file(cls, path: str | Path) -> GraphRegistry:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise GraphConfigError(f"graphs file {p}: {exc.strerror or exc}") from None
        try:
            data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise GraphConfigError(f"graphs file {p}: not valid JSON/YAML: {exc}") from None
        if not isinstance(data, Mapping) or not data:
            raise GraphConfigError(f"graphs file {p}: expected a mapping of graph id to a graph")
        try:
            return cls.from_mapping(data, p.resolve().parent)
        except GraphConfigError as exc:
            raise GraphConfigError(f"graphs file {p}: {exc}") from None

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

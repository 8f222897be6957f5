"""Load tools by import path and describe them: name, description, argument schema.

Accepted objects: a LangChain ``BaseTool`` (``@tool`` functions are ``StructuredTool``
instances), a plain typed function, sync or async (turned into a ``StructuredTool``, so
the schema comes from its signature and docstring), or a list/tuple of those.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from langchain_core.tools import BaseTool, StructuredTool

from mesh_core.errors import FieldViolation, InvalidArgumentError, NotFoundError
from tool_svc._settings import ToolConfigError, ToolServiceSettings, ToolSpec

__all__ = ["RegisteredTool", "ToolRegistry", "import_object", "load_registry", "to_base_tools"]

MAX_VIOLATIONS = 20


@dataclass(frozen=True)
class RegisteredTool:
    """A loaded tool with its limits and its compiled argument validator."""

    name: str
    description: str
    args_schema: Mapping[str, Any]
    tool: BaseTool
    is_async: bool
    timeout: float
    max_concurrency: int
    max_queue_wait: float
    validator: Any = field(repr=False)

    @property
    def args_schema_json(self) -> str:
        return json.dumps(self.args_schema, sort_keys=True)

    def validate(self, arguments: Any) -> None:
        """Raise INVALID_ARGUMENT with one field violation per schema error."""
        errors = sorted(self.validator.iter_errors(arguments), key=lambda e: list(e.path))
        if not errors:
            return
        violations: list[FieldViolation] = []
        for err in errors[:MAX_VIOLATIONS]:
            violations.extend(_violations(err))
        fields = ", ".join(v.field for v in violations)
        raise InvalidArgumentError(
            f"arguments of tool {self.name!r} do not match its schema ({fields})",
            violations,
            reason="TOOL_ARGUMENTS_INVALID",
            metadata={"tool": self.name},
        )


def _field(path: Iterable[Any]) -> str:
    out = "arguments"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _violations(err: Any) -> list[FieldViolation]:
    while err.validator in ("anyOf", "oneOf") and err.context:
        # e.g. ``list[str] | None``: report the branch that got furthest into the value.
        err = max(err.context, key=lambda e: len(e.absolute_path))
    base = list(err.absolute_path)
    if err.validator == "required" and isinstance(err.instance, Mapping):
        missing = [r for r in err.validator_value if r not in err.instance]
        return [FieldViolation(_field([*base, m]), "required property is missing") for m in missing]
    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        allowed = set((err.schema or {}).get("properties", {}))
        extra = sorted(k for k in err.instance if k not in allowed)
        if extra:
            return [FieldViolation(_field([*base, k]), "unknown property") for k in extra]
    return [FieldViolation(_field(base), str(err.message)[:300])]


def _is_async(tool: BaseTool) -> bool:
    if isinstance(tool, StructuredTool):
        return tool.coroutine is not None
    return type(tool)._arun is not BaseTool._arun


def _schema_of(tool: BaseTool) -> dict[str, Any]:
    schema: Any = tool.tool_call_schema
    out: dict[str, Any] = dict(schema) if isinstance(schema, dict) else schema.model_json_schema()
    out.setdefault("type", "object")
    out.setdefault("properties", {})
    return out


def import_object(path: str) -> Any:
    """``pkg.mod:attr.sub`` or ``pkg.mod.attr`` -> the object."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ToolConfigError(f"import path {path!r} must look like 'package.module:attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ToolConfigError(f"cannot import module {module_name!r} for {path!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ToolConfigError(f"{path!r}: {module_name} has no attribute {attr!r}") from exc
    return obj


def to_base_tools(obj: Any, origin: str = "tool") -> list[BaseTool]:
    """A BaseTool, a typed function, or a list of those -> BaseTools."""
    if isinstance(obj, BaseTool):
        return [obj]
    if isinstance(obj, list | tuple):
        return [t for item in obj for t in to_base_tools(item, origin)]
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        kind = "coroutine" if inspect.iscoroutinefunction(obj) else "func"
        fn: Any = StructuredTool.from_function
        return [fn(**{kind: obj}, parse_docstring=True, error_on_invalid_docstring=False)]
    raise ToolConfigError(
        f"{origin}: {type(obj).__name__} is not a tool (want a BaseTool, a function or a list)"
    )


def _register(tool: BaseTool, spec: ToolSpec, settings: ToolServiceSettings) -> RegisteredTool:
    schema = _schema_of(tool)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ToolConfigError(f"tool {tool.name!r} has an invalid argument schema: {exc}") from exc
    return RegisteredTool(
        name=tool.name,
        description=tool.description or "",
        args_schema=schema,
        tool=tool,
        is_async=_is_async(tool),
        timeout=spec.timeout if spec.timeout is not None else settings.default_timeout,
        max_concurrency=(
            spec.max_concurrency
            if spec.max_concurrency is not None
            else settings.default_max_concurrency
        ),
        max_queue_wait=(
            spec.max_queue_wait
            if spec.max_queue_wait is not None
            else settings.default_max_queue_wait
        ),
        validator=jsonschema.Draft202012Validator(schema),
    )


class ToolRegistry:
    """The tools of one replica, by name."""

    def __init__(self, tools: Sequence[RegisteredTool]) -> None:
        self._tools: dict[str, RegisteredTool] = {}
        for t in tools:
            if t.name in self._tools:
                raise ToolConfigError(f"two tools are named {t.name!r}; rename one ('name:')")
            self._tools[t.name] = t

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> RegisteredTool:
        try:
            return self._tools[name]
        except KeyError:
            raise NotFoundError(
                f"no tool named {name[:100]!r}",
                reason="TOOL_NOT_FOUND",
                metadata={"tool": name[:100]},
            ) from None

    def select(self, names: Sequence[str]) -> list[RegisteredTool]:
        if not names:
            return list(self._tools.values())
        return [self.get(n) for n in names]


def load_registry(settings: ToolServiceSettings) -> ToolRegistry:
    """Import every configured tool; a bad entry fails the whole load (fail fast at boot)."""
    loaded: list[RegisteredTool] = []
    for spec in settings.tools:
        tools = to_base_tools(import_object(spec.import_path), spec.import_path)
        if spec.name is not None:
            if len(tools) != 1:
                raise ToolConfigError(f"{spec.import_path}: 'name' needs a single tool")
            tools = [tools[0].model_copy(update={"name": spec.name})]
        loaded.extend(_register(t, spec, settings) for t in tools)
    return ToolRegistry(loaded)

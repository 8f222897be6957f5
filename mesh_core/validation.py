"""Checks on what users send, shared by the gateway (before any side effect) and the runtime."""

from __future__ import annotations

from typing import Any

from mesh_core.errors import FieldViolation, InvalidArgumentError

__all__ = ["CONFIG_KEYS", "validate_config"]

CONFIG_KEYS = frozenset(
    {"configurable", "recursion_limit", "tags", "metadata", "max_concurrency", "run_name"}
)
RESERVED_CONFIGURABLE = ("thread_id", "checkpoint_ns", "checkpoint_id", "fencing_token")


def validate_config(config: dict[str, Any]) -> None:
    violations = [
        FieldViolation(
            f"run.config.{k}", f"unknown config key (allowed: {', '.join(sorted(CONFIG_KEYS))})"
        )
        for k in config
        if k not in CONFIG_KEYS
    ]
    rl = config.get("recursion_limit")
    if rl is not None and (not isinstance(rl, int) or isinstance(rl, bool) or rl < 1):
        violations.append(
            FieldViolation("run.config.recursion_limit", "must be a positive integer")
        )
    conf = config.get("configurable")
    if conf is not None and not isinstance(conf, dict):
        violations.append(FieldViolation("run.config.configurable", "must be an object"))
    elif isinstance(conf, dict):
        for reserved in ("thread_id", "checkpoint_ns", "checkpoint_id", "fencing_token"):
            if reserved in conf:
                violations.append(
                    FieldViolation(f"run.config.configurable.{reserved}", "is set by the mesh")
                )
        violations += [
            FieldViolation(f"run.config.configurable.{k}", "keys starting with '__' are reserved")
            for k in conf
            if str(k).startswith("__")
        ]
    tags = config.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        violations.append(FieldViolation("run.config.tags", "must be a list of strings"))
    if violations:
        raise InvalidArgumentError("invalid run config", violations)


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _type_ok(value: Any, schema: dict[str, Any]) -> bool:
    types = schema.get("type")
    if types is None:
        alts = schema.get("anyOf") or schema.get("oneOf")
        return not alts or any(_type_ok(value, a) for a in alts if isinstance(a, dict))
    names = [types] if isinstance(types, str) else list(types)
    for name in names:
        expected = _JSON_TYPES.get(name)
        if expected is None:
            return True
        if isinstance(value, bool) and name in ("integer", "number"):
            continue
        if isinstance(value, expected):
            return True
    return False


def validate_input(value: Any, schema: dict[str, Any] | None, field: str = "run.input") -> None:
    """Check graph input against the top level of the graph's input JSON schema.

    The shape (object or not) and the JSON type of each known property; LangGraph
    itself does the rest. Raises INVALID_ARGUMENT with one violation per bad field.
    """
    if value is None or not schema:
        return
    if not _type_ok(value, schema):
        raise InvalidArgumentError(
            f"{field} does not match the graph's input schema",
            [FieldViolation(field, f"expected JSON type {schema.get('type')}")],
        )
    props = schema.get("properties")
    if isinstance(value, dict) and isinstance(props, dict):
        violations = [
            FieldViolation(
                f"{field}.{k}",
                f"expected JSON type {props[k].get('type') or props[k].get('anyOf')}",
            )
            for k, v in value.items()
            if isinstance(props.get(k), dict) and not _type_ok(v, props[k])
        ]
        if violations:
            raise InvalidArgumentError(
                f"{field} does not match the graph's input schema", violations
            )

"""Checks on what users send, shared by the gateway (before any side effect) and the runtime."""

from __future__ import annotations

from typing import Any

from mesh_core.errors import FieldViolation, InvalidArgumentError

__all__ = ["CONFIG_KEYS", "validate_config"]

CONFIG_KEYS = frozenset({"configurable", "recursion_limit", "tags", "metadata", "max_concurrency", "run_name"})
RESERVED_CONFIGURABLE = ("thread_id", "checkpoint_ns", "checkpoint_id", "fencing_token")


def validate_config(config: dict[str, Any]) -> None:
    violations = [
        FieldViolation(f"run.config.{k}", f"unknown config key (allowed: {', '.join(sorted(CONFIG_KEYS))})")
        for k in config
        if k not in CONFIG_KEYS
    ]
    rl = config.get("recursion_limit")
    if rl is not None and (not isinstance(rl, int) or isinstance(rl, bool) or rl < 1):
        violations.append(FieldViolation("run.config.recursion_limit", "must be a positive integer"))
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



"""Flags that say what they are: every flag's help shows its default and its environment
variable, and the environment is read here (and in mesh_core.config) only."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["ENV_NOTE", "Flags"]

ENV_NOTE = (
    "Every flag can also be set by the environment variable named in its help; a flag on "
    "the command line wins. Backends: LGMESH_ETCD_URL, LGMESH_NATS_URL, LGMESH_REDIS_URL, "
    "LGMESH_PREFIX."
)


def _parse_bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


class Flags:
    """Adds flags to one (sub)parser, taking defaults from ``env``."""

    def __init__(self, parser: argparse.ArgumentParser, env: Mapping[str, str] | None = None):
        self.parser = parser
        self.env = os.environ if env is None else env

    def add(
        self,
        flag: str,
        *,
        env: str | None,
        default: Any,
        help: str,
        type: Callable[[str], Any] = str,
        choices: Sequence[str] | None = None,
        unit: str = "",
        show_default: bool = True,
    ) -> None:
        value = default
        raw = self.env.get(env) if env else None
        if raw not in (None, ""):
            try:
                value = type(raw)
            except ValueError:
                self.parser.error(f"{env}={raw!r} is not a valid value for {flag}")
        notes = []
        if show_default:
            shown = "none" if default is None else default
            notes.append(f"default: {shown}{(' ' + unit) if unit and default is not None else ''}")
        if env:
            notes.append(f"env {env}")
        text = f"{help} ({'; '.join(notes)})" if notes else help
        self.parser.add_argument(
            flag, type=type, default=value, choices=choices, help=text.replace("%", "%%")
        )

    def switch(self, flag: str, *, env: str | None, help: str) -> None:
        raw = self.env.get(env) if env else None
        default = _parse_bool(raw) if raw else False
        note = f" (env {env})" if env else ""
        self.parser.add_argument(
            flag, action="store_true", default=default, help=(help + note).replace("%", "%%")
        )

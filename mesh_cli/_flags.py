"""Flags that say what they are: every flag's help ends with its default (or "required")
and its environment variable, and the environment is read here (and in mesh_core.config)
only. A test walks every sub-command's help for that."""

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
        env: str,
        default: Any,
        help: str,
        type: Callable[[str], Any] = str,
        choices: Sequence[str] | None = None,
        unit: str = "",
        default_text: str | None = None,
        required: bool = False,
    ) -> None:
        """``default_text`` describes a default that is not a plain value ("the demo
        graphs"); ``required``: no default, the command refuses to start without it."""
        value = default
        raw = self.env.get(env)
        if raw not in (None, ""):
            try:
                value = type(raw)
            except ValueError:
                self.parser.error(f"{env}={raw!r} is not a valid value for {flag}")
        if required:
            shown = "required"
        elif default_text is not None:
            shown = f"default: {default_text}"
        else:
            shown = f"default: {'none' if default in (None, '') else default}"
            if unit and default is not None:
                shown += f" {unit}"
        self.parser.add_argument(
            flag,
            type=type,
            default=value,
            choices=choices,
            help=f"{help} ({shown}; env {env})".replace("%", "%%"),
        )

    def switch(self, flag: str, *, env: str, help: str) -> None:
        raw = self.env.get(env)
        default = _parse_bool(raw) if raw else False
        self.parser.add_argument(
            flag,
            action="store_true",
            default=default,
            help=f"{help} (default: off; env {env}=1)".replace("%", "%%"),
        )

"""Redis adapters: key names, the fenced checkpointer, run and thread records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mesh_core.adapters.redis.keys import CheckpointKeys, RedisKeys

if TYPE_CHECKING:
    from mesh_core.adapters.redis.checkpointer import FENCING_TOKEN_KEY, MeshCheckpointer

__all__ = ["FENCING_TOKEN_KEY", "CheckpointKeys", "MeshCheckpointer", "RedisKeys"]

_LAZY = {"FENCING_TOKEN_KEY", "MeshCheckpointer"}


def __getattr__(name: str) -> Any:
    # The checkpointer pulls in LangGraph (~0.3 s): only services that use it pay for it.
    if name in _LAZY:
        from mesh_core.adapters.redis import checkpointer

        return getattr(checkpointer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

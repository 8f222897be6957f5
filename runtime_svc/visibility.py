"""What clients see of the metadata LangGraph records and streams.

LangGraph copies a run's ``config["metadata"]`` and its scalar ``configurable`` values
into every checkpoint's metadata and into the metadata of streamed messages; debug and
checkpoint events carry the run's whole config. The runtime puts internal values there
(the LLM gateway's and tool service's addresses, the tenant, the fencing token) and
runs each thread under its tenant-scoped id ``<tenant>:<thread>``. Graphs need all of
that; clients must not see it. These functions take it out of what leaves the runtime,
once, where events and states are converted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesh_core.security import CONFIG_KEY_TENANT_TOKEN

__all__ = ["SCRUBBED_MODES", "is_internal_key", "public_metadata", "public_payload"]

#: Stream modes whose events carry a run's config or checkpoint metadata (besides
#: "messages", whose metadata is scrubbed as such).
SCRUBBED_MODES = frozenset({"debug", "checkpoints", "tasks"})
_INTERNAL_PREFIX = "lgmesh_"
_INTERNAL_KEYS = frozenset({"fencing_token", CONFIG_KEY_TENANT_TOKEN})
_METADATA_FIELDS = frozenset({"metadata", "configurable"})


def is_internal_key(key: str) -> bool:
    return key.startswith(_INTERNAL_PREFIX) or key in _INTERNAL_KEYS


def public_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Checkpoint or message metadata without the runtime's internal keys."""
    return {k: v for k, v in meta.items() if not is_internal_key(k)}


def public_payload(
    data: Any, thread_id: str, scoped_thread_id: str, *, metadata: bool = False
) -> Any:
    """An event's JSON data with internal keys out of every ``metadata`` and
    ``configurable`` mapping (``metadata``: ``data`` is one), and the thread's scoped id
    replaced by the client's."""

    def walk(value: Any, in_metadata: bool) -> Any:
        if isinstance(value, dict):
            return {
                k: walk(v, k in _METADATA_FIELDS)
                for k, v in value.items()
                if not (in_metadata and isinstance(k, str) and is_internal_key(k))
            }
        if isinstance(value, list):
            return [walk(v, in_metadata) for v in value]
        if value == scoped_thread_id:
            return thread_id
        return value

    return walk(data, metadata)

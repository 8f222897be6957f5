"""API keys -> tenants. Keys are kept only as SHA-256 digests and compared in constant time.

Sources (either or both):
- a file (YAML or JSON): ``{"tenants": {"acme": ["sha256:<hex>", "plain-key"]}}`` — plain
  keys are hashed on load and never kept;
- the environment value ``LGMESH_API_KEYS``: ``"acme=key1,acme=key2,beta=key3"``.
Clients send ``authorization: Bearer <key>`` or ``x-api-key: <key>`` metadata.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from mesh_core.errors import UnauthenticatedError

__all__ = ["ApiKeyAuth", "hash_key"]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyAuth:
    def __init__(self, digests: Mapping[str, str]) -> None:
        """``digests`` maps sha256 hex digest -> tenant id."""
        self._digests = dict(digests)

    @classmethod
    def from_sources(cls, path: str | None = None, env_value: str | None = None) -> ApiKeyAuth:
        digests: dict[str, str] = {}
        if path:
            p = Path(path)
            text = p.read_text()
            data: Any = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
            tenants = (data or {}).get("tenants", {})
            if not isinstance(tenants, Mapping):
                raise ValueError(f"{p}: 'tenants' must map tenant id -> list of keys")
            for tenant, keys in tenants.items():
                for k in [keys] if isinstance(keys, str) else keys:
                    cls._add(digests, str(tenant), str(k))
        if env_value:
            for item in env_value.split(","):
                tenant, sep, key = item.strip().partition("=")
                if not sep or not tenant or not key:
                    raise ValueError("LGMESH_API_KEYS entries must look like tenant=key")
                cls._add(digests, tenant, key)
        return cls(digests)

    @staticmethod
    def _add(digests: dict[str, str], tenant: str, key: str) -> None:
        digest = key[len("sha256:") :] if key.startswith("sha256:") else hash_key(key)
        digests[digest.lower()] = tenant

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
        """The tenant of the key in the call metadata; UnauthenticatedError otherwise."""
        keys: set[str] = set()
        for k, v in metadata or ():
            val = v.decode(errors="replace") if isinstance(v, bytes) else v
            if k == "authorization" and val.lower().startswith("bearer "):
                keys.add(val[7:].strip())
            elif k == "x-api-key":
                keys.add(val.strip())
        keys.discard("")
        if len(keys) > 1:
            raise UnauthenticatedError(
                "conflicting credentials: send one API key (authorization or x-api-key)",
                reason="API_KEY_CONFLICT",
            )
        key = next(iter(keys), "")
        if not key:
            raise UnauthenticatedError(
                "missing API key: send 'authorization: Bearer <key>' or 'x-api-key: <key>' metadata",
                reason="API_KEY_MISSING",
            )
        digest = hash_key(key)
        for known, tenant in self._digests.items():
            if hmac.compare_digest(known, digest):
                return tenant
        raise UnauthenticatedError("invalid API key", reason="API_KEY_INVALID")

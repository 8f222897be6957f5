"""Tenant tokens: the gateway names the tenant, every callee can verify it did.

A callee must not trust a tenant because some caller put it in a field. The gateway
signs a short token for each call it makes on a tenant's behalf (Ed25519, with a key
only gateways hold) and sends it as ``x-lgmesh-tenant-token`` metadata; a runtime
passes the run's token on to the LLM gateway, the tool service and workers, which
verify it with the public key. A token names the tenant, optionally the run, and
expires (``exp``): long enough for the run it was minted for.

Wire form: ``base64url(payload JSON) "." base64url(signature)``.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mesh_core.errors import UnauthenticatedError

__all__ = [
    "CONFIG_KEY_TENANT_TOKEN",
    "TENANT_TOKEN_HEADER",
    "TenantClaims",
    "TenantTokenIssuer",
    "TenantTokenVerifier",
]

TENANT_TOKEN_HEADER = "x-lgmesh-tenant-token"
#: Where a run's token rides in its ``config["configurable"]`` (to graph code and workers).
#: The "__" prefix keeps it out of checkpoint metadata (LangGraph copies the other
#: string values of ``configurable`` there).
CONFIG_KEY_TENANT_TOKEN = "__lgmesh_tenant_token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TenantClaims:
    tenant: str
    run_id: str
    expires: float


class TenantTokenIssuer:
    """Held by gateways only."""

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def from_file(cls, path: Path) -> TenantTokenIssuer:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return cls(key)

    def issue(self, tenant: str, *, run_id: str = "", ttl: float = 3600.0) -> str:
        payload = json.dumps(
            {"t": tenant, "r": run_id, "exp": round(time.time() + ttl, 3)}, separators=(",", ":")
        ).encode()
        return f"{_b64(payload)}.{_b64(self._key.sign(payload))}"


class TenantTokenVerifier:
    """Held by every internal service."""

    def __init__(self, key: ed25519.Ed25519PublicKey) -> None:
        self._key = key

    @classmethod
    def from_file(cls, path: Path) -> TenantTokenVerifier:
        key = serialization.load_pem_public_key(path.read_bytes())
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ValueError(f"{path} is not an Ed25519 public key")
        return cls(key)

    def verify(self, token: str | None) -> TenantClaims:
        """The claims of a valid token; UnauthenticatedError otherwise (never says why
        in more detail than needed: a forged token learns nothing)."""
        if not token:
            raise UnauthenticatedError("missing tenant token", reason="TENANT_TOKEN_MISSING")
        try:
            head, _, sig = token.partition(".")
            payload = _unb64(head)
            self._key.verify(_unb64(sig), payload)
            data = json.loads(payload)
            claims = TenantClaims(str(data["t"]), str(data.get("r", "")), float(data["exp"]))
        except (InvalidSignature, ValueError, KeyError, TypeError):
            raise UnauthenticatedError(
                "invalid tenant token", reason="TENANT_TOKEN_INVALID"
            ) from None
        if not claims.tenant:
            raise UnauthenticatedError("invalid tenant token", reason="TENANT_TOKEN_INVALID")
        if claims.expires < time.time():
            raise UnauthenticatedError("expired tenant token", reason="TENANT_TOKEN_EXPIRED")
        return claims

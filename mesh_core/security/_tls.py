"""TLS material of one service and the identity of the peer on the other end.

Internal servers require a client certificate signed by the mesh CA (mutual TLS): a
client without one fails the TLS handshake and never reaches a servicer. The caller's
tier comes from its verified certificate (``spiffe://lgmesh/tier/<tier>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from mesh_core.security._pki import TIER_URI_PREFIX, PkiFiles

__all__ = ["TlsIdentity", "peer_tier"]


@dataclass(frozen=True)
class TlsIdentity:
    """A service's TLS files: the CA it trusts, its certificate and private key."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def from_pki(cls, files: PkiFiles, tier: str) -> TlsIdentity:
        return cls(files.ca, files.cert(tier), files.key(tier))

    def _read(self) -> tuple[bytes, bytes, bytes]:
        return self.ca_file.read_bytes(), self.cert_file.read_bytes(), self.key_file.read_bytes()

    def server_credentials(self, *, require_client_cert: bool = True) -> grpc.ServerCredentials:
        ca, cert, key = self._read()
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=require_client_cert
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        ca, cert, key = self._read()
        return grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )

    def check(self) -> None:
        """Raise ValueError (a configuration error) unless every file is readable."""
        for what, path in (
            ("CA", self.ca_file),
            ("certificate", self.cert_file),
            ("key", self.key_file),
        ):
            if not path.is_file():
                raise ValueError(f"TLS {what} file {path} does not exist")


def peer_tier(context: Any) -> str | None:
    """The tier in the caller's verified certificate, or None (no or another identity)."""
    auth = context.auth_context() or {}
    candidates = [*auth.get("peer_spiffe_id", []), *auth.get("x509_subject_alternative_name", [])]
    for raw in candidates:
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        if text.startswith(TIER_URI_PREFIX):
            return text[len(TIER_URI_PREFIX) :]
    return None

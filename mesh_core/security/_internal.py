"""One service's security on internal hops: its TLS identity and its tenant-token key.

Built once from the ``--tls-ca/--tls-cert/--tls-key`` and ``--tenant-token-key`` /
``--tenant-token-public-key`` flags (``mesh_cli``) and handed to the service:

* servers: :meth:`InternalSecurity.server_credentials` (mTLS, a client certificate
  signed by the mesh CA is required) and :meth:`InternalSecurity.policy` (the servicer's
  table of which tier may call what, plus tenant-token checks);
* clients: :meth:`InternalSecurity.channel` dials a callee of a given tier over mTLS,
  presenting this service's certificate and checking the callee's certificate names
  ``<tier>.lgmesh.internal`` (runtimes are dialled by IP, which no certificate names;
  the override also proves the callee is of the expected tier).

Without TLS flags a service runs plaintext (:data:`PLAINTEXT`) and logs one warning:
nothing on its internal hops is authenticated. Graph code in a runtime reaches the LLM
gateway and the tool service through ``mesh_client``, which uses the process's
security set with :func:`configure_internal_security`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from mesh_core.security._authz import CallerPolicy
from mesh_core.security._pki import tier_dns
from mesh_core.security._tls import TlsIdentity
from mesh_core.security._tokens import TenantTokenIssuer, TenantTokenVerifier

__all__ = [
    "PLAINTEXT",
    "InternalSecurity",
    "configure_internal_security",
    "internal_security",
]

log = logging.getLogger("lgmesh.security")

_PLAINTEXT_WARNING = (
    "internal hops are UNAUTHENTICATED and unencrypted (no --tls-ca/--tls-cert/--tls-key): "
    "anyone who reaches this service's port can call it as any tenant"
)


@dataclass(frozen=True)
class InternalSecurity:
    """``tls``: this service's identity (None: plaintext); ``issuer``: gateways' tenant
    token signing key; ``verifier``: every other tier's public key."""

    tls: TlsIdentity | None = None
    issuer: TenantTokenIssuer | None = None
    verifier: TenantTokenVerifier | None = None
    _creds: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def enabled(self) -> bool:
        return self.tls is not None

    @classmethod
    def from_flags(
        cls,
        *,
        ca: str = "",
        cert: str = "",
        key: str = "",
        token_key: str = "",
        token_public_key: str = "",
        issues_tokens: bool = False,
    ) -> InternalSecurity:
        """Check and load the flags' files (ValueError: a configuration error, said in
        one line). ``issues_tokens``: this is a gateway (needs ``token_key``); every
        other tier needs ``token_public_key`` once TLS is on."""
        given = [bool(ca), bool(cert), bool(key)]
        if any(given) and not all(given):
            raise ValueError("--tls-ca, --tls-cert and --tls-key go together (set all three)")
        if not all(given):
            if token_key or token_public_key:
                raise ValueError(
                    "tenant tokens need mutual TLS: set --tls-ca, --tls-cert and --tls-key too"
                )
            return PLAINTEXT
        tls = TlsIdentity(Path(ca), Path(cert), Path(key))
        tls.check()
        if issues_tokens:
            if not token_key:
                raise ValueError("with mutual TLS a gateway needs --tenant-token-key")
            return cls(tls, issuer=TenantTokenIssuer.from_file(_file(token_key, "token key")))
        if not token_public_key:
            raise ValueError("with mutual TLS this service needs --tenant-token-public-key")
        verifier = TenantTokenVerifier.from_file(_file(token_public_key, "token public key"))
        return cls(tls, verifier=verifier)

    def warn_if_plaintext(self) -> None:
        if not self.enabled:
            log.warning(_PLAINTEXT_WARNING)

    # -- servers ---------------------------------------------------------------------------
    def server_credentials(self) -> grpc.ServerCredentials | None:
        return self.tls.server_credentials() if self.tls is not None else None

    def policy(
        self, allowed: Mapping[str, Iterable[str]], *, tenant_scoped: Iterable[str] = ()
    ) -> list[grpc.aio.ServerInterceptor]:
        """The server interceptors enforcing ``allowed`` (see :class:`CallerPolicy`);
        none without TLS (there is no verified caller to check)."""
        if self.tls is None:
            return []
        return [CallerPolicy(allowed, tenant_scoped=tenant_scoped, verifier=self.verifier)]

    # -- clients ---------------------------------------------------------------------------
    def _credentials(self) -> grpc.ChannelCredentials:
        assert self.tls is not None
        creds = self._creds.get("channel")
        if creds is None:
            creds = self._creds["channel"] = self.tls.channel_credentials()
        return creds

    def channel_options(
        self, tier: str, options: Sequence[tuple[str, Any]] = ()
    ) -> list[tuple[str, Any]]:
        opts = list(options)
        if self.tls is not None:
            opts.append(("grpc.ssl_target_name_override", tier_dns(tier)))
        return opts

    def channel(
        self,
        target: str,
        tier: str,
        *,
        options: Sequence[tuple[str, Any]] = (),
        interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
    ) -> grpc.aio.Channel:
        """An asyncio channel to a ``tier`` service at ``target``."""
        opts = self.channel_options(tier, options)
        if self.tls is None:
            return grpc.aio.insecure_channel(target, options=opts, interceptors=interceptors)
        return grpc.aio.secure_channel(
            target, self._credentials(), options=opts, interceptors=interceptors
        )

    def sync_channel(
        self, target: str, tier: str, *, options: Sequence[tuple[str, Any]] = ()
    ) -> grpc.Channel:
        """A blocking channel to a ``tier`` service at ``target``."""
        opts = self.channel_options(tier, options)
        if self.tls is None:
            return grpc.insecure_channel(target, options=opts)
        return grpc.secure_channel(target, self._credentials(), options=opts)


def _file(path: str, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"tenant {what} file {p} does not exist")
    return p


PLAINTEXT = InternalSecurity()
_process: list[InternalSecurity] = [PLAINTEXT]


def configure_internal_security(security: InternalSecurity) -> None:
    """The security ``mesh_client`` uses for the LLM gateway and tools in this process."""
    _process[0] = security


def internal_security() -> InternalSecurity:
    return _process[0]

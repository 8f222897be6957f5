"""Mutual TLS for tests that start a service themselves: a throwaway PKI, a service's
flags, a caller's channel, and tenant tokens signed as a gateway would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from mesh_core.security import (
    TENANT_TOKEN_HEADER,
    InternalSecurity,
    PkiFiles,
    TenantTokenIssuer,
    TlsIdentity,
    issue_dev_pki,
)


class TestPki:
    __test__ = False  # not a test class

    def __init__(self, directory: Path) -> None:
        self.files: PkiFiles = issue_dev_pki(directory)
        self.issuer = TenantTokenIssuer.from_file(self.files.token_private)

    def env(self, tier: str) -> dict[str, str]:
        return self.files.env(tier)

    def security(self, tier: str) -> InternalSecurity:
        return InternalSecurity(TlsIdentity.from_pki(self.files, tier))

    def token_metadata(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return ((TENANT_TOKEN_HEADER, self.issuer.issue(tenant, ttl=600)),)

    def channel(self, address: str, callee: str, *, as_tier: str = "runtime") -> grpc.aio.Channel:
        """A channel to a ``callee`` tier service as ``as_tier``, adding to every call a
        tenant token for the tenant its request names (as graph code in a run would)."""
        return self.security(as_tier).channel(
            address, callee, interceptors=[_TenantTokens(self.token_metadata)]
        )


class _TenantTokens(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, tokens: Callable[[str], tuple[tuple[str, str], ...]]) -> None:
        self._tokens = tokens

    def _details(self, details: Any, request: Any) -> Any:
        if not hasattr(request, "tenant_id"):
            return details
        tenant = str(request.tenant_id or "default")
        metadata = (*(details.metadata or ()), *self._tokens(tenant))
        return details._replace(metadata=metadata)

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details, request), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details, request), request)

"""The tenant tokens a gateway sends with its calls to runtimes.

A runtime believes the tenant of a call only with a token signed by a gateway
(``mesh_core.security``: Ed25519, ``x-lgmesh-tenant-token``), so a caller that is not a
gateway, or a gateway's request naming another tenant, gets nothing. Two lifetimes:

* **call tokens** for reads and thread writes, valid :data:`CALL_TOKEN_TTL` and reused
  per tenant while they have at least :data:`CALL_TOKEN_REUSE` left (no signature per
  call);
* **run tokens**, minted per run (they name it), valid for as long as the run may
  live: its delay (a delayed run), plus the tenant's ``max_run_seconds``, plus
  :data:`RUN_TOKEN_SLACK` for hand-overs and queue turns. The token travels with the
  run: the runtime keeps it in the run's record (an adopted run after its runtime died
  resumes with it), in the delayed-run job (the scheduler fires it with it), and in the
  run's config (graph code and Send tasks on workers send it to the LLM gateway and the
  tool service, which verify it). A run re-dispatched by the gateway gets a fresh one.
"""

from __future__ import annotations

import time

from mesh_core.limits import LimitsTable
from mesh_core.security import TENANT_TOKEN_HEADER, TenantTokenIssuer

__all__ = ["CALL_TOKEN_TTL", "RUN_TOKEN_SLACK", "Metadata", "TenantTokens"]

Metadata = tuple[tuple[str, str], ...]

CALL_TOKEN_TTL = 300.0
CALL_TOKEN_REUSE = 120.0
RUN_TOKEN_SLACK = 3600.0


class TenantTokens:
    """``issuer`` None (no internal security): no tokens, empty metadata."""

    def __init__(self, issuer: TenantTokenIssuer | None, limits: LimitsTable) -> None:
        self.issuer = issuer
        self.limits = limits
        self._calls: dict[str, tuple[str, float]] = {}

    def call(self, tenant: str) -> Metadata:
        """Metadata for one call on ``tenant``'s behalf."""
        if self.issuer is None:
            return ()
        now = time.time()
        cached = self._calls.get(tenant)
        if cached is None or cached[1] - now < CALL_TOKEN_REUSE:
            if len(self._calls) > 10_000:
                self._calls.clear()
            cached = (self.issuer.issue(tenant, ttl=CALL_TOKEN_TTL), now + CALL_TOKEN_TTL)
            self._calls[tenant] = cached
        return ((TENANT_TOKEN_HEADER, cached[0]),)

    def run_token(self, tenant: str, run_id: str, *, delay: float = 0.0) -> str:
        """A token for the whole life of run ``run_id`` ("" without an issuer)."""
        if self.issuer is None:
            return ""
        ttl = delay + self.limits.for_tenant(tenant).max_run_seconds + RUN_TOKEN_SLACK
        return self.issuer.issue(tenant, run_id=run_id, ttl=ttl)

    def run(self, tenant: str, run_id: str) -> Metadata:
        token = self.run_token(tenant, run_id)
        return ((TENANT_TOKEN_HEADER, token),) if token else ()

"""Zero trust inside the mesh: tier certificates (mTLS), caller policies, tenant tokens."""

from mesh_core.security._authz import CallerPolicy
from mesh_core.security._pki import TIER_URI_PREFIX, TIERS, PkiFiles, issue_dev_pki, tier_uri
from mesh_core.security._tls import TlsIdentity, peer_tier
from mesh_core.security._tokens import (
    TENANT_TOKEN_HEADER,
    TenantClaims,
    TenantTokenIssuer,
    TenantTokenVerifier,
)

__all__ = [
    "TENANT_TOKEN_HEADER",
    "TIERS",
    "TIER_URI_PREFIX",
    "CallerPolicy",
    "PkiFiles",
    "TenantClaims",
    "TenantTokenIssuer",
    "TenantTokenVerifier",
    "TlsIdentity",
    "issue_dev_pki",
    "peer_tier",
    "tier_uri",
]

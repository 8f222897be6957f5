"""Zero trust inside the mesh: tier certificates (mTLS), caller policies, tenant tokens."""

from mesh_core.security._authz import CallerPolicy
from mesh_core.security._codec import (
    PayloadCodec,
    SealedDataError,
    is_sealed,
    load_payload_codec,
    new_payload_key,
)
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
    "PayloadCodec",
    "PkiFiles",
    "SealedDataError",
    "TenantClaims",
    "TenantTokenIssuer",
    "TenantTokenVerifier",
    "TlsIdentity",
    "is_sealed",
    "issue_dev_pki",
    "load_payload_codec",
    "new_payload_key",
    "peer_tier",
    "tier_uri",
]

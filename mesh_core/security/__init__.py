"""Zero trust inside the mesh: tier certificates (mTLS), caller policies, tenant tokens."""

from mesh_core.security._authz import CallerPolicy
from mesh_core.security._codec import (
    PayloadCodec,
    SealedDataError,
    is_sealed,
    load_payload_codec,
    new_payload_key,
)
from mesh_core.security._infra import (
    INFRA_TIERS,
    InfraCredentials,
    InfraUser,
    inbox_prefix,
    url_with_user,
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
    "INFRA_TIERS",
    "TENANT_TOKEN_HEADER",
    "TIERS",
    "TIER_URI_PREFIX",
    "CallerPolicy",
    "InfraCredentials",
    "InfraUser",
    "PayloadCodec",
    "PkiFiles",
    "SealedDataError",
    "TenantClaims",
    "TenantTokenIssuer",
    "TenantTokenVerifier",
    "TlsIdentity",
    "inbox_prefix",
    "is_sealed",
    "issue_dev_pki",
    "load_payload_codec",
    "new_payload_key",
    "peer_tier",
    "tier_uri",
    "url_with_user",
]

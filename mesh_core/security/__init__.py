"""Zero trust inside the mesh: tier certificates (mTLS), caller policies, tenant tokens."""

from mesh_core.security._authz import TENANT_HEADER, CallerPolicy, verified_tenant, verified_token
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
from mesh_core.security._internal import (
    PLAINTEXT,
    InternalSecurity,
    configure_internal_security,
    internal_security,
)
from mesh_core.security._pki import (
    TIER_DNS_SUFFIX,
    TIER_URI_PREFIX,
    TIERS,
    PkiFiles,
    issue_dev_pki,
    tier_dns,
    tier_uri,
)
from mesh_core.security._tls import TlsIdentity, peer_tier
from mesh_core.security._tokens import (
    CONFIG_KEY_TENANT_TOKEN,
    TENANT_TOKEN_HEADER,
    TenantClaims,
    TenantTokenIssuer,
    TenantTokenVerifier,
)

__all__ = [
    "CONFIG_KEY_TENANT_TOKEN",
    "INFRA_TIERS",
    "PLAINTEXT",
    "TENANT_HEADER",
    "TENANT_TOKEN_HEADER",
    "TIERS",
    "TIER_DNS_SUFFIX",
    "TIER_URI_PREFIX",
    "CallerPolicy",
    "InfraCredentials",
    "InfraUser",
    "InternalSecurity",
    "PayloadCodec",
    "PkiFiles",
    "SealedDataError",
    "TenantClaims",
    "TenantTokenIssuer",
    "TenantTokenVerifier",
    "TlsIdentity",
    "configure_internal_security",
    "inbox_prefix",
    "internal_security",
    "is_sealed",
    "issue_dev_pki",
    "load_payload_codec",
    "new_payload_key",
    "peer_tier",
    "tier_dns",
    "tier_uri",
    "url_with_user",
    "verified_tenant",
    "verified_token",
]

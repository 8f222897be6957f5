"""Certificates for the mesh's internal hops: a CA and one identity per tier.

Every service presents a certificate whose subject alternative names carry its tier as
a URI, ``spiffe://lgmesh/tier/<tier>`` (the SPIFFE shape, so a real SPIRE/cert-manager
setup issues the same identities), plus the DNS names and IPs it is reached by. Callees
read the caller's tier from the verified certificate (``mesh_core.security._tls``).

``lgmesh dev`` and the tests make a throwaway CA at start (:func:`issue_dev_pki`);
production issues the same layout from cert-manager or a Secret (deploy/README.md).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

__all__ = [
    "TIERS",
    "TIER_DNS_SUFFIX",
    "TIER_URI_PREFIX",
    "PkiFiles",
    "issue_dev_pki",
    "tier_dns",
    "tier_uri",
]

TIER_URI_PREFIX = "spiffe://lgmesh/tier/"
#: Every tier's certificate names ``<tier>.lgmesh.internal``: runtimes are reached by
#: pod IP, which no certificate can name, so internal clients check this name instead
#: (``grpc.ssl_target_name_override``) and so also verify they reached the right tier.
TIER_DNS_SUFFIX = ".lgmesh.internal"
#: The mesh's tiers, each with an identity of its own.
TIERS = ("gateway", "runtime", "worker", "llm-gateway", "tools")


def tier_uri(tier: str) -> str:
    return TIER_URI_PREFIX + tier


def tier_dns(tier: str) -> str:
    return tier + TIER_DNS_SUFFIX


@dataclass(frozen=True)
class PkiFiles:
    """Where a PKI lives: ``ca.pem``; ``<tier>.pem`` / ``<tier>.key`` per tier; and the
    tenant-token signing pair (``tenant-token.key`` for gateways, ``.pub`` for all)."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    def cert(self, tier: str) -> Path:
        return self.directory / f"{tier}.pem"

    def key(self, tier: str) -> Path:
        return self.directory / f"{tier}.key"

    @property
    def token_private(self) -> Path:
        return self.directory / "tenant-token.key"

    @property
    def token_public(self) -> Path:
        return self.directory / "tenant-token.pub"

    def env(self, tier: str) -> dict[str, str]:
        """The ``LGMESH_*`` variables of a ``tier`` service using this PKI (``--tls-*``
        and its tenant-token key: the private one for gateways, else the public one)."""
        env = {
            "LGMESH_TLS_CA": str(self.ca),
            "LGMESH_TLS_CERT": str(self.cert(tier)),
            "LGMESH_TLS_KEY": str(self.key(tier)),
        }
        if tier == "gateway":
            env["LGMESH_TENANT_TOKEN_KEY"] = str(self.token_private)
        else:
            env["LGMESH_TENANT_TOKEN_PUBLIC_KEY"] = str(self.token_public)
        return env


def _write(path: Path, data: bytes, *, private: bool) -> None:
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lgmesh"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def issue_dev_pki(
    directory: Path,
    *,
    tiers: Iterable[str] = TIERS,
    hosts: Iterable[str] = ("localhost", "127.0.0.1"),
    days: int = 7,
) -> PkiFiles:
    """A throwaway CA and a certificate per tier valid for ``<tier>.lgmesh.internal`` and
    ``hosts`` (names or IPs), plus
    a tenant-token key pair, written to ``directory`` (private keys mode 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = PkiFiles(directory)
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("lgmesh dev CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM), private=False)
    alt: list[x509.GeneralName] = []
    for h in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            alt.append(x509.DNSName(h))
    for tier in tiers:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"lgmesh {tier}"))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.UniformResourceIdentifier(tier_uri(tier)),
                        x509.DNSName(tier_dns(tier)),
                        *alt,
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [
                        x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                        x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH,
                    ]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write(files.cert(tier), cert.public_bytes(serialization.Encoding.PEM), private=False)
        _write(
            files.key(tier),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            private=True,
        )
    signer = ed25519.Ed25519PrivateKey.generate()
    _write(
        files.token_private,
        signer.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        private=True,
    )
    _write(
        files.token_public,
        signer.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        private=False,
    )
    return files

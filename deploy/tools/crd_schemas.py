"""JSON schemas (draft 2020-12) for the custom resources deploy/k8s uses.

kubernetes-validate ships schemas for built-in kinds only. These follow the published
CRDs of KEDA 2.x (``keda.sh/v1alpha1`` ScaledObject), the Prometheus Operator
(``monitoring.coreos.com/v1`` PodMonitor) and cert-manager 1.x (``cert-manager.io/v1``
Certificate and Issuer) for the fields the manifests use, closed with
``additionalProperties: false`` where the CRD lists every property, so a typo fails.
The HPA ``behavior`` inside a ScaledObject is checked separately against the Kubernetes
schema of ``HorizontalPodAutoscalerBehavior`` (see validate_manifests.py).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CERT_USAGES", "CRD_SCHEMAS", "TRIGGER_METADATA"]

_INT32 = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253}

_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _NAME,
        "namespace": _NAME,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}

_LABEL_SELECTOR = {
    "type": "object",
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}

SCALED_OBJECT: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": _NAME,
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
                "pollingInterval": _INT32,
                "cooldownPeriod": _INT32,
                "initialCooldownPeriod": _INT32,
                "idleReplicaCount": _INT32,
                "minReplicaCount": _INT32,
                "maxReplicaCount": _INT32,
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "properties": {
                        "failureThreshold": _INT32,
                        "replicas": _INT32,
                        "behavior": {
                            "enum": [
                                "static",
                                "currentReplicas",
                                "currentReplicasIfHigher",
                                "currentReplicasIfLower",
                            ]
                        },
                    },
                    "additionalProperties": False,
                },
                "advanced": {
                    "type": "object",
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "behavior": {"type": "object"},
                            },
                            "additionalProperties": False,
                        },
                        "scalingModifiers": {
                            "type": "object",
                            "properties": {
                                "formula": {"type": "string"},
                                "target": {"type": "string"},
                                "activationTarget": {"type": "string"},
                                "metricType": {"enum": ["AverageValue", "Value"]},
                            },
                            "additionalProperties": False,
                        },
                    },
                    "additionalProperties": False,
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "useCachedMetrics": {"type": "boolean"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            # KEDA's CRD: metadata is a map of strings (quote numbers!).
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "kind": {
                                        "enum": [
                                            "TriggerAuthentication",
                                            "ClusterTriggerAuthentication",
                                        ]
                                    },
                                },
                                "additionalProperties": False,
                            },
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
        "status": {"type": "object"},
    },
    "additionalProperties": False,
}

POD_MONITOR: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["selector"],
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                    "additionalProperties": False,
                },
                "jobLabel": {"type": "string"},
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "podMetricsEndpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "port": {"type": "string"},
                            "portNumber": {"type": "integer"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": "^(0|([0-9]+(ms|s|m|h))+)$"},
                            "scrapeTimeout": {
                                "type": "string",
                                "pattern": "^(0|([0-9]+(ms|s|m|h))+)$",
                            },
                            "honorLabels": {"type": "boolean"},
                            "relabelings": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "sourceLabels": {
                                            "type": "array",
                                            "items": {"type": "string"},
                                        },
                                        "separator": {"type": "string"},
                                        "targetLabel": {"type": "string"},
                                        "regex": {"type": "string"},
                                        "modulus": {"type": "integer"},
                                        "replacement": {"type": "string"},
                                        "action": {
                                            "enum": [
                                                "replace",
                                                "keep",
                                                "drop",
                                                "hashmod",
                                                "labelmap",
                                                "labeldrop",
                                                "labelkeep",
                                                "lowercase",
                                                "uppercase",
                                                "keepequal",
                                                "dropequal",
                                            ]
                                        },
                                    },
                                    "additionalProperties": False,
                                },
                            },
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

_GO_DURATION = {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$"}
_STRINGS = {"type": "array", "items": {"type": "string"}}
#: cert-manager's KeyUsage values (certificate.spec.usages).
CERT_USAGES = (
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
)


def _closed(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


def _cert_manager(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _closed(
        ["apiVersion", "kind", "metadata", "spec"],
        apiVersion={"const": "cert-manager.io/v1"},
        kind={"const": kind},
        metadata=_METADATA,
        spec=spec,
        status={"type": "object"},
    )


CERTIFICATE = _cert_manager(
    "Certificate",
    _closed(
        ["secretName", "issuerRef"],
        secretName=_NAME,
        issuerRef=_closed(
            ["name"],
            name=_NAME,
            kind={"enum": ["Issuer", "ClusterIssuer"]},
            group={"type": "string"},
        ),
        commonName={"type": "string", "maxLength": 64},
        literalSubject={"type": "string"},
        subject=_closed(
            [],
            organizations=_STRINGS,
            organizationalUnits=_STRINGS,
            countries=_STRINGS,
            localities=_STRINGS,
            provinces=_STRINGS,
            streetAddresses=_STRINGS,
            postalCodes=_STRINGS,
            serialNumber={"type": "string"},
        ),
        duration=_GO_DURATION,
        renewBefore=_GO_DURATION,
        renewBeforePercentage={"type": "integer", "minimum": 1, "maximum": 99},
        dnsNames=_STRINGS,
        ipAddresses=_STRINGS,
        uris={"type": "array", "items": {"type": "string", "pattern": "^[a-z][a-z0-9+.-]*://"}},
        emailAddresses=_STRINGS,
        isCA={"type": "boolean"},
        usages={"type": "array", "items": {"enum": list(CERT_USAGES)}},
        privateKey=_closed(
            [],
            rotationPolicy={"enum": ["Never", "Always"]},
            encoding={"enum": ["PKCS1", "PKCS8"]},
            algorithm={"enum": ["RSA", "ECDSA", "Ed25519"]},
            size={"type": "integer"},
        ),
        secretTemplate=_closed(
            [],
            annotations={"type": "object", "additionalProperties": {"type": "string"}},
            labels={"type": "object", "additionalProperties": {"type": "string"}},
        ),
        revisionHistoryLimit={"type": "integer", "minimum": 1},
        encodeUsagesInRequest={"type": "boolean"},
    ),
)

ISSUER = _cert_manager(
    "Issuer",
    {
        **_closed(
            [],
            selfSigned=_closed([], crlDistributionPoints=_STRINGS),
            ca=_closed(
                ["secretName"],
                secretName=_NAME,
                crlDistributionPoints=_STRINGS,
                ocspServers=_STRINGS,
                issuingCertificateURLs=_STRINGS,
            ),
            # Not used by these manifests (public TLS may use ACME): structure unchecked.
            acme={"type": "object"},
            vault={"type": "object"},
            venafi={"type": "object"},
        ),
        "minProperties": 1,
        "maxProperties": 1,
    },
)

#: (apiVersion, kind) -> schema
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT,
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR,
    ("cert-manager.io/v1", "Certificate"): CERTIFICATE,
    ("cert-manager.io/v1", "Issuer"): ISSUER,
}

#: KEDA trigger type -> metadata keys it requires (from the KEDA scaler docs).
TRIGGER_METADATA: dict[str, frozenset[str]] = {
    "prometheus": frozenset({"serverAddress", "query", "threshold"}),
    "nats-jetstream": frozenset(
        {"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"}
    ),
    "cpu": frozenset({"value"}),
    "memory": frozenset({"value"}),
}

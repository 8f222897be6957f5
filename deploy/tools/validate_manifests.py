"""Offline checks of rendered deploy/k8s overlays.

1. Schema: every built-in object against the Kubernetes OpenAPI schemas of the oldest
   and newest supported versions (kubernetes-validate, strict: unknown fields fail);
   KEDA ScaledObjects and PodMonitors against crd_schemas.py, the HPA behavior inside a
   ScaledObject against Kubernetes' own HorizontalPodAutoscalerBehavior, and each
   trigger's required metadata.
2. Consistency: selectors match pod templates, named ports exist, referenced
   ConfigMaps / Secrets / ServiceAccounts are rendered, issued by a cert-manager
   Certificate or declared external; Certificates name a rendered Issuer and a CA Issuer
   a Certificate's Secret; NetworkPolicies select workloads and name ports they have;
   each mesh tier has exactly one autoscaler, grace periods cover the drain.

Usage: ``python deploy/tools/validate_manifests.py deploy/k8s/overlays/prod``
(exit 1 and one line per problem when anything fails).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crd_schemas import CRD_SCHEMAS, TRIGGER_METADATA
from kustomize_lite import POD_TEMPLATE_PATHS, object_id, render

__all__ = [
    "EXTERNAL_SECRETS",
    "GENERATED_SECRETS",
    "KUBERNETES_VERSIONS",
    "MESH_TIERS",
    "check_consistency",
    "flags",
    "validate_objects",
    "validate_overlay",
]

#: Oldest supported (native gRPC probes GA 1.27, preStop sleep on by default 1.30) and newest.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
#: Deployment name -> the drain (seconds) its terminationGracePeriodSeconds must exceed.
MESH_TIERS: Mapping[str, int] = {
    "gateway": 30,
    "runtime-owner": 30,
    "runtime-worker": 30,
    "llm-gateway": 60,
    "tools": 30,
}
#: Service flags that set the drain window on SIGTERM (seconds).
DRAIN_FLAGS = ("--drain-timeout", "--drain-grace")
#: Secrets ``lgmesh infra-config`` renders (secrets.yaml): backend users, the servers'
#: user configs, the tenant-token key pair. Applied out of band in every overlay.
GENERATED_SECRETS = (
    "lgmesh-redis-acl",
    "lgmesh-nats-auth",
    "lgmesh-etcd-users",
    "lgmesh-infra-admin",
    "lgmesh-infra-runtime",
    "lgmesh-infra-worker",
    "lgmesh-infra-gateway",
    "lgmesh-infra-tools",
    "lgmesh-infra-llm",
    "lgmesh-tenant-token-private",
    "lgmesh-tenant-token-public",
)
#: Secrets created out of band: production's API and provider keys (the dev overlay
#: renders dummies) and the generated ones.
EXTERNAL_SECRETS = ("lgmesh-api-keys", "lgmesh-provider-keys", *GENERATED_SECRETS)
AUTOSCALER_KINDS = {
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}

Obj = dict[str, Any]


def _name(obj: Obj) -> str:
    return "{}/{}".format(obj["kind"], obj["metadata"]["name"])


# --- schemas -----------------------------------------------------------------------------------


def _validate_builtin(obj: Obj, version: str) -> list[str]:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(str(p) for p in exc.path)
        return [f"{_name(obj)} (k8s {version}): {where}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{_name(obj)}: {exc.message}"]
    return []


def _validate_crd(obj: Obj, schema: dict[str, Any], versions: Iterable[str]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        f"{_name(obj)}: {'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    ]
    if errors or obj["kind"] != "ScaledObject":
        return errors
    return _scaled_object_semantics(obj, versions)


def _scaled_object_semantics(obj: Obj, versions: Iterable[str]) -> list[str]:
    spec = obj["spec"]
    errors: list[str] = []
    lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if lo > hi:
        errors.append(f"{_name(obj)}: minReplicaCount {lo} > maxReplicaCount {hi}")
    for i, trig in enumerate(spec["triggers"]):
        where = f"{_name(obj)}: triggers/{i} ({trig['type']})"
        required = TRIGGER_METADATA.get(trig["type"])
        if required is None:
            errors.append(f"{where}: trigger type not known to these checks")
            continue
        missing = sorted(required - set(trig["metadata"]))
        if missing:
            errors.append(f"{where}: metadata lacks {missing}")
        if trig["type"] in ("cpu", "memory"):
            if trig.get("metricType") not in ("Utilization", "AverageValue"):
                errors.append(f"{where}: metricType must be Utilization or AverageValue")
            if "type" in trig["metadata"]:
                errors.append(f"{where}: metadata.type is deprecated, use metricType")
        elif trig.get("metricType") == "Utilization":
            errors.append(f"{where}: Utilization is for cpu/memory triggers only")
        for key in ("threshold", "lagThreshold", "activationThreshold", "value"):
            if key in trig["metadata"]:
                try:
                    float(trig["metadata"][key])
                except ValueError:
                    errors.append(f"{where}: {key} is not a number")
    if "fallback" in spec:
        # KEDA's admission webhook rejects fallback unless every trigger is AverageValue
        # and none is cpu / memory.
        for i, trig in enumerate(spec["triggers"]):
            if trig["type"] in ("cpu", "memory") or trig.get("metricType", "AverageValue") != (
                "AverageValue"
            ):
                errors.append(f"{_name(obj)}: fallback with triggers/{i} ({trig['type']})")
    behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
    if behavior is not None:
        probe = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": obj["metadata"]["name"]},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                "maxReplicas": max(hi, 1),
                "behavior": behavior,
            },
        }
        for version in versions:
            errors += [
                e.replace("HorizontalPodAutoscaler/", "ScaledObject behavior of ", 1)
                for e in _validate_builtin(probe, version)
            ]
    return errors


def validate_objects(
    objects: Iterable[Obj], versions: Iterable[str] = KUBERNETES_VERSIONS
) -> list[str]:
    """Schema errors of ``objects`` (empty when all are valid)."""
    versions = tuple(versions)
    errors: list[str] = []
    for obj in objects:
        schema = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
        if schema is not None:
            errors += _validate_crd(obj, schema, versions)
            continue
        for version in versions:
            errors += _validate_builtin(obj, version)
    return errors


# --- consistency -------------------------------------------------------------------------------


def _pod_spec(obj: Obj) -> dict[str, Any] | None:
    path = POD_TEMPLATE_PATHS.get(obj["kind"])
    if path is None:
        return None
    pod: Any = obj
    for key in path:
        pod = pod.get(key, {})
    return pod if isinstance(pod, dict) else None


def _pod_labels(obj: Obj) -> dict[str, str]:
    return dict(
        (obj.get("spec", {}).get("template", {}).get("metadata", {}) or {}).get("labels") or {}
    )


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _container_ports(pod: dict[str, Any]) -> tuple[set[str], set[int]]:
    names: set[str] = set()
    numbers: set[int] = set()
    for c in pod.get("containers", []):
        for p in c.get("ports", []):
            numbers.add(int(p["containerPort"]))
            if "name" in p:
                names.add(p["name"])
    return names, numbers


def _port_ok(port: Any, names: set[str], numbers: set[int]) -> bool:
    return port in names if isinstance(port, str) else int(port) in numbers


def _refs(pod: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(ConfigMap names, Secret names) a pod spec references."""
    cms: set[str] = set()
    secrets: set[str] = set()
    for vol in pod.get("volumes", []):
        if "configMap" in vol:
            cms.add(vol["configMap"]["name"])
        if "secret" in vol:
            secrets.add(vol["secret"]["secretName"])
    for c in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        for src in c.get("envFrom", []):
            if "configMapRef" in src:
                cms.add(src["configMapRef"]["name"])
            if "secretRef" in src:
                secrets.add(src["secretRef"]["name"])
        for env in c.get("env", []):
            ref = env.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                cms.add(ref["configMapKeyRef"]["name"])
            if "secretKeyRef" in ref:
                secrets.add(ref["secretKeyRef"]["name"])
    return cms, secrets


def flags(args: list[str]) -> dict[str, str]:
    """``["svc", "--a=1", "--b", "2", "--c"]`` -> ``{"--a": "1", "--b": "2", "--c": ""}``."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            key, sep, value = arg.partition("=")
            if not sep and i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
                i += 1
            out[key] = value
        i += 1
    return out


def _probe_port(probe: dict[str, Any]) -> Any:
    for kind in ("grpc", "httpGet", "tcpSocket"):
        if kind in probe:
            return probe[kind].get("port")
    return None


def _restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What the Pod Security "restricted" level (prod namespace) would refuse."""
    out: list[str] = []
    psc = pod.get("securityContext", {})
    if psc.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
        out.append("pod seccompProfile must be RuntimeDefault")
    for c in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        csc = c.get("securityContext", {})
        if csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            out.append(f"{c['name']}: runAsNonRoot is not set")
        if csc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{c['name']}: allowPrivilegeEscalation must be false")
        if "ALL" not in csc.get("capabilities", {}).get("drop", []):
            out.append(f"{c['name']}: capabilities must drop ALL")
    for vol in pod.get("volumes", []):
        if "hostPath" in vol:
            out.append(f"volume {vol['name']}: hostPath")
    return out


def _check_workload(obj: Obj, by_kind: Mapping[str, set[str]], external: set[str]) -> list[str]:
    errors: list[str] = []
    pod = _pod_spec(obj)
    if pod is None:
        return errors
    name = _name(obj)
    match = obj["spec"].get("selector", {}).get("matchLabels", {})
    if obj["kind"] != "Job" and not _selects(match, _pod_labels(obj)):
        errors.append(f"{name}: selector {match} does not match its pod template labels")
    names, numbers = _container_ports(pod)
    for c in pod.get("containers", []):
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in c and "exec" not in c[kind]:
                port = _probe_port(c[kind])
                if port is None or not _port_ok(port, names, numbers):
                    errors.append(
                        f"{name}: {c['name']}.{kind} port {port!r} is not a container port"
                    )
    errors += [f"{name}: {e}" for e in _restricted_violations(pod)]
    cms, secrets = _refs(pod)
    for cm in sorted(cms - by_kind.get("ConfigMap", set())):
        errors.append(f"{name}: ConfigMap {cm!r} is not rendered")
    for secret in sorted(secrets - by_kind.get("Secret", set()) - external):
        errors.append(f"{name}: Secret {secret!r} is neither rendered nor declared external")
    sa = pod.get("serviceAccountName")
    if sa and sa not in by_kind.get("ServiceAccount", set()):
        errors.append(f"{name}: ServiceAccount {sa!r} is not rendered")
    return errors


def _check_cert_manager(
    objects: list[Obj], by_kind: Mapping[str, set[str]], issued: Mapping[str, Obj]
) -> list[str]:
    errors: list[str] = []
    for obj in objects:
        if obj["kind"] == "Certificate":
            ref = obj["spec"]["issuerRef"]
            if ref.get("kind", "Issuer") == "Issuer" and ref["name"] not in by_kind.get(
                "Issuer", set()
            ):
                errors.append(f"{_name(obj)}: Issuer {ref['name']!r} is not rendered")
        if obj["kind"] == "Issuer" and "ca" in obj["spec"]:
            ca = issued.get(obj["spec"]["ca"]["secretName"])
            if ca is None or not ca["spec"].get("isCA"):
                errors.append(f"{_name(obj)}: CA Secret is not issued by a CA Certificate")
    return errors


def _matching(selector: Mapping[str, Any], workloads: list[Obj]) -> list[Obj]:
    labels = selector.get("matchLabels") or {}
    return [w for w in workloads if all(_pod_labels(w).get(k) == v for k, v in labels.items())]


def _check_network_policies(objects: list[Obj], workloads: list[Obj]) -> list[str]:
    """Every policy selects pods, every in-namespace peer selects pods, every port a rule
    opens is a container port of the pods it leads to."""
    errors: list[str] = []
    jobs = [o for o in objects if o["kind"] == "Job"]
    pods = workloads + jobs
    for pol in (o for o in objects if o["kind"] == "NetworkPolicy"):
        name, spec = _name(pol), pol["spec"]
        selected = _matching(spec["podSelector"], pods)
        if spec["podSelector"] and not selected:
            errors.append(f"{name}: podSelector matches no workload")
        for direction, key in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(spec.get(direction) or []):
                targets = selected if direction == "ingress" else []
                for peer in rule.get(key) or []:
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        hits = _matching(peer["podSelector"], pods)
                        if not hits:
                            errors.append(f"{name}: {direction}/{i} peer matches no workload")
                        if direction == "egress":
                            targets = hits
                for port in rule.get("ports") or []:
                    for w in targets:
                        if not _port_ok(port["port"], *_container_ports(_pod_spec(w) or {})):
                            errors.append(
                                f"{name}: {direction}/{i} port {port['port']!r} is not a "
                                f"container port of {_name(w)}"
                            )
    return errors


def check_consistency(objects: list[Obj], *, external_secrets: Iterable[str] = ()) -> list[str]:
    """Cross-object problems of one rendered overlay (empty when consistent)."""
    external = set(external_secrets)
    errors: list[str] = []
    by_kind: dict[str, set[str]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], set()).add(obj["metadata"]["name"])
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    issued = {
        o["spec"]["secretName"]: o for o in objects if o["kind"] == "Certificate"
    }  # cert-manager writes these Secrets
    by_kind.setdefault("Secret", set()).update(issued)
    for obj in objects:
        errors += _check_workload(obj, by_kind, external)
    errors += _check_cert_manager(objects, by_kind, issued)
    errors += _check_network_policies(objects, workloads)

    for svc in (o for o in objects if o["kind"] == "Service"):
        selector = svc["spec"].get("selector", {})
        backends = [w for w in workloads if _selects(selector, _pod_labels(w))]
        if not backends:
            errors.append(f"{_name(svc)}: selector {selector} matches no workload")
        for port in svc["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            for w in backends:
                pod = _pod_spec(w) or {}
                if not _port_ok(target, *_container_ports(pod)):
                    errors.append(f"{_name(svc)}: targetPort {target!r} not on {_name(w)}")

    for pdb in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"].get("matchLabels", {})
        hits = [w for w in workloads if _selects(selector, _pod_labels(w))]
        if len(hits) != 1:
            errors.append(f"{_name(pdb)}: selects {len(hits)} workloads, expected 1")

    deployments = by_kind.get("Deployment", set())
    scaled: dict[str, list[str]] = {}
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in AUTOSCALER_KINDS:
            target = obj["spec"]["scaleTargetRef"]["name"]
            if target not in deployments:
                errors.append(f"{_name(obj)}: scale target {target!r} is not a rendered Deployment")
            scaled.setdefault(target, []).append(_name(obj))
    for tier, drain in MESH_TIERS.items():
        if tier not in deployments:
            errors.append(f"Deployment/{tier}: missing")
            continue
        if len(scaled.get(tier, [])) != 1:
            errors.append(f"Deployment/{tier}: {len(scaled.get(tier, []))} autoscalers, expected 1")
        dep = next(
            o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == tier
        )
        pod = _pod_spec(dep) or {}
        grace = int(pod.get("terminationGracePeriodSeconds", 30))
        pre_stop = 0
        for c in pod.get("containers", []):
            configured = [float(v) for k, v in flags(c.get("args", [])).items() if k in DRAIN_FLAGS]
            drain = max([drain, *configured])
            pre_stop = max(
                pre_stop,
                int(c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)),
            )
        if grace < drain + pre_stop + 5:
            errors.append(
                f"Deployment/{tier}: terminationGracePeriodSeconds {grace} < drain {drain}"
                f" + preStop {pre_stop} + 5 s margin"
            )
    return errors


def validate_overlay(directory: str | Path, *, external_secrets: Iterable[str] = ()) -> list[str]:
    objects = render(directory)
    seen = {object_id(o) for o in objects}
    assert len(seen) == len(objects)
    return validate_objects(objects) + check_consistency(objects, external_secrets=external_secrets)


if __name__ == "__main__":
    problems: list[str] = []
    for arg in sys.argv[1:]:
        problems += [
            f"{arg}: {p}" for p in validate_overlay(arg, external_secrets=EXTERNAL_SECRETS)
        ]
    print("\n".join(problems) if problems else "ok")
    sys.exit(1 if problems else 0)

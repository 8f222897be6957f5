"""A small, strict subset of kustomize, so the manifests render where kubectl is absent.

Supported kustomization fields (everything deploy/k8s uses, nothing else):

- ``resources``: YAML files (multi-document) and directories holding a kustomization;
- ``namespace``: set on every namespaced object (Namespace objects are left alone);
- ``patches``: JSON 6902 patches (``op`` add / remove / replace / test), inline
  (``patch``) or from a file (``path``), with a ``target`` selecting by
  group / version / kind / name (regular expressions, as in kustomize) / namespace;
- ``replicas``: ``spec.replicas`` of Deployments, StatefulSets, ReplicaSets by name;
- ``images``: ``newName`` / ``newTag`` / ``digest`` of matching container images.

Any other field (generators, strategic-merge patches, name prefixes, ...) raises
:class:`UnsupportedError` instead of being silently ignored: if the manifests start
using one, extend this module and its test (which compares with ``kubectl kustomize``
wherever kubectl is installed).

Usage: ``python deploy/tools/kustomize_lite.py deploy/k8s/overlays/dev`` prints the
rendered YAML stream.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

__all__ = ["KustomizeError", "UnsupportedError", "dump", "render"]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "patches", "replicas", "images"}
)
# Kinds without a namespace (the ones a mesh deployment could plausibly contain).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "RuntimeClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "APIService",
        "ClusterScaledObject",
        "ClusterTriggerAuthentication",
    }
)
REPLICATED_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"})
POD_TEMPLATE_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}

Obj = dict[str, Any]


class KustomizeError(ValueError):
    """The kustomization (or a resource or patch it names) is invalid."""


class UnsupportedError(KustomizeError):
    """The kustomization uses a feature this subset does not implement."""


def render(directory: str | Path) -> list[Obj]:
    """Build the kustomization in ``directory``; returns the objects in resource order."""
    return _build(Path(directory).resolve(), stack=())


def dump(objects: Iterable[Obj]) -> str:
    return yaml.safe_dump_all(list(objects), sort_keys=False, default_flow_style=False)


# --- build ---------------------------------------------------------------------------------


def _kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        path = directory / name
        if path.is_file():
            return path
    raise KustomizeError(f"{directory}: no kustomization file")


def _build(directory: Path, stack: tuple[Path, ...]) -> list[Obj]:
    if directory in stack:
        raise KustomizeError(f"cycle: {' -> '.join(str(p) for p in (*stack, directory))}")
    kfile = _kustomization_file(directory)
    spec = yaml.safe_load(kfile.read_text()) or {}
    if not isinstance(spec, dict):
        raise KustomizeError(f"{kfile}: not a mapping")
    unsupported = sorted(set(spec) - SUPPORTED_FIELDS)
    if unsupported:
        raise UnsupportedError(f"{kfile}: unsupported field(s) {unsupported}")
    if spec.get("kind", "Kustomization") != "Kustomization":
        raise UnsupportedError(f"{kfile}: kind {spec.get('kind')!r} (only Kustomization)")

    objects: list[Obj] = []
    for entry in spec.get("resources") or []:
        path = (directory / str(entry)).resolve()
        if path.is_dir():
            objects.extend(_build(path, (*stack, directory)))
        elif path.is_file():
            objects.extend(_load_objects(path))
        else:
            raise KustomizeError(f"{kfile}: resource {entry!r} not found")
    _check_unique(objects, kfile)

    for patch in spec.get("patches") or []:
        _apply_patch(objects, patch, directory, kfile)
    if spec.get("namespace"):
        _set_namespace(objects, str(spec["namespace"]))
    for rule in spec.get("replicas") or []:
        _set_replicas(objects, rule, kfile)
    for rule in spec.get("images") or []:
        _set_images(objects, rule)
    _check_unique(objects, kfile)
    return objects


def _load_objects(path: Path) -> list[Obj]:
    out: list[Obj] = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise KustomizeError(f"{path}: every document needs apiVersion and kind")
        if doc["kind"].endswith("List") and "items" in doc:
            raise UnsupportedError(f"{path}: List objects")
        if not (doc.get("metadata") or {}).get("name"):
            raise KustomizeError(f"{path}: {doc['kind']} without metadata.name")
        out.append(doc)
    return out


def object_id(obj: Obj) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (obj["apiVersion"], obj["kind"], str(meta.get("namespace") or ""), meta["name"])


def _check_unique(objects: list[Obj], where: Path) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for obj in objects:
        oid = object_id(obj)
        if oid in seen:
            raise KustomizeError(f"{where}: duplicate object {oid}")
        seen.add(oid)


# --- transformers ----------------------------------------------------------------------------


def _set_namespace(objects: list[Obj], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED_KINDS:
            obj.setdefault("metadata", {})["namespace"] = namespace


def _set_replicas(objects: list[Obj], rule: Any, kfile: Path) -> None:
    if not isinstance(rule, dict) or "name" not in rule or "count" not in rule:
        raise KustomizeError(f"{kfile}: replicas entries need name and count")
    hits = [
        o
        for o in objects
        if o["kind"] in REPLICATED_KINDS and o["metadata"]["name"] == rule["name"]
    ]
    if not hits:
        raise KustomizeError(f"{kfile}: replicas: no workload named {rule['name']!r}")
    for obj in hits:
        obj.setdefault("spec", {})["replicas"] = int(rule["count"])


def _split_image(image: str) -> tuple[str, str, str]:
    """``name[:tag][@digest]`` -> (name, tag, digest); a registry port is not a tag."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest


def _set_images(objects: list[Obj], rule: dict[str, Any]) -> None:
    for obj in objects:
        path = POD_TEMPLATE_PATHS.get(obj["kind"])
        if path is None:
            continue
        pod: Any = obj
        for key in path:
            pod = pod.get(key) if isinstance(pod, dict) else None
        if not isinstance(pod, dict):
            continue
        for field in ("initContainers", "containers"):
            for container in pod.get(field) or []:
                name, tag, digest = _split_image(str(container.get("image", "")))
                if name != rule.get("name"):
                    continue
                name = str(rule.get("newName") or name)
                if rule.get("digest"):
                    container["image"] = f"{name}@{rule['digest']}"
                    continue
                tag = str(rule.get("newTag") or tag)
                image = f"{name}:{tag}" if tag else name
                container["image"] = (
                    f"{image}@{digest}" if digest and not rule.get("newTag") else image
                )


# --- patches ---------------------------------------------------------------------------------


def _matches(obj: Obj, target: dict[str, Any]) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    meta = obj.get("metadata") or {}
    checks = {
        "group": group,
        "version": version,
        "kind": obj["kind"],
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace") or "",
    }
    for key, value in target.items():
        if key not in checks:
            raise UnsupportedError(f"patch target selector {key!r}")
        if not re.fullmatch(str(value), str(checks[key])):
            return False
    return True


def _apply_patch(objects: list[Obj], patch: Any, directory: Path, kfile: Path) -> None:
    if not isinstance(patch, dict) or "target" not in patch:
        raise UnsupportedError(f"{kfile}: patches need a target (strategic merge is unsupported)")
    if "patch" in patch:
        text = str(patch["patch"])
    elif "path" in patch:
        text = (directory / str(patch["path"])).read_text()
    else:
        raise KustomizeError(f"{kfile}: patch without patch or path")
    ops = yaml.safe_load(text)
    if not isinstance(ops, list):
        raise UnsupportedError(f"{kfile}: only JSON 6902 patches (a list of operations)")
    targets = [o for o in objects if _matches(o, dict(patch["target"]))]
    if not targets:
        raise KustomizeError(f"{kfile}: patch target {patch['target']} matches nothing")
    for obj in targets:
        for op in ops:
            _json_patch(obj, op, kfile)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise KustomizeError(f"bad JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit():
        raise KustomizeError(f"bad list index {token!r}")
    i = int(token)
    if i > len(container) or (i == len(container) and not allow_end):
        raise KustomizeError(f"list index {i} out of range")
    return i


def _json_patch(obj: Obj, op: Any, kfile: Path) -> None:
    if not isinstance(op, dict) or "op" not in op or "path" not in op:
        raise KustomizeError(f"{kfile}: bad patch operation {op!r}")
    kind = op["op"]
    tokens = _pointer(str(op["path"]))
    if not tokens:
        raise UnsupportedError(f"{kfile}: patching the whole document")
    parent: Any = obj
    for token in tokens[:-1]:
        if isinstance(parent, list):
            parent = parent[_index(parent, token, allow_end=False)]
        elif isinstance(parent, dict) and token in parent:
            parent = parent[token]
        else:
            raise KustomizeError(f"{kfile}: path {op['path']} not found in {object_id(obj)}")
    last = tokens[-1]
    value = copy.deepcopy(op.get("value"))
    if kind == "add":
        if isinstance(parent, list):
            parent.insert(_index(parent, last, allow_end=True), value)
        else:
            parent[last] = value
    elif kind in ("replace", "remove", "test"):
        if isinstance(parent, list):
            i = _index(parent, last, allow_end=False)
        elif isinstance(parent, dict) and last in parent:
            i = None
        else:
            raise KustomizeError(f"{kfile}: path {op['path']} not found in {object_id(obj)}")
        key: Any = last if i is None else i
        if kind == "replace":
            parent[key] = value
        elif kind == "remove":
            del parent[key]
        elif parent[key] != value:
            raise KustomizeError(f"{kfile}: test failed at {op['path']}")
    else:
        raise UnsupportedError(f"{kfile}: JSON patch op {kind!r}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: kustomize_lite.py <kustomization dir>")
    sys.stdout.write(dump(render(sys.argv[1])))

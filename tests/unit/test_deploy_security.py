"""deploy/ is zero trust inside the namespace: every tier has its cert-manager
certificate (the identity the code checks) mounted where LGMESH_TLS_* say, tenant-token
keys go to the right tiers, each tier's backend URLs come from its own Secret, the
servers' users are the ones `lgmesh infra-config` renders from mesh_core.security._infra,
and NetworkPolicies let nothing but the gateway be reached from outside the namespace."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_cli import infra_config
from mesh_core.config import DEFAULT_PREFIX
from mesh_core.security import TIERS as CERT_TIERS
from mesh_core.security import tier_uri
from mesh_core.security._infra import (
    INFRA_TIERS,
    InfraUser,
    etcd_roles,
    nats_permissions,
    nats_users,
    redis_acl_rules,
    url_with_user,
)
from tests.unit.test_deploy import (
    DEPLOY,
    OVERLAYS,
    PASSWORDS,
    SUBCOMMANDS,
    TIERS,
    Obj,
    _container,
    _generated,
    _one,
    _render,
    assert_rejected,
    generated_secret,
    kl,
    vm,
)

#: Deployment -> (certificate tier, infrastructure tier).
IDENTITY = {
    "gateway": ("gateway", "gateway"),
    "runtime-owner": ("runtime", "runtime"),
    "runtime-worker": ("worker", "worker"),
    "llm-gateway": ("llm-gateway", "llm"),
    "tools": ("tools", "tools"),
}
TLS_ENV = {
    "LGMESH_TLS_CA": "ca.crt",
    "LGMESH_TLS_CERT": "tls.crt",
    "LGMESH_TLS_KEY": "tls.key",
}
#: Ports outside callers may reach on a pod other than the gateway: scraping and KEDA.
MONITORING_PORTS = {"metrics", "monitor"}


def _pod(obj: Obj) -> Obj:
    spec: Obj = obj["spec"]["template"]["spec"]
    return spec


def _env(container: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def _secret_volumes(obj: Obj) -> dict[str, tuple[str, str]]:
    """Secret name -> (volume name, mount path) in a Deployment's one container."""
    mounts = {m["name"]: m["mountPath"] for m in _container(obj)["volumeMounts"]}
    return {
        v["secret"]["secretName"]: (v["name"], mounts[v["name"]])
        for v in _pod(obj)["volumes"]
        if "secret" in v
    }


def _namespace(objs: list[Obj]) -> str:
    return str(next(o for o in objs if o["kind"] == "Namespace")["metadata"]["name"])


# --- certificates ------------------------------------------------------------------------------


def test_identity_table_covers_the_code_tiers() -> None:
    assert sorted(IDENTITY) == sorted(TIERS)
    assert sorted(c for c, _ in IDENTITY.values()) == sorted(CERT_TIERS)
    assert sorted(i for _, i in IDENTITY.values()) == sorted(INFRA_TIERS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_tier_mounts_its_own_certificate_from_the_ca_chain(overlay: str) -> None:
    objs = _render(overlay)
    ns = _namespace(objs)
    certs = {o["spec"]["secretName"]: o for o in objs if o["kind"] == "Certificate"}
    issuers = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Issuer"}
    # self-signed bootstrap -> CA Certificate -> CA Issuer -> the tier certificates
    (ca_issuer,) = [i for i in issuers.values() if "ca" in i["spec"]]
    ca_cert = certs[ca_issuer["spec"]["ca"]["secretName"]]
    assert ca_cert["spec"]["isCA"] is True
    assert "selfSigned" in issuers[ca_cert["spec"]["issuerRef"]["name"]]["spec"]
    for dep, (tier, _) in IDENTITY.items():
        obj = _one(objs, "Deployment", dep)
        c = _container(obj)
        secret = f"lgmesh-tls-{tier}"
        mounted = _secret_volumes(obj)
        assert secret in mounted, dep
        path = mounted[secret][1]
        # The cert-manager layout mounts straight onto the agreed variables.
        assert {k: _env(c).get(k) for k in TLS_ENV} == {
            k: f"{path}/{f}" for k, f in TLS_ENV.items()
        }
        # No tier mounts another tier's certificate.
        assert [s for s in mounted if s.startswith("lgmesh-tls-")] == [secret], dep
        spec = certs[secret]["spec"]
        assert spec["issuerRef"]["name"] == ca_issuer["metadata"]["name"]
        assert spec["uris"] == [tier_uri(tier)]
        service = _one(objs, "Service", dep)["metadata"]["name"]
        assert spec["dnsNames"] == [
            f"{tier}.lgmesh.internal",
            service,
            f"{service}.{ns}.svc",
            f"{service}.{ns}.svc.cluster.local",
        ]
        assert {"server auth", "client auth"} <= set(spec["usages"])
        assert spec["privateKey"]["rotationPolicy"] == "Always"
    assert len(certs) == len(CERT_TIERS) + 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tenant_token_private_key_only_on_gateways(overlay: str) -> None:
    objs = _render(overlay)
    for dep in TIERS:
        obj = _one(objs, "Deployment", dep)
        env, mounted = _env(_container(obj)), _secret_volumes(obj)
        if dep == "gateway":
            secret, var, name = "lgmesh-tenant-token-private", "LGMESH_TENANT_TOKEN_KEY", "key"
        else:
            secret, var, name = (
                "lgmesh-tenant-token-public",
                "LGMESH_TENANT_TOKEN_PUBLIC_KEY",
                "pub",
            )
        assert env[var] == f"{mounted[secret][1]}/tenant-token.{name}", dep
        assert list(generated_secret(secret)) == [f"tenant-token.{name}"]
    holders = [
        o["metadata"]["name"]
        for o in objs
        if o["kind"] in ("Deployment", "StatefulSet", "Job")
        and "lgmesh-tenant-token-private" in json.dumps(o)
    ]
    assert holders == ["gateway"]


def test_tenant_token_pair_is_an_ed25519_pair(tmp_path: Path) -> None:
    from mesh_core.security import TenantTokenIssuer, TenantTokenVerifier

    files, _ = _generated()
    path = tmp_path / "tenant-token"
    path.with_suffix(".key").write_text(files["tenant-token.key"])
    path.with_suffix(".pub").write_text(files["tenant-token.pub"])
    token = TenantTokenIssuer.from_file(path.with_suffix(".key")).issue("acme")
    assert TenantTokenVerifier.from_file(path.with_suffix(".pub")).verify(token).tenant == "acme"


# --- backend users -----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_tier_reads_its_backend_urls_from_its_own_secret(overlay: str) -> None:
    objs = _render(overlay)
    for dep, (_, infra_tier) in IDENTITY.items():
        c = _container(_one(objs, "Deployment", dep))
        refs = [s["secretRef"]["name"] for s in c["envFrom"] if "secretRef" in s]
        infra_refs = [r for r in refs if r.startswith("lgmesh-infra-")]
        assert infra_refs == [infra_config.secret_name(infra_tier)], dep
        assert not {"LGMESH_ETCD_URL", "LGMESH_NATS_URL", "LGMESH_REDIS_URL"} & set(_env(c))
        urls = generated_secret(infra_refs[0])
        user = InfraUser(
            f"{DEFAULT_PREFIX}-{infra_tier}",
            PASSWORDS[f"LGMESH_INFRA_PASSWORD_{infra_tier.upper()}"],
        )
        # Only the backends the tier has permissions in, each with its own user.
        expected = {"LGMESH_REDIS_URL": url_with_user("redis://redis:6379/0", user)}
        if infra_tier in etcd_roles(DEFAULT_PREFIX):
            expected["LGMESH_ETCD_URL"] = url_with_user("http://etcd:2379", user)
        if nats_permissions(infra_tier, DEFAULT_PREFIX).publish:
            expected["LGMESH_NATS_URL"] = url_with_user("nats://nats:4222", user)
        assert urls == expected, dep
    # The worker has no etcd; the LLM gateway and tools neither etcd nor NATS.
    assert set(generated_secret("lgmesh-infra-worker")) == {"LGMESH_NATS_URL", "LGMESH_REDIS_URL"}
    assert set(generated_secret("lgmesh-infra-tools")) == {"LGMESH_REDIS_URL"}


def test_generated_server_config_is_what_the_code_defines() -> None:
    files, secrets = _generated()
    users = {
        t: InfraUser(f"{DEFAULT_PREFIX}-{t}", PASSWORDS[f"LGMESH_INFRA_PASSWORD_{t.upper()}"])
        for t in INFRA_TIERS
    }
    admin = PASSWORDS["LGMESH_INFRA_PASSWORD_ADMIN"]
    assert files["redis-users.acl"].splitlines() == [
        "user default off resetkeys resetchannels -@all",
        f"user root on >{admin} ~* &* +@all",
        *(
            f"user {u.username} {redis_acl_rules(t, DEFAULT_PREFIX, u.password)}"
            for t, u in users.items()
        ),
    ]
    entries = re.findall(r"^    (\{.*\})", files["nats-auth.conf"], re.M)
    assert entries == [f'{{user: "root", password: "{admin}"}}', *nats_users(users, DEFAULT_PREFIX)]
    assert files["nats-auth.conf"].startswith("authorization {\n  users = [\n")
    plan = json.loads(files["etcd-users.json"])
    roles = etcd_roles(DEFAULT_PREFIX)
    assert plan["admin"] == {"username": "root", "password": admin}
    assert plan["users"] == [
        {**asdict(u), "role": asdict(roles[t]) if t in roles else None} for t, u in users.items()
    ]
    # The Secrets carry exactly these files, and are the ones the manifests expect.
    assert generated_secret("lgmesh-redis-acl") == {"users.acl": files["redis-users.acl"]}
    assert generated_secret("lgmesh-nats-auth") == {"auth.conf": files["nats-auth.conf"]}
    assert generated_secret("lgmesh-etcd-users") == {"etcd-users.json": files["etcd-users.json"]}
    assert [s["metadata"]["name"] for s in secrets] == list(vm.GENERATED_SECRETS)
    assert vm.validate_objects(secrets) == []


def test_generated_secrets_are_exactly_the_ones_the_manifests_use() -> None:
    for overlay in OVERLAYS:
        used: set[str] = set()
        for obj in _render(overlay):
            used.update(re.findall(r"'(?:secretName|name)': '(lgmesh-[a-z-]+)'", str(obj)))
        assert set(vm.GENERATED_SECRETS) <= used, overlay


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_servers_load_the_rendered_users(overlay: str) -> None:
    objs = _render(overlay)
    redis = _one(objs, "StatefulSet", "redis")
    conf = _one(objs, "ConfigMap", "redis-config")["data"]["redis.conf"]
    (aclfile,) = re.findall(r"^aclfile (\S+)$", conf, re.M)
    vols = {s: p for s, (_, p) in _secret_volumes(redis).items()}
    assert aclfile == f"{vols['lgmesh-redis-acl']}/users.acl"
    nats = _one(objs, "StatefulSet", "nats")
    conf = _one(objs, "ConfigMap", "nats-config")["data"]["nats.conf"]
    (include,) = re.findall(r"^include (\S+)$", conf, re.M)
    config_dir = next(
        m["mountPath"] for m in _container(nats)["volumeMounts"] if m["name"] == "config"
    )
    resolved = (Path(config_dir) / include).resolve().as_posix()
    assert resolved == f"{_secret_volumes(nats)['lgmesh-nats-auth'][1]}/auth.conf"
    job = _one(objs, "Job", "etcd-auth")
    args = vm.flags(_container(job)["args"])
    assert _container(job)["args"][0] == "infra-config"
    path = _secret_volumes(job)["lgmesh-etcd-users"][1]
    assert args["--apply-etcd"] == f"{path}/etcd-users.json"
    assert args["--etcd-url"] == "http://etcd:2379"


# --- network policies --------------------------------------------------------------------------


def _component(selector: Obj) -> str:
    labels = selector.get("matchLabels") or {}
    return str(labels.get("app.kubernetes.io/component") or labels.get("app.kubernetes.io/name"))


def _policies(objs: list[Obj]) -> dict[str, Obj]:
    return {
        _component(o["spec"]["podSelector"]): o
        for o in objs
        if o["kind"] == "NetworkPolicy" and o["spec"]["podSelector"]
    }


def _sources(policy: Obj, port: Any) -> set[str]:
    """Who may reach ``port`` of the selected pods: components in the namespace, or
    ns:<name> / "anywhere" for callers outside it."""
    out: set[str] = set()
    for rule in policy["spec"].get("ingress") or []:
        if rule.get("ports") and port not in [p["port"] for p in rule["ports"]]:
            continue
        peers: Iterable[Obj] = rule.get("from") or [{"anywhere": True}]
        for peer in peers:
            if "namespaceSelector" in peer:
                out.add(
                    "ns:" + peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                )
            elif "podSelector" in peer:
                out.add(_component(peer["podSelector"]))
            else:
                out.add("anywhere")
    return out


def _deployments_of(tiers: Iterable[str]) -> set[str]:
    return {dep for dep, (_, t) in IDENTITY.items() if t in tiers}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_admit_only_the_callers(overlay: str) -> None:
    objs = _render(overlay)
    deny = _one(objs, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = _one(objs, "NetworkPolicy", "allow-dns")["spec"]
    assert dns["podSelector"] == {} and {p["port"] for p in dns["egress"][0]["ports"]} == {53}
    policies = _policies(objs)
    workloads = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet", "Job")]
    # Every workload has its own policy (ingress and egress).
    for w in workloads:
        labels = w["spec"]["template"]["metadata"]["labels"]
        name = labels.get("app.kubernetes.io/component") or labels["app.kubernetes.io/name"]
        assert set(policies[name]["spec"]["policyTypes"]) == {"Ingress", "Egress"}, name
    # Only the gateway admits traffic from outside the namespace, on its gRPC port;
    # elsewhere outsiders reach monitoring ports only (Prometheus, KEDA).
    for name, pol in policies.items():
        for rule in pol["spec"].get("ingress") or []:
            peers = rule.get("from") or [{}]
            outside = any("namespaceSelector" in p or "podSelector" not in p for p in peers)
            ports = {p["port"] for p in rule.get("ports") or [{"port": "any"}]}
            if outside and name != "gateway":
                assert ports <= MONITORING_PORTS, (name, rule)
            if outside and ports - MONITORING_PORTS:
                assert (name, ports) == ("gateway", {"grpc"}), rule
    assert _sources(policies["gateway"], "grpc") == {"anywhere"}
    # The mesh's calls: only gateways call runtimes; only runtimes call LLM gateway/tools.
    assert _sources(policies["runtime-owner"], "grpc") == {"gateway"}
    assert _sources(policies["runtime-worker"], "grpc") == set()
    for tier in ("llm-gateway", "tools"):
        assert _sources(policies[tier], "grpc") == {"runtime-owner", "runtime-worker"}
    for tier in TIERS:
        assert _sources(policies[tier], "metrics") == {"ns:monitoring"}, tier
    # Backends: only the tiers with a user there (mesh_core.security._infra).
    with_nats = [t for t in INFRA_TIERS if nats_permissions(t, DEFAULT_PREFIX).publish]
    assert _sources(policies["etcd"], "client") == _deployments_of(etcd_roles(DEFAULT_PREFIX)) | {
        "etcd-auth"
    }
    assert _sources(policies["nats"], "client") == _deployments_of(with_nats)
    assert _sources(policies["redis"], "redis") == _deployments_of(INFRA_TIERS)
    assert _sources(policies["nats"], "monitor") == {"ns:keda", "ns:monitoring"}

    # ... and the tiers' egress agrees: a worker reaches NATS and Redis, never etcd.
    def egress_to(tier: str) -> set[str]:
        return {
            _component(peer["podSelector"])
            for rule in policies[tier]["spec"]["egress"]
            for peer in rule.get("to") or []
            if "podSelector" in peer and "namespaceSelector" not in peer
        }

    assert egress_to("runtime-worker") == {"nats", "redis", "llm-gateway", "tools"}
    assert egress_to("gateway") == {"runtime-owner", "etcd", "nats", "redis"}
    assert egress_to("llm-gateway") == egress_to("tools") == {"redis"}


# --- validation knows the new kinds ------------------------------------------------------------


def _security_mutations() -> dict[str, tuple[Any, str]]:
    def cert(objs: list[Obj]) -> Obj:
        return _one(objs, "Certificate", "lgmesh-gateway")

    return {
        "usage typo": (
            lambda o: cert(o)["spec"].__setitem__("usages", ["server-auth"]),
            "is not one of",
        ),
        "unknown Certificate field": (
            lambda o: cert(o)["spec"].__setitem__("dnsName", ["x"]),
            "Additional properties are not allowed",
        ),
        "missing issuer": (
            lambda o: cert(o)["spec"]["issuerRef"].__setitem__("name", "nope"),
            "Issuer 'nope' is not rendered",
        ),
        "CA issuer on a leaf": (
            lambda o: _one(o, "Issuer", "lgmesh-ca")["spec"]["ca"].__setitem__(
                "secretName", "lgmesh-tls-gateway"
            ),
            "not issued by a CA Certificate",
        ),
        "policy on a port the pod lacks": (
            lambda o: _one(o, "NetworkPolicy", "gateway")["spec"]["egress"][1]["ports"][
                0
            ].__setitem__("port", 2400),
            "port 2400 is not a container port of StatefulSet/etcd",
        ),
        "policy selecting nothing": (
            lambda o: _one(o, "NetworkPolicy", "tools")["spec"]["podSelector"][
                "matchLabels"
            ].__setitem__("app.kubernetes.io/component", "toolz"),
            "podSelector matches no workload",
        ),
        "unmounted TLS secret": (
            lambda o: _pod(_one(o, "Deployment", "tools"))["volumes"][1]["secret"].__setitem__(
                "secretName", "lgmesh-tls-toolz"
            ),
            "Secret 'lgmesh-tls-toolz' is neither rendered nor declared external",
        ),
    }


@pytest.mark.parametrize("case", sorted(_security_mutations()))
def test_validation_rejects_broken_security_objects(case: str) -> None:
    assert_rejected(*_security_mutations()[case])


def test_optional_public_tls_patch_renders_and_validates(tmp_path: Path) -> None:
    shutil.copytree(DEPLOY / "k8s", tmp_path / "k8s")
    kfile = tmp_path / "k8s" / "overlays" / "prod" / "kustomization.yaml"
    text = kfile.read_text()
    start = text.index("  # - target: {kind: Deployment, name: gateway}")
    block = re.sub(r"^  # ", "  ", text[start:], flags=re.M)
    kfile.write_text(text[:start] + block)
    objs = kl.render(kfile.parent)
    assert vm.validate_objects([_one(objs, "Deployment", "gateway")]) == []
    assert (
        vm.check_consistency(objs, external_secrets=[*vm.EXTERNAL_SECRETS, "lgmesh-public-tls"])
        == []
    )
    gateway = _one(objs, "Deployment", "gateway")
    env = _env(_container(gateway))
    path = _secret_volumes(gateway)["lgmesh-public-tls"][1]
    assert env["LGMESH_PUBLIC_TLS_CERT"] == f"{path}/tls.crt"
    assert env["LGMESH_PUBLIC_TLS_KEY"] == f"{path}/tls.key"


def test_optional_payload_keys_patch_renders_and_validates(tmp_path: Path) -> None:
    from mesh_cli._main import build_parser

    shutil.copytree(DEPLOY / "k8s", tmp_path / "k8s")
    kfile = tmp_path / "k8s" / "overlays" / "prod" / "kustomization.yaml"
    text = kfile.read_text()
    start = text.index('  # - target: {kind: Deployment, name: "gateway|runtime-owner')
    end = text.index("  # Optional TLS on the public port")
    block = re.sub(r"^  # ", "  ", text[start:end], flags=re.M)
    kfile.write_text(text[:start] + block + text[end:])
    objs = kl.render(kfile.parent)
    external = [*vm.EXTERNAL_SECRETS, "lgmesh-payload-keys"]
    assert vm.check_consistency(objs, external_secrets=external) == []
    # every tier that stores payloads mounts the keys, and its command reads the variable
    for name in ("gateway", "runtime-owner", "runtime-worker", "llm-gateway", "tools"):
        dep = _one(objs, "Deployment", name)
        assert vm.validate_objects([dep]) == []
        path = _secret_volumes(dep)["lgmesh-payload-keys"][1]
        assert _env(_container(dep))["LGMESH_PAYLOAD_KEYS"] == f"{path}/payload-keys"
        ns = build_parser({"LGMESH_PAYLOAD_KEYS": path}).parse_args(
            [SUBCOMMANDS[name], *(["--graphs", "g.yaml"] if name.startswith("runtime") else [])]
        )
        assert ns.payload_keys == path, name


def test_readme_explains_the_security_setup() -> None:
    text = (DEPLOY / "README.md").read_text()
    for needle in (
        "lgmesh infra-config",
        "cert-manager",
        "NetworkPolicy",
        "## Data at rest",
        "ca.crt",
        *vm.GENERATED_SECRETS,
        *(f"lgmesh-tls-{t}" for t in CERT_TIERS),
    ):
        assert needle in text, needle


def test_lgmesh_infra_config_writes_private_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mesh_cli import main

    for key, value in PASSWORDS.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "secrets"
    assert main(["infra-config", "--out", str(out)]) == 0
    assert "secrets.yaml" in capsys.readouterr().out
    files, secrets = _generated()
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    assert out.stat().st_mode & 0o777 == 0o700
    for path in out.iterdir():
        mode = path.stat().st_mode & 0o777
        assert mode == (0o644 if path.name == "tenant-token.pub" else 0o600), path.name
        if not path.name.startswith(("tenant-token", "secrets")):
            assert path.read_text() == files[path.name], path.name
    written = list(yaml.safe_load_all((out / "secrets.yaml").read_text()))
    token_secrets = {"lgmesh-tenant-token-private", "lgmesh-tenant-token-public"}
    assert [s for s in written if s["metadata"]["name"] not in token_secrets] == [
        s for s in secrets if s["metadata"]["name"] not in token_secrets
    ]
    # Neither or both of --out / --apply-etcd: one line, exit 2.
    assert main(["infra-config"]) == 2
    assert "either --out DIR" in capsys.readouterr().err


@pytest.mark.parametrize("password", ["short-1", 'has "quotes" and spaces 0123456789'])
def test_a_password_that_would_break_the_server_configs_is_refused(password: str) -> None:
    env = {**PASSWORDS, "LGMESH_INFRA_PASSWORD_WORKER": password}
    with pytest.raises(ValueError, match="LGMESH_INFRA_PASSWORD_WORKER: use at least 16"):
        infra_config.render(DEFAULT_PREFIX, infra_config.DEFAULT_URLS, env)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_env_var_a_deployment_sets_is_a_flag_of_its_command(
    overlay: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The manifests and the CLI agree on names: each LGMESH_* variable a container sets
    (its own env, not the shared ConfigMap) is the env var of a flag of its command."""
    from mesh_cli._main import build_parser

    helps: dict[str, str] = {}
    for obj in kl.render(DEPLOY / "k8s" / "overlays" / overlay):
        if obj["kind"] != "Deployment" or obj["metadata"]["name"] not in SUBCOMMANDS:
            continue
        command = SUBCOMMANDS[obj["metadata"]["name"]]
        if command not in helps:
            with pytest.raises(SystemExit):
                build_parser({}).parse_args([command, "--help"])
            helps[command] = " ".join(capsys.readouterr().out.split())
        for name in _env(_container(obj)):
            if name.startswith("LGMESH_"):
                assert f"env {name}" in helps[command], (
                    f"{obj['metadata']['name']} sets {name}, which lgmesh {command} does not read"
                )

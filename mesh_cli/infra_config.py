"""``lgmesh infra-config``: the servers' side of the infrastructure users, from the code.

Renders, for one mesh prefix, from the same definitions the services and the test
fixtures use (:mod:`mesh_core.security._infra`):

* ``redis-users.acl`` -- Valkey/Redis ACL file (default user off, admin ``root``, one
  least-privilege user per tier);
* ``nats-auth.conf`` -- the ``authorization`` block nats.conf includes;
* ``etcd-users.json`` -- etcd users and roles, applied with ``--apply-etcd``;
* ``<tier>.env`` -- a tier's ``LGMESH_*_URL`` with its own user (only the backends it uses);
* ``tenant-token.key`` / ``tenant-token.pub`` -- the Ed25519 pair gateways sign tenant
  tokens with (private key for gateways only);
* ``secrets.yaml`` -- all of the above as the Kubernetes Secrets deploy/k8s mounts.

Passwords come from ``LGMESH_INFRA_PASSWORD_<TIER>`` (``ADMIN``, ``RUNTIME``, ``WORKER``,
``GATEWAY``, ``TOOLS``, ``LLM``), else are generated. Nothing is contacted while
rendering; ``--apply-etcd FILE`` creates the etcd users and roles of a rendered
``etcd-users.json`` (idempotently, auth on last) through etcd's JSON gateway.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mesh_cli._flags import Flags
from mesh_core.security._infra import (
    INFRA_TIERS,
    InfraCredentials,
    InfraUser,
    etcd_roles,
    nats_permissions,
    nats_users,
    redis_acl_rules,
    url_with_user,
)

__all__ = [
    "ADMIN_USER",
    "BACKENDS",
    "DEFAULT_URLS",
    "DESCRIPTION",
    "add_parser",
    "apply_etcd",
    "password_env",
    "render",
    "run",
    "secret_name",
]

#: The administrator of all three servers (etcd requires this name to enable auth).
ADMIN_USER = "root"
#: Backend -> its URL variable.
BACKENDS = {"etcd": "LGMESH_ETCD_URL", "nats": "LGMESH_NATS_URL", "redis": "LGMESH_REDIS_URL"}
DESCRIPTION = (
    "Render, for one mesh prefix, the servers' side of the per-tier backend users from the "
    "definitions the services use: redis-users.acl (Valkey ACL file), nats-auth.conf "
    "(authorization block), etcd-users.json (apply with --apply-etcd), <tier>.env (a tier's "
    "URLs with its own user), the tenant-token Ed25519 pair, and secrets.yaml (all of it as "
    "the Secrets deploy/k8s mounts). Passwords: LGMESH_INFRA_PASSWORD_<ADMIN|RUNTIME|WORKER|"
    "GATEWAY|TOOLS|LLM>, else generated. Rendering contacts nothing."
)
DEFAULT_URLS = {
    "etcd": "http://etcd:2379",
    "nats": "nats://nats:4222",
    "redis": "redis://redis:6379/0",
}


def password_env(tier: str) -> str:
    return f"LGMESH_INFRA_PASSWORD_{tier.upper()}"


def secret_name(tier: str) -> str:
    """The Kubernetes Secret holding ``tier``'s backend URLs."""
    return f"lgmesh-infra-{tier}"


def backends_of(tier: str, prefix: str) -> list[str]:
    """The backends ``tier`` uses (and so gets a URL for)."""
    perms = nats_permissions(tier, prefix)
    out = ["etcd"] if tier in etcd_roles(prefix) else []
    if perms.publish or perms.subscribe:
        out.append("nats")
    return [*out, "redis"]


def _password(env: Mapping[str, str], tier: str) -> str:
    given = env.get(password_env(tier))
    if not given:
        return secrets.token_urlsafe(24)
    # It goes unescaped into an ACL line, a quoted NATS string and URLs.
    if len(given) < 16 or not re.fullmatch(r"[A-Za-z0-9._~-]+", given):
        raise ValueError(
            f"{password_env(tier)}: use at least 16 of the characters A-Z a-z 0-9 . _ ~ -"
        )
    return given


def render(
    prefix: str, urls: Mapping[str, str], env: Mapping[str, str]
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """(file name -> text, Kubernetes Secrets) for mesh ``prefix``."""
    admin = InfraUser(ADMIN_USER, _password(env, "admin"))
    creds = InfraCredentials(
        prefix,
        {t: InfraUser(f"{prefix}-{t}", _password(env, t)) for t in INFRA_TIERS},
    )
    acl = [
        "user default off resetkeys resetchannels -@all",
        f"user {admin.username} on >{admin.password} ~* &* +@all",
        *(
            f"user {u.username} {redis_acl_rules(t, prefix, u.password)}"
            for t, u in creds.users.items()
        ),
    ]
    nats = [
        f'{{user: "{admin.username}", password: "{admin.password}"}}',
        *nats_users(creds.users, prefix),
    ]
    roles = etcd_roles(prefix)
    etcd = {
        "admin": asdict(admin),
        "users": [
            {**asdict(u), "role": asdict(roles[t]) if t in roles else None}
            for t, u in creds.users.items()
        ],
    }
    signer = ed25519.Ed25519PrivateKey.generate()
    files = {
        "redis-users.acl": "\n".join(acl) + "\n",
        "nats-auth.conf": "authorization {\n  users = [\n    "
        + ",\n    ".join(nats)
        + "\n  ]\n}\n",
        "etcd-users.json": json.dumps(etcd, indent=2) + "\n",
        "tenant-token.key": signer.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "tenant-token.pub": signer.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    }
    tier_env: dict[str, dict[str, str]] = {}
    for tier, user in creds.users.items():
        tier_env[tier] = {
            BACKENDS[b]: url_with_user(urls[b], user) for b in backends_of(tier, prefix)
        }
        files[f"{tier}.env"] = "".join(f"{k}={v}\n" for k, v in tier_env[tier].items())

    def secret(name: str, data: Mapping[str, str]) -> dict[str, Any]:
        labels = {"app.kubernetes.io/name": "lgmesh", "app.kubernetes.io/part-of": "lgmesh"}
        meta = {"name": name, "labels": labels}
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": "Opaque",
            "stringData": dict(data),
        }

    objs = [
        secret("lgmesh-redis-acl", {"users.acl": files["redis-users.acl"]}),
        secret("lgmesh-nats-auth", {"auth.conf": files["nats-auth.conf"]}),
        secret("lgmesh-etcd-users", {"etcd-users.json": files["etcd-users.json"]}),
        secret("lgmesh-infra-admin", {"username": admin.username, "password": admin.password}),
        *(secret(secret_name(t), e) for t, e in tier_env.items()),
        secret("lgmesh-tenant-token-private", {"tenant-token.key": files["tenant-token.key"]}),
        secret("lgmesh-tenant-token-public", {"tenant-token.pub": files["tenant-token.pub"]}),
    ]
    files["secrets.yaml"] = yaml.safe_dump_all(objs, sort_keys=False)
    return files, objs


# -- etcd (its JSON gateway: no etcdctl needed) -------------------------------------------
def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class _Etcd:
    def __init__(self, url: str) -> None:
        base = url.split("://", 1)[-1].rsplit("@", 1)[-1]
        scheme = url.split("://", 1)[0] if "://" in url else "http"
        self.base = f"{scheme}://{base.rstrip('/')}/v3/"
        self.token = ""

    def call(
        self, path: str, body: Mapping[str, Any], *, exists_ok: bool = False
    ) -> dict[str, Any] | None:
        """The JSON answer; None when ``exists_ok`` and it already existed."""
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = self.token
        req = urllib.request.Request(self.base + path, json.dumps(body).encode(), headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                out: dict[str, Any] = json.loads(resp.read() or b"{}")
                return out
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            if exists_ok and "already" in text:
                return None
            raise RuntimeError(
                f"etcd {path}: {json.loads(text or '{}').get('message', text)}"
            ) from None


def apply_etcd(url: str, plan: Mapping[str, Any], say: Callable[[str], None] = print) -> None:
    """Create the users and roles of a rendered ``etcd-users.json`` and turn auth on.

    Idempotent: existing users get the plan's password, existing roles its permission."""
    etcd = _Etcd(url)
    admin = plan["admin"]
    with contextlib.suppress(RuntimeError):  # auth already on: act as the admin
        auth = {"name": admin["username"], "password": admin["password"]}
        etcd.token = str((etcd.call("auth/authenticate", auth) or {})["token"])
    enabled = bool(etcd.token)
    users = [admin, *plan["users"]] if not enabled else list(plan["users"])
    for user in users:
        name, password = user["username"], user["password"]
        login = {"name": name, "password": password}
        if etcd.call("auth/user/add", login, exists_ok=True) is None:
            etcd.call("auth/user/changepw", login)  # it existed: keep the plan's password
        role = {"name": "root"} if user is admin else user.get("role")
        if role is None:
            say(f"etcd: user {name} (no role: reads nothing)")
            continue  # a tier that does not use etcd
        etcd.call("auth/role/add", {"name": role["name"]}, exists_ok=True)
        if user is not admin:
            perm = {
                "permType": role["permission"],
                "key": _b64(role["key"]),
                "range_end": _b64(role["range_end"]),
            }
            etcd.call("auth/role/grant", {"name": role["name"], "perm": perm})
        etcd.call("auth/user/grant", {"user": name, "role": role["name"]})
        say(f"etcd: user {name} with role {role['name']}")
    if not enabled:
        etcd.call("auth/enable", {})
        say("etcd: auth enabled")


# -- the command ----------------------------------------------------------------------------
def add_parser(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    f = Flags(parser, env)
    f.add(
        "--prefix",
        env="LGMESH_PREFIX",
        default="lgmesh",
        help="the mesh's prefix (keys, subjects, etcd range)",
    )
    f.add(
        "--out",
        env="LGMESH_INFRA_CONFIG_OUT",
        default=None,
        help="directory to render into (created, mode 0700)",
    )
    f.add(
        "--apply-etcd",
        env="LGMESH_INFRA_APPLY_ETCD",
        default=None,
        help="instead of rendering: create the users of this etcd-users.json in --etcd-url",
    )
    for backend in BACKENDS:
        where = " (and where --apply-etcd applies them)" if backend == "etcd" else ""
        f.add(
            f"--{backend}-url",
            # Not LGMESH_<BACKEND>_URL: a developer's local URL must not leak into Secrets.
            env=f"LGMESH_INFRA_{backend.upper()}_URL",
            default=DEFAULT_URLS[backend],
            help=f"{backend} address the tiers' URLs name, any user in it replaced{where}",
        )


def run(ns: argparse.Namespace, env: Mapping[str, str]) -> Callable[[], int]:
    if bool(ns.out) == bool(ns.apply_etcd):
        raise ValueError("give either --out DIR (render) or --apply-etcd FILE")
    if ns.apply_etcd:
        plan = json.loads(Path(ns.apply_etcd).read_text())

        def apply() -> int:
            apply_etcd(ns.etcd_url, plan)
            return 0

        return apply
    urls = {b: getattr(ns, f"{b}_url") for b in BACKENDS}
    files, _ = render(ns.prefix, urls, env)

    def write() -> int:
        out = Path(ns.out)
        out.mkdir(parents=True, exist_ok=True)
        out.chmod(0o700)
        for name, text in files.items():
            path = out / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            path.chmod(0o644 if name == "tenant-token.pub" else 0o600)
        print(
            f"lgmesh infra-config: wrote {len(files)} files to {out} (kubectl apply -f {out}/secrets.yaml)"
        )
        return 0

    return write

"""Settings as frozen, documented objects. The environment is read here and only here."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

__all__ = [
    "DEFAULT_PREFIX",
    "ConfigError",
    "InfraSettings",
    "env_bool",
    "env_float",
    "env_int",
    "env_str",
]

DEFAULT_PREFIX = "lgmesh"


class ConfigError(ValueError):
    """A configuration the process cannot start with (a bad flag, file or graph path).

    Reported as one line naming what is wrong, never as a traceback.
    """


def env_str(env: Mapping[str, str], key: str, default: str) -> str:
    value = env.get(key)
    return default if value is None or value == "" else value


def env_int(env: Mapping[str, str], key: str, default: int) -> int:
    value = env.get(key)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"{key} must be an integer, got {value!r}") from exc


def env_float(env: Mapping[str, str], key: str, default: float) -> float:
    value = env.get(key)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ValueError(f"{key} must be a number, got {value!r}") from exc


def env_bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    value = env.get(key)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class InfraSettings:
    """Where the mesh's backing servers are, and the namespace it uses in them.

    Attributes:
        etcd_url: etcd client URL (``http://host:port``); thread leases and the registry.
        nats_url: NATS URL; JetStream task queue, run event logs, cancel broadcasts.
        redis_url: Redis/Valkey URL; checkpoints, run records, limits, caches.
        prefix: namespace for every etcd key, NATS subject/stream and Redis key, so
            several meshes (and parallel test runs) can share servers.
    """

    etcd_url: str = "http://127.0.0.1:2379"
    nats_url: str = "nats://127.0.0.1:4222"
    redis_url: str = "redis://127.0.0.1:6379/0"
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InfraSettings:
        env = os.environ if env is None else env
        return cls(
            etcd_url=env_str(env, "LGMESH_ETCD_URL", cls.etcd_url),
            nats_url=env_str(env, "LGMESH_NATS_URL", cls.nats_url),
            redis_url=env_str(env, "LGMESH_REDIS_URL", cls.redis_url),
            prefix=env_str(env, "LGMESH_PREFIX", DEFAULT_PREFIX),
        )

    def etcd_host_port(self) -> tuple[str, int]:
        u = urlparse(self.etcd_url if "://" in self.etcd_url else f"http://{self.etcd_url}")
        return u.hostname or "127.0.0.1", u.port or 2379

    def etcd_credentials(self) -> tuple[str | None, str | None]:
        """(user, password) from ``etcd_url`` (``http://user:pass@host:port``), or Nones."""
        u = urlparse(self.etcd_url if "://" in self.etcd_url else f"http://{self.etcd_url}")
        if u.username is None:
            return None, None
        return unquote(u.username), unquote(u.password or "")

"""tool_svc settings: frozen, documented, built once from the CLI, the config file and env.

The config file (YAML) lists the tools to load and their limits::

    defaults:              # apply to every tool unless the tool overrides them
      timeout: 30          # seconds a call may run
      max_concurrency: 32  # calls of one tool running at once on a replica
      max_queue_wait: 10   # seconds a call waits for a free slot before RESOURCE_EXHAUSTED
    thread_pool_size: 32   # threads for synchronous tools (shared by all tools)
    idempotency_ttl: 86400 # seconds a completed call's result is kept under its key
    tools:
      - import: mesh_demo.tools:TOOLS     # a list of tools, a tool, or a function
      - import: mypkg.search:web_search
        name: web_search_v2               # optional rename (single tools only)
        timeout: 5
        max_concurrency: 8
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mesh_core.config import InfraSettings
from mesh_core.limits import LimitsTable
from mesh_core.security import PLAINTEXT, InternalSecurity, PayloadCodec

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_IDEMPOTENCY_TTL",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_QUEUE_WAIT",
    "DEFAULT_PORT",
    "DEFAULT_THREAD_POOL_SIZE",
    "DEFAULT_TIMEOUT",
    "ToolConfigError",
    "ToolServiceSettings",
    "ToolSpec",
]

DEFAULT_PORT = 50061
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_CONCURRENCY = 32
# A call past its tenant's share (or a full tool) queues for its turn this long: a tenant's
# burst makes its own runs wait for its slots instead of failing them after a second,
# which made a bursting client re-create them at once in a loop (bench/noisy_neighbor.py:
# B's p95 under A's load 2.2-2.4x -> 1.3-1.5x of idle). The call's deadline bounds it too.
DEFAULT_MAX_QUEUE_WAIT = 10.0
DEFAULT_THREAD_POOL_SIZE = 32
DEFAULT_IDEMPOTENCY_TTL = 24 * 3600.0
DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.yaml")


class ToolConfigError(ValueError):
    """The tool configuration is invalid (bad YAML, unknown keys, an import that fails)."""


@dataclass(frozen=True)
class ToolSpec:
    """One ``tools:`` entry of the config file.

    Attributes:
        import_path: ``package.module:attribute`` (or ``package.module.attribute``); the
            attribute is a LangChain ``BaseTool``, an ``@tool`` function, a plain typed
            function (sync or async), or a list of those.
        name: rename the tool (only when the import is a single tool).
        timeout: seconds a call may run; None: the defaults.
        max_concurrency: calls running at once on one replica; None: the defaults.
        max_queue_wait: seconds a call waits for a slot; None: the defaults.
    """

    import_path: str
    name: str | None = None
    timeout: float | None = None
    max_concurrency: int | None = None
    max_queue_wait: float | None = None


@dataclass(frozen=True)
class ToolServiceSettings:
    """Everything one tool_svc replica needs.

    Attributes:
        infra: where Redis is (idempotency cache) and the key prefix.
        tools: the tools to load, in order.
        host / port: gRPC listen address (port 0: a free port).
        metrics_port: Prometheus /metrics port; None: no metrics endpoint.
        metrics_host: address the metrics endpoint binds.
        default_timeout / default_max_concurrency / default_max_queue_wait: limits of
            tools that do not set their own.
        thread_pool_size: threads that run synchronous tools (async tools run on the loop).
        idempotency_ttl: seconds a completed call's result is kept under its key.
        idempotency_lock_ttl: seconds the "running" marker of a keyed call lives without
            renewal; the replica running the tool renews it, so it only lapses when the
            replica dies (then another caller with the key may run the tool).
        drain_grace: seconds in-flight calls get to finish after SIGTERM.
        limits: per-tenant limits; here each tenant's ``tool_share`` of every tool.
        security: mutual TLS and tenant tokens on the gRPC port (see tool_svc.servicer).
        payload_codec: seals the stored results of keyed calls in Redis
            (``--payload-keys``); None: stored as they are.
    """

    infra: InfraSettings = field(default_factory=InfraSettings)
    tools: tuple[ToolSpec, ...] = ()
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    default_timeout: float = DEFAULT_TIMEOUT
    default_max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    default_max_queue_wait: float = DEFAULT_MAX_QUEUE_WAIT
    thread_pool_size: int = DEFAULT_THREAD_POOL_SIZE
    idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL
    idempotency_lock_ttl: float = 10.0
    drain_grace: float = 10.0
    limits: LimitsTable = field(default_factory=LimitsTable)
    security: InternalSecurity = PLAINTEXT
    payload_codec: PayloadCodec | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_config_file(
        cls, path: str | Path, *, infra: InfraSettings, **overrides: Any
    ) -> ToolServiceSettings:
        """Settings from a YAML config file; ``overrides`` (host, port, ...) win."""
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ToolConfigError(f"cannot read tool config {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ToolConfigError(f"tool config {path} is not valid YAML: {exc}") from exc
        return cls.from_mapping(raw or {}, infra=infra, **overrides)

    @classmethod
    def from_mapping(
        cls, raw: Mapping[str, Any], *, infra: InfraSettings, **overrides: Any
    ) -> ToolServiceSettings:
        if not isinstance(raw, Mapping):
            raise ToolConfigError("tool config must be a mapping")
        _check_keys(raw, {"defaults", "tools", "thread_pool_size", "idempotency_ttl"}, "config")
        defaults = raw.get("defaults") or {}
        if not isinstance(defaults, Mapping):
            raise ToolConfigError("defaults must be a mapping")
        _check_keys(defaults, {"timeout", "max_concurrency", "max_queue_wait"}, "defaults")
        entries = raw.get("tools") or []
        if not isinstance(entries, list):
            raise ToolConfigError("tools must be a list")
        kw: dict[str, Any] = {
            "infra": infra,
            "tools": tuple(_spec(e, i) for i, e in enumerate(entries)),
        }
        if "timeout" in defaults:
            kw["default_timeout"] = _positive(defaults["timeout"], "defaults.timeout")
        if "max_concurrency" in defaults:
            kw["default_max_concurrency"] = int(
                _positive(defaults["max_concurrency"], "defaults.max_concurrency")
            )
        if "max_queue_wait" in defaults:
            kw["default_max_queue_wait"] = _non_negative(
                defaults["max_queue_wait"], "defaults.max_queue_wait"
            )
        if "thread_pool_size" in raw:
            kw["thread_pool_size"] = int(_positive(raw["thread_pool_size"], "thread_pool_size"))
        if "idempotency_ttl" in raw:
            kw["idempotency_ttl"] = _positive(raw["idempotency_ttl"], "idempotency_ttl")
        kw.update(overrides)
        return cls(**kw)


def _check_keys(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ToolConfigError(f"unknown keys in {where}: {', '.join(map(str, unknown))}")


def _positive(value: Any, where: str) -> float:
    number = _number(value, where)
    if number <= 0:
        raise ToolConfigError(f"{where} must be > 0, got {value!r}")
    return number


def _non_negative(value: Any, where: str) -> float:
    number = _number(value, where)
    if number < 0:
        raise ToolConfigError(f"{where} must be >= 0, got {value!r}")
    return number


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolConfigError(f"{where} must be a number, got {value!r}")
    return float(value)


def _spec(entry: Any, index: int) -> ToolSpec:
    where = f"tools[{index}]"
    if isinstance(entry, str):
        return ToolSpec(import_path=entry)
    if not isinstance(entry, Mapping):
        raise ToolConfigError(f"{where} must be an import path or a mapping")
    _check_keys(entry, {"import", "name", "timeout", "max_concurrency", "max_queue_wait"}, where)
    path = entry.get("import")
    if not isinstance(path, str) or not path:
        raise ToolConfigError(f"{where}.import must be a non-empty import path")
    name = entry.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ToolConfigError(f"{where}.name must be a non-empty string")
    return ToolSpec(
        import_path=path,
        name=name,
        timeout=_positive(entry["timeout"], f"{where}.timeout") if "timeout" in entry else None,
        max_concurrency=(
            int(_positive(entry["max_concurrency"], f"{where}.max_concurrency"))
            if "max_concurrency" in entry
            else None
        ),
        max_queue_wait=(
            _non_negative(entry["max_queue_wait"], f"{where}.max_queue_wait")
            if "max_queue_wait" in entry
            else None
        ),
    )

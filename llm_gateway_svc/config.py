"""Settings of the LLM gateway: frozen, documented, loaded once from YAML + environment.

The YAML file names providers, routes (model alias -> ordered provider targets),
limits, cache and idempotency TTLs. API keys never appear in the file: a provider
names the environment variable that holds its key (``api_key_env``), and the key is
resolved here, the one place the gateway reads its environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mesh_core.config import ConfigError as MeshConfigError
from mesh_core.config import InfraSettings
from mesh_core.limits import LimitsTable
from mesh_core.security import PLAINTEXT, InternalSecurity, PayloadCodec

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "BreakerSettings",
    "ConfigError",
    "LimitRule",
    "LimitSettings",
    "LlmGatewaySettings",
    "ProviderSettings",
    "RetrySettings",
    "Target",
]

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.yaml")
# "openai" and "anthropic" are shorthands for type "langchain" with that family.
PROVIDER_TYPES = ("langchain", "openai", "anthropic", "scripted")


class ConfigError(MeshConfigError):
    """The gateway's configuration file is invalid (or names an integration not installed)."""


@dataclass(frozen=True)
class RetrySettings:
    """Retries of one provider target: exponential backoff with full jitter.

    Attributes:
        max_attempts: upstream attempts per target (1 = no retry).
        base_s: first backoff ceiling; the n-th retry sleeps U(0, min(cap_s, base_s * 2**n))
            (mesh_core.retry.Backoff with full jitter).
        cap_s: largest backoff ceiling.
    """

    max_attempts: int = 3
    base_s: float = 0.1
    cap_s: float = 5.0


@dataclass(frozen=True)
class BreakerSettings:
    """Circuit breaker of each target (one provider model), not of the whole provider.

    Attributes:
        failure_threshold: consecutive failures (timeouts, connection errors, 5xx, broken
            streams) that open the circuit. A 429 is not a failure: the target is alive
            but over its quota; it cools down for its Retry-After instead.
        reset_s: how long it stays open before one probe call is let through.
    """

    failure_threshold: int = 5
    reset_s: float = 10.0


@dataclass(frozen=True)
class ProviderSettings:
    """One upstream provider.

    Attributes:
        name: the provider's name in routes (``name/model``).
        type: ``langchain`` (a LangChain chat model integration, picked by ``family``),
            ``openai`` / ``anthropic`` (shorthands for that family) or ``scripted``.
        family: the integration: ``openai`` (also any OpenAI-compatible server: vLLM,
            SGLang, llama.cpp, LiteLLM proxy, ...), ``anthropic``, ``azure_openai``,
            ``bedrock_converse``, ``google_genai``, ``mistralai``, ``ollama``, ...
            (see :mod:`llm_gateway_svc.providers._families`).
        chat_class: ``module:Class`` of any other LangChain chat model (wins over family).
        options: extra keyword arguments for the integration's constructor
            (e.g. ``region_name`` for Bedrock); no secrets here, use ``api_key_env``.
        base_url: e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``.
        api_key: resolved from ``api_key_env``; never logged or shown in repr.
        headers: extra HTTP headers sent with every call.
        legacy_max_tokens: OpenAI-compatible servers that know only ``max_tokens``:
            send it instead of ``max_completion_tokens``.
        dimensions: embeddings: vector size to ask for (0: the model's own).
        embed_batch_size: embeddings: most texts in one upstream call.
        timeout_s: ceiling of one upstream attempt (the caller's deadline may cut it).
        max_concurrency: cap on concurrent upstream calls to this provider (per replica).
        script: the scripted provider's rules (a list of rule mappings).
        chunk_delay_s: scripted provider: pause between streamed chunks.
    """

    name: str
    type: str
    family: str = ""
    chat_class: str = ""
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout_s: float = 60.0
    max_concurrency: int = 64
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()
    script: tuple[Mapping[str, Any], ...] = ()
    chunk_delay_s: float = 0.0
    legacy_max_tokens: bool = False
    dimensions: int = 0
    embed_batch_size: int = 64


@dataclass(frozen=True)
class Target:
    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class LimitRule:
    """Requests and tokens per window; 0 means unlimited."""

    rpm: int = 0
    tpm: int = 0


@dataclass(frozen=True)
class LimitSettings:
    """Rate limits enforced across all replicas through Redis.

    Attributes:
        window_s: the limit window (60 for "per minute"; sliding-window counters).
        tenant_default: limits of a tenant without its own entry.
        tenants: per-tenant limits.
        models: per model-alias limits (across all tenants).
    """

    window_s: float = 60.0
    tenant_default: LimitRule = LimitRule()
    tenants: Mapping[str, LimitRule] = field(default_factory=dict)
    models: Mapping[str, LimitRule] = field(default_factory=dict)

    def for_tenant(self, tenant: str) -> LimitRule:
        return self.tenants.get(tenant, self.tenant_default)

    def for_model(self, model: str) -> LimitRule:
        return self.models.get(model, LimitRule())


@dataclass(frozen=True)
class LlmGatewaySettings:
    """Everything the LLM gateway process needs.

    Attributes:
        host: interface to bind; ``0.0.0.0`` in containers.
        port: gRPC port (0: a free port).
        metrics_port: Prometheus port (0: a free port; -1: none).
        infra: where Redis is and the key prefix (only Redis is used here).
        providers: upstream providers by name.
        routes: model alias -> targets tried in order (primary first, then fallbacks).
        limits: requests/tokens per window, per tenant and per model.
        tenant_limits: the mesh's per-tenant limits (``--tenant-limits``); here each
            tenant's ``llm_share`` of every provider's concurrency.
        cache_ttl_s: exact-match response cache TTL (0: cache off).
        idempotency_ttl_s: how long a completed response is kept for its idempotency key.
        drain_grace_s: on SIGTERM, how long in-flight calls may take to finish.
        security: mutual TLS and tenant tokens on the gRPC port (see the servicer).
        payload_codec: seals the stored answers (idempotency, cache) in Redis
            (``--payload-keys``); None: stored as they are.
    """

    host: str = "127.0.0.1"
    port: int = 0
    metrics_port: int = -1
    infra: InfraSettings = field(default_factory=InfraSettings)
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict)
    routes: Mapping[str, tuple[Target, ...]] = field(default_factory=dict)
    limits: LimitSettings = LimitSettings()
    tenant_limits: LimitsTable = field(default_factory=LimitsTable)
    cache_ttl_s: float = 0.0
    idempotency_ttl_s: float = 24 * 3600.0
    drain_grace_s: float = 10.0
    security: InternalSecurity = PLAINTEXT
    payload_codec: PayloadCodec | None = None

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        env: Mapping[str, str],
        **overrides: Any,
    ) -> LlmGatewaySettings:
        """Settings from a YAML file (default: the demo config) and ``env``."""
        p = Path(path) if path else DEFAULT_CONFIG_PATH
        try:
            doc = yaml.safe_load(p.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read gateway config {p}: {exc}") from exc
        return cls.from_mapping(doc, env=env, base_dir=p.parent, **overrides)

    @classmethod
    def from_mapping(
        cls,
        doc: Mapping[str, Any],
        *,
        env: Mapping[str, str],
        base_dir: Path | None = None,
        **overrides: Any,
    ) -> LlmGatewaySettings:
        providers = {
            name: _provider(name, spec or {}, env, base_dir)
            for name, spec in (doc.get("providers") or {}).items()
        }
        routes: dict[str, tuple[Target, ...]] = {}
        for alias, targets in (doc.get("routes") or {}).items():
            parsed = []
            for t in [targets] if isinstance(targets, str) else targets:
                prov, sep, model = str(t).partition("/")
                if not sep or prov not in providers:
                    raise ConfigError(f"route {alias!r}: target {t!r} is not 'provider/model'")
                parsed.append(Target(prov, model))
            if not parsed:
                raise ConfigError(f"route {alias!r} has no target")
            routes[str(alias)] = tuple(parsed)
        lim = doc.get("limits") or {}
        limits = LimitSettings(
            window_s=float(lim.get("window_s", 60.0)),
            tenant_default=_rule(lim.get("tenant_default")),
            tenants={str(k): _rule(v) for k, v in (lim.get("tenants") or {}).items()},
            models={str(k): _rule(v) for k, v in (lim.get("models") or {}).items()},
        )
        kw: dict[str, Any] = {
            "providers": providers,
            "routes": routes,
            "limits": limits,
            "cache_ttl_s": float((doc.get("cache") or {}).get("ttl_s", 0.0)),
            "idempotency_ttl_s": float((doc.get("idempotency") or {}).get("ttl_s", 86400.0)),
            "infra": InfraSettings.from_env(env),
        }
        kw.update(overrides)
        return cls(**kw)


def _rule(spec: Mapping[str, Any] | None) -> LimitRule:
    spec = spec or {}
    return LimitRule(rpm=int(spec.get("rpm", 0)), tpm=int(spec.get("tpm", 0)))


def _provider(
    name: str, spec: Mapping[str, Any], env: Mapping[str, str], base_dir: Path | None
) -> ProviderSettings:
    kind = str(spec.get("type", ""))
    if kind not in PROVIDER_TYPES:
        raise ConfigError(f"provider {name!r}: type must be one of {PROVIDER_TYPES}")
    api_key = ""
    if spec.get("api_key_env"):
        api_key = env.get(str(spec["api_key_env"]), "")
    script: list[Mapping[str, Any]] = list(spec.get("rules") or [])
    if spec.get("script"):
        sp = Path(str(spec["script"]))
        if not sp.is_absolute() and base_dir is not None:
            sp = base_dir / sp
        try:
            script += list((yaml.safe_load(sp.read_text()) or {}).get("rules") or [])
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"provider {name!r}: cannot read script {sp}: {exc}") from exc
    family = str(spec.get("family") or (kind if kind in ("openai", "anthropic") else ""))
    if kind in ("langchain", "openai", "anthropic"):
        kind = "langchain"
        if not family and not spec.get("chat_class"):
            raise ConfigError(f"provider {name!r}: a langchain provider needs family or chat_class")
    options = spec.get("options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"provider {name!r}: options must be a mapping")
    r = spec.get("retry") or {}
    b = spec.get("breaker") or {}
    if kind == "langchain":
        from llm_gateway_svc.providers._families import check_installed

        check_installed(name, family, str(spec.get("chat_class") or ""))
    return ProviderSettings(
        name=name,
        type=kind,
        family=family,
        chat_class=str(spec.get("chat_class") or ""),
        options={str(k): v for k, v in options.items()},
        base_url=str(spec.get("base_url", "")).rstrip("/"),
        api_key=api_key,
        headers={str(k): str(v) for k, v in (spec.get("headers") or {}).items()},
        timeout_s=float(spec.get("timeout_s", 60.0)),
        max_concurrency=int(spec.get("max_concurrency", 64)),
        retry=RetrySettings(
            max_attempts=max(1, int(r.get("max_attempts", 3))),
            base_s=float(r.get("base_s", 0.1)),
            cap_s=float(r.get("cap_s", 5.0)),
        ),
        breaker=BreakerSettings(
            failure_threshold=max(1, int(b.get("failure_threshold", 5))),
            reset_s=float(b.get("reset_s", 10.0)),
        ),
        script=tuple(script),
        chunk_delay_s=float(spec.get("chunk_delay_s", 0.0)),
        legacy_max_tokens=bool(spec.get("legacy_max_tokens", False)),
        dimensions=max(0, int(spec.get("dimensions", 0))),
        embed_batch_size=max(1, int(spec.get("embed_batch_size", 64))),
    )

"""Per-tenant limits: what one tenant may use of the mesh, with sane defaults.

One YAML file (``--tenant-limits``, the same file for every tier; in Kubernetes a
ConfigMap) holds the defaults and per-tenant overrides::

    defaults:
      concurrent_runs: 128         # runs accepted and not finished (pending + running)
      runs_per_second: 100         # run creation rate (token bucket) ...
      run_burst: 500               # ... and its bucket size
      concurrent_streams: 200      # open StreamRun/JoinStream/WaitRun calls per gateway replica
      max_run_seconds: 3600        # a run still going after this ends with status "timeout"
      max_recursion_limit: 1000    # the largest config.recursion_limit a run may ask for
      max_sends_per_step: 1000     # Send tasks one superstep may create
      max_state_bytes: 67108864    # serialized size of one checkpoint (state) of a thread
      runtime_share: 0.5           # share of each runtime's run slots (--capacity) one tenant may hold
      tool_share: 0.5              # share of each tool's concurrency one tenant may hold
      llm_share: 0.5               # share of each LLM provider's concurrency
    tenants:
      acme:
        concurrent_runs: 256
        tool_share: 0.8

Each tier enforces the limits that are its own (the gateway: streams, recursion
limit; the runtime: concurrent runs and creation rate at admission, its share of
each runtime's run slots, duration, Sends, state size; the tool service and LLM
gateway: their shares). Excess is a :class:`QuotaExceededError` -- RESOURCE_EXHAUSTED
with ``QuotaFailure`` and, where waiting helps, ``RetryInfo``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mesh_core.config import ConfigError
from mesh_core.errors import QuotaExceededError

__all__ = ["LimitsTable", "QuotaExceededError", "TenantLimits", "load_limits"]


@dataclass(frozen=True)
class TenantLimits:
    """What one tenant may use; see the module docstring for each field."""

    concurrent_runs: int = 128
    runs_per_second: float = 100.0
    run_burst: int = 500
    concurrent_streams: int = 200
    max_run_seconds: float = 3600.0
    max_recursion_limit: int = 1000
    max_sends_per_step: int = 1000
    max_state_bytes: int = 64 * 1024 * 1024
    runtime_share: float = 0.5
    tool_share: float = 0.5
    llm_share: float = 0.5

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(f"tenant limit {f.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"tenant limit {f.name} must be positive, got {value!r}")
        for name in ("runtime_share", "tool_share", "llm_share"):
            if getattr(self, name) > 1:
                raise ConfigError(f"tenant limit {name} is a share: at most 1")

    def replace(self, **changes: Any) -> TenantLimits:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f.type for f in dataclasses.fields(TenantLimits)}


def _limits_from(mapping: Any, base: TenantLimits, where: str) -> TenantLimits:
    if mapping is None:
        return base
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where} must be a mapping of limit names to numbers")
    unknown = sorted(set(mapping) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown limit {unknown[0]!r} (known: {', '.join(_FIELDS)})")
    changes: dict[str, Any] = {}
    for name, value in mapping.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}.{name} must be a number, got {value!r}")
        default = getattr(base, name)
        changes[name] = int(value) if isinstance(default, int) else float(value)
    try:
        return base.replace(**changes)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class LimitsTable:
    """The defaults and the tenants that differ from them."""

    defaults: TenantLimits = field(default_factory=TenantLimits)
    tenants: Mapping[str, TenantLimits] = field(default_factory=dict)

    def for_tenant(self, tenant: str) -> TenantLimits:
        return self.tenants.get(tenant, self.defaults)

    @classmethod
    def from_mapping(cls, data: Any, where: str = "tenant limits") -> LimitsTable:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping with 'defaults' and 'tenants'")
        unknown = sorted(set(data) - {"defaults", "tenants"})
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: defaults, tenants)")
        defaults = _limits_from(data.get("defaults"), TenantLimits(), f"{where}: defaults")
        tenants_raw = data.get("tenants") or {}
        if not isinstance(tenants_raw, Mapping):
            raise ConfigError(f"{where}: tenants must map tenant ids to limits")
        tenants = {
            str(name): _limits_from(spec, defaults, f"{where}: tenants.{name}")
            for name, spec in tenants_raw.items()
        }
        return cls(defaults, tenants)


def load_limits(path: str | Path | None) -> LimitsTable:
    """The table in ``path`` (YAML); the built-in defaults when ``path`` is empty."""
    if not path:
        return LimitsTable()
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"tenant limits file {str(p)!r}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"tenant limits file {str(p)!r} is not valid YAML{at}") from None
    return LimitsTable.from_mapping(data, f"tenant limits file {str(p)!r}")

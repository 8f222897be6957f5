"""Prometheus metrics of the LLM tier (the autoscaling signals are the first two)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BACKEND_ERRORS",
    "BREAKER_OPEN",
    "CACHE_HITS",
    "INFLIGHT",
    "RATE_LIMITED",
    "REPLAYS",
    "REQUESTS",
    "REQUEST_SECONDS",
    "TOKENS",
    "UPSTREAM_ATTEMPTS",
    "UPSTREAM_INFLIGHT",
    "UPSTREAM_SECONDS",
]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

INFLIGHT = Gauge("lgmesh_llm_inflight_requests", "LLM requests being handled by this replica.")
UPSTREAM_SECONDS = Histogram(
    "lgmesh_llm_upstream_seconds",
    "Latency of one upstream provider attempt (streams: until the last chunk), by outcome.",
    ["provider", "outcome"],
    buckets=_BUCKETS,
)
REQUEST_SECONDS = Histogram(
    "lgmesh_llm_request_seconds",
    "Latency of a gateway request, retries and fallbacks included.",
    ["model", "method"],
    buckets=_BUCKETS,
)
REQUESTS = Counter(
    "lgmesh_llm_requests_total", "Gateway requests by model alias and gRPC code.", ["model", "code"]
)
UPSTREAM_ATTEMPTS = Counter(
    "lgmesh_llm_upstream_attempts_total",
    "Upstream attempts by provider and outcome (ok, http_429, http_500, timeout, network, ...).",
    ["provider", "outcome"],
)
UPSTREAM_INFLIGHT = Gauge(
    "lgmesh_llm_upstream_inflight", "Upstream calls in flight, by provider.", ["provider"]
)
TOKENS = Counter(
    "lgmesh_llm_tokens_total",
    "Tokens spent, by model alias and kind (input/output).",
    ["model", "kind"],
)
RATE_LIMITED = Counter(
    "lgmesh_llm_rate_limited_total", "Requests refused by a rate limit, by limit kind.", ["kind"]
)
REPLAYS = Counter(
    "lgmesh_llm_idempotent_replays_total", "Requests answered from the idempotency store."
)
CACHE_HITS = Counter("lgmesh_llm_cache_hits_total", "Requests answered from the response cache.")
BREAKER_OPEN = Gauge(
    "lgmesh_llm_circuit_open",
    "1 while the circuit breaker of a provider model is open.",
    ["provider", "model"],
)
BACKEND_ERRORS = Counter(
    "lgmesh_llm_backend_errors_total", "Redis errors while accounting usage.", ["op"]
)

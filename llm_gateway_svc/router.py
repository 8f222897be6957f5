"""Route a model alias to provider targets: retries, fallbacks, breakers, concurrency caps.

For each target in the alias's order: try up to ``max_attempts`` times, sleeping
with full-jitter exponential backoff (or the server's Retry-After) between tries,
never past the caller's deadline; then fall back to the next target. A request the
provider calls invalid (HTTP 400/422) is not retried anywhere.

Breakers and rate-limit cool-downs belong to a target (one provider model), not to
the provider: a model over its quota, or broken, does not take its siblings down.
A 429 never counts as a failure; the target cools down for its Retry-After and
the call moves on to the next target. When every target is rate limited, the
caller gets RESOURCE_EXHAUSTED (reason ``UPSTREAM_RATE_LIMITED``) with RetryInfo,
so a quota problem is never mistaken for an outage (UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from llm_gateway_svc import metrics
from llm_gateway_svc.config import LlmGatewaySettings, ProviderSettings, Target
from llm_gateway_svc.model import ChatRequest, ChatResult, Chunk, EmbedResult, Usage
from llm_gateway_svc.providers import Provider, ProviderError, build_provider
from llm_gateway_svc.resilience import CircuitBreaker, Deadline
from mesh_core.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    MeshError,
    NotFoundError,
    QuotaExceededError,
    ResourceExhaustedError,
    UnavailableError,
)
from mesh_core.fairshare import FairSlots, share_cap
from mesh_core.retry import Backoff

__all__ = ["Attempts", "Router"]

R = TypeVar("R")
Outcome = Literal["rate_limited", "misconfigured", "failed"]


@dataclass
class Attempts:
    """What happened upstream for one request (filled in as it goes)."""

    count: int = 0
    provider: str = ""
    provider_model: str = ""
    errors: list[str] = field(default_factory=list)
    retry_after: float | None = None
    last_message: str = ""
    last_kind: str = ""
    # How each target that was given up on ended.
    outcomes: list[Outcome] = field(default_factory=list)

    def metadata(self) -> dict[str, str]:
        out = {"attempts": str(self.count), "last_error": self.errors[-1] if self.errors else ""}
        out["errors"] = ",".join(self.errors[-8:])
        if self.retry_after is not None:
            out["retry_after_s"] = f"{self.retry_after:.3f}"
        return out


class _NoTime(Exception):
    """The deadline leaves no room for another attempt."""


class _Skip(Exception):
    """This target cannot be tried now (breaker open, cooling down after a 429)."""


class _Slot:
    """A provider: its adapter, retry policy and concurrency cap (shared by its models)."""

    def __init__(self, settings: ProviderSettings, provider: Provider) -> None:
        self.settings = settings
        self.provider = provider
        self.backoff = Backoff(
            initial=settings.retry.base_s, maximum=settings.retry.cap_s, jitter="full"
        )
        self.slots = FairSlots(settings.max_concurrency)


class _TargetState:
    """One provider model: its circuit breaker and rate-limit cool-down."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.breaker = CircuitBreaker(settings.breaker.failure_threshold, settings.breaker.reset_s)
        self.cool_until = 0.0
        self.rate_limit_message = ""


class Router:
    def __init__(
        self,
        settings: LlmGatewaySettings,
        providers: Mapping[str, Provider] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._routes = settings.routes
        self._limits = settings.tenant_limits
        self._sleep = sleep
        self._clock = clock
        built = dict(providers or {})
        self._slots = {
            name: _Slot(ps, built.get(name) or build_provider(ps))
            for name, ps in settings.providers.items()
        }
        self._targets: dict[str, _TargetState] = {}

    def routes(self) -> Mapping[str, tuple[Target, ...]]:
        return self._routes

    def targets(self, alias: str) -> tuple[Target, ...]:
        targets = self._routes.get(alias)
        if not targets:
            raise NotFoundError(
                f"unknown model {alias!r}", reason="MODEL_NOT_FOUND", metadata={"model": alias}
            )
        return targets

    def embedding_targets(self, alias: str) -> tuple[Target, ...]:
        targets = tuple(
            t for t in self.targets(alias) if self._slots[t.provider].provider.supports_embeddings
        )
        if not targets:
            raise FailedPreconditionError(
                f"model {alias!r} has no provider that embeds",
                reason="MODEL_CANNOT_EMBED",
                metadata={"model": alias},
            )
        return targets

    def _state(self, target: Target) -> _TargetState:
        key = str(target)
        state = self._targets.get(key)
        if state is None:
            state = self._targets[key] = _TargetState(self._slots[target.provider].settings)
        return state

    def breaker_state(self, target: str) -> str:
        prov, _, model = target.partition("/")
        return self._state(Target(prov, model)).breaker.state

    async def aclose(self) -> None:
        for slot in self._slots.values():
            await slot.provider.aclose()

    # -- unary -------------------------------------------------------------------------
    async def generate(
        self, request: ChatRequest, deadline: Deadline, att: Attempts, tenant: str = ""
    ) -> ChatResult:
        async def call(provider: Provider, model: str, budget: float) -> ChatResult:
            return await provider.generate(request, model, budget)

        result = await self._unary(
            request.model, self.targets(request.model), deadline, att, call, tenant
        )
        return replace(result, attempts=att.count)

    async def embed(
        self,
        alias: str,
        texts: tuple[str, ...],
        deadline: Deadline,
        att: Attempts,
        tenant: str = "",
    ) -> EmbedResult:
        """Vectors of ``texts`` from one target: every batch of an attempt from the same model."""

        async def call(provider: Provider, model: str, budget: float) -> EmbedResult:
            size = self._slots[provider.name].settings.embed_batch_size
            batches = [texts[i : i + size] for i in range(0, len(texts), size)]
            parts = await asyncio.gather(*(provider.embed(b, model, budget) for b in batches))
            vectors = tuple(v for part in parts for v in part.vectors)
            if len({len(v) for v in vectors}) > 1:
                raise ProviderError("protocol", "provider returned vectors of different sizes")
            return EmbedResult(
                vectors=vectors,
                usage=Usage(sum(p.usage.input_tokens for p in parts), 0),
                provider=provider.name,
                provider_model=model,
            )

        result = await self._unary(
            alias, self.embedding_targets(alias), deadline, att, call, tenant
        )
        return replace(result, attempts=att.count)

    async def _unary(
        self,
        alias: str,
        targets: tuple[Target, ...],
        deadline: Deadline,
        att: Attempts,
        call: Callable[[Provider, str, float], Awaitable[R]],
        tenant: str,
    ) -> R:
        for n, target in enumerate(targets):
            slot = self._slots[target.provider]
            retry = 0
            while True:
                try:
                    await self._before_attempt(
                        slot, target, retry, deadline, att, n == len(targets) - 1
                    )
                except _NoTime:
                    raise self._deadline_error(att) from None
                except _Skip:
                    break
                start = time.perf_counter()
                try:
                    async with self._upstream(slot, target, deadline, tenant) as budget:
                        try:
                            async with asyncio.timeout(budget):
                                result = await call(slot.provider, target.model, budget)
                        except TimeoutError:
                            raise ProviderError(
                                "timeout", "provider did not answer in time"
                            ) from None
                except ProviderError as exc:
                    if not self._failed(slot, target, exc, att, start, retry, deadline):
                        break
                    retry += 1
                    continue
                self._succeeded(target, att, start)
                return result
        raise self._exhausted_error(alias, att)

    # -- streaming -----------------------------------------------------------------------
    async def stream(
        self, request: ChatRequest, deadline: Deadline, att: Attempts, tenant: str = ""
    ) -> AsyncIterator[Chunk]:
        """Chunks of the first target that answers; retries only before the first chunk."""
        targets = self.targets(request.model)
        for n, target in enumerate(targets):
            slot = self._slots[target.provider]
            retry = 0
            while True:
                try:
                    await self._before_attempt(
                        slot, target, retry, deadline, att, n == len(targets) - 1
                    )
                except _NoTime:
                    raise self._deadline_error(att) from None
                except _Skip:
                    break
                start = time.perf_counter()
                sent = 0
                try:
                    async with self._upstream(slot, target, deadline, tenant) as budget:
                        ends_at = time.monotonic() + budget
                        chunks = slot.provider.stream(request, target.model, budget)
                        try:
                            while True:
                                try:
                                    # The timeout covers waiting for the provider only, never
                                    # the time the consumer takes with a chunk we yielded.
                                    async with asyncio.timeout(
                                        max(0.0, ends_at - time.monotonic())
                                    ):
                                        chunk = await anext(chunks)
                                except StopAsyncIteration:
                                    break
                                except TimeoutError:
                                    raise ProviderError(
                                        "timeout", "provider stream stalled"
                                    ) from None
                                sent += 1
                                yield chunk
                        finally:
                            await chunks.aclose()  # type: ignore[attr-defined]
                except ProviderError as exc:
                    if sent:
                        self._record(slot, target, exc, att, start)
                        raise UnavailableError(
                            f"provider stream broke after {sent} chunks: {exc.message}",
                            reason="UPSTREAM_STREAM_BROKEN",
                            metadata=att.metadata(),
                        ) from None
                    if not self._failed(slot, target, exc, att, start, retry, deadline):
                        break
                    retry += 1
                    continue
                self._succeeded(target, att, start)
                return
        raise self._exhausted_error(request.model, att)

    # -- pieces --------------------------------------------------------------------------
    def _upstream(self, slot: _Slot, target: Target, deadline: Deadline, tenant: str) -> _Upstream:
        cap = share_cap(slot.settings.max_concurrency, self._limits.for_tenant(tenant).llm_share)
        return _Upstream(slot, self._state(target), deadline, tenant, cap)

    async def _before_attempt(
        self,
        slot: _Slot,
        target: Target,
        retry: int,
        deadline: Deadline,
        att: Attempts,
        last_target: bool,
    ) -> None:
        state = self._state(target)
        cooling = state.cool_until - self._clock()
        if retry > 0:
            delay = max(slot.backoff.delay(retry - 1), cooling)
            if delay >= deadline.remaining():
                if cooling >= deadline.remaining():
                    self._give_up_rate_limited(target, att, cooling)
                raise _NoTime
            await self._sleep(delay)
        elif cooling > 0:
            # Another call hit this target's rate limit: go to the next target, or
            # wait out the Retry-After when this is the last one and the deadline allows.
            if not last_target or cooling >= deadline.remaining():
                att.last_message = att.last_message or state.rate_limit_message
                self._give_up_rate_limited(target, att, cooling)
            await self._sleep(cooling)
        if deadline.remaining() <= 0:
            raise _NoTime
        if not state.breaker.allow():
            att.errors.append(f"{target}:circuit_open")
            att.outcomes.append("failed")
            metrics.UPSTREAM_ATTEMPTS.labels(target.provider, "circuit_open").inc()
            raise _Skip

    def _give_up_rate_limited(self, target: Target, att: Attempts, wait: float) -> None:
        att.errors.append(f"{target}:rate_limited")
        att.outcomes.append("rate_limited")
        att.retry_after = wait if att.retry_after is None else min(att.retry_after, wait)
        metrics.UPSTREAM_ATTEMPTS.labels(target.provider, "cooling_down").inc()
        raise _Skip

    def _record(
        self, slot: _Slot, target: Target, exc: ProviderError, att: Attempts, start: float
    ) -> None:
        state = self._state(target)
        label = exc.label()
        att.count += 1
        att.errors.append(label)
        att.last_message = exc.message
        att.last_kind = exc.kind
        if exc.kind == "rate_limited":
            state.breaker.on_abandon()  # alive, over quota: neither failure nor success
            state.rate_limit_message = exc.message
            if exc.retry_after is not None:
                state.cool_until = max(state.cool_until, self._clock() + exc.retry_after)
                att.retry_after = exc.retry_after
        elif exc.counts_against_breaker:
            state.breaker.on_failure()
        else:
            state.breaker.on_abandon()
        metrics.BREAKER_OPEN.labels(target.provider, target.model).set(
            1 if state.breaker.state == "open" else 0
        )
        metrics.UPSTREAM_ATTEMPTS.labels(target.provider, label).inc()
        metrics.UPSTREAM_SECONDS.labels(target.provider, "error").observe(
            time.perf_counter() - start
        )

    def _failed(
        self,
        slot: _Slot,
        target: Target,
        exc: ProviderError,
        att: Attempts,
        start: float,
        retry: int,
        deadline: Deadline,
    ) -> bool:
        """Record a failed attempt; True: try this target again, False: next target."""
        self._record(slot, target, exc, att, start)
        if exc.caller_fault:
            raise InvalidArgumentError(
                f"the provider rejected the request: {exc.message}",
                reason="PROVIDER_REJECTED_REQUEST",
                metadata={"provider": str(target), "status": str(exc.status or "")},
            )
        last_try = retry + 1 >= slot.settings.retry.max_attempts
        if exc.kind == "rate_limited":
            # Waiting for the target's Retry-After would outlast the deadline: fall back now.
            wait = exc.retry_after or 0.0
            if last_try or wait >= deadline.remaining():
                att.outcomes.append("rate_limited")
                if att.retry_after is None:
                    att.retry_after = slot.backoff.ceiling(retry)
                return False
            return True
        if not exc.retryable or last_try:
            att.outcomes.append("misconfigured" if exc.kind == "config" else "failed")
            return False
        return True

    def _succeeded(self, target: Target, att: Attempts, start: float) -> None:
        att.count += 1
        att.provider, att.provider_model = target.provider, target.model
        state = self._state(target)
        state.breaker.on_success()
        metrics.BREAKER_OPEN.labels(target.provider, target.model).set(0)
        metrics.UPSTREAM_ATTEMPTS.labels(target.provider, "ok").inc()
        metrics.UPSTREAM_SECONDS.labels(target.provider, "ok").observe(time.perf_counter() - start)

    def _deadline_error(self, att: Attempts) -> MeshError:
        if att.last_kind == "rate_limited":
            return self._rate_limited_error("", att)
        return DeadlineExceededError(
            f"gave up after {att.count} upstream attempts: the deadline leaves no time for another",
            reason="UPSTREAM_DEADLINE",
            metadata=att.metadata(),
        )

    def _rate_limited_error(self, alias: str, att: Attempts) -> ResourceExhaustedError:
        meta = att.metadata()
        if alias:
            meta["model"] = alias
        detail = f": {att.last_message}" if att.last_message else ""
        return ResourceExhaustedError(
            f"the upstream provider's rate limit was reached{detail}",
            retry_after=att.retry_after,
            reason="UPSTREAM_RATE_LIMITED",
            metadata=meta,
        )

    def _exhausted_error(self, alias: str, att: Attempts) -> MeshError:
        if att.outcomes and all(o == "rate_limited" for o in att.outcomes):
            return self._rate_limited_error(alias, att)
        meta = att.metadata()
        meta["model"] = alias
        detail = f": {att.last_message}" if att.last_message else ""
        if att.outcomes and all(o == "misconfigured" for o in att.outcomes):
            return FailedPreconditionError(
                f"every provider of {alias!r} refused the gateway's credentials or model{detail}",
                reason="UPSTREAM_MISCONFIGURED",
                metadata=meta,
            )
        return UnavailableError(
            f"no provider for {alias!r} answered after {att.count} attempts{detail}",
            reason="UPSTREAM_UNAVAILABLE",
            metadata=meta,
        )


class _Upstream:
    """Holds one of the provider's concurrency slots; yields the attempt's time budget."""

    def __init__(
        self, slot: _Slot, state: _TargetState, deadline: Deadline, tenant: str, cap: int
    ) -> None:
        self._slot = slot
        self._state = state
        self._deadline = deadline
        self._tenant = tenant
        self._cap = cap
        self._acquired = False

    async def __aenter__(self) -> float:
        slots = self._slot.slots
        try:
            await slots.acquire(self._tenant, self._cap, max(self._deadline.remaining(), 0.0))
        except TimeoutError:
            if slots.held(self._tenant) >= self._cap and slots.in_use < slots.capacity:
                raise QuotaExceededError(
                    f"tenant holds its share of provider {self._slot.settings.name!r} "
                    f"({self._cap} of {slots.capacity} concurrent calls) until the deadline",
                    tenant=self._tenant,
                    limit="llm_share",
                    value=self._cap,
                    retry_after=0.5,
                    metadata={"provider": self._slot.settings.name},
                ) from None
            raise ProviderError("timeout", "no free upstream slot before the deadline") from None
        self._acquired = True
        metrics.UPSTREAM_INFLIGHT.labels(self._slot.settings.name).inc()
        return max(0.001, min(self._slot.settings.timeout_s, self._deadline.remaining()))

    async def __aexit__(self, et: object, exc: BaseException | None, tb: Any) -> None:
        if self._acquired:
            self._slot.slots.release(self._tenant)
            metrics.UPSTREAM_INFLIGHT.labels(self._slot.settings.name).dec()
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self._state.breaker.on_abandon()

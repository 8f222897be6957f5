"""Route a model alias to provider targets: retries, fallbacks, breakers, concurrency caps.

For each target in the alias's order: try up to ``max_attempts`` times, sleeping
with full-jitter exponential backoff (or the server's Retry-After) between tries,
never past the caller's deadline; then fall back to the next target. A request the
provider calls invalid (HTTP 400/422) is not retried anywhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace

from llm_gateway_svc import metrics
from llm_gateway_svc.config import LlmGatewaySettings, ProviderSettings, Target
from llm_gateway_svc.model import ChatRequest, ChatResult, Chunk
from llm_gateway_svc.providers import Provider, ProviderError, build_provider
from llm_gateway_svc.resilience import Backoff, CircuitBreaker, Deadline
from mesh_core.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)

__all__ = ["Attempts", "Router"]


@dataclass
class Attempts:
    """What happened upstream for one request (filled in as it goes)."""

    count: int = 0
    provider: str = ""
    provider_model: str = ""
    errors: list[str] = field(default_factory=list)
    retry_after: float | None = None

    def metadata(self) -> dict[str, str]:
        out = {"attempts": str(self.count), "last_error": self.errors[-1] if self.errors else ""}
        out["errors"] = ",".join(self.errors[-8:])
        if self.retry_after is not None:
            out["retry_after_s"] = f"{self.retry_after:.3f}"
        return out


class _NoTime(Exception):
    """The deadline leaves no room for another attempt."""


class _Slot:
    def __init__(self, settings: ProviderSettings, provider: Provider) -> None:
        self.settings = settings
        self.provider = provider
        self.breaker = CircuitBreaker(settings.breaker.failure_threshold, settings.breaker.reset_s)
        self.backoff = Backoff(settings.retry.base_s, settings.retry.cap_s)
        self.sem = asyncio.Semaphore(settings.max_concurrency)


class Router:
    def __init__(
        self,
        settings: LlmGatewaySettings,
        providers: Mapping[str, Provider] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._routes = settings.routes
        self._sleep = sleep
        built = dict(providers or {})
        self._slots = {
            name: _Slot(ps, built.get(name) or build_provider(ps))
            for name, ps in settings.providers.items()
        }

    def routes(self) -> Mapping[str, tuple[Target, ...]]:
        return self._routes

    def targets(self, alias: str) -> tuple[Target, ...]:
        targets = self._routes.get(alias)
        if not targets:
            raise NotFoundError(
                f"unknown model {alias!r}", reason="MODEL_NOT_FOUND", metadata={"model": alias}
            )
        return targets

    def breaker_state(self, provider: str) -> str:
        return self._slots[provider].breaker.state

    async def aclose(self) -> None:
        for slot in self._slots.values():
            await slot.provider.aclose()

    # -- unary -------------------------------------------------------------------------
    async def generate(self, request: ChatRequest, deadline: Deadline, att: Attempts) -> ChatResult:
        for target in self.targets(request.model):
            slot = self._slots[target.provider]
            retry = 0
            while True:
                try:
                    await self._before_attempt(slot, target, retry, deadline, att)
                except _NoTime:
                    raise self._deadline_error(att) from None
                except ProviderError:
                    break  # breaker open: next target
                start = time.perf_counter()
                try:
                    async with _Upstream(slot, deadline) as budget:
                        try:
                            async with asyncio.timeout(budget):
                                result = await slot.provider.generate(request, target.model, budget)
                        except TimeoutError:
                            raise ProviderError(
                                "timeout", "provider did not answer in time"
                            ) from None
                except ProviderError as exc:
                    self._failed(slot, target, exc, att, start)
                    if exc.caller_fault:
                        raise InvalidArgumentError(
                            exc.message, reason="PROVIDER_REJECTED_REQUEST"
                        ) from None
                    if not exc.retryable or retry + 1 >= slot.settings.retry.max_attempts:
                        break
                    retry += 1
                    continue
                self._succeeded(slot, target, att, start)
                return replace(result, attempts=att.count)
        raise self._exhausted_error(request.model, att)

    # -- streaming -----------------------------------------------------------------------
    async def stream(
        self, request: ChatRequest, deadline: Deadline, att: Attempts
    ) -> AsyncIterator[Chunk]:
        """Chunks of the first target that answers; retries only before the first chunk."""
        for target in self.targets(request.model):
            slot = self._slots[target.provider]
            retry = 0
            while True:
                try:
                    await self._before_attempt(slot, target, retry, deadline, att)
                except _NoTime:
                    raise self._deadline_error(att) from None
                except ProviderError:
                    break
                start = time.perf_counter()
                sent = 0
                try:
                    async with _Upstream(slot, deadline) as budget:
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
                    self._failed(slot, target, exc, att, start)
                    if sent:
                        raise UnavailableError(
                            f"provider stream broke after {sent} chunks",
                            reason="UPSTREAM_STREAM_BROKEN",
                            metadata=att.metadata(),
                        ) from None
                    if exc.caller_fault:
                        raise InvalidArgumentError(
                            exc.message, reason="PROVIDER_REJECTED_REQUEST"
                        ) from None
                    if not exc.retryable or retry + 1 >= slot.settings.retry.max_attempts:
                        break
                    retry += 1
                    continue
                self._succeeded(slot, target, att, start)
                return
        raise self._exhausted_error(request.model, att)

    # -- pieces --------------------------------------------------------------------------
    async def _before_attempt(
        self, slot: _Slot, target: Target, retry: int, deadline: Deadline, att: Attempts
    ) -> None:
        if retry > 0:
            last_after = att.retry_after if att.errors and att.errors[-1] == "http_429" else None
            delay = slot.backoff.delay(retry - 1, last_after)
            if delay >= deadline.remaining():
                raise _NoTime
            await self._sleep(delay)
        if deadline.remaining() <= 0:
            raise _NoTime
        if not slot.breaker.allow():
            att.errors.append(f"{target.provider}:circuit_open")
            metrics.UPSTREAM_ATTEMPTS.labels(target.provider, "circuit_open").inc()
            raise ProviderError("server", "circuit open")

    def _failed(
        self, slot: _Slot, target: Target, exc: ProviderError, att: Attempts, start: float
    ) -> None:
        label = exc.label()
        att.count += 1
        att.errors.append(label)
        if exc.retry_after is not None:
            att.retry_after = exc.retry_after
        if exc.retryable:
            slot.breaker.on_failure()
        else:
            slot.breaker.on_abandon()
        metrics.BREAKER_OPEN.labels(target.provider).set(1 if slot.breaker.state == "open" else 0)
        metrics.UPSTREAM_ATTEMPTS.labels(target.provider, label).inc()
        metrics.UPSTREAM_SECONDS.labels(target.provider, "error").observe(
            time.perf_counter() - start
        )

    def _succeeded(self, slot: _Slot, target: Target, att: Attempts, start: float) -> None:
        att.count += 1
        att.provider, att.provider_model = target.provider, target.model
        slot.breaker.on_success()
        metrics.BREAKER_OPEN.labels(target.provider).set(0)
        metrics.UPSTREAM_ATTEMPTS.labels(target.provider, "ok").inc()
        metrics.UPSTREAM_SECONDS.labels(target.provider, "ok").observe(time.perf_counter() - start)

    def _deadline_error(self, att: Attempts) -> DeadlineExceededError:
        return DeadlineExceededError(
            f"gave up after {att.count} upstream attempts: the deadline leaves no time for another",
            reason="UPSTREAM_DEADLINE",
            metadata=att.metadata(),
        )

    def _exhausted_error(self, alias: str, att: Attempts) -> UnavailableError:
        meta = att.metadata()
        meta["model"] = alias
        return UnavailableError(
            f"no provider for {alias!r} answered after {att.count} attempts",
            reason="UPSTREAM_UNAVAILABLE",
            metadata=meta,
        )


class _Upstream:
    """Holds one of the provider's concurrency slots; yields the attempt's time budget."""

    def __init__(self, slot: _Slot, deadline: Deadline) -> None:
        self._slot = slot
        self._deadline = deadline
        self._acquired = False

    async def __aenter__(self) -> float:
        try:
            async with asyncio.timeout(max(self._deadline.remaining(), 0.0)):
                await self._slot.sem.acquire()
        except TimeoutError:
            raise ProviderError("timeout", "no free upstream slot before the deadline") from None
        self._acquired = True
        metrics.UPSTREAM_INFLIGHT.labels(self._slot.settings.name).inc()
        return max(0.001, min(self._slot.settings.timeout_s, self._deadline.remaining()))

    async def __aexit__(self, et: object, exc: BaseException | None, tb: object) -> None:
        if self._acquired:
            self._slot.sem.release()
            metrics.UPSTREAM_INFLIGHT.labels(self._slot.settings.name).dec()
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self._slot.breaker.on_abandon()

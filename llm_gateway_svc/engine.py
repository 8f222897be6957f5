"""The LLM gateway's request path: limits, idempotency, cache, routing, accounting.

Plain Python; the servicer converts protobuf to :mod:`llm_gateway_svc.model` types
and calls :meth:`LlmGateway.generate` / :meth:`LlmGateway.stream`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace

from llm_gateway_svc import metrics
from llm_gateway_svc.accounting import UsageLedger
from llm_gateway_svc.config import LlmGatewaySettings
from llm_gateway_svc.model import (
    ChatRequest,
    ChatResult,
    Chunk,
    FinishReason,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
    result_from_json,
    result_to_json,
)
from llm_gateway_svc.resilience import Deadline
from llm_gateway_svc.router import Attempts, Router
from llm_gateway_svc.store import LlmStore, RateScope
from mesh_core.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    ResourceExhaustedError,
)

__all__ = ["DEFAULT_TENANT", "LlmGateway"]

log = logging.getLogger(__name__)

DEFAULT_TENANT = "default"
_TENANT_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_MAX_KEY = 256
_IDEM_POLL_S = 0.05


@dataclass
class _Claim:
    key: str
    token: str


class LlmGateway:
    """One replica's engine. Shared state (limits, idempotency, cache, usage) is in ``store``."""

    def __init__(
        self, settings: LlmGatewaySettings, store: LlmStore, router: Router | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.router = router or Router(settings)
        self.ledger = UsageLedger(store, settings.limits.window_s)

    async def aclose(self) -> None:
        await self.ledger.aclose()
        await self.router.aclose()
        await self.store.aclose()

    def list_models(self) -> list[tuple[str, list[str]]]:
        return [
            (alias, [str(t) for t in targets])
            for alias, targets in sorted(self.router.routes().items())
        ]

    # -- public ----------------------------------------------------------------------------
    async def generate(
        self, request: ChatRequest, *, tenant: str, deadline: Deadline
    ) -> ChatResult:
        self._validate(request, tenant)
        started = time.perf_counter()
        code = "OK"
        metrics.INFLIGHT.inc()
        try:
            claim, stored = await self._idempotency(request, tenant, deadline)
            if stored is not None:
                return stored
            try:
                cached = await self._cached(request, tenant)
                if cached is not None:
                    await self._finish(request, tenant, cached, claim, reserved=None)
                    return cached
                reserved = await self._admit(request, tenant)
                try:
                    result = await self.router.generate(request, deadline, Attempts())
                except BaseException:
                    self._give_back(request, tenant, reserved)
                    raise
            except BaseException:
                if claim is not None:
                    await self.store.idem_release(claim.key, claim.token)
                raise
            await self._finish(request, tenant, result, claim, reserved=reserved)
            return result
        except BaseException as exc:
            code = getattr(getattr(exc, "code", None), "name", None) or type(exc).__name__
            raise
        finally:
            metrics.INFLIGHT.dec()
            metrics.REQUESTS.labels(request.model, code).inc()
            metrics.REQUEST_SECONDS.labels(request.model, "generate").observe(
                time.perf_counter() - started
            )

    async def stream(
        self, request: ChatRequest, *, tenant: str, deadline: Deadline
    ) -> AsyncGenerator[Chunk, None]:
        """Chunks of the answer; the last has ``last=True`` and ``result`` (see :func:`final_chunk`)."""
        self._validate(request, tenant)
        started = time.perf_counter()
        code = "OK"
        metrics.INFLIGHT.inc()
        try:
            claim, stored = await self._idempotency(request, tenant, deadline)
            if stored is not None:
                for chunk in replay_chunks(stored):
                    yield chunk
                return
            try:
                cached = await self._cached(request, tenant)
                if cached is not None:
                    await self._finish(request, tenant, cached, claim, reserved=None)
                    for chunk in replay_chunks(cached):
                        yield chunk
                    return
                reserved = await self._admit(request, tenant)
                att = Attempts()
                acc = _Assembler()
                try:
                    async for chunk in self.router.stream(request, deadline, att):
                        if chunk.last:
                            acc.end(chunk)  # and let the router finish its bookkeeping
                        else:
                            acc.add(chunk)
                            yield chunk
                except BaseException:
                    self._give_back(request, tenant, reserved)
                    raise
            except BaseException:
                if claim is not None:
                    await self.store.idem_release(claim.key, claim.token)
                raise
            result = acc.result(att)
            await self._finish(request, tenant, result, claim, reserved=reserved)
            yield final_chunk(result)
        except BaseException as exc:
            code = getattr(getattr(exc, "code", None), "name", None) or type(exc).__name__
            raise
        finally:
            metrics.INFLIGHT.dec()
            metrics.REQUESTS.labels(request.model, code).inc()
            metrics.REQUEST_SECONDS.labels(request.model, "stream").observe(
                time.perf_counter() - started
            )

    # -- steps -------------------------------------------------------------------------------
    def _validate(self, request: ChatRequest, tenant: str) -> None:
        bad: list[FieldViolation] = []
        if not _TENANT_RE.match(tenant):
            bad.append(FieldViolation("x-lgmesh-tenant", "1-64 characters of [A-Za-z0-9._-]"))
        if not request.model:
            bad.append(FieldViolation("model", "required"))
        if not request.messages:
            bad.append(FieldViolation("messages", "at least one message is required"))
        if len(request.idempotency_key) > _MAX_KEY:
            bad.append(FieldViolation("idempotency_key", f"at most {_MAX_KEY} characters"))
        if bad:
            raise InvalidArgumentError("invalid generate request", bad)
        self.router.targets(request.model)  # NOT_FOUND for an unknown alias

    async def _idempotency(
        self, request: ChatRequest, tenant: str, deadline: Deadline
    ) -> tuple[_Claim | None, ChatResult | None]:
        if not request.idempotency_key:
            return None, None
        key = f"{tenant}:{request.idempotency_key}"
        token = uuid.uuid4().hex
        while True:
            # A claim outlives the call's deadline a little, so a crashed replica's
            # claim expires and the re-executed task can go ahead.
            state = await self.store.idem_claim(key, token, max(deadline.remaining(), 0.0) + 5.0)
            if state is None:
                return _Claim(key, token), None
            if state.done:
                if state.digest != request.digest():
                    raise FailedPreconditionError(
                        "idempotency key was used for a different request",
                        reason="IDEMPOTENCY_KEY_REUSED",
                        metadata={"idempotency_key": request.idempotency_key},
                    )
                metrics.REPLAYS.inc()
                return None, replace(result_from_json(state.payload), replayed=True)
            if deadline.remaining() <= _IDEM_POLL_S:
                raise DeadlineExceededError(
                    "a request with the same idempotency key is still in flight",
                    reason="IDEMPOTENCY_KEY_IN_FLIGHT",
                    metadata={"idempotency_key": request.idempotency_key},
                )
            await asyncio.sleep(_IDEM_POLL_S)

    def _cache_digest(self, request: ChatRequest, tenant: str) -> str | None:
        if self.settings.cache_ttl_s <= 0 or request.bypass_cache:
            return None
        return f"{tenant}:{request.digest()}"

    async def _cached(self, request: ChatRequest, tenant: str) -> ChatResult | None:
        digest = self._cache_digest(request, tenant)
        if digest is None:
            return None
        raw = await self.store.cache_get(digest)
        if raw is None:
            return None
        metrics.CACHE_HITS.inc()
        return replace(result_from_json(raw), cached=True, usage=Usage())

    def _scopes(self, request: ChatRequest, tenant: str, tokens: int) -> list[RateScope]:
        lim = self.settings.limits
        t, m = lim.for_tenant(tenant), lim.for_model(request.model)
        scopes = []
        for name, rule_value, cost in (
            (f"tenant:{tenant}:rpm", t.rpm, 1),
            (f"tenant:{tenant}:tpm", t.tpm, tokens),
            (f"model:{request.model}:rpm", m.rpm, 1),
            (f"model:{request.model}:tpm", m.tpm, tokens),
        ):
            if rule_value > 0:
                scopes.append(RateScope(name, rule_value, cost))
        return scopes

    async def _admit(self, request: ChatRequest, tenant: str) -> int:
        """Charge the request's limits; returns the tokens reserved for TPM."""
        estimate = request.estimated_input_tokens()
        scopes = self._scopes(request, tenant, estimate)
        if not scopes:
            return 0
        verdict = await self.store.admit(scopes, self.settings.limits.window_s)
        if not verdict.admitted:
            kind = verdict.scope.split(":")[0] + "_" + verdict.scope.rsplit(":", 1)[-1]
            metrics.RATE_LIMITED.labels(kind).inc()
            raise ResourceExhaustedError(
                f"rate limit {verdict.scope.rsplit(':', 1)[-1]} of {verdict.scope.split(':')[0]} reached",
                retry_after=verdict.retry_after,
                reason="RATE_LIMITED",
                metadata={"limit": verdict.scope},
            )
        return estimate

    def _tpm_scopes(self, request: ChatRequest, tenant: str, delta: int) -> list[RateScope]:
        return [s for s in self._scopes(request, tenant, delta) if s.name.endswith(":tpm")]

    def _give_back(self, request: ChatRequest, tenant: str, reserved: int) -> None:
        if reserved:
            self.ledger.add_charges(self._tpm_scopes(request, tenant, -reserved))

    async def _finish(
        self,
        request: ChatRequest,
        tenant: str,
        result: ChatResult,
        claim: _Claim | None,
        reserved: int | None,
    ) -> None:
        usage = result.usage
        if reserved is not None:
            metrics.TOKENS.labels(request.model, "input").inc(usage.input_tokens)
            metrics.TOKENS.labels(request.model, "output").inc(usage.output_tokens)
            delta = usage.total_tokens - reserved
            if delta:
                self.ledger.add_charges(self._tpm_scopes(request, tenant, delta))
        digest = self._cache_digest(request, tenant)
        if claim is None and not (digest and reserved is not None):
            self.ledger.add_usage(tenant, request.model, usage.input_tokens, usage.output_tokens)
            return
        # The stored answer must exist before the caller sees it: a task re-run after
        # a crash must find it. Its usage goes in the same transaction.
        payload = result_to_json(result)
        await self.store.record(
            tenant=tenant,
            model=request.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            idem=(claim.key, request.digest(), payload, self.settings.idempotency_ttl_s)
            if claim
            else None,
            cache=(digest, payload, self.settings.cache_ttl_s)
            if digest and reserved is not None
            else None,
        )


class _Assembler:
    """Builds the full answer out of streamed chunks."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, list[str]] = {}
        self.finish: FinishReason = "stop"
        self.usage = Usage()

    def add(self, chunk: Chunk) -> None:
        self.text.append(chunk.content_delta)
        for d in chunk.tool_calls:
            slot = self.calls.setdefault(d.index, ["", "", ""])
            slot[0] = slot[0] or d.id
            slot[1] = slot[1] or d.name
            slot[2] += d.arguments_delta

    def end(self, chunk: Chunk) -> None:
        self.finish = chunk.finish_reason or "stop"
        self.usage = chunk.usage or Usage()

    def result(self, att: Attempts) -> ChatResult:
        calls = tuple(
            ToolCall(id=v[0] or f"call_{i}", name=v[1], arguments_json=v[2] or "{}")
            for i, v in sorted(self.calls.items())
        )
        return ChatResult(
            message=Message(role="assistant", content="".join(self.text), tool_calls=calls),
            finish_reason=self.finish,
            usage=self.usage,
            provider=att.provider,
            provider_model=att.provider_model,
            attempts=att.count,
        )


def final_chunk(result: ChatResult) -> Chunk:
    return Chunk(finish_reason=result.finish_reason, usage=result.usage, last=True, result=result)


def replay_chunks(result: ChatResult) -> list[Chunk]:
    """A stored answer as a stream: its text, its tool calls, then the final chunk."""
    out: list[Chunk] = []
    if result.message.content:
        out.append(Chunk(content_delta=result.message.content))
    for i, c in enumerate(result.message.tool_calls):
        out.append(Chunk(tool_calls=(ToolCallDelta(i, c.id, c.name, c.arguments_json),)))
    out.append(final_chunk(result))
    return out

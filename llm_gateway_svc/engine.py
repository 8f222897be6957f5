"""The LLM gateway's request path: limits, idempotency, cache, routing, accounting.

Plain Python; the servicer converts protobuf to :mod:`llm_gateway_svc.model` types
and calls :meth:`LlmGateway.generate`, :meth:`LlmGateway.stream` or
:meth:`LlmGateway.embed`. An answer is stored (for its idempotency key, in the
cache) only once it is whole: a call that fails anywhere, a stream included,
releases its claim and stores nothing, so a retry goes upstream again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from llm_gateway_svc import metrics
from llm_gateway_svc.accounting import UsageLedger
from llm_gateway_svc.config import LlmGatewaySettings
from llm_gateway_svc.model import (
    ChatRequest,
    ChatResult,
    Chunk,
    EmbedRequest,
    EmbedResult,
    FinishReason,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
    embed_result_from_json,
    embed_result_to_json,
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
    UnavailableError,
)

__all__ = ["DEFAULT_TENANT", "MAX_EMBED_INPUTS", "LlmGateway"]

log = logging.getLogger(__name__)

DEFAULT_TENANT = "default"
MAX_EMBED_INPUTS = 2048
_TENANT_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_MAX_KEY = 256
_IDEM_POLL_S = 0.05

R = TypeVar("R", ChatResult, EmbedResult)


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
        async def upstream() -> ChatResult:
            return await self.router.generate(request, deadline, Attempts(), tenant)

        call = self._call(request, tenant)
        async with _Measured(request.model, "generate"):
            return await self._once(call, deadline, _CHAT, upstream)

    async def stream(
        self, request: ChatRequest, *, tenant: str, deadline: Deadline
    ) -> AsyncGenerator[Chunk, None]:
        """Chunks of the answer; the last has ``last=True`` and ``result`` (see :func:`final_chunk`).

        Only a stream that ended as the provider said it would is stored (idempotency,
        cache): a stream that breaks anywhere raises, and its claim is released.
        """
        call = self._call(request, tenant)
        async with _Measured(request.model, "stream"):
            claim, stored = await self._idempotency(call, deadline)
            if stored is not None:
                for chunk in replay_chunks(replace(result_from_json(stored), replayed=True)):
                    yield chunk
                return
            try:
                cached = await self._cached(call)
                if cached is not None:
                    hit = replace(result_from_json(cached), cached=True, usage=Usage())
                    await self._finish(call, hit.usage, result_to_json(hit), claim, reserved=None)
                    for chunk in replay_chunks(hit):
                        yield chunk
                    return
                reserved = await self._admit(call)
                att = Attempts()
                acc = _Assembler()
                try:
                    async for chunk in self.router.stream(request, deadline, att, tenant):
                        if chunk.last:
                            acc.end(chunk)  # and let the router finish its bookkeeping
                        else:
                            acc.add(chunk)
                            yield chunk
                    if not acc.ended:
                        raise UnavailableError(
                            "the provider stream ended without its last chunk",
                            reason="UPSTREAM_STREAM_BROKEN",
                            metadata=att.metadata(),
                        )
                except BaseException:
                    self._give_back(call, reserved)
                    raise
            except BaseException:
                await self._release(claim)
                raise
            result = acc.result(att)
            await self._finish(call, result.usage, result_to_json(result), claim, reserved)
            yield final_chunk(result)

    async def embed(self, request: EmbedRequest, *, tenant: str, deadline: Deadline) -> EmbedResult:
        """One vector per input; batched upstream, limited, cached and idempotent like generate."""

        async def upstream() -> EmbedResult:
            return await self.router.embed(
                request.model, request.inputs, deadline, Attempts(), tenant
            )

        call = self._call(request, tenant)
        async with _Measured(request.model, "embed"):
            return await self._once(call, deadline, _EMBED, upstream)

    async def _once(
        self,
        call: _Call,
        deadline: Deadline,
        codec: _Codec[R],
        upstream: Callable[[], Awaitable[R]],
    ) -> R:
        """A unary call: its stored answer, else the cache, else upstream (then stored)."""
        claim, stored = await self._idempotency(call, deadline)
        if stored is not None:
            return replace(codec.load(stored), replayed=True)
        try:
            cached = await self._cached(call)
            if cached is not None:
                hit = replace(codec.load(cached), cached=True, usage=Usage())
                await self._finish(call, hit.usage, codec.dump(hit), claim, reserved=None)
                return hit
            reserved = await self._admit(call)
            try:
                result = await upstream()
            except BaseException:
                self._give_back(call, reserved)
                raise
        except BaseException:
            await self._release(claim)
            raise
        await self._finish(call, result.usage, codec.dump(result), claim, reserved)
        return result

    # -- steps -------------------------------------------------------------------------------
    def _call(self, request: ChatRequest | EmbedRequest, tenant: str) -> _Call:
        bad: list[FieldViolation] = []
        if not _TENANT_RE.match(tenant):
            bad.append(FieldViolation("x-lgmesh-tenant", "1-64 characters of [A-Za-z0-9._-]"))
        if not request.model:
            bad.append(FieldViolation("model", "required"))
        if isinstance(request, ChatRequest):
            if not request.messages:
                bad.append(FieldViolation("messages", "at least one message is required"))
        elif not request.inputs:
            bad.append(FieldViolation("inputs", "at least one text is required"))
        elif len(request.inputs) > MAX_EMBED_INPUTS:
            bad.append(FieldViolation("inputs", f"at most {MAX_EMBED_INPUTS} texts a call"))
        if len(request.idempotency_key) > _MAX_KEY:
            bad.append(FieldViolation("idempotency_key", f"at most {_MAX_KEY} characters"))
        if bad:
            kind = "generate" if isinstance(request, ChatRequest) else "embed"
            raise InvalidArgumentError(f"invalid {kind} request", bad)
        if isinstance(request, ChatRequest):
            self.router.targets(request.model)  # NOT_FOUND for an unknown alias
        else:
            self.router.embedding_targets(request.model)
        return _Call(request, tenant)

    async def _release(self, claim: _Claim | None) -> None:
        if claim is not None:
            await self.store.idem_release(claim.key, claim.token)

    async def _idempotency(
        self, call: _Call, deadline: Deadline
    ) -> tuple[_Claim | None, bytes | None]:
        """Claim the call's key (claim, None), or the stored answer for it (None, payload)."""
        if not call.key:
            return None, None
        key = f"{call.tenant}:{call.key}"
        token = uuid.uuid4().hex
        while True:
            # A claim outlives the call's deadline a little, so a crashed replica's
            # claim expires and the re-executed task can go ahead.
            state = await self.store.idem_claim(key, token, max(deadline.remaining(), 0.0) + 5.0)
            if state is None:
                return _Claim(key, token), None
            if state.done:
                if state.digest != call.digest:
                    raise FailedPreconditionError(
                        "idempotency key was used for a different request",
                        reason="IDEMPOTENCY_KEY_REUSED",
                        metadata={"idempotency_key": call.key},
                    )
                payload = state.answer()
                metrics.REPLAYS.inc()
                return None, payload
            if deadline.remaining() <= _IDEM_POLL_S:
                raise DeadlineExceededError(
                    "a request with the same idempotency key is still in flight",
                    reason="IDEMPOTENCY_KEY_IN_FLIGHT",
                    metadata={"idempotency_key": call.key},
                )
            await asyncio.sleep(_IDEM_POLL_S)

    def _cache_digest(self, call: _Call) -> str | None:
        if self.settings.cache_ttl_s <= 0 or not call.cacheable:
            return None
        return f"{call.tenant}:{call.digest}"

    async def _cached(self, call: _Call) -> bytes | None:
        digest = self._cache_digest(call)
        if digest is None:
            return None
        raw = await self.store.cache_get(digest)
        if raw is not None:
            metrics.CACHE_HITS.inc()
        return raw

    def _scopes(self, call: _Call, tokens: int) -> list[RateScope]:
        lim = self.settings.limits
        t, m = lim.for_tenant(call.tenant), lim.for_model(call.model)
        scopes = []
        for name, rule_value, cost in (
            (f"tenant:{call.tenant}:rpm", t.rpm, 1),
            (f"tenant:{call.tenant}:tpm", t.tpm, tokens),
            (f"model:{call.model}:rpm", m.rpm, 1),
            (f"model:{call.model}:tpm", m.tpm, tokens),
        ):
            if rule_value > 0:
                scopes.append(RateScope(name, rule_value, cost))
        return scopes

    async def _admit(self, call: _Call) -> int:
        """Charge the request's limits; returns the tokens reserved for TPM."""
        lim = self.settings.limits
        t, m = lim.for_tenant(call.tenant), lim.for_model(call.model)
        if not (t.rpm or t.tpm or m.rpm or m.tpm):
            return 0
        scopes = self._scopes(call, call.estimate)
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
        return call.estimate

    def _tpm_scopes(self, call: _Call, delta: int) -> list[RateScope]:
        return [s for s in self._scopes(call, delta) if s.name.endswith(":tpm")]

    def _give_back(self, call: _Call, reserved: int) -> None:
        if reserved:
            self.ledger.add_charges(self._tpm_scopes(call, -reserved))

    async def _finish(
        self,
        call: _Call,
        usage: Usage,
        payload: bytes,
        claim: _Claim | None,
        reserved: int | None,
    ) -> None:
        if reserved is not None:
            metrics.TOKENS.labels(call.model, "input").inc(usage.input_tokens)
            metrics.TOKENS.labels(call.model, "output").inc(usage.output_tokens)
            delta = usage.total_tokens - reserved
            if delta:
                self.ledger.add_charges(self._tpm_scopes(call, delta))
        digest = self._cache_digest(call)
        if claim is None and not (digest and reserved is not None):
            self.ledger.add_usage(call.tenant, call.model, usage.input_tokens, usage.output_tokens)
            return
        # The stored answer must exist before the caller sees it: a task re-run after
        # a crash must find it. Its usage goes in the same transaction.
        await self.store.record(
            tenant=call.tenant,
            model=call.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            idem=(claim.key, call.digest, payload, self.settings.idempotency_ttl_s)
            if claim
            else None,
            cache=(digest, payload, self.settings.cache_ttl_s)
            if digest and reserved is not None
            else None,
        )


@dataclass(frozen=True)
class _Codec(Generic[R]):
    """How a kind of answer is stored (idempotency store, cache)."""

    dump: Callable[[R], bytes]
    load: Callable[[bytes], R]


_CHAT = _Codec[ChatResult](result_to_json, result_from_json)
_EMBED = _Codec[EmbedResult](embed_result_to_json, embed_result_from_json)


class _Call:
    """What the engine's steps need to know about a validated request.

    The digest and the token estimate walk the whole prompt: they are computed only
    when a key, the cache or a token limit needs them.
    """

    def __init__(self, request: ChatRequest | EmbedRequest, tenant: str) -> None:
        self._request = request
        self.model = request.model
        self.tenant = tenant
        self.key = request.idempotency_key
        self.cacheable = not request.bypass_cache

    @functools.cached_property
    def digest(self) -> str:
        return self._request.digest()

    @functools.cached_property
    def estimate(self) -> int:
        return self._request.estimated_input_tokens()


class _Measured:
    """In-flight gauge, request counter by gRPC code, latency histogram."""

    def __init__(self, model: str, method: str) -> None:
        self._model = model
        self._method = method
        self._started = 0.0

    async def __aenter__(self) -> None:
        self._started = time.perf_counter()
        metrics.INFLIGHT.inc()

    async def __aexit__(self, et: object, exc: BaseException | None, tb: object) -> None:
        code = "OK"
        if exc is not None and not isinstance(exc, GeneratorExit):
            code = getattr(getattr(exc, "code", None), "name", None) or type(exc).__name__
        metrics.INFLIGHT.dec()
        metrics.REQUESTS.labels(self._model, code).inc()
        metrics.REQUEST_SECONDS.labels(self._model, self._method).observe(
            time.perf_counter() - self._started
        )


class _Assembler:
    """Builds the full answer out of streamed chunks."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, list[str]] = {}
        self.finish: FinishReason = "stop"
        self.usage = Usage()
        self.ended = False

    def add(self, chunk: Chunk) -> None:
        self.text.append(chunk.content_delta)
        for d in chunk.tool_calls:
            slot = self.calls.setdefault(d.index, ["", "", ""])
            slot[0] = slot[0] or d.id
            slot[1] = slot[1] or d.name
            slot[2] += d.arguments_delta

    def end(self, chunk: Chunk) -> None:
        self.ended = True
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

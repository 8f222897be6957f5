"""LLM gateway engine: backoff, breaker, routing, limits, idempotency, scripted rules."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from lgmesh.llm.v1 import llm_pb2

from llm_gateway_svc._convert import request_from_pb
from llm_gateway_svc.accounting import UsageLedger
from llm_gateway_svc.config import ConfigError, LlmGatewaySettings
from llm_gateway_svc.engine import LlmGateway
from llm_gateway_svc.model import (
    ChatRequest,
    ChatResult,
    Chunk,
    EmbedResult,
    Message,
    ToolSpec,
    Usage,
)
from llm_gateway_svc.providers import ProviderError, ScriptedProvider
from llm_gateway_svc.resilience import CircuitBreaker, Deadline
from llm_gateway_svc.router import Attempts, Router
from llm_gateway_svc.store import IdemState
from mesh_core.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    QuotaExceededError,
    ResourceExhaustedError,
    UnavailableError,
)
from mesh_core.limits import LimitsTable, TenantLimits
from mesh_core.retry import Backoff
from tests.helpers import assert_eventually
from tests.support.llm_memory_store import MemoryLlmStore


def _settings(**extra: Any) -> LlmGatewaySettings:
    doc: dict[str, Any] = {
        "providers": {
            "a": {
                "type": "scripted",
                "rules": [{"reply": "from a"}],
                "retry": {"max_attempts": 3, "base_s": 0.01},
            },
            "b": {
                "type": "scripted",
                "rules": [{"reply": "from b"}],
                "retry": {"max_attempts": 2, "base_s": 0.01},
            },
        },
        "routes": {"m": ["a/x", "b/y"]},
    }
    doc.update(extra)
    return LlmGatewaySettings.from_mapping(doc, env={})


def _req(text: str = "hello", **kw: Any) -> ChatRequest:
    return ChatRequest(model=kw.pop("model", "m"), messages=(Message("user", text),), **kw)


class FlakyProvider:
    """Fails with the queued errors, then answers; counts calls."""

    supports_embeddings = True

    def __init__(self, name: str, errors: list[ProviderError], forever: bool = False) -> None:
        self.name = name
        self.errors = errors
        self.forever = forever
        self.calls = 0

    async def generate(self, request: ChatRequest, model: str, timeout: float) -> ChatResult:
        self.calls += 1
        if self.errors:
            raise self.errors[0] if self.forever else self.errors.pop(0)
        return ChatResult(
            message=Message("assistant", f"{self.name}:{model}"),
            usage=Usage(3, 2),
            provider=self.name,
            provider_model=model,
        )

    async def stream(
        self, request: ChatRequest, model: str, timeout: float
    ) -> AsyncIterator[Chunk]:
        result = await self.generate(request, model, timeout)
        yield Chunk(content_delta=result.message.content)
        yield Chunk(finish_reason="stop", usage=result.usage, last=True)

    async def embed(self, texts: Any, model: str, timeout: float) -> EmbedResult:
        self.calls += 1
        if self.errors:
            raise self.errors[0] if self.forever else self.errors.pop(0)
        return EmbedResult(
            vectors=tuple((float(len(t)), 1.0) for t in texts),
            usage=Usage(len(texts), 0),
            provider=self.name,
            provider_model=model,
        )

    async def aclose(self) -> None:
        return None


class Sleeps:
    """A fake sleep that records its delays and moves its own clock (``clock``) on."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.now = 0.0

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.now += delay

    def clock(self) -> float:
        return self.now


# -- small objects ---------------------------------------------------------------------------


def test_provider_backoff_is_the_mesh_backoff_with_full_jitter() -> None:
    b = Backoff(initial=0.1, maximum=1.0, jitter="full")
    assert [b.ceiling(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    delays = [b.delay(3) for _ in range(200)]
    assert all(0 <= d <= 0.8 for d in delays) and min(delays) < 0.4  # anywhere below


def test_circuit_breaker_opens_probes_and_closes() -> None:
    now = [0.0]
    br = CircuitBreaker(threshold=2, reset_s=5.0, clock=lambda: now[0])
    br.on_failure()
    assert br.allow()
    br.on_failure()
    assert br.state == "open" and not br.allow()
    now[0] = 5.0
    assert br.allow()  # the probe
    assert not br.allow()  # only one
    br.on_failure()
    assert br.state == "open"
    now[0] = 10.0
    assert br.allow()
    br.on_success()
    assert br.state == "closed" and br.allow()


def test_settings_resolve_key_from_env_and_hide_it() -> None:
    s = LlmGatewaySettings.from_mapping(
        {
            "providers": {
                "o": {"type": "openai", "base_url": "http://127.0.0.1:1/v1", "api_key_env": "K"}
            },
            "routes": {"m": "o/x"},
        },
        env={"K": "sk-secret-123", "LGMESH_PREFIX": "pfx"},
    )
    assert s.providers["o"].api_key == "sk-secret-123"
    assert "sk-secret" not in repr(s)
    assert s.infra.prefix == "pfx"
    with pytest.raises(ConfigError):
        LlmGatewaySettings.from_mapping({"routes": {"m": ["nope/x"]}}, env={})


def test_default_config_routes_demo_alias_to_scripted() -> None:
    s = LlmGatewaySettings.load(None, env={})
    assert [str(t) for t in s.routes["mesh-demo"]] == ["scripted/demo"]


# -- router ----------------------------------------------------------------------------------


async def test_router_retries_then_falls_back() -> None:
    s = _settings()
    a = FlakyProvider("a", [ProviderError("server", "500", status=500)], forever=True)
    b = FlakyProvider("b", [ProviderError("rate_limited", "429", status=429, retry_after=0.05)])
    sleeps = Sleeps()  # its clock, not the machine's: a loaded machine moves time on
    router = Router(s, {"a": a, "b": b}, sleep=sleeps, clock=sleeps.clock)
    att = Attempts()
    result = await router.generate(_req(), Deadline.after(10), att)
    assert result.message.content == "b:y"
    assert (a.calls, b.calls) == (3, 2)
    assert att.count == 5 and result.attempts == 5
    assert sleeps.delays[-1] == pytest.approx(0.05, abs=0.01)  # Retry-After honoured
    assert all(d <= 0.02 for d in sleeps.delays[:2])  # jitter within base * 2**n


async def test_router_gives_up_with_unavailable_and_details() -> None:
    s = _settings()
    err = ProviderError("network", "down")
    router = Router(
        s,
        {"a": FlakyProvider("a", [err], True), "b": FlakyProvider("b", [err], True)},
        sleep=Sleeps(),
    )
    with pytest.raises(UnavailableError) as exc:
        await router.generate(_req(), Deadline.after(10), Attempts())
    assert exc.value.metadata["attempts"] == "5"
    assert exc.value.metadata["last_error"] == "network"


async def test_router_never_sleeps_past_the_deadline() -> None:
    s = _settings()
    err = ProviderError("rate_limited", "429", status=429, retry_after=30.0)
    sleeps = Sleeps()
    router = Router(
        s,
        {"a": FlakyProvider("a", [err], True), "b": FlakyProvider("b", [err], True)},
        sleep=sleeps,
    )
    with pytest.raises(ResourceExhaustedError) as exc:
        await router.generate(_req(), Deadline.after(1.0), Attempts())
    assert sleeps.delays == []  # neither waited: both fell through at once
    assert exc.value.reason == "UPSTREAM_RATE_LIMITED" and exc.value.retry_after == 30.0


async def test_router_does_not_retry_a_rejected_request() -> None:
    a = FlakyProvider(
        "a", [ProviderError("client", "provider answered HTTP 400", status=400)], True
    )
    b = FlakyProvider("b", [])
    router = Router(_settings(), {"a": a, "b": b}, sleep=Sleeps())
    with pytest.raises(InvalidArgumentError):
        await router.generate(_req(), Deadline.after(5), Attempts())
    assert (a.calls, b.calls) == (1, 0)


async def test_router_skips_provider_with_open_breaker() -> None:
    s = _settings(
        providers={
            "a": {
                "type": "scripted",
                "rules": [{"reply": "a"}],
                "retry": {"max_attempts": 1},
                "breaker": {"failure_threshold": 1, "reset_s": 60},
            },
            "b": {"type": "scripted", "rules": [{"reply": "b"}]},
        }
    )
    a = FlakyProvider("a", [ProviderError("server", "503", status=503)], True)
    b = FlakyProvider("b", [])
    router = Router(s, {"a": a, "b": b}, sleep=Sleeps())
    await router.generate(_req(), Deadline.after(5), Attempts())
    assert router.breaker_state("a/x") == "open"
    await router.generate(_req(), Deadline.after(5), Attempts())
    assert (a.calls, b.calls) == (1, 2)


async def test_unknown_model_is_not_found() -> None:
    router = Router(_settings())
    with pytest.raises(NotFoundError):
        await router.generate(_req(model="nope"), Deadline.after(5), Attempts())


# -- engine ----------------------------------------------------------------------------------


async def test_idempotency_key_replays_without_calling_provider() -> None:
    a = FlakyProvider("a", [])
    gw = LlmGateway(
        _settings(), MemoryLlmStore(), Router(_settings(), {"a": a, "b": FlakyProvider("b", [])})
    )
    first = await gw.generate(_req(idempotency_key="k1"), tenant="t", deadline=Deadline.after(5))
    again = await gw.generate(_req(idempotency_key="k1"), tenant="t", deadline=Deadline.after(5))
    chunks = [
        c
        async for c in gw.stream(_req(idempotency_key="k1"), tenant="t", deadline=Deadline.after(5))
    ]
    assert a.calls == 1
    assert again.replayed and not first.replayed
    assert again.message == first.message
    assert chunks[-1].result is not None and chunks[-1].result.replayed
    assert "".join(c.content_delta for c in chunks) == first.message.content
    # Another tenant's identical key is a different key.
    await gw.generate(_req(idempotency_key="k1"), tenant="u", deadline=Deadline.after(5))
    assert a.calls == 2
    with pytest.raises(FailedPreconditionError):
        await gw.generate(
            _req("other", idempotency_key="k1"), tenant="t", deadline=Deadline.after(5)
        )


async def test_failed_call_releases_its_idempotency_claim() -> None:
    err = ProviderError("client", "HTTP 400", status=400)
    a = FlakyProvider("a", [err])
    store = MemoryLlmStore()
    gw = LlmGateway(
        _settings(),
        store,
        Router(_settings(), {"a": a, "b": FlakyProvider("b", [])}, sleep=Sleeps()),
    )
    with pytest.raises(InvalidArgumentError):
        await gw.generate(_req(idempotency_key="k"), tenant="t", deadline=Deadline.after(5))
    ok = await gw.generate(_req(idempotency_key="k"), tenant="t", deadline=Deadline.after(5))
    assert ok.message.content == "a:x" and a.calls == 2


async def test_rate_limit_rejects_with_retry_after() -> None:
    s = _settings(limits={"window_s": 60, "tenant_default": {"rpm": 2}})
    gw = LlmGateway(
        s, MemoryLlmStore(), Router(s, {"a": FlakyProvider("a", []), "b": FlakyProvider("b", [])})
    )
    for _ in range(2):
        await gw.generate(_req(), tenant="t", deadline=Deadline.after(5))
    with pytest.raises(ResourceExhaustedError) as exc:
        await gw.generate(_req(), tenant="t", deadline=Deadline.after(5))
    assert exc.value.retry_after is not None and 0 < exc.value.retry_after <= 60
    assert exc.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    await gw.generate(_req(), tenant="other", deadline=Deadline.after(5))  # per tenant


async def test_usage_accounted_per_tenant_and_cache_hits() -> None:
    s = _settings(cache={"ttl_s": 60})
    a = FlakyProvider("a", [])
    store = MemoryLlmStore()
    gw = LlmGateway(s, store, Router(s, {"a": a, "b": FlakyProvider("b", [])}))
    await gw.generate(_req(), tenant="acme", deadline=Deadline.after(5))
    cached = await gw.generate(_req(), tenant="acme", deadline=Deadline.after(5))
    await gw.generate(_req(bypass_cache=True), tenant="acme", deadline=Deadline.after(5))
    await gw.aclose()
    assert cached.cached and a.calls == 2
    usage = await store.usage("acme")
    assert usage["input_tokens"] == 6 and usage["output_tokens"] == 4
    assert usage["model:m:requests"] == 3


async def test_bad_tenant_and_empty_messages_are_invalid() -> None:
    gw = LlmGateway(_settings(), MemoryLlmStore())
    with pytest.raises(InvalidArgumentError) as exc:
        await gw.generate(
            ChatRequest(model="m", messages=()), tenant="bad tenant!", deadline=Deadline.after(1)
        )
    fields = {v.field for v in exc.value.violations}
    assert fields == {"x-lgmesh-tenant", "messages"}


def test_convert_rejects_bad_messages_with_field_violations() -> None:
    req = llm_pb2.GenerateRequest(
        model="m",
        messages=[
            llm_pb2.ChatMessage(role=llm_pb2.ROLE_UNSPECIFIED),
            llm_pb2.ChatMessage(role=llm_pb2.ROLE_TOOL),
        ],
        tools=[llm_pb2.ToolDefinition(name="t", parameters_json="[1]")],
    )
    with pytest.raises(InvalidArgumentError) as exc:
        request_from_pb(req)
    assert {v.field for v in exc.value.violations} == {
        "messages[0].role",
        "messages[1].tool_call_id",
        "tools[0].parameters_json",
    }


# -- providers -------------------------------------------------------------------------------


async def test_scripted_demo_rules() -> None:
    s = LlmGatewaySettings.load(None, env={})
    p = ScriptedProvider(s.providers["scripted"])

    def ask(system: str, *rest: Message, tools: tuple[ToolSpec, ...] = ()) -> ChatResult:
        msgs = (Message("system", system), Message("user", "quantum dots"), *rest)
        return p.answer(ChatRequest(model="mesh-demo", messages=msgs, tools=tools), "demo")

    plan = ask("You are the planner.")
    assert len([line for line in plan.message.content.splitlines() if line.strip()]) == 3
    first = ask("You are a researcher.", tools=(ToolSpec("search"),))
    assert first.finish_reason == "tool_calls"
    (call,) = first.message.tool_calls
    assert call.name == "search" and json.loads(call.arguments_json) == {"query": "quantum dots"}
    second = ask(
        "You are a researcher.",
        Message("assistant", tool_calls=first.message.tool_calls),
        Message("tool", "dots are small", tool_call_id=call.id),
    )
    assert second.message.content == "Findings on quantum dots: dots are small"
    assert "quantum dots" in ask("You are the writer.").message.content
    assert ask("You are the writer.") == ask("You are the writer.")  # deterministic
    chunks = [
        c
        async for c in p.stream(
            ChatRequest(model="m", messages=(Message("system", "planner"), Message("user", "x"))),
            "demo",
            1,
        )
    ]
    assert len(chunks) > 3 and chunks[-1].last and chunks[-1].usage is not None


class SlowProvider(FlakyProvider):
    def __init__(self, name: str, started: asyncio.Event, release: asyncio.Event) -> None:
        super().__init__(name, [])
        self.started, self.release = started, release

    async def generate(self, request: ChatRequest, model: str, timeout: float) -> ChatResult:
        self.started.set()
        await self.release.wait()
        return await super().generate(request, model, timeout)


async def test_concurrent_calls_with_one_key_reach_the_provider_once() -> None:
    class SeesClaims(MemoryLlmStore):
        """Tells when a claim attempt found the key held by a call still in flight."""

        def __init__(self) -> None:
            super().__init__()
            self.held = asyncio.Event()

        async def idem_claim(self, key: str, token: str, ttl_s: float) -> IdemState | None:
            state = await super().idem_claim(key, token, ttl_s)
            if state is not None and not state.done:
                self.held.set()
            return state

    started, release = asyncio.Event(), asyncio.Event()
    a = SlowProvider("a", started, release)
    store = SeesClaims()
    gw = LlmGateway(_settings(), store, Router(_settings(), {"a": a, "b": FlakyProvider("b", [])}))
    first = asyncio.ensure_future(
        gw.generate(_req(idempotency_key="k"), tenant="t", deadline=Deadline.after(5))
    )
    await started.wait()
    second = asyncio.ensure_future(
        gw.generate(_req(idempotency_key="k"), tenant="t", deadline=Deadline.after(5))
    )
    await asyncio.wait_for(store.held.wait(), 5)  # the second found the first's claim
    assert not second.done()
    release.set()
    one, two = await asyncio.gather(first, second)
    assert a.calls == 1
    assert two.replayed and two.message == one.message


async def test_usage_ledger_keeps_rows_when_redis_fails() -> None:
    class FailingOnce(MemoryLlmStore):
        fails = 1

        async def add_usage(self, rows: Any) -> None:
            if self.fails:
                self.fails -= 1
                raise ConnectionError("redis down")
            await super().add_usage(rows)

    store = FailingOnce()
    ledger = UsageLedger(store, 60, interval=3600)
    ledger.add_usage("t", "m", 5, 7)
    await ledger.flush()
    assert await store.usage("t") == {}
    ledger.add_usage("t", "m", 1, 1)
    await ledger.aclose()
    usage = await store.usage("t")
    assert (usage["requests"], usage["input_tokens"], usage["output_tokens"]) == (2, 6, 8)


async def test_unreachable_redis_is_unavailable_not_internal() -> None:
    from llm_gateway_svc.store import RedisLlmStore
    from tests.helpers import find_free_port

    store = RedisLlmStore.from_url(f"redis://127.0.0.1:{find_free_port()}/0", "p")
    gw = LlmGateway(
        _settings(),
        store,
        Router(_settings(), {"a": FlakyProvider("a", []), "b": FlakyProvider("b", [])}),
    )
    with pytest.raises(UnavailableError) as exc:
        await gw.generate(_req(idempotency_key="k"), tenant="t", deadline=Deadline.after(5))
    assert exc.value.reason == "STORE_UNAVAILABLE"
    await store.aclose()


async def test_concurrent_upstream_calls_are_capped_per_provider() -> None:
    class Gauge(FlakyProvider):
        def __init__(self) -> None:
            super().__init__("a", [])
            self.now = self.peak = 0
            self.gate = asyncio.Event()

        async def generate(self, request: ChatRequest, model: str, timeout: float) -> ChatResult:
            self.now += 1
            self.peak = max(self.peak, self.now)
            try:
                await self.gate.wait()
                return await super().generate(request, model, timeout)
            finally:
                self.now -= 1

    s = LlmGatewaySettings.from_mapping(
        {
            "providers": {
                "a": {"type": "scripted", "rules": [{"reply": "a"}], "max_concurrency": 2}
            },
            "routes": {"m": ["a/x"]},
        },
        env={},
    )
    a = Gauge()
    router = Router(s, {"a": a})
    calls = [
        asyncio.ensure_future(
            router.generate(_req(), Deadline.after(5), Attempts(), tenant=f"t{i % 3}")
        )
        for i in range(5)
    ]
    await assert_eventually(lambda: a.now == 2)
    a.gate.set()  # without the cap all five would be inside generate() by now
    await asyncio.gather(*calls)
    assert a.peak == 2 and a.calls == 5


async def test_a_tenant_holds_at_most_its_share_of_a_provider() -> None:
    """One tenant's burst takes its llm_share of the slots; another tenant still gets in."""
    gate = asyncio.Event()

    class Held(FlakyProvider):
        inside = 0  # calls holding one of the provider's slots

        async def generate(self, request: ChatRequest, model: str, timeout: float) -> ChatResult:
            self.inside += 1
            await gate.wait()
            return await super().generate(request, model, timeout)

    s = LlmGatewaySettings.from_mapping(
        {
            "providers": {
                "a": {"type": "scripted", "rules": [{"reply": "a"}], "max_concurrency": 4}
            },
            "routes": {"m": ["a/x"]},
        },
        env={},
    )
    s = dataclasses.replace(s, tenant_limits=LimitsTable(TenantLimits(llm_share=0.5)))
    held = Held("a", [])
    router = Router(s, {"a": held})
    burst = [
        asyncio.ensure_future(router.generate(_req(), Deadline.after(5), Attempts(), tenant="a"))
        for _ in range(2)
    ]
    await assert_eventually(lambda: held.inside == 2, message="a's burst inside the provider")
    with pytest.raises(QuotaExceededError) as exc:
        await router.generate(_req(), Deadline.after(0.1), Attempts(), tenant="a")
    assert exc.value.limit == "llm_share" and exc.value.value == 2
    other = asyncio.ensure_future(
        router.generate(_req(), Deadline.after(5), Attempts(), tenant="b")
    )
    await assert_eventually(lambda: held.inside == 3, message="b inside the provider")
    assert not other.done()  # inside the provider, not refused
    gate.set()
    await asyncio.gather(*burst, other)


async def test_tokens_per_minute_limit_uses_actual_usage() -> None:
    s = _settings(limits={"window_s": 60, "tenant_default": {"tpm": 10}})
    gw = LlmGateway(
        s, MemoryLlmStore(), Router(s, {"a": FlakyProvider("a", []), "b": FlakyProvider("b", [])})
    )
    await gw.generate(_req(), tenant="t", deadline=Deadline.after(5))  # reserves 1, spends 5
    await gw.ledger.flush()
    await gw.generate(_req(), tenant="t", deadline=Deadline.after(5))
    await gw.ledger.flush()
    with pytest.raises(ResourceExhaustedError) as exc:
        await gw.generate(_req(), tenant="t", deadline=Deadline.after(5))
    assert exc.value.metadata["limit"] == "tenant:t:tpm"


# -- partial streams, embeddings ---------------------------------------------------------------


class BreaksMidStream(FlakyProvider):
    """Streams two chunks, then fails (as a provider's error event would), until healed."""

    def __init__(self) -> None:
        super().__init__("a", [])
        self.broken = True

    async def stream(
        self, request: ChatRequest, model: str, timeout: float
    ) -> AsyncIterator[Chunk]:
        self.calls += 1
        yield Chunk(content_delta="partial ")
        yield Chunk(content_delta="answer")
        if self.broken:
            raise ProviderError("server", "provider error (APIError): overloaded mid-stream")
        yield Chunk(finish_reason="stop", usage=Usage(1, 2), last=True)


async def test_partial_stream_then_error_is_never_stored() -> None:
    s = _settings(cache={"ttl_s": 60})
    a = BreaksMidStream()
    store = MemoryLlmStore()
    gw = LlmGateway(s, store, Router(s, {"a": a, "b": FlakyProvider("b", [])}, sleep=Sleeps()))
    req = _req(idempotency_key="k")
    got: list[str] = []
    with pytest.raises(UnavailableError) as exc:
        async for c in gw.stream(req, tenant="t", deadline=Deadline.after(5)):
            got.append(c.content_delta)
    assert got == ["partial ", "answer"]
    assert exc.value.reason == "UPSTREAM_STREAM_BROKEN"
    assert "overloaded mid-stream" in exc.value.message  # the provider's own words
    assert store.idem == {} and store.cache == {}  # the claim released, nothing stored
    a.broken = False
    again = [c async for c in gw.stream(req, tenant="t", deadline=Deadline.after(5))]
    assert a.calls == 2  # the retry went upstream again instead of replaying the cut answer
    final = again[-1].result
    assert final is not None and not final.replayed and final.message.content == "partial answer"
    replay = await gw.generate(req, tenant="t", deadline=Deadline.after(5))
    assert replay.replayed and replay.message.content == "partial answer" and a.calls == 2


def _embed_settings(**extra: Any) -> LlmGatewaySettings:
    doc: dict[str, Any] = {
        "providers": {
            "a": {"type": "scripted", "rules": [{"reply": "x"}], "embed_batch_size": 2},
            "s": {"type": "scripted", "rules": [{"reply": "x"}], "dimensions": 8},
        },
        "routes": {"e": ["a/emb"], "det": ["s/emb"]},
    }
    doc.update(extra)
    return LlmGatewaySettings.from_mapping(doc, env={})


async def test_embed_batches_replays_caches_and_limits() -> None:
    from llm_gateway_svc.model import EmbedRequest

    s = _embed_settings(
        cache={"ttl_s": 60}, limits={"window_s": 60, "tenants": {"tiny": {"rpm": 1}}}
    )
    a = FlakyProvider("a", [])
    gw = LlmGateway(s, MemoryLlmStore(), Router(s, {"a": a}))
    texts = ("one", "three", "seven", "ab", "x")
    first = await gw.embed(
        EmbedRequest("e", texts, idempotency_key="k"), tenant="t", deadline=Deadline.after(5)
    )
    assert a.calls == 3  # five texts in upstream batches of two
    assert [v[0] for v in first.vectors] == [3.0, 5.0, 5.0, 2.0, 1.0]  # input order kept
    again = await gw.embed(
        EmbedRequest("e", texts, idempotency_key="k"), tenant="t", deadline=Deadline.after(5)
    )
    assert again.replayed and again.vectors == first.vectors and a.calls == 3
    cached = await gw.embed(EmbedRequest("e", texts), tenant="t", deadline=Deadline.after(5))
    assert cached.cached and a.calls == 3
    await gw.embed(EmbedRequest("e", ("z",)), tenant="tiny", deadline=Deadline.after(5))
    with pytest.raises(ResourceExhaustedError):
        await gw.embed(EmbedRequest("e", ("y",)), tenant="tiny", deadline=Deadline.after(5))
    with pytest.raises(InvalidArgumentError):
        await gw.embed(EmbedRequest("e", ()), tenant="t", deadline=Deadline.after(5))
    # The deterministic provider: the configured size, unit length, same text same vector.
    det = LlmGateway(s, MemoryLlmStore())
    one = await det.embed(
        EmbedRequest("det", ("a", "b", "a")), tenant="t", deadline=Deadline.after(5)
    )
    assert one.dimensions == 8 and one.vectors[0] == one.vectors[2] != one.vectors[1]
    assert abs(sum(x * x for x in one.vectors[0]) - 1.0) < 1e-9


async def test_embed_needs_a_provider_that_embeds() -> None:
    from llm_gateway_svc.model import EmbedRequest

    class NoEmbed(FlakyProvider):
        supports_embeddings = False

    s = _settings()
    gw = LlmGateway(s, MemoryLlmStore(), Router(s, {"a": NoEmbed("a", []), "b": NoEmbed("b", [])}))
    with pytest.raises(FailedPreconditionError) as exc:
        await gw.embed(EmbedRequest("m", ("x",)), tenant="t", deadline=Deadline.after(5))
    assert exc.value.reason == "MODEL_CANNOT_EMBED"


def test_sdk_errors_are_classified_with_the_providers_words_and_no_keys() -> None:
    import anthropic
    import openai

    from llm_gateway_svc.providers._errors import classify

    req = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    resp = httpx.Response(429, request=req, headers={"retry-after": "7"})
    rl = classify(
        openai.RateLimitError(
            "quota of sk-abcdefgh12345678 used up", response=resp, body={"message": "quota"}
        )
    )
    assert (rl.kind, rl.status, rl.retry_after) == ("rate_limited", 429, 7.0)
    assert "sk-abcdefgh" not in rl.message
    overloaded = classify(
        anthropic.InternalServerError(
            "overloaded", response=httpx.Response(529, request=req), body=None
        )
    )
    assert overloaded.kind == "server" and overloaded.counts_against_breaker
    bad = classify(
        openai.BadRequestError(
            "bad",
            response=httpx.Response(400, request=req),
            body={"message": "max_tokens is too large"},
        )
    )
    assert bad.caller_fault and "max_tokens is too large" in bad.message
    event = classify(
        openai.APIError("boom", request=req, body={"message": "engine died", "code": 500})
    )
    assert event.kind == "server" and "engine died" in event.message
    event_429 = classify(
        openai.APIError("x", request=req, body={"error": {"message": "m", "code": "429"}})
    )
    assert event_429.kind == "rate_limited" and not event_429.counts_against_breaker
    assert classify(openai.APIConnectionError(request=req)).kind == "network"
    assert classify(openai.APITimeoutError(request=req)).kind == "timeout"
    assert classify(httpx.RemoteProtocolError("peer closed")).kind == "network"


def test_product_package_ships_no_test_helpers() -> None:
    import importlib.util

    assert importlib.util.find_spec("llm_gateway_svc.testing") is None
    assert importlib.util.find_spec("tests.support.openai_stub") is not None


def test_config_names_the_extra_of_a_missing_integration() -> None:
    with pytest.raises(ConfigError) as exc:
        LlmGatewaySettings.from_mapping(
            {"providers": {"x": {"type": "langchain", "family": "nope"}}, "routes": {}}, env={}
        )
    assert "unknown family 'nope'" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        LlmGatewaySettings.from_mapping(
            {"providers": {"x": {"type": "langchain", "chat_class": "not_a_module:Chat"}}},
            env={},
        )
    assert "not_a_module" in str(exc.value)

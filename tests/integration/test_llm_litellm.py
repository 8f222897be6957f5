"""The gateway against an independently written server: the LiteLLM proxy, from PyPI.

One proxy process (offline, loopback, mock models; see tests/support/litellm_proxy.py)
serves the OpenAI Chat Completions, Embeddings and Anthropic Messages APIs. Each
case is asked twice: by ``langchain_openai.ChatOpenAI`` (or ``ChatAnthropic``) talking
to the proxy directly, and by ``MeshChatModel`` through the gateway (real Redis for
idempotency, cache and limits), whose provider layer talks to the same proxy. Where
they agree, the test says so; where the gateway is deliberately stricter (a stream
that stops without its end), the test says what each one does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langgraph._internal._retry import default_retry_on
from lgmesh.llm.v1 import llm_pb2, llm_pb2_grpc

from llm_gateway_svc import LlmGatewaySettings
from mesh_client.llm import (
    LlmRateLimitError,
    LlmUnavailableError,
    MeshChatModel,
    MeshEmbeddings,
)
from mesh_core.config import InfraSettings
from mesh_core.localservers import LocalServers
from tests.helpers import unique_prefix
from tests.support.litellm_proxy import MASTER_KEY, MOCK_TEXT, LiteLLMProxy, start_litellm_proxy
from tests.support.llm_processes import gateway_in_thread

pytestmark = pytest.mark.integration

langchain_openai = pytest.importorskip(
    "langchain_openai", reason="needs the providers-openai extra"
)
langchain_anthropic = pytest.importorskip(
    "langchain_anthropic", reason="needs the providers-anthropic extra"
)
openai = pytest.importorskip("openai", reason="needs the providers-openai extra")

SCENARIO_TEXT = "Let me check the weather."
EMBED_DIMENSIONS = 12


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@pytest.fixture(scope="module")
def proxy() -> Iterator[LiteLLMProxy]:
    try:
        server = start_litellm_proxy()
    except FileNotFoundError as exc:
        pytest.skip(f"missing the LiteLLM proxy: {exc}")
    try:
        yield server
    finally:
        server.terminate()


@pytest.fixture(scope="module")
def gateway(proxy: LiteLLMProxy, infra: LocalServers) -> Iterator[str]:
    fast = {"max_attempts": 2, "base_s": 0.01, "cap_s": 0.05}
    doc: dict[str, Any] = {
        "providers": {
            "lite": {
                "type": "openai",
                "base_url": proxy.base_url,
                "api_key_env": "LITELLM_KEY",
                "retry": fast,
                "dimensions": EMBED_DIMENSIONS,
                "embed_batch_size": 2,
            },
            "claude": {
                "type": "anthropic",
                "base_url": proxy.anthropic_base_url,
                "api_key_env": "LITELLM_KEY",
                "retry": fast,
            },
        },
        "routes": {
            **{
                m: [f"lite/{m}"]
                for m in ("text", "tools", "parallel", "ratelimited", "broken", "cut", "errdone")
            },
            "errdone-idem": ["lite/errdone-idem"],
            "fallback": ["lite/ratelimited", "lite/text"],
            "embed": ["lite/embed"],
            "claude-parallel": ["claude/parallel"],
        },
        "cache": {"ttl_s": 60},
    }
    infra_settings = InfraSettings(redis_url=infra.redis_url, prefix=unique_prefix("lite"))
    settings = LlmGatewaySettings.from_mapping(
        doc, env={"LITELLM_KEY": MASTER_KEY}, infra=infra_settings, port=0
    )
    with gateway_in_thread(settings) as address:
        yield address


def direct(proxy: LiteLLMProxy, model: str) -> Any:
    return langchain_openai.ChatOpenAI(
        base_url=proxy.base_url, api_key=MASTER_KEY, model=model, max_retries=0, stream_usage=True
    )


def mesh(gateway: str, model: str, **kw: Any) -> MeshChatModel:
    return MeshChatModel(target=gateway, model=model, timeout=20, bypass_cache=True, **kw)


def _ask(text: str = "What is the weather in Paris and Tokyo?") -> list[BaseMessage]:
    return [HumanMessage(f"{text} ({uuid.uuid4().hex[:6]})")]


def _merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    out = chunks[0]
    for c in chunks[1:]:
        out = out + c
    return out


def _calls(msg: AIMessage) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c["id"] or "", c["name"], c["args"]) for c in msg.tool_calls]


def test_text_plain_and_streamed_match_chatopenai(proxy: LiteLLMProxy, gateway: str) -> None:
    msgs = _ask("Say hello")
    want, got = direct(proxy, "text").invoke(msgs), mesh(gateway, "text").invoke(msgs)
    assert want.content == got.content == MOCK_TEXT
    assert got.usage_metadata is not None and want.usage_metadata is not None
    for k in ("input_tokens", "output_tokens", "total_tokens"):
        assert got.usage_metadata[k] == want.usage_metadata[k]
    assert got.response_metadata["finish_reason"] == want.response_metadata["finish_reason"]
    want_chunks = list(direct(proxy, "text").stream(msgs))
    got_chunks = list(mesh(gateway, "text").stream(msgs))
    assert len(got_chunks) > 3  # token by token, as the server sent them
    assert _merge(got_chunks).content == _merge(want_chunks).content == MOCK_TEXT
    got_u, want_u = _merge(got_chunks).usage_metadata, _merge(want_chunks).usage_metadata
    assert got_u is not None and want_u is not None
    for k in ("input_tokens", "output_tokens", "total_tokens"):
        assert got_u[k] == want_u[k]


@pytest.mark.parametrize("model", ["tools", "parallel"])
def test_tool_calls_plain_and_streamed_match_chatopenai(
    proxy: LiteLLMProxy, gateway: str, model: str
) -> None:
    msgs = _ask()
    want_model = direct(proxy, model).bind_tools([get_weather], tool_choice="get_weather")
    got_model = mesh(gateway, model).bind_tools([get_weather], tool_choice="get_weather")
    want, got = want_model.invoke(msgs), got_model.invoke(msgs)
    expected = [("call_paris", "get_weather", {"city": "Paris"})]
    if model == "parallel":
        expected.append(("call_tokyo", "get_weather", {"city": "Tokyo"}))
    assert _calls(want) == _calls(got) == expected
    assert got.content == want.content == SCENARIO_TEXT
    assert got.response_metadata["finish_reason"] == "tool_calls"
    want_s = _merge(list(want_model.stream(msgs)))
    got_s = _merge(list(got_model.stream(msgs)))
    assert _calls(want_s) == _calls(got_s) == expected
    assert got_s.content == want_s.content == SCENARIO_TEXT
    assert got_s.response_metadata["finish_reason"] == "tool_calls"
    # A round trip: the tool results go back, in the provider's format, and are accepted.
    follow = [
        *msgs,
        got,
        *(ToolMessage(f"sunny in {a['city']}", tool_call_id=i) for i, _, a in expected),
    ]
    assert got_model.invoke(follow).content == want_model.invoke(follow).content


def test_provider_429_is_a_rate_limit_with_retry_info(proxy: LiteLLMProxy, gateway: str) -> None:
    msgs = _ask("hi")
    with pytest.raises(openai.RateLimitError) as direct_exc:
        direct(proxy, "ratelimited").invoke(msgs)
    with pytest.raises(LlmRateLimitError) as mesh_exc:
        # A deadline shorter than the Retry-After: the gateway answers at once.
        MeshChatModel(target=gateway, model="ratelimited", timeout=2).invoke(msgs)
    err = mesh_exc.value
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.status_code == 429
    assert err.reason == "UPSTREAM_RATE_LIMITED"  # the provider's limit, not the gateway's
    assert "mock rate limit error" in str(err)  # the provider's own words
    assert direct_exc.value.response.headers["retry-after"] == "3"
    assert err.retry_after is not None and 0 < err.retry_after <= 3  # from Retry-After
    assert not isinstance(err, ConnectionError)  # a quota, not an outage
    assert default_retry_on(err) == default_retry_on(direct_exc.value)
    # With a fallback, the rate-limited target is skipped at once.
    assert mesh(gateway, "fallback").invoke(msgs).response_metadata["provider_model"] == "text"


def _stream_until_error(model: Any, msgs: list[BaseMessage]) -> tuple[str, BaseException | None]:
    text = ""
    try:
        for chunk in model.stream(msgs):
            text += str(chunk.content)
    except Exception as exc:
        return text, exc
    return text, None


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("errdone", "the scheduler preempted this request"),  # error event, then [DONE]
        ("broken", "the model server lost its GPU"),  # error event, no [DONE]
    ],
)
def test_error_event_mid_stream_is_an_error_with_the_providers_message(
    proxy: LiteLLMProxy, gateway: str, model: str, words: str
) -> None:
    msgs = _ask()
    want_text, want_err = _stream_until_error(direct(proxy, model), msgs)
    got_text, got_err = _stream_until_error(mesh(gateway, model), msgs)
    assert isinstance(want_err, openai.APIError) and words in str(want_err)
    assert isinstance(got_err, LlmUnavailableError) and words in str(got_err)
    assert got_err.reason == "UPSTREAM_STREAM_BROKEN"
    assert got_text == want_text == "Let me check "  # the same chunks came first


def test_stream_cut_without_done_is_an_error(proxy: LiteLLMProxy, gateway: str) -> None:
    msgs = _ask()
    want_text, want_err = _stream_until_error(direct(proxy, "cut"), msgs)
    got_text, got_err = _stream_until_error(mesh(gateway, "cut"), msgs)
    # The server drops the connection mid-body: both see the same text, then an error.
    # (A body that ends cleanly without [DONE] or a finish reason is in test_llm_providers.)
    assert got_text == want_text == "Let me check "
    assert isinstance(want_err, openai.APIConnectionError)
    assert isinstance(got_err, LlmUnavailableError) and got_err.reason == "UPSTREAM_STREAM_BROKEN"
    assert "Connection error" in str(got_err)


def test_partial_stream_is_never_replayed_from_the_store_or_cache(
    proxy: LiteLLMProxy, gateway: str
) -> None:
    model = MeshChatModel(target=gateway, model="errdone-idem", timeout=20)  # cache on
    msgs = _ask()
    key = uuid.uuid4().hex
    for n in (1, 2):
        text, err = _stream_until_error(model.bind(idempotency_key=key), msgs)
        assert isinstance(err, LlmUnavailableError) and text == "Let me check "
        assert proxy.hits("errdone-idem") == n  # the retry went upstream: nothing stored
    _, err = _stream_until_error(model, msgs)  # no key: the cache must not answer either
    assert isinstance(err, LlmUnavailableError) and proxy.hits("errdone-idem") == 3
    # A whole answer (unary here) is stored, and then replayed to a stream with the key.
    whole = model.bind(idempotency_key=key).invoke(msgs)
    assert whole.content == SCENARIO_TEXT and proxy.hits("errdone-idem") == 4
    replay = _merge(list(model.bind(idempotency_key=key).stream(msgs)))
    assert replay.content == SCENARIO_TEXT and replay.response_metadata["replayed"]
    assert proxy.hits("errdone-idem") == 4


def test_anthropic_wire_streamed_parallel_tool_calls_through_mesh(
    proxy: LiteLLMProxy, gateway: str
) -> None:
    msgs = _ask()
    direct_model = langchain_anthropic.ChatAnthropic(
        base_url=proxy.anthropic_base_url, api_key=MASTER_KEY, model="parallel", max_retries=0
    ).bind_tools([get_weather])
    got_model = mesh(gateway, "claude-parallel").bind_tools([get_weather])
    expected = [
        ("call_paris", "get_weather", {"city": "Paris"}),
        ("call_tokyo", "get_weather", {"city": "Tokyo"}),
    ]
    want = _merge(list(direct_model.stream(msgs)))
    chunks = list(got_model.stream(msgs))
    got = _merge(chunks)
    assert _calls(want) == _calls(got) == expected
    assert got.content == SCENARIO_TEXT
    assert got.response_metadata["finish_reason"] == "tool_calls"
    assert got.usage_metadata is not None and want.usage_metadata is not None
    assert got.usage_metadata["output_tokens"] == want.usage_metadata["output_tokens"]
    assert sum(len(c.tool_call_chunks) for c in chunks) >= 4  # arguments came in pieces
    unary = got_model.invoke(msgs)
    assert _calls(unary) == expected


def test_embed_batched_through_mesh_embeddings_and_replayed_by_key(
    proxy: LiteLLMProxy, gateway: str
) -> None:
    texts = [f"text {i} {uuid.uuid4().hex[:6]}" for i in range(5)]
    want = langchain_openai.OpenAIEmbeddings(
        base_url=proxy.base_url,
        api_key=MASTER_KEY,
        model="embed",
        check_embedding_ctx_length=False,
        max_retries=0,
    ).embed_documents(texts)
    before = proxy.hits("embed")
    emb = MeshEmbeddings(target=gateway, model="embed", chunk_size=3, bypass_cache=True)
    got = emb.embed_documents(texts)
    assert len(got) == len(want) == 5
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=1e-6)  # float32 on the wire
    assert all(len(v) == EMBED_DIMENSIONS for v in got)
    # Two Embed calls (3 + 2 texts), each split upstream in batches of 2: 2 + 1 calls.
    assert proxy.hits("embed") - before == 3
    key = uuid.uuid4().hex
    req = llm_pb2.EmbedRequest(model="embed", inputs=texts, idempotency_key=key)
    with grpc.insecure_channel(gateway) as channel:
        stub = llm_pb2_grpc.LlmServiceStub(channel)
        first = stub.Embed(req, timeout=20)
        again = stub.Embed(req, timeout=20)
    assert first.dimensions == EMBED_DIMENSIONS and len(first.embeddings) == 5
    assert [list(e.values) for e in again.embeddings] == [list(e.values) for e in first.embeddings]
    assert again.info.replayed and not first.info.replayed
    assert proxy.hits("embed") - before == 3 + 3  # the repeated key reached it once

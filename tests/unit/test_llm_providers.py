"""The LangChain provider layer on exact wire bytes (httpx's MockTransport, no sockets).

What a given server sends, byte for byte: vLLM / SGLang report a failure mid-stream
as an error event followed by ``[DONE]``; a stream may also just stop. And what the
gateway sends: ``max_completion_tokens`` (or ``max_tokens`` for legacy servers), only
the parameters the caller set, tools in the provider's format.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from llm_gateway_svc.config import LlmGatewaySettings
from llm_gateway_svc.model import ChatRequest, Chunk, Message, Sampling, ToolSpec, Usage
from llm_gateway_svc.providers import LangChainProvider, ProviderError

pytest.importorskip("langchain_openai", reason="needs the providers-openai extra")


def _provider(
    handler: Callable[[httpx.Request], httpx.Response], **spec: Any
) -> tuple[LangChainProvider, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return handler(request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(record))
    settings = LlmGatewaySettings.from_mapping(
        {
            "providers": {
                "o": {
                    "type": "openai",
                    "base_url": "http://127.0.0.1:9/v1",
                    "api_key_env": "K",
                    **spec,
                }
            },
            "routes": {"m": "o/gpt"},
        },
        env={"K": "sk-test-secret-000111"},
    )
    ps = settings.providers["o"]
    return LangChainProvider(replace(ps, options={"http_async_client": client})), seen


def _sse(*events: Any) -> httpx.Response:
    body = "".join(
        f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events
    ).encode()
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


def _delta(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _req(**kw: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=(Message("user", "hi"),), **kw)


async def _collect(p: LangChainProvider, req: ChatRequest) -> list[Chunk]:
    return [c async for c in p.stream(req, "gpt", 5)]


async def test_request_carries_only_what_the_caller_set_and_max_completion_tokens() -> None:
    done = _sse(_delta({"content": "ok"}), _delta({}, "stop"), "[DONE]")
    p, seen = _provider(lambda r: done)
    await _collect(p, _req())
    await _collect(p, _req(sampling=Sampling(max_tokens=50, temperature=0.2)))
    tools = (ToolSpec("search", "find", {"type": "object", "properties": {}}),)
    await _collect(p, _req(tools=tools, tool_choice="search"))
    await _collect(p, _req(tools=tools, tool_choice="required"))
    plain, sampled, named, required = seen
    assert "temperature" not in plain and "max_tokens" not in plain  # the model's defaults
    assert "max_completion_tokens" not in plain
    assert sampled["max_completion_tokens"] == 50 and "max_tokens" not in sampled
    assert sampled["temperature"] == 0.2
    assert named["tool_choice"] == {"type": "function", "function": {"name": "search"}}
    assert named["tools"][0]["function"]["name"] == "search"
    assert required["tool_choice"] == "required"
    legacy, seen2 = _provider(lambda r: done, legacy_max_tokens=True)
    await _collect(legacy, _req(sampling=Sampling(max_tokens=50)))
    assert seen2[0]["max_tokens"] == 50 and "max_completion_tokens" not in seen2[0]


async def test_parallel_tool_calls_streamed_in_pieces() -> None:
    def call(i: int, args: str, first: bool) -> dict[str, Any]:
        piece: dict[str, Any] = {"index": i, "function": {"arguments": args}}
        if first:
            piece.update(id=f"call_{i}", type="function")
            piece["function"]["name"] = "weather"
        return _delta({"tool_calls": [piece]})

    resp = _sse(
        call(0, '{"city"', True),
        call(1, '{"city": ', True),
        call(0, ': "Paris"}', False),
        call(1, '"Tokyo"}', False),
        _delta({}, "tool_calls"),
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt",
            "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21},
        },
        "[DONE]",
    )
    p, _ = _provider(lambda r: resp)
    chunks = await _collect(p, _req(tools=(ToolSpec("weather"),)))
    args: dict[int, str] = {}
    for c in chunks:
        for d in c.tool_calls:
            args[d.index] = args.get(d.index, "") + d.arguments_delta
    assert {i: json.loads(a) for i, a in args.items()} == {
        0: {"city": "Paris"},
        1: {"city": "Tokyo"},
    }
    assert chunks[-1].last and chunks[-1].finish_reason == "tool_calls"
    assert chunks[-1].usage == Usage(9, 12)


async def test_error_event_followed_by_done_is_an_error_with_the_servers_message() -> None:
    # vLLM / SGLang: a failure mid-stream is an error event, then [DONE].
    resp = _sse(
        _delta({"role": "assistant", "content": "Hel"}),
        _delta({"content": "lo"}),
        {
            "error": {
                "object": "error",
                "message": "CUDA out of memory",
                "type": "InternalServerError",
                "code": 500,
            }
        },
        "[DONE]",
    )
    p, _ = _provider(lambda r: resp)
    got: list[str] = []
    with pytest.raises(ProviderError) as exc:
        async for c in p.stream(_req(), "gpt", 5):
            got.append(c.content_delta)
    assert got == ["Hel", "lo"]
    assert exc.value.kind == "server" and "CUDA out of memory" in exc.value.message
    assert "sk-test-secret" not in exc.value.message


async def test_stream_that_just_ends_is_an_error() -> None:
    resp = _sse(_delta({"content": "Hel"}), _delta({"content": "lo"}))  # no finish, no [DONE]
    p, _ = _provider(lambda r: resp)
    with pytest.raises(ProviderError) as exc:
        await _collect(p, _req())
    assert exc.value.kind == "protocol"


async def test_http_429_with_retry_after_and_400_with_the_providers_message() -> None:
    def handler(r: httpx.Request) -> httpx.Response:
        if json.loads(r.content).get("stream"):
            return httpx.Response(
                400,
                json={
                    "error": {
                        "message": "tools[0] is not a valid schema",
                        "type": "invalid_request_error",
                    }
                },
            )
        return httpx.Response(
            429, headers={"retry-after": "2"}, json={"error": {"message": "TPM quota exceeded"}}
        )

    p, _ = _provider(handler)
    with pytest.raises(ProviderError) as exc:
        await p.generate(_req(), "gpt", 5)
    assert (exc.value.kind, exc.value.retry_after) == ("rate_limited", 2.0)
    assert "TPM quota exceeded" in exc.value.message
    with pytest.raises(ProviderError) as exc:
        await _collect(p, _req())
    assert exc.value.caller_fault and "not a valid schema" in exc.value.message

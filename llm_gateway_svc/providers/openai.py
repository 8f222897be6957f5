"""OpenAI-compatible Chat Completions over HTTP (OpenAI, vLLM, Ollama, llama.cpp, ...).

One adapter for every server that speaks ``POST {base_url}/chat/completions``, with
and without ``stream: true`` (server-sent events). Base URL, key and extra headers
come from the provider's settings; the key goes only into the Authorization header
and never into a log line or an error message.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from llm_gateway_svc.config import ProviderSettings
from llm_gateway_svc.model import (
    ChatRequest,
    ChatResult,
    Chunk,
    FinishReason,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llm_gateway_svc.providers.base import ProviderError

__all__ = ["OpenAIProvider", "build_body", "parse_retry_after"]

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.name:
        out["name"] = m.name
    if m.role == "assistant" and m.tool_calls:
        out["content"] = m.content or None
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments_json},
            }
            for c in m.tool_calls
        ]
    if m.role == "tool":
        out["tool_call_id"] = m.tool_call_id
    return out


def build_body(request: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
    """The Chat Completions request body for ``request`` sent to ``model``."""
    body: dict[str, Any] = {"model": model, "messages": [_message(m) for m in request.messages]}
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters or {"type": "object", "properties": {}},
                },
            }
            for t in request.tools
        ]
    tc = request.tool_choice
    if tc in ("auto", "none", "required"):
        body["tool_choice"] = tc
    elif tc:
        body["tool_choice"] = {"type": "function", "function": {"name": tc}}
    s = request.sampling
    for key in (
        "temperature",
        "top_p",
        "max_tokens",
        "seed",
        "presence_penalty",
        "frequency_penalty",
    ):
        value = getattr(s, key)
        if value is not None:
            body[key] = value
    if s.stop:
        body["stop"] = list(s.stop)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from ``retry-after-ms``, ``Retry-After`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _status_error(resp: httpx.Response, body: bytes) -> ProviderError:
    code = resp.status_code
    detail = ""
    try:
        err = json.loads(body).get("error") or {}
        if isinstance(err, dict):
            detail = str(err.get("type") or err.get("code") or "")[:80]
    except (ValueError, AttributeError):
        pass
    msg = f"provider answered HTTP {code}" + (f" ({detail})" if detail else "")
    if code == 429:
        return ProviderError(
            "rate_limited", msg, status=code, retry_after=parse_retry_after(resp.headers)
        )
    if code == 408 or code >= 500:
        return ProviderError(
            "server", msg, status=code, retry_after=parse_retry_after(resp.headers)
        )
    if code in (400, 422):
        return ProviderError("client", msg, status=code)
    return ProviderError("config", msg, status=code)


def _transport_error(exc: httpx.HTTPError) -> ProviderError:
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError("timeout", f"provider timed out ({type(exc).__name__})")
    return ProviderError("network", f"provider connection failed ({type(exc).__name__})")


def _usage(raw: Any, request: ChatRequest, output_chars: int) -> Usage:
    if isinstance(raw, dict) and ("prompt_tokens" in raw or "completion_tokens" in raw):
        return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))
    # Servers that report no usage: estimate, so limits and accounting still see spend.
    return Usage(request.estimated_input_tokens(), max(1, output_chars // 4))


class OpenAIProvider:
    """Provider adapter for any OpenAI-compatible Chat Completions server."""

    def __init__(
        self, settings: ProviderSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.name = settings.name
        headers = {"content-type": "application/json", **settings.headers}
        if settings.api_key:
            headers["authorization"] = f"Bearer {settings.api_key}"
        self._headers = httpx.Headers(headers)
        self._url = httpx.URL(settings.base_url + "/chat/completions")
        # Requests go straight to httpx's transport (its connection pool): the Client
        # layer (redirects, cookies, auth flows, hooks) costs ~0.15 ms a call and
        # this adapter needs none of it.
        self._transport = transport or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=settings.max_concurrency,
                max_keepalive_connections=settings.max_concurrency,
            ),
        )

    def _request(self, body: dict[str, Any], timeout: float) -> httpx.Request:
        return httpx.Request(
            "POST",
            self._url,
            headers=self._headers,
            content=json.dumps(body).encode(),
            extensions={"timeout": httpx.Timeout(timeout).as_dict()},
        )

    def __repr__(self) -> str:
        return f"OpenAIProvider(name={self.name!r})"

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def generate(self, request: ChatRequest, model: str, timeout: float) -> ChatResult:
        body = build_body(request, model, stream=False)
        try:
            resp = await self._transport.handle_async_request(self._request(body, timeout))
            try:
                raw = await resp.aread()
            finally:
                await resp.aclose()
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        if resp.status_code != 200:
            raise _status_error(resp, raw)
        try:
            doc = json.loads(raw)
            choice = doc["choices"][0]
            msg = choice.get("message") or {}
            calls = tuple(
                ToolCall(
                    id=str(c.get("id") or f"call_{i}"),
                    name=str(c["function"]["name"]),
                    arguments_json=str(c["function"].get("arguments") or "{}"),
                )
                for i, c in enumerate(msg.get("tool_calls") or [])
            )
            content = str(msg.get("content") or "")
            finish = _FINISH.get(
                str(choice.get("finish_reason") or ""), "tool_calls" if calls else "stop"
            )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ProviderError(
                "protocol", f"malformed provider response ({type(exc).__name__})"
            ) from None
        out_chars = len(content) + sum(len(c.arguments_json) for c in calls)
        return ChatResult(
            message=Message(role="assistant", content=content, tool_calls=calls),
            finish_reason=finish,
            usage=_usage(doc.get("usage"), request, out_chars),
            provider=self.name,
            provider_model=model,
        )

    async def stream(
        self, request: ChatRequest, model: str, timeout: float
    ) -> AsyncIterator[Chunk]:
        body = build_body(request, model, stream=True)
        finish: FinishReason = ""
        usage_raw: Any = None
        out_chars = 0
        done = False
        try:
            resp = await self._transport.handle_async_request(self._request(body, timeout))
            async with contextlib.aclosing(resp):
                if resp.status_code != 200:
                    raise _status_error(resp, await resp.aread())
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    try:
                        event = json.loads(data)
                    except ValueError:
                        raise ProviderError("protocol", "malformed stream event") from None
                    if event.get("usage"):
                        usage_raw = event["usage"]
                    for choice in event.get("choices") or []:
                        delta = choice.get("delta") or {}
                        text = str(delta.get("content") or "")
                        calls = tuple(
                            ToolCallDelta(
                                index=int(c.get("index", 0)),
                                id=str(c.get("id") or ""),
                                name=str((c.get("function") or {}).get("name") or ""),
                                arguments_delta=str(
                                    (c.get("function") or {}).get("arguments") or ""
                                ),
                            )
                            for c in delta.get("tool_calls") or []
                        )
                        out_chars += len(text) + sum(len(c.arguments_delta) for c in calls)
                        if choice.get("finish_reason"):
                            finish = _FINISH.get(str(choice["finish_reason"]), "stop")
                        if text or calls:
                            yield Chunk(content_delta=text, tool_calls=calls)
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        if not done and not finish:
            raise ProviderError("protocol", "provider stream ended early")
        yield Chunk(
            finish_reason=finish or "stop", usage=_usage(usage_raw, request, out_chars), last=True
        )

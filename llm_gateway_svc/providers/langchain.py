"""Providers through LangChain's chat model integrations (OpenAI, Anthropic, Bedrock, ...).

Why LangChain's integrations and not LiteLLM as a library (measured with
``bench/llm_gateway.py --compare-layers``, one local server, p50 over raw HTTP,
median of 3 rounds on 2 shared cores): ChatOpenAI's hooks add ~2.1 ms (most of
it the openai SDK itself, ~1.2 ms) and ~3.6 ms streamed; ``litellm.acompletion``
adds ~6.4 ms and ~15.7 ms streamed. Streamed tool calls come out of every
integration as the same ``tool_call_chunks`` (index, id, name, argument pieces),
usage as the same ``usage_metadata``, and errors as the provider SDK's own
exceptions (``_errors.classify`` reads their status, headers and message), which
is also what a direct caller of the SDK sees. LiteLLM covers more providers, but
adds 35 packages to the base install (aiohttp, boto3, tokenizers, huggingface_hub,
...); langchain-openai adds 5, langchain-anthropic 4, each an optional extra.

The gateway calls the integration's chat-model hooks (``_agenerate`` /
``_astream``, the methods every integration implements) with the keyword
arguments its own ``bind_tools`` produces, skipping the Runnable layer's callback
machinery that the gateway does not use (about 0.5-1.7 ms a call). The
integration then formats the request as its provider expects (e.g. ChatOpenAI
sends ``max_completion_tokens``) and sends only the parameters the caller set,
so the model's own defaults hold otherwise.

A stream is complete only when the provider said why it stopped (a finish /
stop reason). An error event, a broken connection or a stream that just ends
raise :class:`ProviderError` with the provider's message.
"""

from __future__ import annotations

import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from llm_gateway_svc.config import ConfigError, ProviderSettings
from llm_gateway_svc.model import (
    ChatRequest,
    ChatResult,
    Chunk,
    EmbedResult,
    FinishReason,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llm_gateway_svc.providers._errors import classify
from llm_gateway_svc.providers._families import (
    FAMILIES,
    build_chat_model,
    build_embeddings,
    load_class,
    wants_http_client,
)
from llm_gateway_svc.providers.base import ProviderError
from mesh_core.errors import InvalidArgumentError
from mesh_core.jsonvalue import parse_json

__all__ = ["LangChainProvider", "finish_reason", "to_langchain_messages"]

_FINISH_KEYS = ("finish_reason", "stop_reason", "done_reason", "stopReason")
_FINISH: Mapping[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "complete": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "refusal": "content_filter",
    "guardrail_intervened": "content_filter",
}
_TOOL_CHOICE = {"required": "any"}  # every integration maps "any" to its own word
_BINDINGS_MAX = 256


def finish_reason(metadata: Mapping[str, Any]) -> FinishReason | None:
    """The normalised finish reason in an integration's ``response_metadata``, if any."""
    for key in _FINISH_KEYS:
        raw = metadata.get(key)
        if raw:
            return _FINISH.get(str(raw).lower(), "stop")
    return None


def to_langchain_messages(request: ChatRequest) -> list[BaseMessage]:
    out: list[BaseMessage] = []
    for i, m in enumerate(request.messages):
        if m.role == "system":
            out.append(SystemMessage(m.content))
        elif m.role == "user":
            out.append(HumanMessage(m.content, name=m.name or None))
        elif m.role == "assistant":
            calls = []
            for j, c in enumerate(m.tool_calls):
                try:
                    args = parse_json(
                        c.arguments_json or "{}", f"messages[{i}].tool_calls[{j}].arguments_json"
                    )
                except InvalidArgumentError:
                    args = None
                if not isinstance(args, dict):
                    raise ProviderError(
                        "client", f"messages[{i}].tool_calls[{j}]: arguments are not a JSON object"
                    )
                calls.append({"name": c.name, "args": args, "id": c.id, "type": "tool_call"})
            out.append(AIMessage(m.content, tool_calls=calls))
        else:
            out.append(ToolMessage(m.content, tool_call_id=m.tool_call_id))
    return out


def _usage(raw: Any) -> tuple[int, int] | None:
    if not raw:
        return None
    return int(raw.get("input_tokens") or 0), int(raw.get("output_tokens") or 0)


def _estimate(request: ChatRequest, output_chars: int) -> Usage:
    # Integrations that report no usage: estimate, so limits and accounting still see spend.
    return Usage(request.estimated_input_tokens(), max(1, output_chars // 4))


class _StreamState:
    """Turns an integration's message chunks into the gateway's, and judges the end."""

    def __init__(self) -> None:
        self.finish: FinishReason | None = None
        self.usage: list[int] | None = None
        self.out_chars = 0
        self._index: dict[Any, int] = {}
        self._last = -1
        self.calls = False

    def _dense(self, raw_index: Any, has_id: bool) -> int:
        # Integrations number tool calls their own way (OpenAI: call index; Anthropic:
        # content block index, shared with text). Callers get 0, 1, 2... in order.
        if raw_index is None:
            if has_id or self._last < 0:
                self._last = len(self._index)
                self._index[("auto", self._last)] = self._last
            return self._last
        if raw_index not in self._index:
            self._index[raw_index] = len(self._index)
        self._last = self._index[raw_index]
        return self._last

    def chunk(self, message: Any, info: Mapping[str, Any] | None) -> Chunk | None:
        text = message.text if isinstance(message.content, list) else str(message.content or "")
        deltas = []
        for c in getattr(message, "tool_call_chunks", None) or ():
            index = self._dense(c.get("index"), bool(c.get("id")))
            deltas.append(
                ToolCallDelta(
                    index=index,
                    id=str(c.get("id") or ""),
                    name=str(c.get("name") or ""),
                    arguments_delta=str(c.get("args") or ""),
                )
            )
        self.calls = self.calls or bool(deltas)
        self.out_chars += len(text) + sum(len(d.arguments_delta) for d in deltas)
        # The hooks put the finish reason in ``generation_info`` (the Runnable layer
        # would copy it into ``response_metadata``); read both.
        fin = finish_reason({**(info or {}), **(message.response_metadata or {})})
        if fin is not None:
            self.finish = fin
        u = _usage(getattr(message, "usage_metadata", None))
        if u is not None:
            self.usage = [a + b for a, b in zip(self.usage or [0, 0], u, strict=True)]
        if text or deltas:
            return Chunk(content_delta=text, tool_calls=tuple(deltas))
        return None


class LangChainProvider:
    """One configured provider served by a LangChain chat model integration."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.name = settings.name
        self._settings = settings
        self._secrets = (settings.api_key,)
        family = FAMILIES.get(settings.family)
        # Fail at start-up, not at the first call, when the integration is not installed.
        if settings.chat_class:
            load_class(settings.chat_class)
        elif family is not None:
            load_class(family.chat_class, family.extra)
        self.supports_embeddings = bool(
            family is not None and family.embeddings_class and not settings.chat_class
        )
        self._http: httpx.AsyncClient | None = None
        self._chat: dict[str, Any] = {}
        self._embeddings: dict[str, Any] = {}
        self._bindings: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()

    def __repr__(self) -> str:
        return f"LangChainProvider(name={self.name!r}, family={self._settings.family!r})"

    async def aclose(self) -> None:
        self._chat.clear()
        self._embeddings.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _http_client(self) -> httpx.AsyncClient | None:
        """The provider's own connection pool, where the integration takes one.

        (Otherwise some integrations share one pool per base URL across the process,
        whose connections outlive the event loop that opened them.)
        """
        if self._http is None and wants_http_client(self._settings):
            n = self._settings.max_concurrency
            self._http = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                timeout=self._settings.timeout_s,
            )
        return self._http

    def _model(self, model: str) -> Any:
        chat = self._chat.get(model)
        if chat is None:
            try:
                chat = self._chat[model] = build_chat_model(
                    self._settings, model, self._http_client()
                )
            except ConfigError as exc:
                raise ProviderError("config", str(exc)) from None
        return chat

    def _tool_kwargs(self, chat: Any, model: str, request: ChatRequest) -> dict[str, Any]:
        """What the integration's own ``bind_tools`` sends for these tools (cached)."""
        tools = [
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
        key = (model, json.dumps(tools, sort_keys=True), request.tool_choice)
        kw = self._bindings.get(key)
        if kw is None:
            choice = _TOOL_CHOICE.get(request.tool_choice, request.tool_choice) or None
            try:
                kw = dict(chat.bind_tools(tools, tool_choice=choice).kwargs)
            except (ValueError, TypeError, KeyError) as exc:
                raise ProviderError("client", f"tools cannot be sent to {model}: {exc}") from None
            self._bindings[key] = kw
            while len(self._bindings) > _BINDINGS_MAX:
                self._bindings.popitem(last=False)
        return kw

    def _prepare(
        self, request: ChatRequest, model: str
    ) -> tuple[Any, list[BaseMessage], list[str] | None, dict[str, Any]]:
        chat = self._model(model)
        messages = to_langchain_messages(request)
        kw: dict[str, Any] = self._tool_kwargs(chat, model, request) if request.tools else {}
        s = request.sampling
        for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
            value = getattr(s, name)
            if value is not None:
                kw[name] = value
        if s.max_tokens is not None:
            if self._settings.legacy_max_tokens:
                kw["extra_body"] = {**kw.get("extra_body", {}), "max_tokens": s.max_tokens}
            else:
                kw["max_tokens"] = s.max_tokens  # each integration renames it as needed
        return chat, messages, list(s.stop) or None, kw

    async def generate(self, request: ChatRequest, model: str, timeout: float) -> ChatResult:
        chat, messages, stop, kw = self._prepare(request, model)
        try:
            out = await chat._agenerate(messages, stop=stop, **kw)
            generation = out.generations[0]
            message = generation.message
        except ProviderError:
            raise
        except Exception as exc:
            raise classify(exc, self._secrets) from None
        text = message.text if isinstance(message.content, list) else str(message.content or "")
        calls = [
            ToolCall(
                id=str(c.get("id") or f"call_{i}"),
                name=c["name"],
                arguments_json=json.dumps(c["args"]),
            )
            for i, c in enumerate(message.tool_calls)
        ]
        calls += [
            ToolCall(
                id=str(c.get("id") or ""),
                name=str(c.get("name") or ""),
                arguments_json=str(c.get("args") or ""),
            )
            for c in message.invalid_tool_calls
        ]
        meta = {**(generation.generation_info or {}), **(message.response_metadata or {})}
        fin = finish_reason(meta) or "stop"
        if calls and fin == "stop":
            fin = "tool_calls"
        u = _usage(message.usage_metadata)
        out_chars = len(text) + sum(len(c.arguments_json) for c in calls)
        return ChatResult(
            message=Message(role="assistant", content=text, tool_calls=tuple(calls)),
            finish_reason=fin,
            usage=Usage(*u) if u else _estimate(request, out_chars),
            provider=self.name,
            provider_model=model,
        )

    async def stream(
        self, request: ChatRequest, model: str, timeout: float
    ) -> AsyncIterator[Chunk]:
        chat, messages, stop, kw = self._prepare(request, model)
        state = _StreamState()
        try:
            async with contextlib.aclosing(chat._astream(messages, stop=stop, **kw)) as chunks:
                async for gen_chunk in chunks:
                    chunk = state.chunk(gen_chunk.message, gen_chunk.generation_info)
                    if chunk is not None:
                        yield chunk
        except ProviderError:
            raise
        except Exception as exc:
            raise classify(exc, self._secrets) from None
        if state.finish is None:
            raise ProviderError(
                "protocol", "provider stream ended before the answer did (no finish reason)"
            )
        fin = state.finish
        if state.calls and fin == "stop":
            fin = "tool_calls"
        usage = Usage(*state.usage) if state.usage else _estimate(request, state.out_chars)
        yield Chunk(finish_reason=fin, usage=usage, last=True)

    async def embed(self, texts: Sequence[str], model: str, timeout: float) -> EmbedResult:
        emb = self._embeddings.get(model)
        if emb is None:
            try:
                emb = build_embeddings(self._settings, model, self._http_client())
            except ConfigError as exc:
                raise ProviderError("config", str(exc)) from None
            if emb is None:
                raise ProviderError("config", f"provider {self.name!r} has no embeddings")
            self._embeddings[model] = emb
        try:
            vectors = await emb.aembed_documents(list(texts))
        except Exception as exc:
            raise classify(exc, self._secrets) from None
        if len(vectors) != len(texts):
            raise ProviderError(
                "protocol", f"provider returned {len(vectors)} vectors for {len(texts)} texts"
            )
        want = self._settings.dimensions
        if want and any(len(v) != want for v in vectors):
            raise ProviderError(
                "protocol", f"provider returned vectors of another size than {want}"
            )
        return EmbedResult(
            vectors=tuple(tuple(float(x) for x in v) for v in vectors),
            usage=Usage(max(1, sum(len(t) for t in texts) // 4), 0),
            provider=self.name,
            provider_model=model,
        )

"""A deterministic provider driven by rules, so demos and tests need no network.

Each rule has ``when`` conditions (all must hold; all checks are case-insensitive)
and either a ``reply`` text or ``tool_calls``, both templated with
``{last_user}``, ``{last_tool}``, ``{tool_results}``, ``{system}`` and ``{model}``.
The first matching rule answers. Conditions:

``system_contains``  text in the system message(s)
``user_contains``    text in the last user message
``last_role``        role of the last message (``user``, ``tool``, ...)
``has_tool_result``  whether a tool message follows the last user message
``tools_include``    a tool of that name is offered
``model``            the provider model name equals this

Token usage is counted in whitespace-separated words.

It also embeds: each text's vector is derived from its SHA-256 (``dimensions``
floats, default 16, unit length), the same for the same text on every replica.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import struct
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from llm_gateway_svc.config import ProviderSettings
from llm_gateway_svc.model import (
    ChatRequest,
    ChatResult,
    Chunk,
    EmbedResult,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llm_gateway_svc.providers.base import ProviderError

__all__ = ["ScriptedProvider"]

DEFAULT_SCRIPTED_DIMENSIONS = 16

_CONDITIONS = frozenset(
    {"system_contains", "user_contains", "last_role", "has_tool_result", "tools_include", "model"}
)


class _Vars(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _words(text: str) -> int:
    return len(text.split())


def _facts(request: ChatRequest, model: str) -> dict[str, Any]:
    msgs = request.messages
    last_user_i = max((i for i, m in enumerate(msgs) if m.role == "user"), default=-1)
    tools_after = [m.content for m in msgs[last_user_i + 1 :] if m.role == "tool"]
    return {
        "system": "\n".join(m.content for m in msgs if m.role == "system"),
        "last_user": msgs[last_user_i].content if last_user_i >= 0 else "",
        "last_tool": tools_after[-1] if tools_after else "",
        "tool_results": "\n".join(tools_after),
        "last_role": msgs[-1].role if msgs else "",
        "has_tool_result": bool(tools_after),
        "tools": {t.name.lower() for t in request.tools},
        "model": model,
    }


def _matches(when: Mapping[str, Any], facts: Mapping[str, Any]) -> bool:
    for key, want in when.items():
        if key == "system_contains" and str(want).lower() not in facts["system"].lower():
            return False
        if key == "user_contains" and str(want).lower() not in facts["last_user"].lower():
            return False
        if key == "last_role" and str(want).lower() != facts["last_role"]:
            return False
        if key == "has_tool_result" and bool(want) != facts["has_tool_result"]:
            return False
        if key == "tools_include" and str(want).lower() not in facts["tools"]:
            return False
        if key == "model" and str(want) != facts["model"]:
            return False
    return True


def _render(value: Any, vars_: _Vars) -> Any:
    if isinstance(value, str):
        return value.format_map(vars_)
    if isinstance(value, Mapping):
        return {str(k): _render(v, vars_) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, vars_) for v in value]
    return value


class ScriptedProvider:
    """Answers from the first matching rule; identical requests get identical answers."""

    supports_embeddings = True

    def __init__(self, settings: ProviderSettings) -> None:
        self.name = settings.name
        self._dimensions = settings.dimensions or DEFAULT_SCRIPTED_DIMENSIONS
        self._chunk_delay = settings.chunk_delay_s
        self._rules: list[Mapping[str, Any]] = []
        for i, rule in enumerate(settings.script):
            when = rule.get("when") or {}
            unknown = set(when) - _CONDITIONS
            if unknown:
                raise ValueError(f"scripted rule {i}: unknown conditions {sorted(unknown)}")
            if "reply" not in rule and "tool_calls" not in rule:
                raise ValueError(f"scripted rule {i}: needs 'reply' or 'tool_calls'")
            self._rules.append(rule)

    async def aclose(self) -> None:
        return None

    def answer(self, request: ChatRequest, model: str) -> ChatResult:
        facts = _facts(request, model)
        vars_ = _Vars({k: str(v) for k, v in facts.items() if isinstance(v, str)})
        for rule in self._rules:
            if not _matches(rule.get("when") or {}, facts):
                continue
            content = _render(str(rule.get("reply", "")), vars_)
            seed = hashlib.sha256(request.digest().encode()).hexdigest()[:12]
            calls = tuple(
                ToolCall(
                    id=f"call_{seed}_{i}",
                    name=str(c["name"]),
                    arguments_json=json.dumps(
                        _render(c.get("arguments") or {}, vars_), sort_keys=True
                    ),
                )
                for i, c in enumerate(rule.get("tool_calls") or [])
            )
            out_words = _words(content) + sum(_words(c.arguments_json) for c in calls)
            in_words = sum(_words(m.content) for m in request.messages)
            return ChatResult(
                message=Message(role="assistant", content=content, tool_calls=calls),
                finish_reason="tool_calls" if calls else "stop",
                usage=Usage(input_tokens=max(1, in_words), output_tokens=max(1, out_words)),
                provider=self.name,
                provider_model=model,
            )
        raise ProviderError("client", "no scripted rule matches the request")

    async def generate(self, request: ChatRequest, model: str, timeout: float) -> ChatResult:
        return self.answer(request, model)

    async def stream(
        self, request: ChatRequest, model: str, timeout: float
    ) -> AsyncIterator[Chunk]:
        result = self.answer(request, model)
        for piece in re.findall(r"\S+\s*|\s+", result.message.content):
            if self._chunk_delay:
                await asyncio.sleep(self._chunk_delay)
            yield Chunk(content_delta=piece)
        for i, call in enumerate(result.message.tool_calls):
            half = len(call.arguments_json) // 2
            yield Chunk(
                tool_calls=(ToolCallDelta(i, call.id, call.name, call.arguments_json[:half]),)
            )
            yield Chunk(tool_calls=(ToolCallDelta(i, arguments_delta=call.arguments_json[half:]),))
        yield Chunk(finish_reason=result.finish_reason, usage=result.usage, last=True)

    async def embed(self, texts: Sequence[str], model: str, timeout: float) -> EmbedResult:
        return EmbedResult(
            vectors=tuple(deterministic_vector(f"{model}:{t}", self._dimensions) for t in texts),
            usage=Usage(input_tokens=max(1, sum(_words(t) for t in texts)), output_tokens=0),
            provider=self.name,
            provider_model=model,
        )


def deterministic_vector(text: str, dimensions: int) -> tuple[float, ...]:
    """A unit vector of ``dimensions`` floats derived from ``text`` alone."""
    raw = b""
    counter = 0
    while len(raw) < 4 * dimensions:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    ints = struct.unpack(f"<{dimensions}I", raw[: 4 * dimensions])
    values = [i / 2**31 - 1.0 for i in ints]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return tuple(v / norm for v in values)

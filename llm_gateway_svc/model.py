"""The gateway's domain types: plain, immutable Python values (no protobuf)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "ChatRequest",
    "ChatResult",
    "Chunk",
    "EmbedRequest",
    "EmbedResult",
    "FinishReason",
    "Message",
    "Role",
    "Sampling",
    "ToolCall",
    "ToolCallDelta",
    "ToolSpec",
    "Usage",
    "embed_result_from_json",
    "embed_result_to_json",
    "result_from_json",
    "result_to_json",
]

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", ""]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments_json: str


@dataclass(frozen=True)
class Message:
    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sampling:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


@dataclass(frozen=True)
class ChatRequest:
    """What a caller asks for. ``model`` is an alias of the routing table."""

    model: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str = ""
    sampling: Sampling = Sampling()
    idempotency_key: str = ""
    bypass_cache: bool = False

    def digest(self) -> str:
        """Stable hash of everything that determines the answer (not the key)."""
        body = {
            "model": self.model,
            "messages": [asdict(m) for m in self.messages],
            "tools": [asdict(t) for t in self.tools],
            "tool_choice": self.tool_choice,
            "sampling": asdict(self.sampling),
        }
        raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=list)
        return hashlib.sha256(raw.encode()).hexdigest()

    def estimated_input_tokens(self) -> int:
        """A cheap upper-ish estimate (4 characters a token) used to reserve TPM."""
        chars = sum(
            len(m.content) + sum(len(c.arguments_json) for c in m.tool_calls) for m in self.messages
        )
        chars += sum(
            len(t.name) + len(t.description) + len(json.dumps(t.parameters)) for t in self.tools
        )
        return max(1, chars // 4)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class ChatResult:
    message: Message
    finish_reason: FinishReason = "stop"
    usage: Usage = Usage()
    provider: str = ""
    provider_model: str = ""
    attempts: int = 0
    replayed: bool = False
    cached: bool = False


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    id: str = ""
    name: str = ""
    arguments_delta: str = ""


@dataclass(frozen=True)
class Chunk:
    """A piece of a streamed answer; the last one has ``last`` and the totals."""

    content_delta: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: FinishReason = ""
    usage: Usage | None = None
    last: bool = False
    # The engine's last chunk: the whole answer and where it came from.
    result: ChatResult | None = None


def result_to_json(result: ChatResult) -> bytes:
    m = result.message
    body = {
        "content": m.content,
        "tool_calls": [[c.id, c.name, c.arguments_json] for c in m.tool_calls],
        "finish_reason": result.finish_reason,
        "usage": [result.usage.input_tokens, result.usage.output_tokens],
        "provider": result.provider,
        "provider_model": result.provider_model,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def result_from_json(raw: bytes | str) -> ChatResult:
    body = json.loads(raw)
    calls = tuple(ToolCall(id=c[0], name=c[1], arguments_json=c[2]) for c in body["tool_calls"])
    return ChatResult(
        message=Message(role="assistant", content=body["content"], tool_calls=calls),
        finish_reason=body["finish_reason"],
        usage=Usage(input_tokens=body["usage"][0], output_tokens=body["usage"][1]),
        provider=body["provider"],
        provider_model=body["provider_model"],
    )


@dataclass(frozen=True)
class EmbedRequest:
    """Texts to embed with the model behind ``model`` (an alias of the routing table)."""

    model: str
    inputs: tuple[str, ...]
    idempotency_key: str = ""
    bypass_cache: bool = False

    def digest(self) -> str:
        body = {"model": self.model, "inputs": list(self.inputs)}
        raw = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(b"embed:" + raw.encode()).hexdigest()

    def estimated_input_tokens(self) -> int:
        return max(1, sum(len(t) for t in self.inputs) // 4)


@dataclass(frozen=True)
class EmbedResult:
    """One vector per input, in input order."""

    vectors: tuple[tuple[float, ...], ...]
    usage: Usage = Usage()
    provider: str = ""
    provider_model: str = ""
    attempts: int = 0
    replayed: bool = False
    cached: bool = False

    @property
    def dimensions(self) -> int:
        return len(self.vectors[0]) if self.vectors else 0


def embed_result_to_json(result: EmbedResult) -> bytes:
    body = {
        "vectors": [list(v) for v in result.vectors],
        "usage": [result.usage.input_tokens, result.usage.output_tokens],
        "provider": result.provider,
        "provider_model": result.provider_model,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def embed_result_from_json(raw: bytes | str) -> EmbedResult:
    body = json.loads(raw)
    return EmbedResult(
        vectors=tuple(tuple(float(x) for x in v) for v in body["vectors"]),
        usage=Usage(input_tokens=body["usage"][0], output_tokens=body["usage"][1]),
        provider=body["provider"],
        provider_model=body["provider_model"],
    )

"""Protobuf <-> domain types for the LLM gateway (one of the two modules touching *_pb2)."""

from __future__ import annotations

from typing import Any, cast

from lgmesh.llm.v1 import llm_pb2

from llm_gateway_svc.model import (
    ChatRequest,
    ChatResult,
    Chunk,
    EmbedRequest,
    EmbedResult,
    FinishReason,
    Message,
    Role,
    Sampling,
    ToolCall,
    ToolSpec,
    Usage,
)
from mesh_core.errors import FieldViolation, InvalidArgumentError
from mesh_core.jsonvalue import parse_json

__all__ = [
    "chunk_to_pb",
    "embed_request_from_pb",
    "embed_result_to_pb",
    "request_from_pb",
    "result_to_pb",
    "routes_to_pb",
]

_ROLES: dict[int, Role] = {
    llm_pb2.ROLE_SYSTEM: "system",
    llm_pb2.ROLE_USER: "user",
    llm_pb2.ROLE_ASSISTANT: "assistant",
    llm_pb2.ROLE_TOOL: "tool",
}
_FINISH: dict[str, llm_pb2.FinishReason.ValueType] = {
    "": llm_pb2.FINISH_REASON_UNSPECIFIED,
    "stop": llm_pb2.FINISH_REASON_STOP,
    "length": llm_pb2.FINISH_REASON_LENGTH,
    "tool_calls": llm_pb2.FINISH_REASON_TOOL_CALLS,
    "content_filter": llm_pb2.FINISH_REASON_CONTENT_FILTER,
}
_FINISH_BACK: dict[int, FinishReason] = {v: cast(FinishReason, k) for k, v in _FINISH.items()}
_ROLES_BACK = {v: k for k, v in _ROLES.items()}


def _opt(msg: Any, field: str) -> Any:
    return getattr(msg, field) if msg.HasField(field) else None


def request_from_pb(req: llm_pb2.GenerateRequest | llm_pb2.StreamGenerateRequest) -> ChatRequest:
    """Validate and convert; INVALID_ARGUMENT with field violations on bad input."""
    bad: list[FieldViolation] = []
    messages: list[Message] = []
    for i, m in enumerate(req.messages):
        role = _ROLES.get(m.role)
        if role is None:
            bad.append(
                FieldViolation(f"messages[{i}].role", "must be SYSTEM, USER, ASSISTANT or TOOL")
            )
            continue
        if role == "tool" and not m.tool_call_id:
            bad.append(FieldViolation(f"messages[{i}].tool_call_id", "required for a tool message"))
        if m.tool_calls and role != "assistant":
            bad.append(
                FieldViolation(f"messages[{i}].tool_calls", "only assistant messages call tools")
            )
        calls = []
        for j, c in enumerate(m.tool_calls):
            if not c.name:
                bad.append(FieldViolation(f"messages[{i}].tool_calls[{j}].name", "required"))
            calls.append(ToolCall(id=c.id, name=c.name, arguments_json=c.arguments_json or "{}"))
        messages.append(
            Message(
                role=role,
                content=m.content,
                tool_calls=tuple(calls),
                tool_call_id=m.tool_call_id,
                name=m.name,
            )
        )
    tools: list[ToolSpec] = []
    for i, t in enumerate(req.tools):
        if not t.name:
            bad.append(FieldViolation(f"tools[{i}].name", "required"))
        params: Any = {}
        if t.parameters_json:
            try:
                params = parse_json(t.parameters_json, f"tools[{i}].parameters_json")
            except InvalidArgumentError:
                params = None
            if not isinstance(params, dict):
                bad.append(FieldViolation(f"tools[{i}].parameters_json", "must be a JSON object"))
                params = {}
        tools.append(ToolSpec(name=t.name, description=t.description, parameters=params))
    s = req.sampling
    if s.HasField("max_tokens") and s.max_tokens <= 0:
        bad.append(FieldViolation("sampling.max_tokens", "must be positive"))
    if s.HasField("temperature") and not 0.0 <= s.temperature <= 2.0:
        bad.append(FieldViolation("sampling.temperature", "must be within [0, 2]"))
    if bad:
        raise InvalidArgumentError("invalid generate request", bad)
    return ChatRequest(
        model=req.model,
        messages=tuple(messages),
        tools=tuple(tools),
        tool_choice=req.tool_choice,
        sampling=Sampling(
            temperature=_opt(s, "temperature"),
            top_p=_opt(s, "top_p"),
            max_tokens=_opt(s, "max_tokens"),
            stop=tuple(s.stop),
            seed=_opt(s, "seed"),
            presence_penalty=_opt(s, "presence_penalty"),
            frequency_penalty=_opt(s, "frequency_penalty"),
        ),
        idempotency_key=req.idempotency_key,
        bypass_cache=req.bypass_cache,
    )


def _usage_pb(u: Usage) -> llm_pb2.Usage:
    return llm_pb2.Usage(
        input_tokens=u.input_tokens, output_tokens=u.output_tokens, total_tokens=u.total_tokens
    )


def _info_pb(model: str, r: ChatResult | EmbedResult) -> llm_pb2.GenerationInfo:
    return llm_pb2.GenerationInfo(
        model=model,
        provider=r.provider,
        provider_model=r.provider_model,
        replayed=r.replayed,
        cached=r.cached,
        attempts=0 if (r.replayed or r.cached) else r.attempts,
    )


def result_to_pb(model: str, r: ChatResult) -> llm_pb2.GenerateResponse:
    m = r.message
    return llm_pb2.GenerateResponse(
        message=llm_pb2.ChatMessage(
            role=llm_pb2.ROLE_ASSISTANT,
            content=m.content,
            tool_calls=[
                llm_pb2.ToolCall(id=c.id, name=c.name, arguments_json=c.arguments_json)
                for c in m.tool_calls
            ],
        ),
        finish_reason=_FINISH.get(r.finish_reason, llm_pb2.FINISH_REASON_UNSPECIFIED),
        usage=_usage_pb(r.usage),
        info=_info_pb(model, r),
    )


def chunk_to_pb(model: str, c: Chunk) -> llm_pb2.StreamGenerateResponse:
    out = llm_pb2.StreamGenerateResponse(
        content_delta=c.content_delta,
        tool_call_chunks=[
            llm_pb2.ToolCallChunk(
                index=d.index, id=d.id, name=d.name, arguments_delta=d.arguments_delta
            )
            for d in c.tool_calls
        ],
        last=c.last,
    )
    if c.last:
        out.finish_reason = _FINISH.get(c.finish_reason, llm_pb2.FINISH_REASON_UNSPECIFIED)
        if c.usage is not None:
            out.usage.CopyFrom(_usage_pb(c.usage))
        if c.result is not None:
            out.info.CopyFrom(_info_pb(model, c.result))
    return out


def embed_request_from_pb(req: llm_pb2.EmbedRequest) -> EmbedRequest:
    return EmbedRequest(
        model=req.model,
        inputs=tuple(req.inputs),
        idempotency_key=req.idempotency_key,
        bypass_cache=req.bypass_cache,
    )


def embed_result_to_pb(model: str, r: EmbedResult) -> llm_pb2.EmbedResponse:
    return llm_pb2.EmbedResponse(
        embeddings=[llm_pb2.Embedding(values=v) for v in r.vectors],
        dimensions=r.dimensions,
        usage=_usage_pb(r.usage),
        info=_info_pb(model, r),
    )


def routes_to_pb(routes: list[tuple[str, list[str]]]) -> llm_pb2.ListModelsResponse:
    return llm_pb2.ListModelsResponse(
        models=[llm_pb2.ModelRoute(alias=a, targets=t) for a, t in routes]
    )


def message_to_pb(m: Message) -> llm_pb2.ChatMessage:
    """Domain message -> protobuf (used by clients and tests)."""
    return llm_pb2.ChatMessage(
        role=_ROLES_BACK[m.role],
        content=m.content,
        tool_calls=[
            llm_pb2.ToolCall(id=c.id, name=c.name, arguments_json=c.arguments_json)
            for c in m.tool_calls
        ],
        tool_call_id=m.tool_call_id,
        name=m.name,
    )


def finish_from_pb(value: int) -> FinishReason:
    return _FINISH_BACK.get(value, "")

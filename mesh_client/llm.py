"""``MeshChatModel``: a LangChain chat model that calls the mesh's LLM gateway over gRPC.

    model = MeshChatModel(target="127.0.0.1:50070", model="mesh-demo")
    model.bind_tools([search]).invoke("What is new in LangGraph?")

invoke/ainvoke, stream/astream (token chunks, so LangGraph's ``messages`` stream mode
shows tokens; calls inside a graph stream automatically when that mode is on),
bind_tools with tool calls round-tripping, and usage metadata.

Idempotency: inside a LangGraph task every call carries a key derived from the task
id (``get_runtime().execution_info.task_id``, deterministic across re-execution), the
call's index within the task attempt and a digest of the request:
``sha256(task_id:index:digest)`` (see :func:`task_idempotency_key`). A task that runs
again (after a crash, on another worker, or by LangGraph's retry policy) makes the
same calls with the same keys, and the gateway answers the ones that completed from
its store: the spend happens once. Pass ``idempotency_key=...`` to ``invoke`` to set
one yourself, or ``idempotency=False`` to turn keys off.

Tenant: ``config["metadata"]["lgmesh_tenant"]`` (set by the runtime for every run)
wins over the ``tenant`` field. Target: the ``target`` field, else
``config["configurable"]["lgmesh_llm_target"]``.

Errors mirror the provider SDKs' (see :mod:`mesh_client._llm_errors`): a provider's
or the gateway's rate limit raises :class:`LlmRateLimitError` (``retry_after`` from
RetryInfo), a bad request :class:`LlmBadRequestError`, an outage
:class:`LlmUnavailableError` (a ``ConnectionError``), a deadline
:class:`LlmTimeoutError`; LangGraph's default retry policy treats each as it treats
the SDK's own.

``MeshEmbeddings`` (LangChain ``Embeddings``) embeds through the same gateway.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

import grpc
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from lgmesh.llm.v1 import llm_pb2 as pb
from pydantic import PrivateAttr

from mesh_client._embeddings import MeshEmbeddings
from mesh_client._llm_common import (
    CONFIG_KEY_LLM_TARGET,
    METADATA_KEY_TENANT,
    GatewayStubs,
    call_context,
    request_key,
    task_idempotency_key,
)
from mesh_client._llm_errors import (
    LlmAuthenticationError,
    LlmBadRequestError,
    LlmGatewayError,
    LlmNotFoundError,
    LlmPermissionDeniedError,
    LlmRateLimitError,
    LlmTimeoutError,
    LlmUnavailableError,
    from_rpc_error,
)

__all__ = [
    "CONFIG_KEY_LLM_TARGET",
    "METADATA_KEY_TENANT",
    "LlmAuthenticationError",
    "LlmBadRequestError",
    "LlmGatewayError",
    "LlmNotFoundError",
    "LlmPermissionDeniedError",
    "LlmRateLimitError",
    "LlmTimeoutError",
    "LlmUnavailableError",
    "MeshChatModel",
    "MeshEmbeddings",
    "from_rpc_error",
    "task_idempotency_key",
]

_FINISH = {
    pb.FINISH_REASON_STOP: "stop",
    pb.FINISH_REASON_LENGTH: "length",
    pb.FINISH_REASON_TOOL_CALLS: "tool_calls",
    pb.FINISH_REASON_CONTENT_FILTER: "content_filter",
}


# -- messages ------------------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            raise ValueError("MeshChatModel supports text content only")
    return "".join(parts)


def _message_to_pb(m: BaseMessage) -> pb.ChatMessage:
    if isinstance(m, SystemMessage):
        return pb.ChatMessage(role=pb.ROLE_SYSTEM, content=_text(m.content))
    if isinstance(m, HumanMessage):
        return pb.ChatMessage(role=pb.ROLE_USER, content=_text(m.content), name=m.name or "")
    if isinstance(m, AIMessage):
        return pb.ChatMessage(
            role=pb.ROLE_ASSISTANT,
            content=_text(m.content),
            tool_calls=[
                pb.ToolCall(
                    id=c.get("id") or "", name=c["name"], arguments_json=json.dumps(c["args"])
                )
                for c in m.tool_calls
            ],
        )
    if isinstance(m, ToolMessage):
        return pb.ChatMessage(
            role=pb.ROLE_TOOL, content=_text(m.content), tool_call_id=m.tool_call_id
        )
    if isinstance(m, ChatMessage):
        roles = {"system": pb.ROLE_SYSTEM, "user": pb.ROLE_USER, "assistant": pb.ROLE_ASSISTANT}
        if m.role in roles:
            return pb.ChatMessage(role=roles[m.role], content=_text(m.content))
    raise ValueError(f"MeshChatModel cannot send a {type(m).__name__}")


def _usage(u: pb.Usage) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=u.input_tokens, output_tokens=u.output_tokens, total_tokens=u.total_tokens
    )


def _info(info: pb.GenerationInfo, finish: int, model: str) -> dict[str, Any]:
    return {
        "finish_reason": _FINISH.get(finish, ""),
        "model_name": model,
        "model_provider": "lgmesh",
        "provider": info.provider,
        "provider_model": info.provider_model,
        "replayed": info.replayed,
        "cached": info.cached,
        "attempts": info.attempts,
    }


def _ai_message(resp: pb.GenerateResponse, model: str) -> AIMessage:
    calls, invalid = [], []
    for c in resp.message.tool_calls:
        try:
            args = json.loads(c.arguments_json or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments are not an object")
            calls.append({"name": c.name, "args": args, "id": c.id, "type": "tool_call"})
        except ValueError as exc:
            invalid.append(
                {
                    "name": c.name,
                    "args": c.arguments_json,
                    "id": c.id,
                    "error": str(exc),
                    "type": "invalid_tool_call",
                }
            )
    return AIMessage(
        content=resp.message.content,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=_usage(resp.usage),
        response_metadata=_info(resp.info, resp.finish_reason, model),
    )


def _ai_chunk(c: pb.StreamGenerateResponse, model: str) -> AIMessageChunk:
    chunks = [
        tool_call_chunk(name=d.name or None, args=d.arguments_delta, id=d.id or None, index=d.index)
        for d in c.tool_call_chunks
    ]
    if not c.last:
        return AIMessageChunk(content=c.content_delta, tool_call_chunks=chunks)
    return AIMessageChunk(
        content=c.content_delta,
        tool_call_chunks=chunks,
        usage_metadata=_usage(c.usage),
        response_metadata=_info(c.info, c.finish_reason, model),
        chunk_position="last",
    )


# -- the model ---------------------------------------------------------------------------------


class MeshChatModel(BaseChatModel):
    """A chat model served by ``llm_gateway_svc``.

    Attributes:
        target: the gateway's gRPC address (``host:port``, or any gRPC target such as
            ``dns:///llm-gateway:50070``); None: ``config["configurable"]["lgmesh_llm_target"]``.
        model: a model alias of the gateway's routing table.
        tenant: sent as ``x-lgmesh-tenant`` unless the run's metadata names one.
        timeout: seconds each call may take (the gateway stops retrying by then).
        temperature, top_p, max_tokens, stop, seed: sampling parameters.
        idempotency: derive idempotency keys from the running LangGraph task.
        bypass_cache: skip the gateway's response cache.
    """

    target: str | None = None
    model: str = "mesh-demo"
    tenant: str = "default"
    timeout: float | None = 60.0
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    idempotency: bool = True
    bypass_cache: bool = False

    _stubs: GatewayStubs = PrivateAttr(default_factory=GatewayStubs)

    @property
    def _llm_type(self) -> str:
        return "lgmesh"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "target": self.target, "temperature": self.temperature}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | Literal["auto", "none", "required", "any"] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer tools to the model; ``tool_choice`` is auto/none/required/any or a tool name."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is True or tool_choice == "any":
            tool_choice = "required"
        return self.bind(tools=formatted, tool_choice=tool_choice or "", **kwargs)

    # -- request building -----------------------------------------------------------
    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any], cls: Any
    ) -> tuple[Any, str, tuple[tuple[str, str], ...]]:
        target, md = call_context("MeshChatModel", self.target, self.tenant)
        sampling = pb.SamplingParams(stop=stop or self.stop or [])
        for name in ("temperature", "top_p", "max_tokens", "seed"):
            value = kwargs.get(name, getattr(self, name))
            if value is not None:
                setattr(sampling, name, value)
        tools = [
            pb.ToolDefinition(
                name=t["function"]["name"],
                description=t["function"].get("description", ""),
                parameters_json=json.dumps(t["function"].get("parameters") or {}),
            )
            for t in kwargs.get("tools") or []
        ]
        req = cls(
            model=self.model,
            messages=[_message_to_pb(m) for m in messages],
            tools=tools,
            tool_choice=str(kwargs.get("tool_choice") or ""),
            sampling=sampling,
            bypass_cache=self.bypass_cache,
        )
        req.idempotency_key = request_key(
            req, str(kwargs.get("idempotency_key") or ""), self.idempotency
        )
        return req, target, md

    # -- LangChain hooks ------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        req, target, md = self._request(messages, stop, kwargs, pb.GenerateRequest)
        try:
            resp = self._stubs.sync(target).Generate(req, timeout=self.timeout, metadata=md)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        return ChatResult(generations=[ChatGeneration(message=_ai_message(resp, self.model))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        req, target, md = self._request(messages, stop, kwargs, pb.GenerateRequest)
        try:
            resp = await self._stubs.aio(target).Generate(req, timeout=self.timeout, metadata=md)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        return ChatResult(generations=[ChatGeneration(message=_ai_message(resp, self.model))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        req, target, md = self._request(messages, stop, kwargs, pb.StreamGenerateRequest)
        call = self._stubs.sync(target).StreamGenerate(req, timeout=self.timeout, metadata=md)
        try:
            for c in call:
                yield ChatGenerationChunk(message=_ai_chunk(c, self.model))
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        finally:
            call.cancel()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        req, target, md = self._request(messages, stop, kwargs, pb.StreamGenerateRequest)
        call = self._stubs.aio(target).StreamGenerate(req, timeout=self.timeout, metadata=md)
        try:
            async for c in call:
                yield ChatGenerationChunk(message=_ai_chunk(c, self.model))
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        finally:
            call.cancel()

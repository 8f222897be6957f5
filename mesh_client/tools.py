"""LangChain tools that call tool_svc over gRPC.

``remote_tools("127.0.0.1:50061")`` lists the service's tools and returns one
:class:`RemoteTool` (a LangChain ``BaseTool``) per tool, with the service's JSON schema
as its argument schema, so LangGraph's ``ToolNode``, prebuilt agents and
``model.bind_tools`` use them like local tools.

Inside a LangGraph task each call carries an idempotency key derived from the task id
(``Runtime.execution_info.task_id``, deterministic across re-execution) and the model's
tool call id (``ToolNode`` passes it): a task that ran again after a crash gets the
first call's stored result and the tool's side effect happens once.

Errors: a tool that raised comes back as a ``ToolMessage`` with ``status="error"`` (the
agent sees it), and so do arguments that fail the schema (the model can fix them).
Infrastructure errors raise :class:`ToolInfrastructureError` (a ``ConnectionError``, so
LangGraph's default retry policy retries it); other failures raise
:class:`RemoteToolError`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections.abc import Sequence
from typing import Any, Literal

import grpc
from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from lgmesh.tools.v1 import tools_pb2 as pb
from lgmesh.tools.v1 import tools_pb2_grpc as pb_grpc
from pydantic import PrivateAttr

from mesh_client._llm_common import METADATA_KEY_TENANT, run_token_metadata
from mesh_client._status import status_details
from mesh_core.security import InternalSecurity, internal_security
from mesh_core.telemetry import trace_metadata

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "RemoteTool",
    "RemoteToolError",
    "ToolInfrastructureError",
    "aremote_tools",
    "current_task_id",
    "idempotency_key_for",
    "remote_tools",
]

DEFAULT_CALL_TIMEOUT = 60.0
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


class ToolInfrastructureError(ConnectionError):
    """tool_svc could not give an answer (unavailable, overloaded, timed out): retry."""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode,
        reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.retry_after = retry_after


class RemoteToolError(RuntimeError):
    """A failure retrying will not fix (unknown tool, key reused, permission, bug)."""

    def __init__(self, message: str, *, code: grpc.StatusCode, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


# -- idempotency keys ---------------------------------------------------------------


def current_task_id() -> str | None:
    """The id of the LangGraph task running this code, or None outside a graph.

    LangGraph 1.2 exposes it as ``get_runtime().execution_info.task_id``; it is derived
    from the checkpoint, step and node, so a task run again after a crash has the same id.
    """
    from langgraph.runtime import get_runtime

    try:
        runtime = get_runtime()
    except RuntimeError:  # not inside a runnable context
        return None
    info = getattr(runtime, "execution_info", None) if runtime is not None else None
    return info.task_id if info is not None else None


def idempotency_key_for(tool_call_id: str | None) -> str:
    """``<task id>:<tool call id>`` inside a LangGraph task, else "" (no idempotency)."""
    if not tool_call_id:
        return ""
    task_id = current_task_id()
    return f"{task_id}:{tool_call_id}" if task_id else ""


# -- connection ---------------------------------------------------------------------


def _target(address: str | Sequence[str]) -> str:
    if isinstance(address, str):
        return address
    if not address:
        raise ValueError("address must not be empty")
    return "ipv4:" + ",".join(address)


class _Connection:
    """One sync channel, and one aio channel per event loop, to the same target."""

    def __init__(
        self,
        target: str,
        metadata: Sequence[tuple[str, str]],
        security: InternalSecurity | None = None,
    ) -> None:
        self.target = target
        self.security = security or internal_security()
        self.metadata = tuple(metadata)
        self.options = [("grpc.service_config", _SERVICE_CONFIG)]
        self._lock = threading.Lock()
        self._sync: pb_grpc.ToolServiceStub | None = None
        self._sync_channel: grpc.Channel | None = None
        self._aio: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[grpc.aio.Channel, pb_grpc.ToolServiceStub]
        ] = weakref.WeakKeyDictionary()

    def stub(self) -> pb_grpc.ToolServiceStub:
        with self._lock:
            if self._sync is None:
                self._sync_channel = self.security.sync_channel(
                    self.target, "tools", options=self.options
                )
                self._sync = pb_grpc.ToolServiceStub(self._sync_channel)
            return self._sync

    def astub(self) -> pb_grpc.ToolServiceStub:
        loop = asyncio.get_running_loop()
        entry = self._aio.get(loop)
        if entry is None:
            channel = self.security.channel(self.target, "tools", options=self.options)
            entry = (channel, pb_grpc.ToolServiceStub(channel))
            self._aio[loop] = entry
        return entry[1]

    async def aclose(self) -> None:
        """Close this loop's channel (and the sync one)."""
        entry = self._aio.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].close()
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._sync_channel is not None:
                self._sync_channel.close()
            self._sync_channel = self._sync = None


def _details(call: Any) -> tuple[str, float | None, list[str]]:
    """ErrorInfo reason, RetryInfo delay, BadRequest violations from an RpcError."""
    d = status_details(call)
    return d.reason, d.retry_after, list(d.violations)


def _translate(name: str, err: grpc.RpcError) -> Exception:
    code = err.code()
    message = err.details() or code.name
    reason, retry_after, violations = _details(err)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        text = message + ("\n" + "\n".join(violations) if violations else "")
        return ToolException(f"Invalid arguments for tool {name!r}: {text}")
    if code in _RETRYABLE:
        return ToolInfrastructureError(
            f"tool {name!r}: {message}", code=code, reason=reason, retry_after=retry_after
        )
    return RemoteToolError(f"tool {name!r}: {message}", code=code, reason=reason)


# -- the tool -------------------------------------------------------------------------


class RemoteTool(BaseTool):
    """A tool of tool_svc. Build them with :func:`remote_tools` / :func:`aremote_tools`."""

    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: Any = True
    tenant_id: str = "default"
    call_timeout: float | None = DEFAULT_CALL_TIMEOUT
    derive_idempotency_keys: bool = True
    _conn: _Connection = PrivateAttr()

    def __init__(self, *, connection: _Connection, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._conn = connection

    def _to_args_and_kwargs(
        self, tool_input: str | dict[str, Any], tool_call_id: str | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        _, arguments = super()._to_args_and_kwargs(tool_input, tool_call_id)
        return (), {"arguments": arguments, "tool_call_id": tool_call_id}

    def _request(
        self, arguments: dict[str, Any], tool_call_id: str | None, config: RunnableConfig
    ) -> pb.InvokeToolRequest:
        key = idempotency_key_for(tool_call_id) if self.derive_idempotency_keys else ""
        # inside a mesh run: the run's tenant (its tenant token, sent along, names it)
        tenant = (config.get("metadata") or {}).get(METADATA_KEY_TENANT) or self.tenant_id
        return pb.InvokeToolRequest(
            tenant_id=str(tenant),
            name=self.name,
            arguments_json=json.dumps(arguments),
            idempotency_key=key,
            tool_call_id=tool_call_id or "",
        )

    def _metadata(self, config: RunnableConfig) -> tuple[tuple[str, str], ...]:
        return (*self._conn.metadata, *run_token_metadata(config), *trace_metadata())

    def _result(self, resp: pb.InvokeToolResponse) -> tuple[Any, Any]:
        content = json.loads(resp.content_json) if resp.content_json else ""
        if resp.status == pb.TOOL_CALL_STATUS_TOOL_ERROR:
            raise ToolException(content if isinstance(content, str) else resp.error.message)
        artifact = json.loads(resp.artifact_json) if resp.HasField("artifact_json") else None
        return content, artifact

    def _run(
        self,
        arguments: dict[str, Any],
        tool_call_id: str | None,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[Any, Any]:
        req = self._request(arguments, tool_call_id, config)
        try:
            resp = self._conn.stub().InvokeTool(
                req, timeout=self.call_timeout, metadata=self._metadata(config)
            )
        except grpc.RpcError as err:
            raise _translate(self.name, err) from None
        return self._result(resp)

    async def _arun(
        self,
        arguments: dict[str, Any],
        tool_call_id: str | None,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[Any, Any]:
        req = self._request(arguments, tool_call_id, config)
        try:
            resp = await self._conn.astub().InvokeTool(
                req, timeout=self.call_timeout, metadata=self._metadata(config)
            )
        except grpc.RpcError as err:
            raise _translate(self.name, err) from None
        return self._result(resp)


def _build(
    conn: _Connection,
    resp: pb.ListToolsResponse,
    tenant_id: str,
    timeout: float | None,
    idempotency: bool,
) -> list[BaseTool]:
    return [
        RemoteTool(
            connection=conn,
            name=t.name,
            description=t.description,
            args_schema=json.loads(t.args_schema_json),
            tenant_id=tenant_id,
            call_timeout=timeout,
            derive_idempotency_keys=idempotency,
        )
        for t in resp.tools
    ]


def remote_tools(
    address: str | Sequence[str],
    *,
    tenant_id: str = "default",
    names: Sequence[str] | None = None,
    timeout: float | None = DEFAULT_CALL_TIMEOUT,
    metadata: Sequence[tuple[str, str]] = (),
    idempotency: bool = True,
    security: InternalSecurity | None = None,
) -> list[BaseTool]:
    """The tools of the tool_svc at ``address`` as LangChain tools.

    Args:
        address: a gRPC target (``"127.0.0.1:50061"``, ``"dns:///tool-svc:50061"``) or a
            list of ``"ip:port"`` replicas; calls are spread round-robin.
        tenant_id: sent with every call; idempotency keys are scoped by it.
        names: only these tools (all when None); an unknown name raises RemoteToolError.
        timeout: gRPC deadline of each call in seconds (None: none); the service's
            per-tool timeout also applies.
        metadata: gRPC metadata sent with every call (e.g. auth headers).
        idempotency: derive idempotency keys inside LangGraph tasks (on by default).
        security: mutual TLS to the tool service (default: the process's, which
            ``lgmesh runtime`` sets from its --tls-* flags; plaintext elsewhere).
    """
    conn = _Connection(_target(address), metadata, security)
    try:
        resp = conn.stub().ListTools(
            pb.ListToolsRequest(tenant_id=tenant_id, names=list(names or ())),
            timeout=timeout,
            metadata=conn.metadata,
        )
    except grpc.RpcError as err:
        conn.close()
        raise _translate("*", err) from None
    return _build(conn, resp, tenant_id, timeout, idempotency)


async def aremote_tools(
    address: str | Sequence[str],
    *,
    tenant_id: str = "default",
    names: Sequence[str] | None = None,
    timeout: float | None = DEFAULT_CALL_TIMEOUT,
    metadata: Sequence[tuple[str, str]] = (),
    idempotency: bool = True,
    security: InternalSecurity | None = None,
) -> list[BaseTool]:
    """:func:`remote_tools` for async code (lists the tools without blocking the loop)."""
    conn = _Connection(_target(address), metadata, security)
    try:
        resp = await conn.astub().ListTools(
            pb.ListToolsRequest(tenant_id=tenant_id, names=list(names or ())),
            timeout=timeout,
            metadata=conn.metadata,
        )
    except grpc.RpcError as err:
        await conn.aclose()
        raise _translate("*", err) from None
    return _build(conn, resp, tenant_id, timeout, idempotency)

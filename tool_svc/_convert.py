"""Protobuf <-> engine types. With servicer.py, the only module that touches *_pb2."""

from __future__ import annotations

from google.protobuf import duration_pb2
from lgmesh.tools.v1 import tools_pb2 as pb

from tool_svc._engine import Invocation, ToolInfo, ToolResult

__all__ = ["invocation_from_pb", "result_to_pb", "tool_info_to_pb"]

_STATUS = {
    "ok": pb.TOOL_CALL_STATUS_OK,
    "tool_error": pb.TOOL_CALL_STATUS_TOOL_ERROR,
}


def _duration(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(int(max(seconds, 0.0) * 1e9))
    return out


def tool_info_to_pb(info: ToolInfo) -> pb.Tool:
    return pb.Tool(
        name=info.name,
        description=info.description,
        args_schema_json=info.args_schema_json,
        timeout=_duration(info.timeout),
        max_concurrency=info.max_concurrency,
    )


def invocation_from_pb(req: pb.InvokeToolRequest, time_remaining: float | None) -> Invocation:
    timeout = req.timeout.ToNanoseconds() / 1e9 if req.HasField("timeout") else None
    return Invocation(
        tenant_id=req.tenant_id,
        name=req.name,
        arguments_json=req.arguments_json,
        idempotency_key=req.idempotency_key,
        timeout=timeout,
        deadline=time_remaining,
        tool_call_id=req.tool_call_id,
    )


def result_to_pb(result: ToolResult) -> pb.InvokeToolResponse:
    out = pb.InvokeToolResponse(
        status=_STATUS[result.status],
        content_json=result.content_json,
        replayed=result.replayed,
        duration=_duration(result.duration),
    )
    if result.artifact_json is not None:
        out.artifact_json = result.artifact_json
    if result.status == "tool_error":
        out.error.type = result.error_type
        out.error.message = result.error_message
    return out

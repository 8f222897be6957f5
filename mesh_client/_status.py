"""The ``google.rpc`` details of a failed call, read once for every client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = ["StatusDetails", "status_details"]


@dataclass(frozen=True)
class StatusDetails:
    """ErrorInfo reason and metadata, RetryInfo delay, BadRequest violations, and the
    QuotaFailure violations (limit id -> value) of a tenant limit."""

    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    violations: tuple[str, ...] = ()
    quota: dict[str, int] = field(default_factory=dict)


def status_details(call: Any) -> StatusDetails:
    try:
        status = rpc_status.from_call(call)
    except (ValueError, AttributeError):
        status = None
    reason, meta, retry_after = "", {}, None
    violations: tuple[str, ...] = ()
    quota: dict[str, int] = {}
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, meta = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            ri = error_details_pb2.RetryInfo()
            detail.Unpack(ri)
            retry_after = ri.retry_delay.ToNanoseconds() / 1e9
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            violations = tuple(f"{v.field}: {v.description}" for v in br.field_violations)
        elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            qf = error_details_pb2.QuotaFailure()
            detail.Unpack(qf)
            quota = {v.quota_id or v.subject: v.quota_value for v in qf.violations}
    return StatusDetails(reason, meta, retry_after, violations, quota)

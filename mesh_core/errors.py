"""One exception tree for the mesh, translated to gRPC status in one place.

Every error a client can see is a :class:`MeshError` with a gRPC code and, where it
helps, ``google.rpc`` details (``BadRequest`` field violations, ``RetryInfo``,
``ErrorInfo``, ``PreconditionFailure``). Messages never carry tracebacks or secrets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

__all__ = [
    "DOMAIN",
    "AlreadyExistsError",
    "BackendUnavailableError",
    "CancelledError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "InternalError",
    "InvalidArgumentError",
    "MeshError",
    "NotFoundError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "ResourceExhaustedError",
    "SessionLostError",
    "StaleOwnerError",
    "UnauthenticatedError",
    "UnavailableError",
    "to_rpc_status",
]

DOMAIN = "lgmesh.dev"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class MeshError(Exception):
    """Base of every error the mesh raises on purpose."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = dict(metadata or {})

    def details(self) -> list[any_pb2.Any]:
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN)
        for k, v in self.metadata.items():
            info.metadata[k] = str(v)
        packed = any_pb2.Any()
        packed.Pack(info)
        return [packed]


class InvalidArgumentError(MeshError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        violations: Sequence[FieldViolation] = (),
        **kw: object,
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.violations = list(violations)

    def details(self) -> list[any_pb2.Any]:
        out = super().details()
        if self.violations:
            br = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in self.violations
                ]
            )
            packed = any_pb2.Any()
            packed.Pack(br)
            out.append(packed)
        return out


class NotFoundError(MeshError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExistsError(MeshError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPreconditionError(MeshError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class StaleOwnerError(FailedPreconditionError):
    """A write for a thread carried a fencing token lower than the one stored.

    The writer lost the thread's lease (paused past its TTL, partitioned) and
    another owner has taken over; it must stop working on the thread.
    """

    reason = "STALE_OWNER"


class ResourceExhaustedError(MeshError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after

    def details(self) -> list[any_pb2.Any]:
        out = super().details()
        if self.retry_after is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(max(self.retry_after, 0) * 1e9))
            packed = any_pb2.Any()
            packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
            out.append(packed)
        return out


class QuotaExceededError(ResourceExhaustedError):
    """A tenant went past one of its limits (see :mod:`mesh_core.limits`).

    Carries ``QuotaFailure`` (subject ``tenant:<id>``, the limit and its value) and,
    when waiting helps (rates, concurrency), ``RetryInfo``. ``retryable`` is False when
    the request itself is too big (a recursion limit, a state size): retrying the same
    request cannot succeed.
    """

    reason = "QUOTA_EXCEEDED"

    def __init__(
        self,
        message: str,
        *,
        tenant: str,
        limit: str,
        value: float | int,
        retry_after: float | None = None,
        **kw: object,
    ) -> None:
        meta = dict(kw.pop("metadata", None) or {})  # type: ignore[call-overload]
        meta.setdefault("limit", limit)
        meta.setdefault("value", str(value))
        super().__init__(message, retry_after=retry_after, metadata=meta, **kw)
        self.tenant = tenant
        self.limit = limit
        self.value = value
        self.retryable = retry_after is not None

    def details(self) -> list[any_pb2.Any]:
        out = super().details()
        qf = error_details_pb2.QuotaFailure(
            violations=[
                error_details_pb2.QuotaFailure.Violation(
                    subject=f"tenant:{self.tenant}",
                    description=self.message,
                    api_service=DOMAIN,
                    quota_metric=f"{DOMAIN}/{self.limit}",
                    quota_id=self.limit,
                    quota_dimensions={"tenant": self.tenant},
                    quota_value=int(self.value),
                )
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(qf)
        out.append(packed)
        return out


class UnauthenticatedError(MeshError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDeniedError(MeshError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class UnavailableError(MeshError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"
    retryable = True


class BackendUnavailableError(UnavailableError):
    """Redis, NATS or etcd stayed unreachable for longer than the retry budget.

    Raised by the mesh's adapters only, never by a graph: a runtime that meets it hands
    the run over (it stays resumable) instead of recording it as failed. Not retryable
    again: the budget is already spent.
    """

    reason = "BACKEND_UNAVAILABLE"
    retryable = False

    def __init__(self, message: str, *, backend: str, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.backend = backend
        self.metadata.setdefault("backend", backend)


class SessionLostError(UnavailableError):
    """This process's etcd session (lease) is gone: it must not act as an owner now.

    The session heals by itself (a new lease); the work goes on elsewhere meanwhile.
    """

    reason = "ETCD_SESSION_LOST"
    retryable = False


class DeadlineExceededError(MeshError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "DEADLINE_EXCEEDED"
    retryable = True


class CancelledError(MeshError):
    code = grpc.StatusCode.CANCELLED
    reason = "CANCELLED"


class InternalError(MeshError):
    code = grpc.StatusCode.INTERNAL
    reason = "INTERNAL"


_CODE_NUMBERS = {c: c.value[0] for c in grpc.StatusCode}


def to_rpc_status(err: MeshError) -> status_pb2.Status:
    """The ``google.rpc.Status`` (code, message, details) for a mesh error."""
    return status_pb2.Status(
        code=_CODE_NUMBERS.get(err.code, code_pb2.INTERNAL),
        message=err.message,
        details=err.details(),
    )

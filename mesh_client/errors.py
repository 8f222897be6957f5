"""The client's exceptions, mapped from gRPC status (and its google.rpc details) in one place.

Named like ``langgraph_sdk.errors`` where the concept is the same (``NotFoundError``,
``ConflictError``, ``BadRequestError``, ...); every one is a :class:`MeshAPIError`
carrying the gRPC code, the ``ErrorInfo`` reason and metadata, ``RetryInfo`` and the
``BadRequest`` field violations. :func:`from_rpc_error` is the only translation.
"""

from __future__ import annotations

from typing import Any

import grpc

from mesh_client._status import StatusDetails, status_details

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "MeshAPIError",
    "MeshError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RunFailedError",
    "UnavailableError",
    "from_rpc_error",
]


class MeshError(Exception):
    """Base of every error the mesh client raises."""


class MeshAPIError(grpc.aio.AioRpcError, MeshError):
    """The mesh answered with an error status. Still the ``grpc.aio.AioRpcError`` it came
    from (``code()``, ``details()``, ``trailing_metadata()``), with its details read."""

    def __init__(self, err: grpc.aio.AioRpcError, details: StatusDetails) -> None:
        grpc.aio.AioRpcError.__init__(
            self,
            err.code(),
            err.initial_metadata(),
            err.trailing_metadata(),
            err.details(),
            err.debug_error_string(),
        )
        self.message = err.details() or err.code().name
        self.reason = details.reason
        self.metadata = details.metadata
        self.retry_after = details.retry_after
        self.violations = details.violations

    def __str__(self) -> str:
        extra = f" [{self.reason}]" if self.reason else ""
        return f"{self.code().name}: {self.message}{extra}"


class BadRequestError(MeshAPIError):
    """INVALID_ARGUMENT (langgraph_sdk: 400/422)."""


class AuthenticationError(MeshAPIError):
    """UNAUTHENTICATED (401)."""


class PermissionDeniedError(MeshAPIError):
    """PERMISSION_DENIED (403)."""


class NotFoundError(MeshAPIError):
    """NOT_FOUND (404)."""


class ConflictError(MeshAPIError):
    """ALREADY_EXISTS or FAILED_PRECONDITION (409): exists already, thread busy, ..."""


class RateLimitError(MeshAPIError):
    """RESOURCE_EXHAUSTED (429)."""


class UnavailableError(MeshAPIError):
    """UNAVAILABLE or DEADLINE_EXCEEDED: try again."""


class InternalServerError(MeshAPIError):
    """Anything else (500)."""


class RunFailedError(MeshError):
    """``runs.wait`` / ``runs.join`` on a run that ended with an error."""

    def __init__(self, run: dict[str, Any]) -> None:
        err = run.get("error") or {}
        super().__init__(f"{err.get('type', 'Error')}: {err.get('message', '')}")
        self.run = run
        self.error_type = str(err.get("type", ""))
        self.error_message = str(err.get("message", ""))


_BY_CODE: dict[grpc.StatusCode, type[MeshAPIError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: BadRequestError,
    grpc.StatusCode.OUT_OF_RANGE: BadRequestError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: ConflictError,
    grpc.StatusCode.FAILED_PRECONDITION: ConflictError,
    grpc.StatusCode.ABORTED: ConflictError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimitError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: UnavailableError,
}


def from_rpc_error(err: grpc.aio.AioRpcError) -> MeshAPIError:
    """The client exception for a failed call (code, message and details kept)."""
    cls = _BY_CODE.get(err.code(), InternalServerError)
    return cls(err, status_details(err))

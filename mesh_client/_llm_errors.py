"""Errors of the LLM gateway's clients, and ``from_rpc_error``: gRPC status -> exception.

The classes mirror the provider SDKs' (openai, anthropic): a rate limit, a bad
request, a missing model, an outage and a timeout each have their own class, with
the gateway's ``reason``, ``metadata`` and ``retry_after`` (from ``RetryInfo``),
and ``status_code`` the HTTP status the SDK would have reported. LangGraph's
default retry policy (``default_retry_on``) then treats a call through the mesh
the way it treats a direct call: it retries what it would retry for the SDK (all
of these; the SDKs' errors are not builtin ``ValueError``/``RuntimeError``), and an
outage is also a ``ConnectionError``, as before.
"""

from __future__ import annotations

import grpc

from mesh_client._status import status_details

__all__ = [
    "LlmAuthenticationError",
    "LlmBadRequestError",
    "LlmGatewayError",
    "LlmNotFoundError",
    "LlmPermissionDeniedError",
    "LlmRateLimitError",
    "LlmTimeoutError",
    "LlmUnavailableError",
    "from_rpc_error",
]


class LlmGatewayError(Exception):
    """The gateway refused or failed the call; ``code``, ``reason`` and ``metadata`` say why."""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.retry_after = retry_after

    @property
    def status_code(self) -> int:
        """The HTTP status a provider SDK would report for the same failure."""
        return _HTTP.get(self.code, 500)


class LlmBadRequestError(LlmGatewayError):
    """The request is invalid (INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE)."""


class LlmAuthenticationError(LlmGatewayError):
    """UNAUTHENTICATED."""


class LlmPermissionDeniedError(LlmGatewayError):
    """PERMISSION_DENIED."""


class LlmNotFoundError(LlmGatewayError):
    """No such model alias (NOT_FOUND)."""


class LlmRateLimitError(LlmGatewayError):
    """A rate limit was reached (RESOURCE_EXHAUSTED): the tenant's or model's limit in
    the gateway (reason ``RATE_LIMITED``) or the provider's own (``UPSTREAM_RATE_LIMITED``).
    ``retry_after`` says when to try again."""


class LlmUnavailableError(LlmGatewayError, ConnectionError):
    """No answer now (providers down, stream broken): trying again later may work."""


class LlmTimeoutError(LlmUnavailableError):
    """The deadline passed before an answer (DEADLINE_EXCEEDED)."""


_CLASSES: dict[grpc.StatusCode, type[LlmGatewayError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: LlmBadRequestError,
    grpc.StatusCode.FAILED_PRECONDITION: LlmBadRequestError,
    grpc.StatusCode.OUT_OF_RANGE: LlmBadRequestError,
    grpc.StatusCode.ALREADY_EXISTS: LlmBadRequestError,
    grpc.StatusCode.UNAUTHENTICATED: LlmAuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: LlmPermissionDeniedError,
    grpc.StatusCode.NOT_FOUND: LlmNotFoundError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: LlmRateLimitError,
    grpc.StatusCode.UNAVAILABLE: LlmUnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: LlmTimeoutError,
}
# google.rpc's own code -> HTTP mapping (google/rpc/code.proto).
_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def from_rpc_error(err: grpc.RpcError) -> LlmGatewayError:
    """The exception for a failed call: its class by code, details from ``google.rpc``."""
    code: grpc.StatusCode = err.code()
    message = err.details() or code.name
    d = status_details(err)
    message += "".join(f"\n{v}" for v in d.violations)
    cls = _CLASSES.get(code, LlmGatewayError)
    return cls(
        f"LLM gateway: {code.name}: {message}",
        code=code,
        reason=d.reason,
        metadata=d.metadata,
        retry_after=d.retry_after,
    )

"""What every provider adapter implements, and the one error type they raise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, Protocol

from llm_gateway_svc.model import ChatRequest, ChatResult, Chunk

__all__ = ["ErrorKind", "Provider", "ProviderError"]

ErrorKind = Literal["timeout", "network", "rate_limited", "server", "client", "config", "protocol"]

_RETRYABLE: frozenset[str] = frozenset({"timeout", "network", "rate_limited", "server", "protocol"})


class ProviderError(Exception):
    """An upstream call failed. ``kind`` says whether trying again can help.

    Messages carry the HTTP status and the provider's error type, never keys or
    request bodies.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Timeouts, connection errors, 429, 5xx and broken streams."""
        return self.kind in _RETRYABLE

    @property
    def caller_fault(self) -> bool:
        """The request itself is bad (HTTP 400/422): neither retry nor fallback helps."""
        return self.kind == "client"

    def label(self) -> str:
        return f"http_{self.status}" if self.status else self.kind


class Provider(Protocol):
    name: str

    async def generate(self, request: ChatRequest, model: str, timeout: float) -> ChatResult:
        """One upstream attempt; raises ProviderError."""
        ...

    def stream(self, request: ChatRequest, model: str, timeout: float) -> AsyncIterator[Chunk]:
        """One streamed upstream attempt; the last chunk has ``last=True`` and usage."""
        ...

    async def aclose(self) -> None: ...

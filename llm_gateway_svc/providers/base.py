"""What every provider adapter implements, and the one error type they raise."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Literal, Protocol

from llm_gateway_svc.model import ChatRequest, ChatResult, Chunk, EmbedResult

__all__ = ["ErrorKind", "Provider", "ProviderError"]

ErrorKind = Literal["timeout", "network", "rate_limited", "server", "client", "config", "protocol"]

_RETRYABLE: frozenset[str] = frozenset({"timeout", "network", "rate_limited", "server", "protocol"})


class ProviderError(Exception):
    """An upstream call failed. ``kind`` says whether trying again can help.

    ``message`` carries the provider's own words (trimmed, with anything that looks
    like a key masked); never request bodies.
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

    @property
    def counts_against_breaker(self) -> bool:
        """A sign the target is broken. A 429 is not: the target is alive, over quota."""
        return self.retryable and self.kind != "rate_limited"

    def label(self) -> str:
        return f"http_{self.status}" if self.status else self.kind


class Provider(Protocol):
    name: str
    supports_embeddings: bool

    async def generate(self, request: ChatRequest, model: str, timeout: float) -> ChatResult:
        """One upstream attempt; raises ProviderError."""
        ...

    def stream(self, request: ChatRequest, model: str, timeout: float) -> AsyncIterator[Chunk]:
        """One streamed upstream attempt; the last chunk has ``last=True`` and usage.

        Raises ProviderError when the stream fails anywhere, including an error event
        and a stream that ends without saying it is complete.
        """
        ...

    async def embed(self, texts: Sequence[str], model: str, timeout: float) -> EmbedResult:
        """One upstream embeddings call for ``texts`` (one batch); raises ProviderError."""
        ...

    async def aclose(self) -> None: ...

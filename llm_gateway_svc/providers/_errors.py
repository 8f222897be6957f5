"""Provider SDK exceptions -> :class:`ProviderError`, for every integration at once.

The SDKs behind LangChain's integrations (openai, anthropic, mistral's and ollama's
httpx clients, botocore, google-genai) share few classes but the same facts: an HTTP
status (``status_code``, ``code``, ``response.status_code`` or botocore's
``ResponseMetadata``), the response headers (``Retry-After``), a message, and class
names that say what happened (``RateLimitError``, ``APITimeoutError``,
``ThrottlingException``, ``ConnectError``...). Reading those facts, rather than
importing each SDK, keeps the base install free of them.

Messages keep the provider's own words (so a caller can tell a quota from an
outage), trimmed, with the configured key and anything shaped like a key masked.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from llm_gateway_svc.providers.base import ErrorKind, ProviderError

__all__ = ["classify", "mask", "parse_retry_after"]

_MAX_MESSAGE = 300
_KEYISH = re.compile(r"(sk|pk|rk|key|api)[-_][A-Za-z0-9_\-]{8,}|Bearer\s+\S+", re.IGNORECASE)

# Class-name words -> kind, checked in order on the exception's MRO names.
_NAMES: tuple[tuple[str, ErrorKind], ...] = (
    ("ratelimit", "rate_limited"),
    ("throttl", "rate_limited"),
    ("toomanyrequests", "rate_limited"),
    ("resourceexhausted", "rate_limited"),
    ("timeout", "timeout"),
    ("deadline", "timeout"),
    ("connect", "network"),
    ("network", "network"),
    ("remoteprotocol", "network"),
    ("readerror", "network"),
    ("authentication", "config"),
    ("permissiondenied", "config"),
    ("unauthorized", "config"),
    ("forbidden", "config"),
    ("notfound", "config"),
    ("badrequest", "client"),
    ("unprocessable", "client"),
    ("invalidargument", "client"),
    ("validation", "client"),
    ("internalserver", "server"),
    ("serviceunavailable", "server"),
    ("overloaded", "server"),
)


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    text = _KEYISH.sub("***", text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def parse_retry_after(headers: Mapping[str, str] | Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        raw = headers.get("retry-after")
    except AttributeError:
        return None
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(raw))
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _status(exc: BaseException) -> int | None:
    for value in (
        getattr(exc, "status_code", None),
        getattr(getattr(exc, "response", None), "status_code", None),
        getattr(exc, "code", None),
    ):
        if isinstance(value, int) and 100 <= value < 600:
            return value
    meta = getattr(exc, "response", None)
    if isinstance(meta, Mapping):  # botocore ClientError
        code = (meta.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if isinstance(code, int):
            return code
    return None


def _headers(exc: BaseException) -> Any:
    resp = getattr(exc, "response", None)
    headers = getattr(resp, "headers", None)
    if headers is not None:
        return headers
    if isinstance(resp, Mapping):  # botocore
        return (resp.get("ResponseMetadata") or {}).get("HTTPHeaders")
    return None


def _message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping) and err.get("message"):
            return str(err["message"])
    msg = getattr(exc, "message", None)
    if isinstance(msg, str) and msg:
        return msg
    return str(exc) or type(exc).__name__


def _event_status(exc: BaseException) -> int | None:
    """The HTTP-like code an error event in a stream carries (``{"error": {"code": "429"}}``)."""
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        err = body.get("error", body)
        code = err.get("code") if isinstance(err, Mapping) else None
        if isinstance(code, int | str) and str(code).isdigit() and 100 <= int(code) < 600:
            return int(code)
    return None


def _kind_by_status(status: int) -> ErrorKind:
    if status == 429:
        return "rate_limited"
    if status == 408 or status >= 500:
        return "server"
    if status in (401, 403, 404):
        return "config"
    return "client"


def _kind_by_name(exc: BaseException) -> ErrorKind | None:
    names = [c.__name__.lower() for c in type(exc).__mro__]
    for word, kind in _NAMES:
        if any(word in n for n in names):
            return kind
    return None


def classify(exc: BaseException, secrets: Iterable[str] = ()) -> ProviderError:
    """What kind of failure ``exc`` is, with the provider's message and Retry-After."""
    if isinstance(exc, ProviderError):
        return exc
    status = _status(exc)
    event_status = _event_status(exc)
    if status:
        kind: ErrorKind | None = _kind_by_status(status)
    elif event_status:
        kind = _kind_by_status(event_status)
    else:
        kind = _kind_by_name(exc)
    if kind is None:
        # An error the SDK raised without a status: an error event in a stream
        # (openai.APIError) or a response it could not read.
        kind = "server" if "apierror" in type(exc).__name__.lower() else "protocol"
    text = mask(_message(exc), secrets)
    where = f"HTTP {status}" if status else type(exc).__name__
    return ProviderError(
        kind,
        f"provider error ({where}): {text}",
        status=status,
        retry_after=parse_retry_after(_headers(exc)),
    )

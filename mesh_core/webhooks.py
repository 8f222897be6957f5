"""Webhooks on run completion: which URLs are allowed, and what is POSTed.

A run's ``webhook`` is checked twice against the mesh's allow-list of hosts: by the
gateway when the run is created (INVALID_ARGUMENT), and by the runtime right before it
POSTs (a list that shrank since is honoured). The body is the run as the API shows it
plus its output (``values``); the ``Idempotency-Key`` header is the run id, the same on
every attempt, so a receiver can tell a retried delivery from a new one.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from mesh_core.errors import FieldViolation, InvalidArgumentError

__all__ = ["IDEMPOTENCY_HEADER", "check_webhook", "parse_allow_hosts"]

IDEMPOTENCY_HEADER = "Idempotency-Key"
ATTEMPT_HEADER = "X-Lgmesh-Delivery-Attempt"


def parse_allow_hosts(raw: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"a.example,.internal,127.0.0.1"`` -> hosts; a leading dot allows subdomains."""
    if raw is None:
        return ()
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return tuple(h.strip().lower() for h in items if h.strip())


def _host_allowed(host: str, allowed: Iterable[str]) -> bool:
    for entry in allowed:
        if entry == "*" or host == entry:
            return True
        if entry.startswith(".") and (host.endswith(entry) or host == entry[1:]):
            return True
    return False


def check_webhook(url: str, allowed: Iterable[str], field: str = "run.webhook") -> str:
    """``url`` if it is http(s) to an allowed host, else INVALID_ARGUMENT."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidArgumentError(
            "webhook must be an http(s) URL", [FieldViolation(field, "expected http(s)://host/...")]
        )
    allowed = list(allowed)
    if not _host_allowed(host, allowed):
        raise InvalidArgumentError(
            f"webhooks to host {host!r} are not allowed by this mesh",
            [
                FieldViolation(
                    field,
                    "host not in the allow-list (LGMESH_WEBHOOK_ALLOW_HOSTS)"
                    if allowed
                    else "this mesh allows no webhook hosts (LGMESH_WEBHOOK_ALLOW_HOSTS)",
                )
            ],
        )
    return url

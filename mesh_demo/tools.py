"""Demo tools that tool_svc serves by default (tool_svc/default_config.yaml).

They show each kind of tool tool_svc loads -- ``@tool`` functions, plain typed functions
(sync and async), a tool returning content and an artifact -- and one side effect
(``record_payment`` increments a Redis counter) to show exactly-once calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from typing import Any

import redis
from langchain_core.tools import tool

from mesh_core.adapters.redis.keys import RedisKeys
from mesh_core.config import InfraSettings

__all__ = ["TOOLS", "divide", "fetch_document", "payment_count", "record_payment", "search", "wait"]

_CORPUS = (
    "LangGraph builds stateful, multi-actor applications with LLMs.",
    "A checkpointer saves a graph's state after every superstep.",
    "gRPC uses HTTP/2 and protocol buffers.",
    "Redis keeps data in memory and can persist it to disk.",
    "etcd is a consistent key-value store used for leases and leader election.",
    "NATS JetStream adds persistence and work queues to NATS.",
)


def search(query: str, top_k: int = 1) -> str:
    """Search the demo knowledge base; the same query always gives the same results.

    Args:
        query: what to look for.
        top_k: how many results to return.
    """
    seed = int.from_bytes(hashlib.sha256(query.encode()).digest()[:4], "big")
    hits = [_CORPUS[(seed + i) % len(_CORPUS)] for i in range(max(1, min(top_k, len(_CORPUS))))]
    return "\n".join(f"{i + 1}. {hit}" for i, hit in enumerate(hits))


@tool
def divide(a: float, b: float) -> float:
    """Divide a by b (dividing by zero raises: a tool error the agent sees)."""
    return a / b


async def wait(seconds: float) -> str:
    """Wait (asynchronously) for the given number of seconds, then say so."""
    await asyncio.sleep(seconds)
    return f"waited {seconds}s"


def block(seconds: float) -> str:
    """Block a worker thread for the given number of seconds (a slow synchronous tool)."""
    time.sleep(seconds)
    return f"blocked {seconds}s"


@tool(response_format="content_and_artifact")
def fetch_document(doc_id: int) -> tuple[str, dict[str, Any]]:
    """Fetch a demo document: a short summary for the model, the full record as artifact."""
    text = _CORPUS[doc_id % len(_CORPUS)]
    return text[:40], {"id": doc_id, "text": text, "words": len(text.split())}


_redis_lock = threading.Lock()
_redis_clients: dict[str, redis.Redis] = {}


def _infra() -> tuple[redis.Redis, RedisKeys]:
    settings = InfraSettings.from_env()
    with _redis_lock:
        client = _redis_clients.get(settings.redis_url)
        if client is None:
            client = redis.Redis.from_url(settings.redis_url)
            _redis_clients[settings.redis_url] = client
    return client, RedisKeys(settings.prefix)


def record_payment(account: str, amount_cents: int, processing_seconds: float = 0.0) -> str:
    """Record a payment to an account (a side effect: it must happen once per call).

    Args:
        account: the account to pay.
        amount_cents: the amount, in cents (> 0).
        processing_seconds: how long the (pretend) payment provider takes.
    """
    if amount_cents <= 0:
        raise ValueError("amount_cents must be positive")
    if processing_seconds > 0:
        time.sleep(min(processing_seconds, 30.0))
    client, keys = _infra()
    key = keys.demo_payments(account)
    pipe = client.pipeline()
    pipe.hincrby(key, "count", 1)
    pipe.hincrby(key, "total_cents", amount_cents)
    count, total = pipe.execute()
    return f"payment #{count} of {amount_cents} cents recorded for {account} (total {total})"


def payment_count(account: str) -> int:
    """How many payments ``record_payment`` recorded for ``account`` (for tests and demos)."""
    client, keys = _infra()
    raw = client.hget(keys.demo_payments(account), "count")
    return int(raw or 0)


TOOLS = [search, divide, wait, block, fetch_document, record_payment]

"""What the gateway's LangChain clients share: target and tenant, channels, task keys."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import ensure_config
from lgmesh.llm.v1 import llm_pb2_grpc as pb_grpc

from mesh_core.security import (
    CONFIG_KEY_TENANT_TOKEN,
    TENANT_HEADER,
    TENANT_TOKEN_HEADER,
    internal_security,
)
from mesh_core.telemetry import trace_metadata

__all__ = [
    "CONFIG_KEY_LLM_TARGET",
    "METADATA_KEY_TENANT",
    "TENANT_HEADER",
    "GatewayStubs",
    "call_context",
    "request_key",
    "run_token_metadata",
    "task_idempotency_key",
]

CONFIG_KEY_LLM_TARGET = "lgmesh_llm_target"
METADATA_KEY_TENANT = "lgmesh_tenant"
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def call_context(
    client: str, target: str | None, tenant: str
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The gateway address and call metadata (tenant, tenant token, trace) for a call
    made now.

    The run's ``config["metadata"]["lgmesh_tenant"]`` wins over ``tenant``; ``target``
    falls back to ``config["configurable"]["lgmesh_llm_target"]``; inside a mesh run the
    run's tenant token (``configurable["__lgmesh_tenant_token"]``) goes along, and is what
    the LLM gateway believes.
    """
    config = ensure_config()
    target = target or (config.get("configurable") or {}).get(CONFIG_KEY_LLM_TARGET)
    if not target:
        raise ValueError(
            f"{client} needs a target (or config['configurable']['lgmesh_llm_target'])"
        )
    tenant = str((config.get("metadata") or {}).get(METADATA_KEY_TENANT) or tenant)
    return str(target), ((TENANT_HEADER, tenant), *run_token_metadata(), *trace_metadata())


def run_token_metadata(config: Any = None) -> tuple[tuple[str, str], ...]:
    """The running mesh run's tenant token as call metadata (none outside a run)."""
    config = config if config is not None else ensure_config()
    token = (config.get("configurable") or {}).get(CONFIG_KEY_TENANT_TOKEN)
    return ((TENANT_TOKEN_HEADER, str(token)),) if token else ()


def request_key(request: Any, explicit: str, derive: bool) -> str:
    """``explicit``, else (with ``derive``) the running task's key for this request."""
    if explicit or not derive:
        return explicit
    return task_idempotency_key(
        lambda: hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()
    )


class GatewayStubs:
    """gRPC stubs per target: one sync channel, and one per event loop for asyncio; over
    mutual TLS when the process has internal security (a runtime started with --tls-*)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sync: dict[str, pb_grpc.LlmServiceStub] = {}
        self._aio: weakref.WeakKeyDictionary[Any, dict[str, pb_grpc.LlmServiceStub]] = (
            weakref.WeakKeyDictionary()
        )

    def sync(self, target: str) -> pb_grpc.LlmServiceStub:
        with self._lock:
            stub = self._sync.get(target)
            if stub is None:
                channel = internal_security().sync_channel(
                    target, "llm-gateway", options=[("grpc.service_config", _SERVICE_CONFIG)]
                )
                stub = self._sync[target] = pb_grpc.LlmServiceStub(channel)
            return stub

    def aio(self, target: str) -> pb_grpc.LlmServiceStub:
        loop = asyncio.get_running_loop()
        per_loop = self._aio.get(loop)
        if per_loop is None:
            per_loop = {}
            self._aio[loop] = per_loop
        stub = per_loop.get(target)
        if stub is None:
            channel = internal_security().channel(
                target, "llm-gateway", options=[("grpc.service_config", _SERVICE_CONFIG)]
            )
            stub = per_loop[target] = pb_grpc.LlmServiceStub(channel)
        return stub


_COUNTERS: OrderedDict[tuple[str, int, str], int] = OrderedDict()
_COUNTERS_MAX = 8192
_COUNTERS_LOCK = threading.Lock()


def task_idempotency_key(request_digest: str | Callable[[], str] = "") -> str:
    """The key of the next LLM call of the running LangGraph task, or "" outside a graph.

    ``sha256(task id : call index : request digest)``, where the call index counts
    this task attempt's earlier calls with the same request. Every attempt of a task
    (and a re-run after a crash, on any process) makes the same calls and so gets the
    same keys; calls made concurrently (``asyncio.gather``) cannot swap keys, and a
    call whose prompt changed between runs gets a fresh key instead of a stale answer.
    """
    from langgraph.runtime import get_runtime

    try:
        runtime = get_runtime()
    except RuntimeError:
        return ""
    info = getattr(runtime, "execution_info", None)
    task_id = getattr(info, "task_id", None)
    if not task_id:
        return ""
    if callable(request_digest):  # computed only inside a task
        request_digest = request_digest()
    slot = (str(task_id), int(getattr(info, "node_attempt", 1) or 1), request_digest)
    with _COUNTERS_LOCK:
        index = _COUNTERS.pop(slot, 0)
        _COUNTERS[slot] = index + 1
        while len(_COUNTERS) > _COUNTERS_MAX:
            _COUNTERS.popitem(last=False)
    return hashlib.sha256(f"{task_id}:{index}:{request_digest}".encode()).hexdigest()

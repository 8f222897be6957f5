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

import grpc
from langchain_core.runnables import ensure_config
from lgmesh.llm.v1 import llm_pb2_grpc as pb_grpc

from mesh_core.telemetry import trace_metadata

__all__ = [
    "CONFIG_KEY_LLM_TARGET",
    "METADATA_KEY_TENANT",
    "TENANT_HEADER",
    "GatewayStubs",
    "call_context",
    "request_key",
    "task_idempotency_key",
]

CONFIG_KEY_LLM_TARGET = "lgmesh_llm_target"
METADATA_KEY_TENANT = "lgmesh_tenant"
TENANT_HEADER = "x-lgmesh-tenant"
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def call_context(
    client: str, target: str | None, tenant: str
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The gateway address and call metadata (tenant, trace) for a call made now.

    The run's ``config["metadata"]["lgmesh_tenant"]`` wins over ``tenant``; ``target``
    falls back to ``config["configurable"]["lgmesh_llm_target"]``.
    """
    config = ensure_config()
    target = target or (config.get("configurable") or {}).get(CONFIG_KEY_LLM_TARGET)
    if not target:
        raise ValueError(
            f"{client} needs a target (or config['configurable']['lgmesh_llm_target'])"
        )
    tenant = str((config.get("metadata") or {}).get(METADATA_KEY_TENANT) or tenant)
    return str(target), ((TENANT_HEADER, tenant), *trace_metadata())


def request_key(request: Any, explicit: str, derive: bool) -> str:
    """``explicit``, else (with ``derive``) the running task's key for this request."""
    if explicit or not derive:
        return explicit
    return task_idempotency_key(
        lambda: hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()
    )


class GatewayStubs:
    """gRPC stubs per target: one sync channel, and one per event loop for asyncio."""

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
                channel = grpc.insecure_channel(
                    target, options=[("grpc.service_config", _SERVICE_CONFIG)]
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
            channel = grpc.aio.insecure_channel(
                target, options=[("grpc.service_config", _SERVICE_CONFIG)]
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

"""Run tools: validation, concurrency caps, timeouts, idempotency. Plain Python, no protobuf.

A tool call ends in one of three ways:

* the tool returned -> ``ToolResult(status="ok")``;
* the tool raised (or returned an error ToolMessage) -> ``ToolResult(status="tool_error")``:
  the agent should see it, retrying will not help;
* anything else raises a :class:`~mesh_core.errors.MeshError`: bad arguments
  (INVALID_ARGUMENT), unknown tool (NOT_FOUND), timeout (DEADLINE_EXCEEDED), concurrency
  cap full (RESOURCE_EXHAUSTED), Redis down (UNAVAILABLE) -- the retryable ones are
  infrastructure errors.

Each tool's concurrency is shared fairly between tenants: a tenant holds at most its
``tool_share`` of a tool's slots (:mod:`mesh_core.limits`), and free slots go to waiting
tenants in turn. Past its share a tenant's call waits up to ``max_queue_wait`` and then
gets RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo.

Synchronous tools run in a thread pool of their own (as many threads as the tool has
slots, at most ``thread_pool_size``), so one tool's blocked calls never take another
tool's threads; async tools run on the event loop. A sync
tool that overruns its timeout cannot be stopped: the caller gets DEADLINE_EXCEEDED, its
slot stays taken until the thread returns, and a keyed call records the late result, so
a retry with the same key gets it instead of running the tool a second time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import ToolMessage

from mesh_core.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    MeshError,
    QuotaExceededError,
    ResourceExhaustedError,
    UnavailableError,
)
from mesh_core.fairshare import FairSlots, share_cap
from mesh_core.jsonvalue import parse_json
from mesh_core.limits import LimitsTable
from mesh_core.security import SealedDataError
from tool_svc._idempotency import IdempotencyLock, IdempotencyStore
from tool_svc._metrics import (
    TOOL_ERRORS,
    TOOL_INFLIGHT,
    TOOL_INVOCATIONS,
    TOOL_LATENCY,
    TOOL_QUEUED,
)
from tool_svc._registry import RegisteredTool, ToolRegistry

__all__ = ["Invocation", "ToolEngine", "ToolInfo", "ToolResult"]

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4000
BUSY_RETRY_AFTER = 0.1


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str
    args_schema_json: str
    timeout: float
    max_concurrency: int


@dataclass(frozen=True)
class Invocation:
    """One call. ``deadline`` is the caller's remaining time in seconds (None: none)."""

    tenant_id: str
    name: str
    arguments_json: str
    idempotency_key: str = ""
    timeout: float | None = None
    deadline: float | None = None
    tool_call_id: str = ""


@dataclass(frozen=True)
class ToolResult:
    status: Literal["ok", "tool_error"]
    content_json: str
    artifact_json: str | None = None
    error_type: str = ""
    error_message: str = ""
    duration: float = 0.0
    replayed: bool = False

    @property
    def content(self) -> Any:
        return json.loads(self.content_json)

    def to_record(self, fingerprint: str) -> str:
        body = dataclasses.asdict(self)
        body.pop("replayed")
        return json.dumps({"v": 1, "fingerprint": fingerprint, "result": body})

    @classmethod
    def from_record(cls, raw: str) -> tuple[ToolResult, str]:
        data = json.loads(raw)
        return cls(**data["result"], replayed=True), str(data.get("fingerprint", ""))


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_jsonable)


def _fingerprint(arguments: Any) -> str:
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _error_result(exc: BaseException, duration: float) -> ToolResult:
    message = str(exc)[:MAX_ERROR_CHARS]
    kind = type(exc).__name__
    return ToolResult(
        status="tool_error",
        content_json=_dumps(f"{kind}: {message}" if message else kind),
        error_type=kind,
        error_message=message,
        duration=duration,
    )


def _from_output(tool: RegisteredTool, out: Any, duration: float) -> ToolResult:
    if not isinstance(out, ToolMessage):
        return ToolResult(
            status="tool_error",
            content_json=_dumps(f"tool returned a {type(out).__name__}, which cannot be sent back"),
            error_type="UnsupportedResult",
            error_message=f"tool {tool.name!r} returned a {type(out).__name__}; "
            "remote tools must return content (or content and artifact)",
            duration=duration,
        )
    artifact = _dumps(out.artifact) if tool.tool.response_format == "content_and_artifact" else None
    content_json = _dumps(out.content)
    if out.status == "error":
        text = out.content if isinstance(out.content, str) else content_json
        return ToolResult(
            status="tool_error",
            content_json=content_json,
            artifact_json=artifact,
            error_type="ToolException",
            error_message=text[:MAX_ERROR_CHARS],
            duration=duration,
        )
    return ToolResult(
        status="ok", content_json=content_json, artifact_json=artifact, duration=duration
    )


def _parse_arguments(raw: str) -> dict[str, Any]:
    value = parse_json(raw, "arguments_json") if raw.strip() else {}
    if not isinstance(value, dict):
        raise InvalidArgumentError(
            "arguments_json must be a JSON object",
            [
                FieldViolation(
                    "arguments_json", f"must be a JSON object, got {type(value).__name__}"
                )
            ],
        )
    return value


_OUTCOMES: tuple[tuple[type[MeshError], str], ...] = (
    (InvalidArgumentError, "invalid_argument"),
    (DeadlineExceededError, "timeout"),
    (ResourceExhaustedError, "busy"),
    (UnavailableError, "unavailable"),
    (FailedPreconditionError, "key_reused"),
    (SealedDataError, "unreadable"),
)


def _outcome_of(exc: BaseException) -> str:
    for kind, name in _OUTCOMES:
        if isinstance(exc, kind):
            return name
    return "internal"


class ToolEngine:
    """Runs the tools of a registry; one per replica."""

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        idempotency: IdempotencyStore | None = None,
        thread_pool_size: int = 32,
        limits: LimitsTable | None = None,
    ) -> None:
        self.registry = registry
        self.idempotency = idempotency
        self.limits = limits or LimitsTable()
        self._slots = {
            name: FairSlots(registry.get(name).max_concurrency) for name in registry.names()
        }
        self._pools = {
            name: ThreadPoolExecutor(
                min(registry.get(name).max_concurrency, thread_pool_size),
                thread_name_prefix=f"tool-{name}"[:15],
            )
            for name in registry.names()
            if not registry.get(name).is_async
        }
        self._background: set[asyncio.Future[Any]] = set()

    # -- listing ---------------------------------------------------------------------
    def list_tools(self, names: Sequence[str] = ()) -> list[ToolInfo]:
        return [
            ToolInfo(t.name, t.description, t.args_schema_json, t.timeout, t.max_concurrency)
            for t in self.registry.select(names)
        ]

    # -- invoking --------------------------------------------------------------------
    async def invoke(self, inv: Invocation) -> ToolResult:
        started = time.perf_counter()
        tool = self.registry.get(inv.name)
        outcome = "internal"
        try:
            arguments = _parse_arguments(inv.arguments_json)
            tool.validate(arguments)
            deadline = time.monotonic() + self._budget(tool, inv)
            if inv.idempotency_key and self.idempotency is not None:
                result = await self._invoke_once(tool, arguments, deadline, inv)
            else:
                task = await self._start(tool, arguments, inv, deadline)
                result = await self._await(tool, task, deadline)
            outcome = "replayed" if result.replayed else result.status
            if result.status == "tool_error":
                TOOL_ERRORS.labels(tool.name, "tool_error").inc()
            return result
        except MeshError as exc:
            outcome = _outcome_of(exc)
            TOOL_ERRORS.labels(tool.name, outcome).inc()
            raise
        finally:
            TOOL_INVOCATIONS.labels(tool.name, outcome).inc()
            TOOL_LATENCY.labels(tool.name, outcome).observe(time.perf_counter() - started)

    @staticmethod
    def _budget(tool: RegisteredTool, inv: Invocation) -> float:
        budget = tool.timeout
        if inv.timeout is not None and inv.timeout > 0:
            budget = min(budget, inv.timeout)
        if inv.deadline is not None:
            budget = min(budget, inv.deadline)
        if budget <= 0:
            raise DeadlineExceededError(
                "the call's deadline has already passed", reason="DEADLINE_PASSED"
            )
        return budget

    async def _start(
        self, tool: RegisteredTool, arguments: dict[str, Any], inv: Invocation, deadline: float
    ) -> asyncio.Future[ToolResult]:
        """Take a concurrency slot (waiting at most max_queue_wait) and start the tool."""
        slots = self._slots[tool.name]
        tenant = inv.tenant_id
        cap = share_cap(tool.max_concurrency, self.limits.for_tenant(tenant).tool_share)
        wait = max(0.0, min(tool.max_queue_wait, deadline - time.monotonic()))
        TOOL_QUEUED.labels(tool.name).inc()
        try:
            await slots.acquire(tenant, cap, wait)
        except TimeoutError:
            if slots.held(tenant) >= cap and slots.in_use < slots.capacity:
                raise QuotaExceededError(
                    f"tenant holds its share of tool {tool.name!r} ({cap} of "
                    f"{tool.max_concurrency} concurrent calls); retry",
                    tenant=tenant,
                    limit="tool_share",
                    value=cap,
                    retry_after=BUSY_RETRY_AFTER,
                    metadata={"tool": tool.name},
                ) from None
            raise ResourceExhaustedError(
                f"tool {tool.name!r} is at its concurrency limit ({tool.max_concurrency}); retry",
                retry_after=BUSY_RETRY_AFTER,
                reason="TOOL_BUSY",
                metadata={"tool": tool.name},
            ) from None
        finally:
            TOOL_QUEUED.labels(tool.name).dec()
        TOOL_INFLIGHT.labels(tool.name).inc()
        call = {
            "type": "tool_call",
            "name": tool.name,
            "args": arguments,
            "id": inv.tool_call_id or f"lgmesh-{uuid.uuid4().hex}",
        }
        if tool.is_async:
            task: asyncio.Future[ToolResult] = asyncio.create_task(self._call_async(tool, call))
        else:
            loop = asyncio.get_running_loop()
            task = loop.run_in_executor(self._pools[tool.name], self._call_sync, tool, call)

        def done(_: Any) -> None:
            slots.release(tenant)
            TOOL_INFLIGHT.labels(tool.name).dec()
            self._background.discard(task)

        self._background.add(task)
        task.add_done_callback(done)
        return task

    @staticmethod
    async def _call_async(tool: RegisteredTool, call: dict[str, Any]) -> ToolResult:
        t0 = time.perf_counter()
        try:
            out = await tool.tool.ainvoke(call)
        except Exception as exc:
            return _error_result(exc, time.perf_counter() - t0)
        return _from_output(tool, out, time.perf_counter() - t0)

    @staticmethod
    def _call_sync(tool: RegisteredTool, call: dict[str, Any]) -> ToolResult:
        t0 = time.perf_counter()
        try:
            out = tool.tool.invoke(call)
        except Exception as exc:
            return _error_result(exc, time.perf_counter() - t0)
        return _from_output(tool, out, time.perf_counter() - t0)

    @staticmethod
    async def _await(
        tool: RegisteredTool, task: asyncio.Future[ToolResult], deadline: float
    ) -> ToolResult:
        try:
            return await asyncio.wait_for(
                asyncio.shield(task), max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            if tool.is_async:
                task.cancel()
            raise DeadlineExceededError(
                f"tool {tool.name!r} did not finish within its time budget",
                reason="TOOL_TIMEOUT",
                metadata={"tool": tool.name},
            ) from None

    async def _invoke_once(
        self, tool: RegisteredTool, arguments: dict[str, Any], deadline: float, inv: Invocation
    ) -> ToolResult:
        store = self.idempotency
        assert store is not None
        key = store.scoped_key(inv.tenant_id, tool.name, inv.idempotency_key)
        fingerprint = _fingerprint(arguments)
        while True:
            raw, lock = await store.begin(key)
            if raw is not None:
                return self._replay(raw, fingerprint, tool)
            if lock is not None:
                try:
                    task = await self._start(tool, arguments, inv, deadline)
                except BaseException:
                    await self._release_quietly(lock)
                    raise
                recorder = asyncio.create_task(self._record(lock, task, fingerprint))
                self._background.add(recorder)
                recorder.add_done_callback(self._background.discard)
                result = await self._await(tool, task, deadline)
                # The result is stored before the caller hears of it.
                await asyncio.shield(recorder)
                return result
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                raw = await store.wait(key, left)
            except TimeoutError:
                raise DeadlineExceededError(
                    "a call with the same idempotency key is still running; retry later",
                    reason="IDEMPOTENT_CALL_IN_PROGRESS",
                    metadata={"tool": tool.name},
                ) from None
            if raw is not None:
                return self._replay(raw, fingerprint, tool)
            # The runner gave up (timeout, crash) without a result: try to run it here.

    @staticmethod
    def _replay(raw: str, fingerprint: str, tool: RegisteredTool) -> ToolResult:
        result, stored = ToolResult.from_record(raw)
        if stored and stored != fingerprint:
            raise FailedPreconditionError(
                "this idempotency key was used with different arguments",
                reason="IDEMPOTENCY_KEY_REUSED",
                metadata={"tool": tool.name},
            )
        return result

    @staticmethod
    async def _release_quietly(lock: IdempotencyLock) -> None:
        try:
            await lock.release()
        except MeshError:
            log.warning("cannot release an idempotency lock; it expires on its own")

    async def _record(
        self, lock: IdempotencyLock, task: asyncio.Future[ToolResult], fingerprint: str
    ) -> None:
        """Store the call's outcome under its key once the tool really ends."""
        await asyncio.wait([task])
        if task.cancelled() or task.exception() is not None:
            await self._release_quietly(lock)
            return
        try:
            await lock.complete(task.result().to_record(fingerprint))
        except MeshError:
            log.error("cannot record a tool call's result; a retry with its key may rerun it")

    # -- lifecycle -------------------------------------------------------------------
    async def aclose(self, timeout: float = 10.0) -> None:
        """Let running calls finish (and record their results) for up to ``timeout``."""
        pending = list(self._background)
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
            for task in still:
                task.cancel()
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

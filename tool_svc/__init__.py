"""tool_svc: LangChain tools behind gRPC, with timeouts, concurrency caps and idempotency.

Public API (everything else is private)::

    settings = ToolServiceSettings.from_config_file("tools.yaml", infra=InfraSettings.from_env())
    await serve(settings)                      # until SIGTERM
    async with ToolServer(settings) as s: ...  # in-process (tests, embedding)
"""

from tool_svc._engine import Invocation, ToolEngine, ToolInfo, ToolResult
from tool_svc._idempotency import IdempotencyStore
from tool_svc._registry import ToolRegistry, load_registry
from tool_svc._server import ToolServer, serve
from tool_svc._settings import ToolConfigError, ToolServiceSettings, ToolSpec

__all__ = [
    "IdempotencyStore",
    "Invocation",
    "ToolConfigError",
    "ToolEngine",
    "ToolInfo",
    "ToolRegistry",
    "ToolResult",
    "ToolServer",
    "ToolServiceSettings",
    "ToolSpec",
    "load_registry",
    "serve",
]

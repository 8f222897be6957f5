"""python -m tool_svc --port N --metrics-port M --config path.yaml

Redis and the key prefix come from the environment (LGMESH_REDIS_URL, LGMESH_PREFIX),
read once by mesh_core.config.InfraSettings.from_env().
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from mesh_core.config import InfraSettings
from tool_svc._settings import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_PORT,
    ToolConfigError,
    ToolServiceSettings,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tool_svc", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="gRPC listen host")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="gRPC port (0: free)")
    parser.add_argument("--metrics-port", type=int, default=None, help="Prometheus port")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="Prometheus listen host")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG_PATH), help="tool config YAML")
    parser.add_argument("--log-level", default="INFO")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=ns.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = ToolServiceSettings.from_config_file(
            ns.config,
            infra=InfraSettings.from_env(),
            host=ns.host,
            port=ns.port,
            metrics_port=ns.metrics_port,
            metrics_host=ns.metrics_host,
        )
    except ValueError as exc:  # ToolConfigError, or a malformed LGMESH_* variable
        print(f"tool_svc: {exc}", file=sys.stderr)
        return 2
    from tool_svc._server import serve

    try:
        from mesh_core.telemetry import TracingSettings, setup_tracing

        tracing = setup_tracing(TracingSettings.from_env("tools"), set_global=True)
        asyncio.run(serve(settings))
        tracing.shutdown()  # flush the spans still batched
    except ToolConfigError as exc:  # a tool that fails to import or describe itself
        print(f"tool_svc: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m llm_gateway_svc --port N --metrics-port M --config path.yaml``.

The one place the gateway reads its environment: LGMESH_REDIS_URL / LGMESH_PREFIX
(through :meth:`InfraSettings.from_env`) and each provider's ``api_key_env``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from llm_gateway_svc.config import ConfigError, LlmGatewaySettings
from llm_gateway_svc.server import serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="llm_gateway_svc", description="The mesh's LLM gateway.")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0 in containers)")
    p.add_argument("--port", type=int, default=50070, help="gRPC port (0: any free port)")
    p.add_argument("--metrics-port", type=int, default=-1, help="Prometheus port (-1: off)")
    p.add_argument("--config", default=None, help="YAML config (default: the demo config)")
    p.add_argument("--drain-grace", type=float, default=10.0, help="seconds to drain on SIGTERM")
    ns = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = LlmGatewaySettings.load(
            ns.config,
            env=os.environ,
            host=ns.host,
            port=ns.port,
            metrics_port=ns.metrics_port,
            drain_grace_s=ns.drain_grace,
        )
    except (ConfigError, ValueError) as exc:
        print(f"llm_gateway_svc: {exc}", file=sys.stderr)
        return 2
    from mesh_core.telemetry import TracingSettings, setup_tracing

    tracing = setup_tracing(TracingSettings.from_env("llm-gateway"), set_global=True)
    asyncio.run(serve(settings))
    tracing.shutdown()  # flush the spans still batched
    return 0


if __name__ == "__main__":
    sys.exit(main())

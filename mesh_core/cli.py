"""The ``lgmesh`` command.

    lgmesh dev [--demo]        the whole mesh on this machine (servers + every service)
    lgmesh gateway             the public gRPC gateway
    lgmesh runtime             a runtime (--role owner|worker|both)
    lgmesh llm-gateway         the LLM gateway
    lgmesh tools               the tool service
    lgmesh servers             only etcd, nats-server and valkey, printing their URLs

Services read flags first, then ``LGMESH_*`` environment variables (infra URLs, prefix,
config paths); this module and mesh_core.config are the only readers of the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from mesh_core.config import InfraSettings, env_int, env_str

__all__ = ["main"]


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )


def _common(p: argparse.ArgumentParser) -> None:
    env = os.environ
    p.add_argument("--host", default=env_str(env, "LGMESH_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=env_int(env, "LGMESH_PORT", 0))
    p.add_argument("--metrics-port", type=int, default=None)
    p.add_argument("--log-level", default=env_str(env, "LGMESH_LOG_LEVEL", "INFO"))


def _tracing(service: str) -> None:
    from mesh_core.telemetry import TracingSettings, setup_tracing

    setup_tracing(TracingSettings.from_env(service), set_global=True)


def _gateway(ns: argparse.Namespace) -> int:
    from gateway.app import GatewaySettings, serve

    _tracing("gateway")
    settings = GatewaySettings(
        infra=InfraSettings.from_env(),
        host=ns.host,
        port=ns.port,
        metrics_port=ns.metrics_port,
        api_keys_file=ns.api_keys_file or os.environ.get("LGMESH_API_KEYS_FILE"),
        api_keys=os.environ.get("LGMESH_API_KEYS"),
        max_request_bytes=ns.max_request_bytes,
    )
    asyncio.run(serve(settings))
    return 0


def _runtime(ns: argparse.Namespace) -> int:
    import gc

    from runtime_svc.app import RuntimeSettings, serve

    # The Pregel loop allocates many short-lived objects per step: collecting the young
    # generation less often cuts the owner's CPU per task by about a fifth (bench/fanout.py).
    gc.set_threshold(100_000, 50, 100)
    _tracing("runtime")
    graphs = ns.graphs or os.environ.get("LGMESH_GRAPHS")
    if not graphs:
        print("lgmesh runtime: --graphs or LGMESH_GRAPHS is required", file=sys.stderr)
        return 2
    kwargs: dict[str, object] = {"runtime_id": ns.runtime_id} if ns.runtime_id else {}
    extra = {}
    for env_key, conf_key in (
        ("LGMESH_LLM_GATEWAY_ADDR", "lgmesh_llm_target"),
        ("LGMESH_TOOLS_ADDR", "lgmesh_tools_target"),
    ):
        if os.environ.get(env_key):
            extra[conf_key] = os.environ[env_key]
    settings = RuntimeSettings(
        infra=InfraSettings.from_env(),
        graphs_path=graphs,
        host=ns.host,
        port=ns.port,
        advertise_host=ns.advertise_host or ns.host,
        metrics_port=ns.metrics_port,
        role=ns.role,
        capacity=ns.capacity,
        lease_ttl=ns.lease_ttl,
        drain_timeout=ns.drain_timeout,
        worker_concurrency=ns.worker_concurrency,
        remote=ns.remote,
        extra_configurable=extra,
        **kwargs,  # type: ignore[arg-type]
    )
    asyncio.run(serve(settings))
    return 0


def _servers(ns: argparse.Namespace) -> int:
    import signal

    from mesh_core.localservers import LocalServers

    with LocalServers() as servers:
        for k, v in servers.env().items():
            print(f"export {k}={v}", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    return 0


def _passthrough(module: str, argv: Sequence[str]) -> int:
    import runpy

    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


def _die_with_parent() -> None:
    parent = os.environ.get("LGMESH_DIE_WITH_PARENT")
    if not parent:
        return
    from mesh_core.localservers import die_with_parent

    die_with_parent()
    if str(os.getppid()) != parent:  # the parent died before we armed the signal
        sys.exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _die_with_parent()
    if argv and argv[0] in ("llm-gateway", "tools"):
        module = {"llm-gateway": "llm_gateway_svc", "tools": "tool_svc"}[argv[0]]
        return _passthrough(module, argv[1:])
    parser = argparse.ArgumentParser(prog="lgmesh", description="LangGraph Mesh")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gateway", help="the public gRPC gateway")
    _common(g)
    g.add_argument("--api-keys-file", default=None)
    g.add_argument(
        "--max-request-bytes",
        type=int,
        default=env_int(os.environ, "LGMESH_MAX_REQUEST_BYTES", 4 * 1024 * 1024),
    )

    r = sub.add_parser("runtime", help="a runtime (owner and/or worker role)")
    _common(r)
    r.add_argument("--graphs", default=None, help="graph config file (graph id -> module:attr)")
    r.add_argument(
        "--role",
        choices=["owner", "worker", "both"],
        default=env_str(os.environ, "LGMESH_ROLE", "both"),
    )
    r.add_argument("--runtime-id", default=None)
    r.add_argument("--advertise-host", default=os.environ.get("LGMESH_ADVERTISE_HOST"))
    r.add_argument("--capacity", type=int, default=env_int(os.environ, "LGMESH_CAPACITY", 64))
    r.add_argument("--lease-ttl", type=int, default=env_int(os.environ, "LGMESH_LEASE_TTL", 5))
    r.add_argument("--drain-timeout", type=float, default=30.0)
    r.add_argument(
        "--worker-concurrency",
        type=int,
        default=env_int(os.environ, "LGMESH_WORKER_CONCURRENCY", 4),
    )
    r.add_argument(
        "--remote",
        choices=["send", "all", "off"],
        default=env_str(os.environ, "LGMESH_REMOTE", "send"),
        help="which tasks go to workers: Send fan-out (default), every task, or none",
    )

    d = sub.add_parser("dev", help="run the whole mesh locally")
    d.add_argument(
        "--demo",
        action="store_true",
        help="run the demo graph once the mesh is up, then keep serving",
    )
    d.add_argument("--demo-only", action="store_true", help="run the demo and exit")
    d.add_argument("--runtimes", type=int, default=2)
    d.add_argument("--port", type=int, default=50051, help="gateway port")
    d.add_argument("--graphs", default=None)

    sub.add_parser("servers", help="start etcd, nats-server and valkey and print their URLs")
    sub.add_parser(
        "demo", help="run the demo against a running mesh (LGMESH_GATEWAY, LGMESH_API_KEY)"
    )

    ns = parser.parse_args(argv)
    if ns.command in ("gateway", "runtime"):
        _logging(ns.log_level)
        return _gateway(ns) if ns.command == "gateway" else _runtime(ns)
    if ns.command == "servers":
        return _servers(ns)
    if ns.command == "dev":
        from mesh_core.dev import run_dev

        return run_dev(ns)
    if ns.command == "demo":
        from mesh_demo.run import main as demo_main

        return demo_main(
            os.environ.get("LGMESH_GATEWAY", "127.0.0.1:50051"),
            os.environ.get("LGMESH_API_KEY", "dev-key"),
        )
    return 2


if __name__ == "__main__":
    sys.exit(main())

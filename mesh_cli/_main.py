"""The ``lgmesh`` command: every service, the local mesh and its demo.

    lgmesh dev [--demo]     the whole mesh on this machine (servers + every service)
    lgmesh gateway          the public gRPC gateway
    lgmesh runtime          a runtime (--role owner|worker|both)
    lgmesh llm-gateway      the LLM gateway
    lgmesh tools            the tool service
    lgmesh servers          only etcd, nats-server and valkey, printing their URLs
    lgmesh infra-config     render the backends' users and Secrets for deploy/
    lgmesh demo             run the demo against a running mesh

Flags win over ``LGMESH_*`` environment variables, which win over defaults; this
package and mesh_core.config are the only readers of the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mesh_cli import infra_config
from mesh_cli._flags import ENV_NOTE, Flags
from mesh_core.config import ConfigError, InfraSettings
from mesh_core.lifecycle import LifecycleSettings
from mesh_core.limits import load_limits
from mesh_core.logs import LOG_FORMATS, setup_logging
from mesh_core.retry import DEFAULT_RETRY_BUDGET
from mesh_core.security import InternalSecurity, configure_internal_security
from mesh_core.security._codec import load_payload_codec
from mesh_core.webhooks import parse_allow_hosts

__all__ = ["build_parser", "main"]

#: What a command does once its configuration has been checked.
Runner = Callable[[], Any]

DEFAULT_PORTS = {"gateway": 50051, "runtime": 50055, "tools": 50061, "llm-gateway": 50070}


def _service_flags(p: argparse.ArgumentParser, kind: str, env: Mapping[str, str]) -> Flags:
    f = Flags(p, env)
    f.add(
        "--host",
        env="LGMESH_HOST",
        default="127.0.0.1",
        help="interface the gRPC server binds (0.0.0.0 in a container)",
    )
    f.add(
        "--port",
        env="LGMESH_PORT",
        default=DEFAULT_PORTS[kind],
        type=int,
        help="gRPC port (0: any free port)",
    )
    f.add(
        "--metrics-host",
        env="LGMESH_METRICS_HOST",
        default=None,
        default_text="the same as --host",
        help="interface /metrics binds",
    )
    f.add(
        "--metrics-port",
        env="LGMESH_METRICS_PORT",
        default=None,
        type=int,
        help="Prometheus /metrics port (0: any free port; none: no metrics endpoint)",
    )
    f.add(
        "--health-port",
        env="LGMESH_HEALTH_PORT",
        default=None,
        type=int,
        help="also answer grpc.health.v1 (only) in plaintext on this port, on the "
        "--metrics-host interface, for probes without a client certificate "
        "(Kubernetes gRPC probes when mTLS is on; 0: any free port; none: no such port)",
    )
    f.add(
        "--log-level", env="LGMESH_LOG_LEVEL", default="INFO", help="DEBUG, INFO, WARNING or ERROR"
    )
    f.add(
        "--log-format",
        env="LGMESH_LOG_FORMAT",
        default="text",
        choices=list(LOG_FORMATS),
        help="text for people, json for log pipelines",
    )
    f.add(
        "--etcd-url",
        env="LGMESH_ETCD_URL",
        default=InfraSettings.etcd_url,
        help="etcd client URL (thread leases, runtime registry)",
    )
    f.add(
        "--nats-url",
        env="LGMESH_NATS_URL",
        default=InfraSettings.nats_url,
        help="NATS URL (task queue, run event logs)",
    )
    f.add(
        "--redis-url",
        env="LGMESH_REDIS_URL",
        default=InfraSettings.redis_url,
        help="Redis/Valkey URL (checkpoints, records, limits, caches)",
    )
    f.add(
        "--prefix",
        env="LGMESH_PREFIX",
        default=InfraSettings.prefix,
        help="namespace of every key, subject and stream (meshes may share servers)",
    )
    f.add(
        "--retry-budget",
        env="LGMESH_RETRY_BUDGET",
        default=DEFAULT_RETRY_BUDGET,
        type=float,
        unit="s",
        help="how long a Redis, NATS or etcd outage may last before work gives up",
    )
    f.add(
        "--tenant-limits",
        env="LGMESH_TENANT_LIMITS",
        default="",
        help="YAML file of per-tenant limits (defaults and overrides; the same file for "
        "every tier); empty: the built-in defaults",
    )
    _tls_flags(f, kind)
    return f


def _tls_flags(f: Flags, kind: str) -> None:
    """This service's identity on internal hops (mutual TLS) and its tenant-token key."""
    f.add(
        "--tls-ca",
        env="LGMESH_TLS_CA",
        default="",
        default_text="none (internal hops in plaintext, unauthenticated)",
        help="PEM file of the mesh CA: internal peers must present a certificate it signed "
        "(the cert-manager Secret's ca.crt)",
    )
    f.add(
        "--tls-cert",
        env="LGMESH_TLS_CERT",
        default="",
        help="PEM certificate of this service's tier (spiffe://lgmesh/tier/<tier>, DNS "
        "<tier>.lgmesh.internal; tls.crt)",
    )
    f.add(
        "--tls-key",
        env="LGMESH_TLS_KEY",
        default="",
        help="PEM private key of --tls-cert (tls.key)",
    )
    if kind == "gateway":
        f.add(
            "--tenant-token-key",
            env="LGMESH_TENANT_TOKEN_KEY",
            default="",
            help="Ed25519 private key (PEM) signing the tenant tokens sent to runtimes; "
            "required with --tls-*",
        )
        f.add(
            "--public-tls-cert",
            env="LGMESH_PUBLIC_TLS_CERT",
            default="",
            default_text="none (the public port in plaintext)",
            help="PEM certificate (chain) of the public port: clients connect with TLS, "
            "API keys unchanged",
        )
        f.add(
            "--public-tls-key",
            env="LGMESH_PUBLIC_TLS_KEY",
            default="",
            help="PEM private key of --public-tls-cert",
        )
    else:
        f.add(
            "--tenant-token-public-key",
            env="LGMESH_TENANT_TOKEN_PUBLIC_KEY",
            default="",
            help="Ed25519 public key (PEM) verifying callers' tenant tokens; required with --tls-*",
        )


def _public_tls(cert: str, key: str) -> str:
    """``cert``, once it and ``key`` are both given (or neither) and readable."""
    if bool(cert) != bool(key):
        raise ValueError("--public-tls-cert and --public-tls-key go together (set both)")
    for flag, path in (("--public-tls-cert", cert), ("--public-tls-key", key)):
        if path and not os.path.isfile(path):
            raise ValueError(f"{flag}: file {path} does not exist")
    return cert


def _security(ns: argparse.Namespace, kind: str) -> InternalSecurity:
    security = InternalSecurity.from_flags(
        ca=ns.tls_ca,
        cert=ns.tls_cert,
        key=ns.tls_key,
        token_key=getattr(ns, "tenant_token_key", ""),
        token_public_key=getattr(ns, "tenant_token_public_key", ""),
        issues_tokens=kind == "gateway",
    )
    return security


def _event_log_flags(f: Flags) -> None:
    f.add(
        "--event-log-max-age",
        env="LGMESH_EVENT_LOG_MAX_AGE",
        default=24 * 3600.0,
        type=float,
        unit="s",
        help="how long the run event log keeps a run's events "
        "(JoinRun from a cursor works this long); every gateway and runtime must agree",
    )
    f.add(
        "--event-log-max-bytes",
        env="LGMESH_EVENT_LOG_MAX_BYTES",
        default=1024**3,
        type=int,
        unit="bytes",
        help="size bound of the whole run event log (the oldest events go first)",
    )


#: What ``--payload-keys`` seals, by command.
_SEALS = {
    "gateway": "checkpoints, run events, task messages and run records' user data; "
    "every gateway and runtime needs the same keys",
    "runtime": "checkpoints, run events, task messages and run records' user data; "
    "every gateway and runtime needs the same keys",
    "llm-gateway": "the answers stored for idempotency keys and the response cache; "
    "every LLM gateway replica needs the same keys",
    "tools": "the results stored for idempotency keys; every tool service replica needs "
    "the same keys",
}


def _payload_keys_flag(f: Flags, kind: str) -> None:
    f.add(
        "--payload-keys",
        env="LGMESH_PAYLOAD_KEYS",
        default="",
        default_text="none (payloads stored as they are)",
        help="file of payload keys (one base64 32-byte key a line, newest first: it seals, "
        f"all open), mounted from a Secret; seals {_SEALS[kind]}",
    )


def _keep(value: str) -> int | None:
    if value.strip().lower() == "all":
        return None
    n = 1 if value.strip().lower() == "latest" else int(value)
    if n < 1:
        raise ValueError("--checkpoint-keep must be all, latest or a positive number")
    return n


def _infra(ns: argparse.Namespace) -> InfraSettings:
    return InfraSettings(
        etcd_url=ns.etcd_url, nats_url=ns.nats_url, redis_url=ns.redis_url, prefix=ns.prefix
    )


def _lifecycle(ns: argparse.Namespace, name: str, env: Mapping[str, str]) -> LifecycleSettings:
    fd = env.get("LGMESH_READY_FD")
    return LifecycleSettings(
        name=name,
        metrics_host=ns.metrics_host or ns.host,
        metrics_port=ns.metrics_port,
        health_port=ns.health_port,
        ready_fd=int(fd) if fd and fd.isdigit() else None,
    )


def _tracing(service: str) -> None:
    from mesh_core.telemetry import TracingSettings, setup_tracing

    setup_tracing(TracingSettings.from_env(service), set_global=True)


# -- the services -----------------------------------------------------------------------
def _gateway(ns: argparse.Namespace, env: Mapping[str, str]) -> Runner:
    from gateway.app import GatewaySettings, serve
    from gateway.auth import ApiKeyAuth

    keys = env.get("LGMESH_API_KEYS")
    auth = ApiKeyAuth.from_sources(ns.api_keys_file, keys)
    if not auth.enabled:
        raise ValueError("no API keys: set LGMESH_API_KEYS=tenant=key,... or pass --api-keys-file")
    settings = GatewaySettings(
        infra=_infra(ns),
        host=ns.host,
        port=ns.port,
        api_keys_file=ns.api_keys_file,
        api_keys=keys,
        max_request_bytes=ns.max_request_bytes,
        retry_budget=ns.retry_budget,
        webhook_allow_hosts=parse_allow_hosts(ns.webhook_allow_hosts),
        thread_ttl=ns.thread_ttl,
        event_max_age=ns.event_log_max_age,
        event_max_bytes=ns.event_log_max_bytes,
        limits=load_limits(ns.tenant_limits),
        security=_security(ns, "gateway"),
        public_tls_cert=_public_tls(ns.public_tls_cert, ns.public_tls_key),
        public_tls_key=ns.public_tls_key,
        payload_codec=load_payload_codec(ns.payload_keys),
    )
    lifecycle = _lifecycle(ns, "gateway", env)
    _tracing("gateway")
    return lambda: asyncio.run(serve(settings, lifecycle))


def _runtime(ns: argparse.Namespace, env: Mapping[str, str]) -> Runner:
    import gc

    from runtime_svc.app import RuntimeSettings, serve

    if not ns.graphs:
        raise ValueError("--graphs (or LGMESH_GRAPHS) is required: the graph config file")
    # The Pregel loop allocates many short-lived objects per step: collecting the young
    # generation less often cuts the owner's CPU per task by about a fifth (bench/fanout.py).
    gc.set_threshold(100_000, 50, 100)
    security = _security(ns, "runtime")
    # graph code reaches the LLM gateway and tools through mesh_client with this identity
    configure_internal_security(security)
    extra = {}
    if ns.llm_gateway:
        extra["lgmesh_llm_target"] = ns.llm_gateway
    if ns.tools:
        extra["lgmesh_tools_target"] = ns.tools
    kwargs: dict[str, Any] = {"runtime_id": ns.runtime_id} if ns.runtime_id else {}
    settings = RuntimeSettings(
        infra=_infra(ns),
        graphs_path=ns.graphs,
        host=ns.host,
        port=ns.port,
        advertise_host=ns.advertise_host or ns.host,
        role=ns.role,
        capacity=ns.capacity,
        lease_ttl=ns.lease_ttl,
        drain_timeout=ns.drain_timeout,
        worker_concurrency=ns.worker_concurrency,
        remote=ns.remote,
        extra_configurable=extra,
        retry_budget=ns.retry_budget,
        handover_after=ns.handover_after,
        task_ack_wait=ns.task_ack_wait,
        task_max_deliveries=ns.task_max_deliveries,
        webhook_allow_hosts=parse_allow_hosts(ns.webhook_allow_hosts),
        schedule_visibility=ns.schedule_visibility,
        lease_idle=ns.lease_idle,
        checkpoint_keep=_keep(ns.checkpoint_keep),
        thread_ttl=ns.thread_ttl,
        event_max_age=ns.event_log_max_age,
        event_max_bytes=ns.event_log_max_bytes,
        limits=load_limits(ns.tenant_limits),
        security=security,
        payload_codec=load_payload_codec(ns.payload_keys),
        **kwargs,
    )
    lifecycle = _lifecycle(ns, settings.runtime_id, env)
    _tracing("runtime")
    return lambda: asyncio.run(serve(settings, lifecycle))


def _llm_gateway(ns: argparse.Namespace, env: Mapping[str, str]) -> Runner:
    from llm_gateway_svc.config import LlmGatewaySettings
    from llm_gateway_svc.server import serve

    settings = LlmGatewaySettings.load(
        ns.config,
        env=env,
        infra=_infra(ns),
        host=ns.host,
        port=ns.port,
        drain_grace_s=ns.drain_grace,
        tenant_limits=load_limits(ns.tenant_limits),
        security=_security(ns, "llm-gateway"),
        payload_codec=load_payload_codec(ns.payload_keys),
    )
    lifecycle = _lifecycle(ns, "llm-gateway", env)
    _tracing("llm-gateway")
    return lambda: asyncio.run(serve(settings, lifecycle))


def _tools(ns: argparse.Namespace, env: Mapping[str, str]) -> Runner:
    from tool_svc._settings import DEFAULT_CONFIG_PATH, ToolServiceSettings

    settings = ToolServiceSettings.from_config_file(
        ns.config or DEFAULT_CONFIG_PATH,
        infra=_infra(ns),
        host=ns.host,
        port=ns.port,
        drain_grace=ns.drain_grace,
        limits=load_limits(ns.tenant_limits),
        security=_security(ns, "tools"),
        payload_codec=load_payload_codec(ns.payload_keys),
    )
    from tool_svc._server import serve

    lifecycle = _lifecycle(ns, "tools", env)
    _tracing("tools")
    return lambda: asyncio.run(serve(settings, lifecycle))


def _servers(ns: argparse.Namespace, env: Mapping[str, str]) -> Runner:
    def run() -> int:
        import signal
        import threading

        from mesh_core.localservers import LocalServers

        # Ctrl-C, SIGTERM and SIGHUP end the wait below (and the servers stop) instead of
        # killing this process on the spot. Handlers, not a blocked signal mask: children
        # would inherit the mask and ignore their SIGTERM.
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: stop.set())
        with LocalServers() as servers:
            for k, v in servers.env().items():
                print(f"export {k}={v}", flush=True)
            while not stop.wait(0.5):
                pass
        return 0

    return run


def _dev(ns: argparse.Namespace, env: Mapping[str, str]) -> Runner:
    from mesh_cli.dev import run_dev

    return lambda: run_dev(ns)


def _demo(ns: argparse.Namespace, env: Mapping[str, str]) -> Runner:
    from mesh_demo.run import main as demo_main

    return lambda: demo_main(ns.gateway, ns.api_key)


# -- the parser --------------------------------------------------------------------------
def build_parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(
        prog="lgmesh",
        description="LangGraph Mesh: run LangGraph graphs for many users, every tier on its own.",
        epilog=ENV_NOTE,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=summary,
            description=description,
            epilog=ENV_NOTE,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    d = cmd(
        "dev",
        "the whole mesh on this machine, from one command",
        "Start etcd, nats-server and valkey (from their PyPI wheels, data in a temp dir), "
        "the LLM gateway (scripted model), the tool service, runtimes and a gateway; "
        "optionally run the demo. Ctrl-C or closing the terminal stops everything and "
        "removes the temp dir; after kill -9 a watchdog does.",
    )
    f = Flags(d, env)
    f.switch("--demo", env="LGMESH_DEV_DEMO", help="run the demo once the mesh is up, then serve")
    f.switch("--demo-only", env="LGMESH_DEV_DEMO_ONLY", help="run the demo, then stop everything")
    f.add(
        "--runtimes",
        env="LGMESH_DEV_RUNTIMES",
        default=2,
        type=int,
        help="runtime processes to start (each owner and worker)",
    )
    f.add(
        "--port",
        env="LGMESH_DEV_PORT",
        default=DEFAULT_PORTS["gateway"],
        type=int,
        help="the gateway's port; refused if taken (0: any free port)",
    )
    f.add(
        "--graphs",
        env="LGMESH_GRAPHS",
        default=None,
        default_text="the demo graphs",
        help="graph config file",
    )

    g = cmd(
        "gateway",
        "the public gRPC gateway",
        "The public API (lgmesh.api.v1): API keys -> tenants, validation, places each "
        "thread on a runtime and keeps run streams going across runtime failures.\n"
        "API keys: LGMESH_API_KEYS=tenant=key,... and/or --api-keys-file.",
    )
    f = _service_flags(g, "gateway", env)
    f.add(
        "--api-keys-file",
        env="LGMESH_API_KEYS_FILE",
        default=None,
        help="YAML/JSON file of tenants and their API keys (plain or sha256:<hex>)",
    )
    f.add(
        "--max-request-bytes",
        env="LGMESH_MAX_REQUEST_BYTES",
        default=4 * 1024 * 1024,
        type=int,
        unit="bytes",
        help="larger requests get RESOURCE_EXHAUSTED",
    )
    f.add(
        "--thread-ttl",
        env="LGMESH_THREAD_TTL",
        default=0.0,
        type=float,
        unit="s",
        help="delete a thread (record and checkpoints) this long after its last update, unless "
        "it sets its own TTL (0: never); runtimes expire checkpoints by the same variable",
    )
    f.add(
        "--webhook-allow-hosts",
        env="LGMESH_WEBHOOK_ALLOW_HOSTS",
        default="",
        default_text="none (no webhooks)",
        help="hosts run webhooks may POST to, comma-separated (.example.com: its subdomains too)",
    )
    _event_log_flags(f)
    _payload_keys_flag(f, "gateway")

    r = cmd(
        "runtime",
        "a runtime: drives runs (owner) and/or runs Send tasks (worker)",
        "Owners hold per-thread etcd leases and run the Pregel loop with fenced "
        "checkpoints; workers pull single tasks from the NATS work queue.",
    )
    f = _service_flags(r, "runtime", env)
    f.add(
        "--graphs",
        env="LGMESH_GRAPHS",
        default=None,
        required=True,
        help="graph config file (langgraph.json or YAML): graph id -> module:attr",
    )
    f.add(
        "--role",
        env="LGMESH_ROLE",
        default="both",
        choices=["owner", "worker", "both"],
        help="what this process does",
    )
    f.add(
        "--runtime-id",
        env="LGMESH_RUNTIME_ID",
        default=None,
        default_text="rt-<host>-<pid>-<random>",
        help="unique name of this process",
    )
    f.add(
        "--advertise-host",
        env="LGMESH_ADVERTISE_HOST",
        default=None,
        default_text="--host",
        help="host gateways use to reach this runtime",
    )
    f.add(
        "--capacity",
        env="LGMESH_CAPACITY",
        default=64,
        type=int,
        help="runs this runtime drives at once",
    )
    f.add(
        "--lease-ttl",
        env="LGMESH_LEASE_TTL",
        default=5,
        type=int,
        unit="s",
        help="etcd lease TTL: a dead owner's threads move to others after about this long",
    )
    f.add(
        "--drain-timeout",
        env="LGMESH_DRAIN_TIMEOUT",
        default=30.0,
        type=float,
        unit="s",
        help="on SIGTERM, how long runs may take to finish before they are handed over",
    )
    f.add(
        "--worker-concurrency",
        env="LGMESH_WORKER_CONCURRENCY",
        default=4,
        type=int,
        help="remote tasks a worker runs at once",
    )
    f.add(
        "--remote",
        env="LGMESH_REMOTE",
        default="send",
        choices=["send", "all", "off"],
        help="which tasks go to workers: Send fan-out, every task, or none",
    )
    f.add(
        "--webhook-allow-hosts",
        env="LGMESH_WEBHOOK_ALLOW_HOSTS",
        default="",
        default_text="none (no webhooks)",
        help="hosts run webhooks may POST to, comma-separated (.example.com: its subdomains too)",
    )
    f.add(
        "--schedule-visibility",
        env="LGMESH_SCHEDULE_VISIBILITY",
        default=30.0,
        type=float,
        unit="s",
        help="a delayed run or webhook claimed by a runtime that died is taken again after this",
    )
    f.add(
        "--task-ack-wait",
        env="LGMESH_TASK_ACK_WAIT",
        default=5.0,
        type=float,
        unit="s",
        help="a remote task with no heartbeat for this long goes to another worker",
    )
    f.add(
        "--task-max-deliveries",
        env="LGMESH_TASK_MAX_DELIVERIES",
        default=3,
        type=int,
        help="deliveries a remote task may run before it is dead-lettered and fails its run",
    )
    f.add(
        "--handover-after",
        env="LGMESH_HANDOVER_AFTER",
        default=3.0,
        type=float,
        unit="s",
        help="Redis or NATS unreachable (while a peer reaches them) this long: give the "
        "threads to other runtimes",
    )
    f.add(
        "--lease-idle",
        env="LGMESH_LEASE_IDLE",
        default=2.0,
        type=float,
        unit="s",
        help="keep a thread's lease this long after its last run (its next run skips the "
        "etcd transaction); 0 releases at once",
    )
    f.add(
        "--checkpoint-keep",
        env="LGMESH_CHECKPOINT_KEEP",
        default="100",
        help="checkpoints kept per thread namespace: a number, latest, or all",
    )
    f.add(
        "--thread-ttl",
        env="LGMESH_THREAD_TTL",
        default=None,
        type=float,
        unit="s",
        help="a thread's checkpoints expire this long after its last write (none: never)",
    )
    _event_log_flags(f)
    _payload_keys_flag(f, "runtime")
    f.add(
        "--llm-gateway",
        env="LGMESH_LLM_GATEWAY_ADDR",
        default=None,
        help="host:port of the LLM gateway, for graphs that use MeshChatModel",
    )
    f.add(
        "--tools",
        env="LGMESH_TOOLS_ADDR",
        default=None,
        help="host:port of the tool service, for graphs that use remote_tools()",
    )

    lg = cmd(
        "llm-gateway",
        "the LLM gateway",
        "Providers behind one API: retries within the caller's deadline, fallbacks, "
        "rate limits per tenant and model, idempotency, caching, usage accounting.",
    )
    f = _service_flags(lg, "llm-gateway", env)
    f.add(
        "--config",
        env="LGMESH_LLM_CONFIG",
        default=None,
        default_text="the scripted demo model",
        help="YAML config: providers, routes, limits",
    )
    f.add(
        "--drain-grace",
        env="LGMESH_DRAIN_GRACE",
        default=10.0,
        type=float,
        unit="s",
        help="on SIGTERM, how long in-flight calls may take",
    )
    _payload_keys_flag(f, "llm-gateway")

    t = cmd(
        "tools",
        "the tool service",
        "Tools by import path: timeouts, concurrency caps, idempotency keys.",
    )
    f = _service_flags(t, "tools", env)
    f.add(
        "--config",
        env="LGMESH_TOOLS_CONFIG",
        default=None,
        default_text="the demo tools",
        help="YAML config: the tools and their limits",
    )
    f.add(
        "--drain-grace",
        env="LGMESH_DRAIN_GRACE",
        default=10.0,
        type=float,
        unit="s",
        help="on SIGTERM, how long in-flight calls may take",
    )
    _payload_keys_flag(f, "tools")

    cmd(
        "servers",
        "only etcd, nats-server and valkey, printing their URLs",
        "Start the three servers on free loopback ports (data in a temp dir, removed on "
        "exit) and print export lines for the LGMESH_* variables; Ctrl-C stops them.",
    )

    ic = cmd(
        "infra-config",
        "render the Redis ACL, NATS and etcd users (and their Secrets) for deploy/",
        infra_config.DESCRIPTION,
    )
    infra_config.add_parser(ic, env)

    dm = cmd(
        "demo",
        "run the demo against a running mesh",
        "Stream one run of the demo graph through a gateway and show it.",
    )
    f = Flags(dm, env)
    f.add(
        "--gateway",
        env="LGMESH_GATEWAY",
        default="127.0.0.1:50051",
        help="host:port of the gateway",
    )
    f.add("--api-key", env="LGMESH_API_KEY", default="dev-key", help="API key to use")
    return parser


_COMMANDS: dict[str, Callable[[argparse.Namespace, Mapping[str, str]], Runner]] = {
    "gateway": _gateway,
    "runtime": _runtime,
    "llm-gateway": _llm_gateway,
    "tools": _tools,
    "servers": _servers,
    "infra-config": infra_config.run,
    "dev": _dev,
    "demo": _demo,
}


def _die_with_parent(env: Mapping[str, str]) -> None:
    parent = env.get("LGMESH_DIE_WITH_PARENT")
    if not parent:
        return
    from mesh_cli.launcher import die_with_parent

    die_with_parent()
    if str(os.getppid()) != parent:  # the parent died before we armed the signal
        sys.exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    env = os.environ
    argv = list(sys.argv[1:] if argv is None else argv)
    _die_with_parent(env)
    parser = build_parser(env)
    ns = parser.parse_args(argv)
    if ns.command in ("gateway", "runtime", "llm-gateway", "tools"):
        try:
            setup_logging(ns.command, ns.log_level, ns.log_format)
        except ValueError as exc:
            parser.error(str(exc))
    try:
        run = _COMMANDS[ns.command](ns, env)
    except (ValueError, OSError) as exc:
        # A configuration problem, found before anything started: one line, no traceback.
        print(f"lgmesh {ns.command}: {exc}", file=sys.stderr)
        return 2
    try:
        code = run()
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        print(f"lgmesh {ns.command}: {exc}", file=sys.stderr)
        return 2
    return int(code or 0)

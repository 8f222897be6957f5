"""``lgmesh dev``: the whole mesh on one machine, from one command.

Starts etcd, nats-server and valkey (from their PyPI wheels), then the LLM gateway
(scripted provider), the tool service, two runtimes and a gateway as child processes
with prefixed, coloured logs; optionally runs the demo; Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from mesh_core.devmesh import ServiceProcess, free_port
from mesh_core.localservers import LocalServers, port_open

__all__ = ["DEV_API_KEY", "run_dev"]

DEV_API_KEY = "dev-key"
DEMO_GRAPHS = Path(__file__).resolve().parent.parent / "mesh_demo" / "graphs.yaml"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_dev(ns: argparse.Namespace) -> int:
    base = Path(tempfile.mkdtemp(prefix="lgmesh-dev-"))
    gateway_port = ns.port if ns.port and not port_open(ns.port) else free_port()
    procs: list[ServiceProcess] = []
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    _say(f"lgmesh dev: starting etcd, nats-server and valkey (data in {base})")
    with LocalServers(base / "infra") as servers:
        env = {
            **servers.env(),
            "LGMESH_PREFIX": "lgmesh",
            "LGMESH_API_KEYS": os.environ.get("LGMESH_API_KEYS", f"dev={DEV_API_KEY}"),
        }
        try:
            llm = ServiceProcess(
                "llm-gateway", ["llm-gateway", "--port", "0"], env, echo=_say
            ).start()
            procs.append(llm)
            tools = ServiceProcess("tools", ["tools", "--port", "0"], env, echo=_say).start()
            procs.append(tools)
            env["LGMESH_LLM_GATEWAY_ADDR"] = llm.address
            env["LGMESH_TOOLS_ADDR"] = tools.address
            graphs = ns.graphs or str(DEMO_GRAPHS)
            for i in range(ns.runtimes):
                procs.append(
                    ServiceProcess(
                        f"runtime-{i + 1}",
                        ["runtime", "--graphs", graphs, "--runtime-id", f"runtime-{i + 1}"],
                        env,
                        echo=_say,
                    ).start()
                )
            gw = ServiceProcess(
                "gateway", ["gateway", "--port", str(gateway_port)], env, echo=_say
            ).start()
            procs.append(gw)
            _banner(gw.address, servers)
            if ns.demo or ns.demo_only:
                from mesh_demo.run import main as demo_main

                names = {p.pid: p.name for p in procs}
                code = _in_thread(demo_main, gw.address, DEV_API_KEY, names)
                if ns.demo_only:
                    return code
            _say("lgmesh dev: serving; Ctrl-C stops everything")
            while not stop.wait(0.5):
                dead = [p.name for p in procs if not p.alive]
                if dead:
                    _say(f"lgmesh dev: {', '.join(dead)} exited; stopping")
                    return 1
            return 0
        finally:
            _say("lgmesh dev: stopping services")
            for p in reversed(procs):
                with contextlib.suppress(Exception):
                    p.stop()


def _banner(gateway: str, servers: LocalServers) -> None:
    _say(
        "\n".join(
            [
                "",
                "  LangGraph Mesh is up",
                f"    gateway (gRPC)  {gateway}     API key: {DEV_API_KEY}",
                f"    etcd {servers.etcd_url}   nats {servers.nats_url}   redis {servers.redis_url}",
                "  try:",
                f"    grpcurl -plaintext {gateway} list",
                f"    grpcurl -plaintext -H 'authorization: Bearer {DEV_API_KEY}' -d '{{}}' "
                f"{gateway} lgmesh.api.v1.AssistantService/ListAssistants",
                "",
            ]
        )
    )


def _in_thread(fn: object, *args: object) -> int:
    """Run the demo client off the main thread, so Ctrl-C still reaches run_dev."""
    result: list[int] = [1]
    t = threading.Thread(target=lambda: result.__setitem__(0, fn(*args)), daemon=True)  # type: ignore[operator]
    t.start()
    t.join()
    return result[0]

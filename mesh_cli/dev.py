"""``lgmesh dev``: the whole mesh on one machine, from one command.

Starts etcd, nats-server and valkey (from their PyPI wheels), then the LLM gateway
(scripted provider), the tool service, the runtimes and a gateway as child processes
with prefixed logs; optionally runs the demo. Ctrl-C, SIGTERM or SIGHUP (closing the
terminal) stops everything and removes the temp dir; children die with it even on
SIGKILL.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from mesh_cli.launcher import ServiceProcess, free_port
from mesh_core.localservers import LocalServers, find_binary, port_open

__all__ = ["DEV_API_KEY", "run_dev"]

DEV_API_KEY = "dev-key"
DEMO_GRAPHS = Path(__file__).resolve().parent.parent / "mesh_demo" / "graphs.yaml"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_dev(ns: argparse.Namespace) -> int:
    if ns.port and port_open(ns.port):
        _say(
            f"lgmesh dev: port {ns.port} is taken (another lgmesh dev?); "
            f"stop it, or pass --port N (--port 0: any free port)"
        )
        return 2
    gateway_port = ns.port or free_port()
    base = Path(tempfile.mkdtemp(prefix="lgmesh-dev-"))
    procs: list[ServiceProcess] = []
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    color = sys.stdout.isatty()
    try:
        _say("lgmesh dev: starting etcd, nats-server and valkey")
        with LocalServers(base / "infra") as servers:
            env = {
                **servers.env(),
                "LGMESH_PREFIX": "lgmesh",
                "LGMESH_API_KEYS": os.environ.get("LGMESH_API_KEYS", f"dev={DEV_API_KEY}"),
            }

            def start(name: str, args: list[str]) -> ServiceProcess:
                proc = ServiceProcess(name, args, env, echo=_say, color=color).start()
                procs.append(proc)
                return proc

            llm = start("llm-gateway", ["llm-gateway", "--port", "0"])
            tools = start("tools", ["tools", "--port", "0"])
            graphs = str(Path(ns.graphs).resolve()) if ns.graphs else str(DEMO_GRAPHS)
            for i in range(ns.runtimes):
                start(
                    f"runtime-{i + 1}",
                    [
                        "runtime",
                        "--port",
                        "0",
                        "--graphs",
                        graphs,
                        "--runtime-id",
                        f"runtime-{i + 1}",
                        "--llm-gateway",
                        llm.address,
                        "--tools",
                        tools.address,
                    ],
                )
            gw = start("gateway", ["gateway", "--port", str(gateway_port)])
            _banner(gw.address)
            if ns.demo or ns.demo_only:
                from mesh_demo.run import main as demo_main

                names = {int(p.ready_info.get("pid") or p.pid): p.name for p in procs}
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
    except KeyboardInterrupt:
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if procs:
            _say("lgmesh dev: stopping services")
        for p in reversed(procs):
            with contextlib.suppress(Exception):
                p.stop()
        shutil.rmtree(base, ignore_errors=True)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)


def _banner(gateway: str) -> None:
    try:
        grpcurl = str(find_binary("grpcurl"))
    except Exception:
        grpcurl = "grpcurl"
    key = f"authorization: Bearer {DEV_API_KEY}"
    _say(
        "\n".join(
            [
                "",
                "  LangGraph Mesh is up.",
                f"    gateway  {gateway}   (gRPC, plaintext)    API key  {DEV_API_KEY}",
                "  Try next:",
                f"    {grpcurl} -plaintext {gateway} list",
                f"    {grpcurl} -plaintext -H '{key}' -d '{{}}' {gateway} "
                "lgmesh.api.v1.AssistantService/ListAssistants",
                "",
            ]
        )
    )


def _in_thread(fn: object, *args: object) -> int:
    """Run the demo client off the main thread, so Ctrl-C still reaches run_dev."""
    result: list[int] = [1]
    t = threading.Thread(target=lambda: result.__setitem__(0, fn(*args)), daemon=True)  # type: ignore[operator]
    t.start()
    while t.is_alive():
        t.join(0.2)
    return result[0]

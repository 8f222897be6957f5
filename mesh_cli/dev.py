"""``lgmesh dev``: the whole mesh on one machine, from one command.

Starts etcd, nats-server and valkey (from their PyPI wheels), then the LLM gateway
(scripted provider) and the tool service, the runtimes, and a gateway as child
processes with prefixed logs (services of one tier start together); optionally runs
the demo. It ends with a "try this next" banner carrying the real address, key and
grpcurl path.

However it ends, nothing is left: Ctrl-C, SIGTERM and SIGHUP (closing the terminal)
stop the services, then the servers, then remove the temp dir; after a SIGKILL the
launcher's watchdog (``mesh_core._watchdog``) does the same.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from mesh_cli.launcher import ServiceProcess, ServiceStartError, free_port, start_all, stop_all
from mesh_core.localservers import BinaryNotFoundError, LocalServers, ProcessWatchdog, port_open
from mesh_core.security import issue_dev_pki

__all__ = ["DEV_API_KEY", "run_dev"]

DEV_API_KEY = "dev-key"
PREFIX = "lgmesh"
#: a tier's name among the backend users (mesh_core.security.INFRA_TIERS)
_INFRA_TIER = {"llm-gateway": "llm"}
DEMO_GRAPHS = Path(__file__).resolve().parent.parent / "mesh_demo" / "graphs.yaml"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class _DevMesh:
    """The servers and services of one ``lgmesh dev``, started and stopped in order."""

    def __init__(self, ns: argparse.Namespace, base: Path, gateway_port: int) -> None:
        self.ns = ns
        self.base = base
        self.gateway_port = gateway_port
        self.servers = LocalServers(base / "infra")
        self.procs: list[ServiceProcess] = []
        self.color = sys.stdout.isatty()
        self.env: dict[str, str] = {}

    def _service(self, name: str, tier: str, args: list[str]) -> ServiceProcess:
        """``tier``: whose backend users and certificate the service runs with."""
        env = {
            **self.env,
            **self.servers.env(_INFRA_TIER.get(tier, tier), PREFIX),
            **self.pki.env(tier),
        }
        proc = ServiceProcess(name, args, env, echo=_say, color=self.color)
        self.procs.append(proc)
        return proc

    def start(self) -> ServiceProcess:
        """Start everything; returns the gateway."""
        _say("lgmesh dev: starting etcd, nats-server and valkey")
        self.servers.start()
        # A throwaway CA and a certificate per tier: every internal hop is mutual TLS.
        self.pki = issue_dev_pki(self.base / "pki")
        self.env = {
            "LGMESH_PREFIX": PREFIX,
            "LGMESH_API_KEYS": os.environ.get("LGMESH_API_KEYS", f"dev={DEV_API_KEY}"),
        }
        _say("lgmesh dev: starting the LLM gateway, the tool service and the runtimes")
        llm = self._service("llm-gateway", "llm-gateway", ["llm-gateway", "--port", "0"])
        tools = self._service("tools", "tools", ["tools", "--port", "0"])
        start_all([llm, tools])
        graphs = str(Path(self.ns.graphs).resolve()) if self.ns.graphs else str(DEMO_GRAPHS)
        runtimes = [
            self._service(
                f"runtime-{i + 1}",
                "runtime",
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
            for i in range(self.ns.runtimes)
        ]
        start_all(runtimes)
        gateway = self._service("gateway", "gateway", ["gateway", "--port", str(self.gateway_port)])
        return gateway.start()

    def stop(self) -> None:
        """Services first (they drain while their backends are still up), then servers."""
        if any(p.alive for p in self.procs):
            _say("lgmesh dev: stopping services")
        tiers: dict[str, list[ServiceProcess]] = {}
        for p in self.procs:
            tiers.setdefault(p.name.split("-")[0], []).append(p)
        for tier in ("gateway", "runtime"):
            stop_all(tiers.pop(tier, []))
        stop_all([p for rest in tiers.values() for p in rest])  # LLM gateway, tools
        self.servers.stop()

    def dead(self) -> list[str]:
        return [p.name for p in self.procs if not p.alive]


def run_dev(ns: argparse.Namespace) -> int:
    if ns.port and port_open(ns.port):
        _say(
            f"lgmesh dev: port {ns.port} is taken (another lgmesh dev?); "
            f"stop it, or pass --port N (--port 0: any free port)"
        )
        return 2
    gateway_port = ns.port or free_port()
    base = Path(tempfile.mkdtemp(prefix="lgmesh-dev-"))
    watchdog = ProcessWatchdog.for_this_process()
    watchdog.own_dir(base)  # removed even if this process is killed
    mesh = _DevMesh(ns, base, gateway_port)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        raise KeyboardInterrupt

    for sig in _STOP_SIGNALS:
        signal.signal(sig, on_signal)
    try:
        gateway = mesh.start()
        _banner(gateway.address)
        _internal_banner(mesh)
        if ns.demo or ns.demo_only:
            from mesh_demo.run import main as demo_main

            names = {int(p.ready_info.get("pid") or p.pid): p.name for p in mesh.procs}
            code = _in_thread(demo_main, gateway.address, DEV_API_KEY, names)
            if ns.demo_only:
                return code
        _say("lgmesh dev: serving; Ctrl-C stops everything")
        while not stop.wait(0.5):
            dead = mesh.dead()
            if dead:
                _say(f"lgmesh dev: {', '.join(dead)} exited; stopping")
                return 1
        return 0
    except KeyboardInterrupt:
        return 0
    except ServiceStartError as exc:  # its log lines are above already
        _say(f"lgmesh dev: {exc.name} did not start ({exc.why}); stopping")
        return 1
    finally:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up
        try:
            mesh.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)
            watchdog.disown_dir(base)
            for sig in _STOP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)


def grpcurl_command() -> str:
    """How to call grpcurl from here: ``grpcurl`` when it is on PATH, else the path of the
    one the dev extra installed (relative to the current directory when under it)."""
    if shutil.which("grpcurl"):
        return "grpcurl"
    candidates = [Path(sysconfig.get_path("scripts")) / "grpcurl"]
    with contextlib.suppress(BinaryNotFoundError):
        from mesh_core.localservers import find_binary

        candidates.append(find_binary("grpcurl"))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            with contextlib.suppress(ValueError):
                return "./" + str(path.resolve().relative_to(Path.cwd().resolve()))
            return str(path)
    return "grpcurl"


def _banner(gateway: str) -> None:
    grpcurl = grpcurl_command()
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
                "    (more in the README: 'Using the gateway with grpcurl')",
                "",
            ]
        )
    )


def _internal_banner(mesh: _DevMesh) -> None:
    """Where the internal services are and how to reach them (mutual TLS)."""
    pki = mesh.pki.directory
    internal = [f"{p.name} {p.address}" for p in mesh.procs if p.name != "gateway"]
    _say(
        "\n".join(
            [
                "  Internal services (mutual TLS; throwaway CA and tier certificates in",
                f"  {pki}): {', '.join(internal)}",
                f"    {grpcurl_command()} -cacert {pki}/ca.pem -cert {pki}/gateway.pem "
                f"-key {pki}/gateway.key -servername runtime.lgmesh.internal "
                f"{internal[-1].split()[-1]} list",
                "    (README: 'Security inside the mesh')",
                "",
            ]
        )
    )


def _in_thread(fn: Callable[..., int], *args: object) -> int:
    """Run the demo client off the main thread, so Ctrl-C still reaches run_dev."""
    result: list[int] = [1]
    t = threading.Thread(target=lambda: result.__setitem__(0, fn(*args)), daemon=True)
    t.start()
    while t.is_alive():
        t.join(0.2)
    return result[0]

#!/usr/bin/env python
"""One tenant's burst against another tenant's latency, on a real mesh.

A mesh of real processes (etcd, NATS, Valkey, a gateway, ``--runtimes`` runtimes, the
tool service with the demo tools) with per-tenant limits from a limits file
(the defaults of mesh_core/limits.py with B's run rate raised, unless ``--limits``
names another file). Tenant B (``beta``) runs small runs one after another, each
calling the ``block`` tool (a blocking sync tool) for 0 s; B's latency is measured
idle, then while tenant A (``acme``) keeps ``--streams`` StreamRuns open at once, each a run that holds
``block`` for ``--hold`` seconds, so A fills the tool's pool up to its share and the
gateway and runtime with streams and runs. Each of A's streams opens again as soon as
it ends; a refused one waits its RetryInfo delay first (at most ``--a-retry-cap``
seconds: 30, the gateway's longest advice; 2 makes A a client that comes back sooner
than it is told). B is measured for at least ``--seconds`` from the moment A's load
stands (streams open, others refused), so A's first wave and its retry waves fall
inside the measurement.

Each of ``--rounds`` rounds (3) measures B idle and then under A's load (A started
afresh, then stopped); it prints B's p50/p95 both ways, the p95 ratio and how A's
attempts ended: streams that ran, refusals with RESOURCE_EXHAUSTED (by quota), runs that
failed (e.g. A's tool calls past its share of the pool). The verdict is on the median of
the rounds' ratios (target: within 2x); the minimum is printed next to it.

    python bench/noisy_neighbor.py [--streams 1000] [--runs 100] [--seconds 10] [--hold 2]
                                   [--a-retry-cap 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import multiprocessing
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mesh_client import MeshClient  # noqa: E402
from mesh_client.errors import MeshAPIError, MeshError  # noqa: E402
from mesh_core.localservers import LocalServers  # noqa: E402
from tests.e2e.cluster import MeshCluster  # noqa: E402

GRAPHS = str(ROOT / "bench" / "graphs.yaml")
B_RUN = {"tool": "block", "args": {"seconds": 0}}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def b_runs(
    client: MeshClient, n: int, errors: collections.Counter[str], seconds: float = 0.0
) -> list[float]:
    """Runs of tenant B one after another, at least ``n`` of them and for at least
    ``seconds``: the latencies of those that succeeded (seconds); the others are counted
    in ``errors``."""
    lat: list[float] = []
    end = time.monotonic() + seconds
    done = 0
    while done < n or time.monotonic() < end:
        done += 1
        t0 = time.perf_counter()
        try:
            out = await client.runs.wait(None, "tool_call", input=B_RUN)
        except MeshError as err:
            details = err.details() if isinstance(err, MeshAPIError) else str(err)
            errors[f"{type(err).__name__}: {details}"[:160]] += 1
            continue
        lat.append(time.perf_counter() - t0)
        assert out["result"], out
    return lat


class Burst:
    """Tenant A: ``streams`` StreamRuns kept open at once until stopped."""

    def __init__(
        self, clients: list[MeshClient], streams: int, hold: float, retry_cap: float
    ) -> None:
        self.clients = clients
        self.retry_cap = retry_cap
        self.streams = streams
        self.input = {"tool": "block", "args": {"seconds": hold}}
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.open = 0
        # A's load stands: the mesh refuses some of A's streams while others run.
        self.loaded = asyncio.Event()
        self.refused = 0
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [
            asyncio.create_task(self._one(self.clients[i % len(self.clients)]))
            for i in range(self.streams)
        ]

    async def _one(self, client: MeshClient) -> None:
        while not self.stopping.is_set():
            opened = False
            try:
                status = ""
                async for part in client.runs.stream(None, "tool_call", input=self.input):
                    if not opened:
                        opened = True
                        self.open += 1
                        if self.refused and self.open >= min(16, self.streams):
                            self.loaded.set()
                    status = part.lifecycle.get("status") or status
                self.outcomes[f"run ended {status or '?'}"] += 1
            except MeshAPIError as err:
                if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    limit = next(iter(err.quota), err.reason)
                    self.outcomes[f"RESOURCE_EXHAUSTED ({limit})"] += 1
                    self.refused += 1
                    delay = err.retry_after if err.retry_after is not None else 0.5
                    await _sleep_unless(self.stopping, min(max(delay, 0.05), self.retry_cap))
                else:
                    self.outcomes[f"error {err.code().name} {err.reason}"] += 1
                    await _sleep_unless(self.stopping, 0.5)
            finally:
                if opened:
                    self.open -= 1

    async def stop(self) -> None:
        self.stopping.set()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def burst_process(address: str, ns: argparse.Namespace, loaded: Any, stop: Any, out: Any) -> None:
    """Tenant A in a process of its own (its client work does not slow B's client)."""

    async def run() -> None:
        clients = [MeshClient(address, "acme-key") for _ in range(ns.a_connections)]
        burst = Burst(clients, ns.streams, ns.hold, ns.a_retry_cap)
        burst.start()
        waiting = asyncio.create_task(burst.loaded.wait())
        waiting.add_done_callback(lambda _: loaded.set())
        await asyncio.to_thread(stop.wait)
        waiting.cancel()
        open_at_end = burst.open
        await burst.stop()
        for c in clients:
            await c.close()
        out.put((open_at_end, dict(burst.outcomes)))

    asyncio.run(run())


async def _sleep_unless(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


def _profile(cluster: MeshCluster, out: str) -> list[subprocess.Popen[bytes]]:
    """py-spy on every mesh process while B runs under A's load (collapsed stacks)."""
    Path(out).mkdir(parents=True, exist_ok=True)
    procs = [*cluster.gateways, *cluster.runtimes, *cluster.others]
    return [
        subprocess.Popen(
            [
                "py-spy",
                "record",
                "--format",
                "raw",
                "--pid",
                str(p.pid),
                "--rate",
                "200",
                "-o",
                str(Path(out) / f"{p.name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in procs
    ]


async def _round(
    cluster: MeshCluster,
    b: MeshClient,
    ns: argparse.Namespace,
    errors: collections.Counter[str],
    *,
    profile: bool,
) -> float:
    """B idle, then B under A's load (A in a process of its own, started now and
    stopped at the end): prints both and how A's attempts ended; returns the p95 ratio."""
    idle = _summary("idle", await b_runs(b, ns.runs, errors, ns.seconds))
    mp = multiprocessing.get_context("spawn")
    loaded_ev, stop_ev, out = mp.Event(), mp.Event(), mp.Queue()
    child = mp.Process(
        target=burst_process, args=(cluster.gateways[0].address, ns, loaded_ev, stop_ev, out)
    )
    child.start()
    # Measure once A's load stands: its streams are open and its runs hold the tool.
    if not await asyncio.to_thread(loaded_ev.wait, 60):
        print("  A's load did not stand (streams open and refused) within 60 s")
    spies = _profile(cluster, ns.profile) if ns.profile and profile else []
    loaded = _summary("under A's load", await b_runs(b, ns.runs, errors, ns.seconds))
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its profile and exits
        spy.wait(30)
    stop_ev.set()
    open_at_end, outcomes = await asyncio.to_thread(out.get, True, 60)
    child.join(30)
    ratio = loaded["p95"] / idle["p95"]
    print(f"    p95 ratio {ratio:.2f}; A: {open_at_end} streams open at the end; attempts:")
    for what, count in sorted(outcomes.items(), key=lambda kv: -kv[1]):
        print(f"      {what:<48} {count}")
    # A's last runs end (they hold the tool at most --hold s) before B's next idle figure.
    await asyncio.sleep(ns.hold + 1.0)  # settle: not a wait for an event
    return ratio


def _summary(name: str, lat: list[float]) -> dict[str, float]:
    p50, p95 = pct(lat, 50) * 1e3, pct(lat, 95) * 1e3
    print(f"  B {name:<28} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   ({len(lat)} runs)")
    return {"p50": p50, "p95": p95}


async def main_async(ns: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp, LocalServers(Path(tmp) / "infra") as servers:
        limits = ns.limits
        if limits is None:
            limits = str(Path(tmp) / "limits.yaml")
            # The built-in defaults; B's run rate is raised so that B's own back-to-back
            # runs never meet it (B's latency is measured, not B's limits).
            Path(limits).write_text(
                "defaults: {}\ntenants:\n  beta: {runs_per_second: 1000, run_burst: 1000}\n"
            )
        cluster = MeshCluster(
            servers,
            "noisy",
            Path(tmp),
            graphs=GRAPHS,
            extra_env={"LGMESH_TENANT_LIMITS": limits, "LGMESH_LOG_LEVEL": "WARNING"},
        )
        try:
            cluster.add_tools()
            cluster.start(runtimes=ns.runtimes, gateways=1)
            b = cluster.client("beta-key")
            print(
                f"tenant B: sequential runs calling the sync tool 'block' (0 s), at least"
                f" {ns.runs} and {ns.seconds:g} s per measurement; tenant A: {ns.streams}"
                f" concurrent StreamRuns each holding 'block' {ns.hold} s, a refused one"
                f" retrying after its RetryInfo delay (at most {ns.a_retry_cap:g} s)"
            )
            print(f"  limits: {limits}; {ns.runtimes} runtime(s), 1 gateway, 1 tool service")
            errors: collections.Counter[str] = collections.Counter()
            await b_runs(b, 20, errors)  # warm up
            if errors:
                print(f"  B's runs fail on an idle mesh: {dict(errors)}")
                return 1
            ratios: list[float] = []
            for n in range(1, ns.rounds + 1):
                print(f"  round {n} of {ns.rounds}")
                ratios.append(await _round(cluster, b, ns, errors, profile=n == 1))
            for what, count in errors.items():
                print(f"  B failed: {count} x {what}")
            ratio = statistics.median(ratios)
            verdict = "ok" if ratio <= 2.0 else "MISSED"
            print(
                f"  B p95 under load / idle: median {ratio:.2f} [min {min(ratios):.2f}]"
                f" over {len(ratios)} rounds ({', '.join(f'{r:.2f}' for r in ratios)})"
                f"   (target <= 2.0: {verdict})"
            )
            await cluster.aclose_clients()
            return 0 if ratio <= 2.0 and not errors else 1
        finally:
            cluster.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--streams", type=int, default=1000, help="tenant A's concurrent streams")
    p.add_argument("--runs", type=int, default=100, help="tenant B's runs per measurement (least)")
    p.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="tenant B runs for at least this long per measurement (A's start and its"
        " retry waves fall inside)",
    )
    p.add_argument(
        "--a-retry-cap",
        type=float,
        default=30.0,
        help="the longest a refused A stream waits before it tries again (its RetryInfo"
        " delay, capped; 30 s: the gateway's longest advice; e.g. 2 for an impatient"
        " client)",
    )
    p.add_argument("--hold", type=float, default=2.0, help="seconds each A run holds the tool")
    p.add_argument("--rounds", type=int, default=3, help="idle/loaded measurements (median ratio)")
    p.add_argument("--runtimes", type=int, default=1)
    p.add_argument("--a-connections", type=int, default=4, help="gRPC channels A spreads over")
    p.add_argument("--limits", default=None, help="a tenant limits file (default: built-in)")
    p.add_argument(
        "--profile", default=None, help="a directory for py-spy profiles (pip install py-spy)"
    )
    ns = p.parse_args()
    sys.exit(asyncio.run(main_async(ns)))


if __name__ == "__main__":
    main()

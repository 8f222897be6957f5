"""Every service's /metrics has the series its autoscaler reads (deploy/), and they move under load."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mesh_client.tools import aremote_tools
from mesh_core.localservers import LocalServers
from tests.e2e.cluster import GRAPHS, ROOT, MeshCluster
from tests.helpers import assert_eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def _scrape(ports: dict[str, int]) -> dict[str, str]:
    async with httpx.AsyncClient(timeout=5) as http:
        return {
            name: (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            for name, port in ports.items()
        }


async def test_autoscaling_series_move_under_load(
    infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    graphs = {
        "graphs": {
            **yaml.safe_load(Path(GRAPHS).read_text())["graphs"],
            **yaml.safe_load((ROOT / "mesh_demo" / "graphs.yaml").read_text())["graphs"],
        }
    }
    (tmp_path / "graphs.yaml").write_text(yaml.safe_dump(graphs))
    llm_cfg = yaml.safe_load((ROOT / "llm_gateway_svc" / "default_config.yaml").read_text())
    llm_cfg["providers"]["scripted"]["chunk_delay_s"] = 0.05  # slow tokens: requests stay in flight
    (tmp_path / "llm.yaml").write_text(yaml.safe_dump(llm_cfg))

    c = MeshCluster(infra, prefix, tmp_path, graphs=str(tmp_path / "graphs.yaml"), metrics=True)
    try:
        c.add_llm_gateway(config=str(tmp_path / "llm.yaml"))
        c.add_tools()
        c.start(runtimes=2, gateways=1)
        ports = c.metrics_ports
        before = await _scrape(ports)
        for name, text in before.items():  # every series the autoscalers read is exported
            if name.startswith("runtime"):
                assert "lgmesh_runtime_running_runs" in text
                # workers (role both): KEDA reads the JetStream backlog directly; these are exported too
                assert (
                    "lgmesh_worker_queue_pending" in text and "lgmesh_worker_inflight_tasks" in text
                )
            if name.startswith("gateway"):
                assert "lgmesh_grpc_requests_total" in text or "lgmesh_grpc_request_seconds" in text
        assert "lgmesh_llm_inflight_requests" in before["llm-gateway"]
        assert "lgmesh_llm_upstream_seconds" in before["llm-gateway"]
        assert "lgmesh_tool_inflight" in before["tools"]

        peaks: dict[str, float] = defaultdict(float)
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                now = await _scrape(ports)
                running = sum(
                    _sum(t, "lgmesh_runtime_running_runs")
                    for n, t in now.items()
                    if n.startswith("runtime")
                )
                peaks["running"] = max(peaks["running"], running)
                peaks["llm"] = max(
                    peaks["llm"], _sum(now["llm-gateway"], "lgmesh_llm_inflight_requests")
                )
                peaks["tools"] = max(peaks["tools"], _sum(now["tools"], "lgmesh_tool_inflight"))
                inflight = sum(
                    _sum(t, "lgmesh_worker_inflight_tasks")
                    for n, t in now.items()
                    if n.startswith("runtime")
                )
                peaks["worker"] = max(peaks["worker"], inflight)
                await asyncio.sleep(0.1)  # the sampling interval (as a scraper would)

        client = c.client()

        async def run(graph: str, inp: dict, config: dict | None = None) -> None:  # type: ignore[type-arg]
            t = await client.threads.create()
            out = await client.runs.wait(t["thread_id"], graph, input=inp, config=config)
            assert out

        tools = {
            t.name: t
            for t in await aremote_tools(
                c.others[1].address,
                metadata=c.tenant_metadata("default"),
                security=c.security("runtime"),
            )
        }
        sampler = asyncio.create_task(sample())
        await asyncio.gather(
            *(run("demo", {"question": f"q{i}"}) for i in range(3)),
            *(
                run("steps", {"step": 0}, {"configurable": {"delay": 0.5, "steps": 4}})
                for _ in range(4)
            ),
            *(tools["wait"].ainvoke({"seconds": 1.5}) for _ in range(3)),
            # Send tasks that take a while: workers are busy for over a second
            run("fan", {"n": 6}, {"configurable": {"delay": 1.0}}),
        )
        done.set()
        await sampler
        after = await _scrape(ports)

        gw = next(n for n in ports if n.startswith("gateway"))
        runs_served = _sum(
            after[gw], "lgmesh_grpc_requests_total", service="lgmesh.api.v1.RunService"
        ) - _sum(before[gw], "lgmesh_grpc_requests_total", service="lgmesh.api.v1.RunService")
        assert runs_served >= 7
        assert peaks["running"] >= 2, peaks

        async def idle() -> bool:
            now = await _scrape(ports)
            return (
                sum(
                    _sum(t, "lgmesh_runtime_running_runs")
                    for n, t in now.items()
                    if n.startswith("runtime")
                )
                == 0
            )

        await assert_eventually(idle, timeout=5, message="running runs back to 0")
        assert peaks["llm"] >= 1, peaks
        assert _sum(after["llm-gateway"], "lgmesh_llm_upstream_seconds_count") > _sum(
            before["llm-gateway"], "lgmesh_llm_upstream_seconds_count"
        )
        assert peaks["tools"] >= 1, peaks
        assert peaks["worker"] >= 1, peaks  # the "fan" graph's Send tasks ran on workers
        assert _sum(after["tools"], "lgmesh_tool_inflight") == 0
    finally:
        await c.aclose_clients()
        c.stop()

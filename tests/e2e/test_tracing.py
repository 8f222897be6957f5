"""One run, one trace: gateway -> runtime -> (worker) -> LLM gateway / tools, via OTLP."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_core.localservers import LocalServers
from tests.e2e.cluster import ROOT, MeshCluster
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = [pytest.mark.e2e]


async def test_one_run_is_one_trace_across_services(
    infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    with OtlpReceiver() as receiver:
        c = MeshCluster(
            infra,
            prefix,
            tmp_path,
            graphs=str(ROOT / "mesh_demo" / "graphs.yaml"),
            extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
        )
        try:
            c.add_llm_gateway()
            c.add_tools()
            c.start(runtimes=2, gateways=1)
            client = c.client()
            t = await client.threads.create()
            parts = [
                p
                async for p in client.runs.stream(
                    t["thread_id"], "demo", input={"question": "tracing"}
                )
            ]
            assert parts[-1].lifecycle["status"] == "success", c.logs()

            def complete(spans: list[ReceivedSpan]) -> bool:
                """The run's whole trace has arrived (spans come in batches from 5 processes)."""
                runs = [
                    s
                    for s in spans
                    if s.service == "lgmesh-gateway" and s.name.endswith("StreamRun")
                ]
                if len(runs) != 1:
                    return False
                in_trace = [s for s in spans if s.trace_id == runs[0].trace_id]
                ids = {s.span_id for s in in_trace}
                llm = [
                    s for s in in_trace if s.service == "lgmesh-llm-gateway" and s.kind == "SERVER"
                ]
                tasks = [s for s in in_trace if s.name.startswith("lgmesh.task researcher")]
                services = {s.service for s in in_trace}
                return (
                    len(llm) >= 8
                    and len(tasks) >= 3
                    and "lgmesh-tools" in services
                    and all(s.parent_span_id in ids for s in in_trace if s is not runs[0])
                )

            spans = receiver.wait_for(complete, timeout=30)
        finally:
            await c.aclose_clients()
            c.stop()
    run_spans = [s for s in spans if s.service == "lgmesh-gateway" and s.name.endswith("StreamRun")]
    assert len(run_spans) == 1
    trace_id = run_spans[0].trace_id
    in_trace = [s for s in spans if s.trace_id == trace_id]
    services = {s.service for s in in_trace}
    assert {"lgmesh-gateway", "lgmesh-runtime", "lgmesh-llm-gateway", "lgmesh-tools"} <= services
    # 1 planner + 3 researchers x 2 turns + 1 writer model calls, all in this trace
    llm = [s for s in in_trace if s.service == "lgmesh-llm-gateway" and s.kind == "SERVER"]
    assert len(llm) == 8, [s.name for s in llm]
    ids = {s.span_id for s in in_trace}
    assert all(s.parent_span_id in ids for s in in_trace if s is not run_spans[0])
    # the researchers are Send tasks: each ran on a worker, in a task span continuing the
    # run's trace from the NATS task message, and its model calls are children of that span
    tasks = [s for s in in_trace if s.name.startswith("lgmesh.task researcher")]
    assert len(tasks) == 3, [(s.name, s.service) for s in in_trace]
    assert all(s.kind == "CONSUMER" and s.service == "lgmesh-runtime" for s in tasks)
    parent = {s.span_id: s.parent_span_id for s in in_trace}
    task_ids = {s.span_id for s in tasks}

    def under_task(span_id: str) -> bool:
        while span_id:
            if span_id in task_ids:
                return True
            span_id = parent.get(span_id, "")
        return False

    assert sum(under_task(s.span_id) for s in llm) == 6, "3 researchers x 2 model calls"

"""Bad input gets a clear gRPC status with google.rpc details; nothing leaks, nothing breaks."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from lgmesh.api.v1 import runs_pb2, runs_pb2_grpc, threads_pb2, threads_pb2_grpc, types_pb2

from mesh_core.jsonvalue import to_struct, to_value
from tests.e2e.cluster import MeshCluster

pytestmark = [pytest.mark.e2e]

KEY = [("authorization", "Bearer acme-key")]


def _details(err: grpc.aio.AioRpcError) -> dict[str, Any]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    out: dict[str, Any] = {"violations": [], "reason": ""}
    if status is None:
        return out
    for d in status.details:
        if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            d.Unpack(br)
            out["violations"] += [(v.field, v.description) for v in br.field_violations]
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            out["reason"] = info.reason
    return out


def _clean(err: grpc.aio.AioRpcError) -> None:
    text = (err.details() or "") + repr(err.trailing_metadata())
    assert "Traceback" not in text and "acme-key" not in text and 'File "' not in text


async def _expect(code: grpc.StatusCode, coro: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        res = await coro
        if hasattr(res, "__aiter__"):
            async for _ in res:
                pass
    assert info.value.code() == code, (info.value.code(), info.value.details())
    _clean(info.value)
    return info.value


@pytest.fixture
def stubs(mesh: MeshCluster) -> tuple[Any, Any, grpc.aio.Channel]:
    ch = grpc.aio.insecure_channel(
        mesh.gateways[0].address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    )
    return runs_pb2_grpc.RunServiceStub(ch), threads_pb2_grpc.ThreadServiceStub(ch), ch


async def _stream(runs: Any, spec: types_pb2.RunSpec, md: Any = KEY) -> list[Any]:
    return [r async for r in runs.StreamRun(runs_pb2.StreamRunRequest(run=spec), metadata=md)]


async def test_bad_input_statuses(mesh: MeshCluster, stubs: Any) -> None:
    runs, threads, ch = stubs
    t = (
        await threads.CreateThread(threads_pb2.CreateThreadRequest(), metadata=KEY)
    ).thread.thread_id

    # unknown graph
    err = await _expect(
        grpc.StatusCode.NOT_FOUND,
        _stream(runs, types_pb2.RunSpec(thread_id=t, assistant_id="nope")),
    )
    assert "nope" in (err.details() or "")

    # malformed config and input: INVALID_ARGUMENT with field details
    spec = types_pb2.RunSpec(
        thread_id=t, assistant_id="steps", config=to_struct({"recursion_limit": -3, "colour": 1})
    )
    err = await _expect(grpc.StatusCode.INVALID_ARGUMENT, _stream(runs, spec))
    fields = {f for f, _ in _details(err)["violations"]}
    assert {"run.config.recursion_limit", "run.config.colour"} <= fields
    spec = types_pb2.RunSpec(thread_id=t, assistant_id="steps", input=to_value({"step": "seven"}))
    err = await _expect(grpc.StatusCode.INVALID_ARGUMENT, _stream(runs, spec))
    assert ("run.input.step", "expected JSON type integer") in _details(err)["violations"]
    spec = types_pb2.RunSpec(thread_id=t, assistant_id="steps", input=to_value([1, 2]))
    await _expect(grpc.StatusCode.INVALID_ARGUMENT, _stream(runs, spec))
    err = await _expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        threads.GetThread(threads_pb2.GetThreadRequest(thread_id="a b{c}"), metadata=KEY),
    )
    assert _details(err)["violations"][0][0] == "thread_id"
    # one request names at most 1000 ids (each costs a lookup); repeats count once
    err = await _expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        threads.PruneThreads(
            threads_pb2.PruneThreadsRequest(thread_ids=[f"t{i}" for i in range(1001)]),
            metadata=KEY,
        ),
    )
    assert _details(err)["violations"][0][0] == "thread_ids"
    pruned = await threads.PruneThreads(
        threads_pb2.PruneThreadsRequest(thread_ids=[t] * 20_000), metadata=KEY
    )
    assert pruned.pruned_count == 1

    # no key / wrong key
    err = await _expect(
        grpc.StatusCode.UNAUTHENTICATED,
        threads.GetThread(threads_pb2.GetThreadRequest(thread_id=t)),
    )
    assert _details(err)["reason"] == "API_KEY_MISSING"
    await _expect(
        grpc.StatusCode.UNAUTHENTICATED,
        threads.GetThread(
            threads_pb2.GetThreadRequest(thread_id=t), metadata=[("x-api-key", "acme-keyX")]
        ),
    )

    # another tenant's thread does not exist for you
    beta = [("authorization", "Bearer beta-key")]
    await _expect(
        grpc.StatusCode.NOT_FOUND,
        threads.GetThread(threads_pb2.GetThreadRequest(thread_id=t), metadata=beta),
    )
    await _expect(
        grpc.StatusCode.NOT_FOUND,
        _stream(runs, types_pb2.RunSpec(thread_id=t, assistant_id="steps"), beta),
    )

    # over the size limit (4 MiB by default)
    big = types_pb2.RunSpec(
        thread_id=t, assistant_id="steps", metadata=to_struct({"blob": "x" * (5 * 1024 * 1024)})
    )
    err = await _expect(grpc.StatusCode.RESOURCE_EXHAUSTED, _stream(runs, big))
    assert _details(err)["reason"] == "MESSAGE_TOO_LARGE"

    # resume a thread that has no interrupt
    spec = types_pb2.RunSpec(
        thread_id=t, assistant_id="steps", command=types_pb2.Command(resume=to_value("yes"))
    )
    err = await _expect(grpc.StatusCode.FAILED_PRECONDITION, _stream(runs, spec))
    assert _details(err)["reason"] == "NO_INTERRUPT"

    # input and command together
    spec = types_pb2.RunSpec(
        thread_id=t,
        assistant_id="steps",
        input=to_value({}),
        command=types_pb2.Command(resume=to_value(1)),
    )
    await _expect(grpc.StatusCode.INVALID_ARGUMENT, _stream(runs, spec))

    # after all that, the thread still works and holds no half-made run
    ok = await _stream(
        runs,
        types_pb2.RunSpec(
            thread_id=t,
            assistant_id="steps",
            input=to_value({"step": 0}),
            config=to_struct({"configurable": {"steps": 2}}),
        ),
    )
    assert ok[-1].event.lifecycle.status == types_pb2.RUN_STATUS_SUCCESS
    # a state update into a subgraph the graph does not have
    err = await _expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        threads.UpdateThreadState(
            threads_pb2.UpdateThreadStateRequest(
                thread_id=t, values=to_value({"step": 1}), checkpoint_ns="nope:1"
            ),
            metadata=KEY,
        ),
    )
    assert _details(err)["violations"][0][0] == "checkpoint_ns"
    listed = await runs.ListRuns(runs_pb2.ListRunsRequest(thread_id=t), metadata=KEY)
    assert len(listed.runs) == 1
    await ch.close()

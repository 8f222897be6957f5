"""Fuzz every public RPC of the gateway (and the tool service's InvokeTool and the LLM
gateway's Generate) with generated and corrupted requests.

Requests are built from the service descriptors of ``lgmesh.api.v1`` (every service the
package defines, so none is forgotten) by :mod:`tests.support.protofuzz` and sent as raw
bytes (identity serializers) with a valid API key of the ``fuzz`` tenant, without one, with
an invalid one, or with conflicting credentials. Whatever comes in: never UNKNOWN, INTERNAL
or a hang, no traceback or source path in any message, no traceback in the gateway's log;
after each batch (one method) the gateway's health is SERVING and a run of the ``fuzz``
tenant succeeds. The whole module takes about a minute on the shared test mesh.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import lgmesh.api.v1
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lgmesh.api.v1 import (
    assistants_pb2,
    assistants_pb2_grpc,
    runs_pb2,
    runs_pb2_grpc,
    threads_pb2,
    threads_pb2_grpc,
    types_pb2,
)
from lgmesh.llm.v1 import llm_pb2, llm_pb2_grpc
from lgmesh.tools.v1 import tools_pb2, tools_pb2_grpc

from mesh_cli.launcher import stop_all
from mesh_core.jsonvalue import to_struct, to_value
from mesh_core.localservers import LocalServers
from mesh_core.security import TlsIdentity
from tests.e2e.cluster import MeshCluster
from tests.helpers import unique_prefix
from tests.support.protofuzz import corrupted, requests, values

pytestmark = [pytest.mark.e2e]

# Requests per method; with the checks after each batch the module stays near a minute.
# LGMESH_FUZZ_EXAMPLES=1000 fuzzes longer (by hand, not in the default run).
EXAMPLES = int(os.environ.get("LGMESH_FUZZ_EXAMPLES", "40"))
CALL_TIMEOUT = 15.0
_FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)
VALID = (("authorization", "Bearer fuzz-key"),)
CREDENTIALS = {
    "valid": VALID,
    "none": (),
    "invalid": (("x-api-key", "not-a-key"),),
    # Two different keys, both valid: refused, never "the first one wins".
    "conflicting": (("authorization", "Bearer fuzz-key"), ("x-api-key", "acme-key")),
}
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED}
_LEAK = re.compile(r"Traceback|File \"|\.py\b|/work/|site-packages|Error\(")


def _public_methods() -> list[MethodDescriptor]:
    """Every method of every service in the lgmesh.api.v1 package."""
    out: list[MethodDescriptor] = []
    for mod in pkgutil.iter_modules(lgmesh.api.v1.__path__):
        if mod.name.endswith("_pb2"):
            fd = importlib.import_module(f"lgmesh.api.v1.{mod.name}").DESCRIPTOR
            for svc in fd.services_by_name.values():
                out.extend(svc.methods)
    return out


METHODS = _public_methods()


def _path(m: MethodDescriptor) -> str:
    return f"/{m.containing_service.full_name}/{m.name}"


def _reason(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    for d in status.details if status else ():
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info.reason
    return ""


def call_raw(
    channel: grpc.Channel, method: MethodDescriptor, payload: bytes, metadata: Any
) -> grpc.RpcError | None:
    """Send ``payload`` as the method's request; the error it got (None on success).

    Responses must decode as the method's response type."""
    out_cls = GetMessageClass(method.output_type)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(_path(method))
            for item in stream(payload, metadata=metadata, timeout=CALL_TIMEOUT):
                out_cls.FromString(item)
        else:
            out_cls.FromString(
                channel.unary_unary(_path(method))(payload, metadata=metadata, timeout=CALL_TIMEOUT)
            )
    except grpc.RpcError as err:
        return err
    return None


def check_error(err: grpc.RpcError | None, what: str) -> None:
    """A clean status: a code the client can act on, no traceback or path in it."""
    if err is None:
        return
    code, details = err.code(), err.details() or ""  # type: ignore[attr-defined]
    assert code not in NEVER, f"{what}: {code} {details!r}"
    text = details + repr(err.trailing_metadata())  # type: ignore[attr-defined]
    assert not _LEAK.search(text), f"{what}: leaks {text!r}"


def check_refused(err: grpc.RpcError | None, what: str) -> None:
    """Without (valid, unambiguous) credentials nothing gets through: UNAUTHENTICATED, or
    INVALID_ARGUMENT for bytes that do not decode (refused before anything else runs)."""
    assert err is not None, f"{what}: served without valid credentials"
    code = err.code()  # type: ignore[attr-defined]
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert _reason(err) == "UNDECODABLE_REQUEST", f"{what}: {err.details()!r}"  # type: ignore[attr-defined]
    else:
        assert code == grpc.StatusCode.UNAUTHENTICATED, f"{what}: {code} {err.details()!r}"  # type: ignore[attr-defined]


def run_once(channel: grpc.Channel) -> None:
    """A thread and a run of the fuzz tenant, answered correctly."""
    threads = threads_pb2_grpc.ThreadServiceStub(channel)
    runs = runs_pb2_grpc.RunServiceStub(channel)
    thread = threads.CreateThread(
        threads_pb2.CreateThreadRequest(), metadata=VALID, timeout=CALL_TIMEOUT
    ).thread
    spec = types_pb2.RunSpec(
        thread_id=thread.thread_id,
        assistant_id="steps",
        input=to_value({"step": 0}),
        config=to_struct({"configurable": {"steps": 2}}),
    )
    events = list(
        runs.StreamRun(runs_pb2.StreamRunRequest(run=spec), metadata=VALID, timeout=CALL_TIMEOUT)
    )
    assert events[-1].event.lifecycle.status == types_pb2.RUN_STATUS_SUCCESS, events[-1]


def serving(channel: grpc.Channel) -> bool:
    health = health_pb2_grpc.HealthStub(channel)
    resp = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT)
    return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


def tracebacks(*procs: Any) -> int:
    return sum(int(p.output().count("Traceback")) for p in procs)


@pytest.fixture(scope="module")
def gateway(shared_mesh: MeshCluster) -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel(shared_mesh.gateways[0].address)
    try:
        yield channel
    finally:
        channel.close()


GRAPHS = ["steps", "approval", "chat", "fan", "boom", "grow"]


@pytest.fixture(scope="module")
def hints(gateway: grpc.Channel) -> dict[str, st.SearchStrategy[Any]]:
    """Real ids of the fuzz tenant (a thread with a finished run, a thread waiting on an
    interrupt, an assistant) and an acme thread it must not reach: generated requests
    use them most of the time, so they get past validation into the engines."""
    threads = threads_pb2_grpc.ThreadServiceStub(gateway)
    runs = runs_pb2_grpc.RunServiceStub(gateway)
    assistants = assistants_pb2_grpc.AssistantServiceStub(gateway)

    def thread(key: Any = VALID) -> str:
        req = threads_pb2.CreateThreadRequest()
        return str(threads.CreateThread(req, metadata=key, timeout=CALL_TIMEOUT).thread.thread_id)

    done, waiting = thread(), thread()
    foreign = thread((("authorization", "Bearer acme-key"),))
    finished = runs.WaitRun(
        runs_pb2.WaitRunRequest(
            run=types_pb2.RunSpec(thread_id=done, assistant_id="steps", input=to_value({"step": 0}))
        ),
        metadata=VALID,
        timeout=CALL_TIMEOUT,
    ).run
    runs.WaitRun(
        runs_pb2.WaitRunRequest(
            run=types_pb2.RunSpec(thread_id=waiting, assistant_id="approval", input=to_value({}))
        ),
        metadata=VALID,
        timeout=CALL_TIMEOUT,
    )
    assistant = assistants.CreateAssistant(
        assistants_pb2.CreateAssistantRequest(graph_id="steps", name="fuzzed"),
        metadata=VALID,
        timeout=CALL_TIMEOUT,
    ).assistant.assistant_id
    ids = st.sampled_from([done, waiting, foreign])
    return {
        "thread_id": ids,
        "thread_ids": ids,
        "run_id": st.sampled_from([finished.run_id]),
        "run_ids": st.sampled_from([finished.run_id]),
        "assistant_id": st.sampled_from([*GRAPHS, assistant]),
        "graph_id": st.sampled_from(GRAPHS),
        "checkpoint_ns": st.sampled_from(["", "sub", "sub|x"]),
        "webhook": st.sampled_from(["", "http://127.0.0.1:9/hook"]),
    }


@pytest.mark.parametrize("method", METHODS, ids=lambda m: f"{m.containing_service.name}.{m.name}")
def test_gateway_method_survives_any_request(
    shared_mesh: MeshCluster,
    gateway: grpc.Channel,
    hints: dict[str, st.SearchStrategy[Any]],
    method: MethodDescriptor,
) -> None:
    procs = [*shared_mesh.gateways, *shared_mesh.runtimes]
    before = tracebacks(*procs)
    what = method.full_name

    @_FUZZ
    @given(
        payload=requests(method.input_type, hints),
        creds=st.sampled_from(["valid", "valid", "valid", *sorted(CREDENTIALS)]),
    )
    def batch(payload: bytes, creds: str) -> None:
        err = call_raw(gateway, method, payload, CREDENTIALS[creds])
        check_error(err, f"{what} ({creds})")
        if creds != "valid":
            check_refused(err, f"{what} ({creds})")

    batch()
    assert serving(gateway), "the gateway is not SERVING after the batch"
    run_once(gateway)
    assert tracebacks(*procs) == before, shared_mesh.logs()


def test_every_public_service_is_fuzzed() -> None:
    """The list above comes from the package: adding a service adds its methods here."""
    services = {m.containing_service.full_name for m in METHODS}
    protos = Path(lgmesh.api.v1.__file__).parents[4] / "lgmesh" / "api" / "v1"
    declared = {
        f"lgmesh.api.v1.{name}"
        for p in protos.glob("*.proto")
        for name in re.findall(r"^service (\w+)", p.read_text(), re.M)
    }
    assert declared and services == declared


# -- internal services (tool service, LLM gateway) --------------------------------------


def internal_channel(cluster: MeshCluster, address: str, tier: str) -> grpc.Channel:
    """The one place a fuzz client opens a channel to an internal service: as the mesh's
    runtimes do, with the runtime tier's certificate (mutual TLS), checking the callee's."""
    if cluster.pki is None:
        return grpc.insecure_channel(address)
    creds = TlsIdentity.from_pki(cluster.pki, "runtime").channel_credentials()
    options = [("grpc.ssl_target_name_override", f"{tier}.lgmesh.internal")]
    return grpc.secure_channel(address, creds, options=options)


@pytest.fixture(scope="module")
def internals(
    infra: LocalServers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MeshCluster]:
    cluster = MeshCluster(infra, unique_prefix("fuzz"), tmp_path_factory.mktemp("fuzz"))
    try:
        cluster.add_tools()
        cluster.add_llm_gateway()
        yield cluster
    finally:
        stop_all(cluster.others)


# Tools whose arguments are fuzzed: each quick (blocking and sleeping ones excluded, a
# random "seconds" would only hold a slot until the timeout).
TOOLS = ["search", "divide", "fetch_document", "record_payment", "payment_count", "nope"]


def _deep_json(n: int) -> str:
    return "[" * n + "]" * n


def _arguments() -> st.SearchStrategy[str]:
    return st.one_of(
        values().map(lambda v: json.dumps(v)),
        st.dictionaries(
            st.sampled_from(["query", "top_k", "a", "b", "doc_id", "account", "amount_cents"]),
            values(max_leaves=3),
            max_size=4,
        ).map(lambda v: json.dumps(v)),
        st.integers(100, 20_000).map(_deep_json),
        st.integers(100, 5_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
        st.text(max_size=50),
        st.sampled_from(['{"a": NaN, "b": 1}', '{"a": Infinity, "b": -Infinity}', "{", "1e999"]),
    )


def test_tool_service_survives_any_arguments(internals: MeshCluster) -> None:
    proc = internals.others[0]
    before = tracebacks(proc)
    channel = internal_channel(internals, proc.address, "tools")
    token = internals.tenant_metadata("fuzz")  # a run's tenant token, as graphs pass it on
    stub = tools_pb2_grpc.ToolServiceStub(channel)
    invoke = next(
        m
        for m in tools_pb2.DESCRIPTOR.services_by_name["ToolService"].methods
        if m.name == "InvokeTool"
    )

    @_FUZZ
    @given(
        name=st.sampled_from(TOOLS), args=_arguments(), raw=st.none() | corrupted(invoke.input_type)
    )
    def batch(name: str, args: str, raw: bytes | None) -> None:
        if raw is not None:
            err = call_raw(channel, invoke, raw, token)
        else:
            req = tools_pb2.InvokeToolRequest(tenant_id="fuzz", name=name, arguments_json=args)
            err = call_raw(channel, invoke, req.SerializeToString(), token)
        check_error(err, f"InvokeTool({name}, {args[:80]!r})")

    try:
        batch()
        resp = stub.InvokeTool(
            tools_pb2.InvokeToolRequest(
                tenant_id="fuzz", name="divide", arguments_json='{"a": 6, "b": 3}'
            ),
            metadata=token,
            timeout=CALL_TIMEOUT,
        )
        assert (
            resp.status == tools_pb2.TOOL_CALL_STATUS_OK
            and float(json.loads(resp.content_json)) == 2.0
        )
        assert serving(channel)
        assert tracebacks(proc) == before, proc.output()[-3000:]
    finally:
        channel.close()


def test_llm_gateway_survives_any_generate(internals: MeshCluster) -> None:
    proc = internals.others[1]
    before = tracebacks(proc)
    channel = internal_channel(internals, proc.address, "llm-gateway")
    token = internals.tenant_metadata("fuzz")
    stub = llm_pb2_grpc.LlmServiceStub(channel)
    models = [
        m.alias for m in stub.ListModels(llm_pb2.ListModelsRequest(), timeout=CALL_TIMEOUT).models
    ]
    generate = next(
        m for m in llm_pb2.DESCRIPTOR.services_by_name["LlmService"].methods if m.name == "Generate"
    )

    hints = {
        "model": st.sampled_from(models),
        "tool_choice": st.sampled_from(["", "auto", "none", "required"]),
    }

    @_FUZZ
    @given(
        payload=requests(generate.input_type, hints),
        tenant=st.sampled_from(["fuzz", "fuzz", "fuzz", "", "bad tenant!", "x" * 100]),
    )
    def batch(payload: bytes, tenant: str) -> None:
        # the token's tenant is fuzz: another tenant header is PERMISSION_DENIED
        header = (("x-lgmesh-tenant", tenant),) if tenant else ()
        err = call_raw(channel, generate, payload, (*token, *header))
        check_error(err, f"Generate ({tenant!r})")

    try:
        batch()
        assert serving(channel)
        assert tracebacks(proc) == before, proc.output()[-3000:]
    finally:
        channel.close()

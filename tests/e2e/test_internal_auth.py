"""Every internal RPC refuses callers that are not who the mesh expects (real processes).

A runtime, an LLM gateway and a tool service run with mutual TLS and tenant tokens, as
``lgmesh dev`` and every other test run them. Each RPC of their services (walked from
the service descriptors, so none is forgotten) is called:

* without a client certificate, or over plaintext: Python gRPC servers cannot ask for a
  certificate without requiring one, so the TLS handshake fails and the caller sees
  UNAVAILABLE before any servicer runs;
* with a certificate of the right CA but a tier the callee's table does not list:
  PERMISSION_DENIED (TIER_NOT_ALLOWED);
* as an allowed tier, tenant-scoped RPCs with a missing, forged (another key),
  expired or garbled tenant token: UNAUTHENTICATED; with a valid token of another
  tenant than the request names: PERMISSION_DENIED (TENANT_MISMATCH).

An allowed tier with a valid token gets past all of that (whatever the servicer then
says about the empty request). The mesh's own calls over the same checks are the rest
of the e2e suite, which runs on this secured path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from lgmesh.llm.v1 import llm_pb2
from lgmesh.runtime.v1 import runtime_pb2
from lgmesh.tools.v1 import tools_pb2

from llm_gateway_svc.servicer import CALLERS as LLM_CALLERS
from llm_gateway_svc.servicer import TENANT_SCOPED as LLM_SCOPED
from mesh_cli.launcher import ServiceProcess
from mesh_client import MeshClient
from mesh_client.errors import AuthenticationError, UnavailableError
from mesh_core.localservers import LocalServers
from mesh_core.security import (
    TENANT_HEADER,
    TENANT_TOKEN_HEADER,
    TIERS,
    InternalSecurity,
    TenantTokenIssuer,
    TlsIdentity,
    issue_dev_pki,
)
from runtime_svc.servicer import CALLERS as RUNTIME_CALLERS
from runtime_svc.servicer import TENANT_SCOPED as RUNTIME_SCOPED
from tests.e2e.cluster import ROOT, MeshCluster
from tests.helpers import unique_prefix
from tool_svc.servicer import CALLERS as TOOL_CALLERS
from tool_svc.servicer import TENANT_SCOPED as TOOL_SCOPED

pytestmark = [pytest.mark.e2e]

Code = grpc.StatusCode
TENANT = "acme"


class Target:
    def __init__(
        self,
        tier: str,
        service: ServiceDescriptor,
        callers: dict[str, tuple[str, ...]],
        scoped: frozenset[str],
    ) -> None:
        self.tier = tier
        self.service = service
        self.allowed = frozenset(callers[f"/{service.full_name}/"])
        self.scoped = scoped
        self.address = ""


TARGETS = [
    Target(
        "runtime",
        runtime_pb2.DESCRIPTOR.services_by_name["RuntimeService"],
        RUNTIME_CALLERS,
        RUNTIME_SCOPED,
    ),
    Target(
        "llm-gateway", llm_pb2.DESCRIPTOR.services_by_name["LlmService"], LLM_CALLERS, LLM_SCOPED
    ),
    Target(
        "tools", tools_pb2.DESCRIPTOR.services_by_name["ToolService"], TOOL_CALLERS, TOOL_SCOPED
    ),
]


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def _request(method: MethodDescriptor, tenant: str = TENANT) -> Any:
    msg = message_factory.GetMessageClass(method.input_type)()
    if "tenant_id" in method.input_type.fields_by_name:
        msg.tenant_id = tenant
    return msg


async def _call(
    channel: grpc.aio.Channel, method: MethodDescriptor, metadata: tuple[tuple[str, str], ...]
) -> tuple[Code, str]:
    """The status code and ErrorInfo-free message of one call with an (almost) empty request."""
    out = message_factory.GetMessageClass(method.output_type)
    kwargs: dict[str, Any] = {
        "request_serializer": lambda m: m.SerializeToString(),
        "response_deserializer": out.FromString,
    }
    req = _request(method)
    try:
        if method.server_streaming:
            call = channel.unary_stream(_path(method), **kwargs)(req, metadata=metadata, timeout=5)
            async for _ in call:
                break
            call.cancel()
        else:
            await channel.unary_unary(_path(method), **kwargs)(req, metadata=metadata, timeout=5)
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return Code.OK, ""


@pytest.fixture(scope="module")
def secured(infra: LocalServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshCluster]:
    cluster = MeshCluster(infra, unique_prefix("auth"), tmp_path_factory.mktemp("auth"))
    try:
        TARGETS[1].address = cluster.add_llm_gateway().address
        TARGETS[2].address = cluster.add_tools().address
        # the runtime also answers plaintext health checks on a port of their own (probes)
        TARGETS[0].address = cluster.add_runtime(extra=["--health-port", "0"]).address
        yield cluster
    finally:
        cluster.stop()


def _token(cluster: MeshCluster, tenant: str = TENANT, ttl: float = 300) -> str:
    assert cluster.pki is not None
    return TenantTokenIssuer.from_file(cluster.pki.token_private).issue(tenant, ttl=ttl)


def _tier_channel(cluster: MeshCluster, target: Target, tier: str) -> grpc.aio.Channel:
    return cluster.security(tier).channel(target.address, target.tier)


#: requests that carry a tenant_id the callee does not act on (the deployment's tools)
NOT_TENANT_SCOPED = {"/lgmesh.tools.v1.ToolService/ListTools"}


async def test_probes_get_plaintext_health_on_their_port_and_nothing_else(
    secured: MeshCluster,
) -> None:
    """--health-port: the kubelet's gRPC probes (no client certificate) read the
    runtime's health there; no other service answers on that port."""
    port = secured.runtimes[0].ready_info["health_port"]
    host = TARGETS[0].address.rsplit(":", 1)[0]
    async with grpc.aio.insecure_channel(f"{host}:{port}") as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        for method in TARGETS[0].service.methods:
            code, _ = await _call(ch, method, ((TENANT_TOKEN_HEADER, _token(secured)),))
            assert code == Code.UNIMPLEMENTED, (_path(method), code)


def test_every_method_is_classified() -> None:
    """Each table covers its whole service; every request naming a tenant needs a token."""
    for target in TARGETS:
        names = {_path(m) for m in target.service.methods}
        assert target.scoped <= names, target.scoped - names
        assert target.allowed and target.allowed <= set(TIERS)
        naming = {
            _path(m) for m in target.service.methods if "tenant_id" in m.input_type.fields_by_name
        }
        assert naming - NOT_TENANT_SCOPED <= target.scoped, naming - target.scoped


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.tier)
async def test_without_a_client_certificate_no_handshake(
    secured: MeshCluster, target: Target
) -> None:
    assert secured.pki is not None
    ca_only = grpc.ssl_channel_credentials(root_certificates=secured.pki.ca.read_bytes())
    options = [("grpc.ssl_target_name_override", f"{target.tier}.lgmesh.internal")]
    for method in target.service.methods:
        async with grpc.aio.secure_channel(target.address, ca_only, options=options) as ch:
            code, _ = await _call(ch, method, ((TENANT_TOKEN_HEADER, _token(secured)),))
            assert code == Code.UNAVAILABLE, (_path(method), code)
        async with grpc.aio.insecure_channel(target.address) as ch:
            code, _ = await _call(ch, method, ((TENANT_TOKEN_HEADER, _token(secured)),))
            assert code == Code.UNAVAILABLE, (_path(method), code)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.tier)
async def test_a_certificate_of_another_ca_no_handshake(
    secured: MeshCluster, target: Target, tmp_path: Path
) -> None:
    """A self-made CA's certificate claiming an allowed tier gets nowhere."""
    rogue = issue_dev_pki(tmp_path / "rogue")
    assert secured.pki is not None
    tier = sorted(target.allowed)[0]
    own = TlsIdentity(secured.pki.ca, rogue.cert(tier), rogue.key(tier))
    async with InternalSecurity(own).channel(target.address, target.tier) as ch:
        for method in target.service.methods:
            code, _ = await _call(ch, method, ((TENANT_TOKEN_HEADER, _token(secured)),))
            assert code == Code.UNAVAILABLE, (_path(method), code)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.tier)
async def test_other_tiers_are_refused(secured: MeshCluster, target: Target) -> None:
    others = [t for t in TIERS if t not in target.allowed]
    assert others
    for tier in others:
        async with _tier_channel(secured, target, tier) as ch:
            for method in target.service.methods:
                code, details = await _call(ch, method, ((TENANT_TOKEN_HEADER, _token(secured)),))
                assert code == Code.PERMISSION_DENIED, (tier, _path(method), code)
                assert tier in details


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.tier)
async def test_tenant_tokens_are_checked(
    secured: MeshCluster, target: Target, tmp_path: Path
) -> None:
    forger = TenantTokenIssuer.from_file(issue_dev_pki(tmp_path / "f", tiers=()).token_private)
    valid = _token(secured)
    head, _, sig = valid.partition(".")
    bad_tokens = {
        "missing": (),
        "forged": ((TENANT_TOKEN_HEADER, forger.issue(TENANT)),),
        "expired": ((TENANT_TOKEN_HEADER, _token(secured, ttl=-1)),),
        "garbled": ((TENANT_TOKEN_HEADER, head + "." + sig[::-1]),),
    }
    other_tenant = ((TENANT_TOKEN_HEADER, _token(secured, "beta")),)
    header_lies = ((TENANT_TOKEN_HEADER, valid), (TENANT_HEADER, "beta"))
    for tier in sorted(target.allowed):
        async with _tier_channel(secured, target, tier) as ch:
            for method in target.service.methods:
                path = _path(method)
                if path not in target.scoped:
                    code, _ = await _call(ch, method, ())
                    assert code not in (Code.UNAUTHENTICATED, Code.PERMISSION_DENIED), (
                        path,
                        code,
                    )
                    continue
                for what, md in bad_tokens.items():
                    code, _ = await _call(ch, method, md)
                    assert code == Code.UNAUTHENTICATED, (tier, path, what, code)
                mismatch = (
                    header_lies
                    if "tenant_id" not in method.input_type.fields_by_name
                    else other_tenant
                )
                code, details = await _call(ch, method, mismatch)
                assert code == Code.PERMISSION_DENIED, (tier, path, code)
                assert "tenant" in details
                code, _ = await _call(ch, method, ((TENANT_TOKEN_HEADER, valid),))
                assert code not in (
                    Code.UNAUTHENTICATED,
                    Code.PERMISSION_DENIED,
                    Code.UNAVAILABLE,
                ), (tier, path, code)


async def test_a_client_checks_it_reached_the_tier_it_dialled(secured: MeshCluster) -> None:
    """A gateway dialling the tool service's port as if it were a runtime: the tool
    service's certificate does not name runtime.lgmesh.internal, so no handshake."""
    tools = TARGETS[2]
    method = tools.service.methods_by_name["ListTools"]
    async with secured.security("gateway").channel(tools.address, "runtime") as ch:
        code, _ = await _call(ch, method, ())
    assert code == Code.UNAVAILABLE


def test_a_plaintext_service_warns_once(infra: LocalServers, tmp_path: Path) -> None:
    proc = ServiceProcess(
        "tools-plain",
        ["tools", "--port", "0"],
        infra.env(),
        log_file=tmp_path / "tools.log",
        cwd=str(ROOT),
    ).start()
    try:
        out = proc.output()
    finally:
        proc.stop()
    assert out.count("internal hops are UNAUTHENTICATED") == 1, out


async def test_public_tls_on_the_gateway(secured: MeshCluster) -> None:
    """--public-tls-cert/--public-tls-key: clients connect with TLS (a CA file, an
    https:// URL), API keys unchanged; a plaintext client gets no answer."""
    assert secured.pki is not None
    pki = secured.pki
    gw = secured.add_gateway(
        ["--public-tls-cert", str(pki.cert("gateway")), "--public-tls-key", str(pki.key("gateway"))]
    )
    for url in (gw.address, f"https://{gw.address}"):
        async with MeshClient(url, "acme-key", ca_file=str(pki.ca)) as client:
            out = await client.runs.wait(
                None, "steps", input={"step": 0}, config={"configurable": {"steps": 1}}
            )
            assert out["step"] == 1
        async with MeshClient(url, "wrong-key", ca_file=str(pki.ca)) as client:
            with pytest.raises(AuthenticationError):
                await client.threads.create()
    async with MeshClient(gw.address, "acme-key") as plain:
        with pytest.raises(UnavailableError):
            await plain.threads.create()

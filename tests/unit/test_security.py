"""Tier certificates, the caller policy over real mTLS, tenant tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh_core.errors import UnauthenticatedError
from mesh_core.rpc import MeshServer
from mesh_core.security import (
    CallerPolicy,
    InternalSecurity,
    TenantTokenIssuer,
    TenantTokenVerifier,
    TlsIdentity,
    issue_dev_pki,
)


def test_tokens_verify_and_refuse_forgeries(tmp_path: Path) -> None:
    files = issue_dev_pki(tmp_path / "pki", tiers=())
    issuer = TenantTokenIssuer.from_file(files.token_private)
    verifier = TenantTokenVerifier.from_file(files.token_public)
    token = issuer.issue("acme", run_id="r1", ttl=60)
    claims = verifier.verify(token)
    assert (claims.tenant, claims.run_id) == ("acme", "r1")
    head, _, sig = token.partition(".")
    forged_head = head.replace(head[:4], "eyJ0" if head[:4] != "eyJ0" else "eyJy")
    other = TenantTokenIssuer.from_file(issue_dev_pki(tmp_path / "other", tiers=()).token_private)
    for bad in ("", "garbage", f"{forged_head}.{sig}", other.issue("acme"), token + "x"):
        with pytest.raises(UnauthenticatedError):
            verifier.verify(bad)
    expired = issuer.issue("acme", ttl=-1)
    with pytest.raises(UnauthenticatedError, match="expired"):
        verifier.verify(expired)
    assert (tmp_path / "pki" / "tenant-token.key").stat().st_mode & 0o077 == 0


async def test_caller_policy_over_mutual_tls(tmp_path: Path) -> None:
    files = issue_dev_pki(tmp_path / "pki")
    runtime = TlsIdentity.from_pki(files, "runtime")
    server = MeshServer(
        "t",
        "127.0.0.1:0",
        interceptors=[CallerPolicy({"/probe.Svc/": {"gateway"}})],
        credentials=runtime.server_credentials(),
    )

    async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b"ok"

    server.server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "probe.Svc", {"Call": grpc.unary_unary_rpc_method_handler(call)}
            ),
        )
    )
    port = await server.start()

    async def check(tier: str | None) -> grpc.StatusCode:
        creds = (
            TlsIdentity.from_pki(files, tier).channel_credentials()
            if tier
            else grpc.ssl_channel_credentials(root_certificates=files.ca.read_bytes())
        )
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as ch:
            try:
                assert await ch.unary_unary("/probe.Svc/Call")(b"", timeout=5) == b"ok"
            except grpc.aio.AioRpcError as err:
                return err.code()
        return grpc.StatusCode.OK

    try:
        assert await check("gateway") == grpc.StatusCode.OK
        assert await check("tools") == grpc.StatusCode.PERMISSION_DENIED
        assert await check("runtime") == grpc.StatusCode.PERMISSION_DENIED
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{port}", TlsIdentity.from_pki(files, "tools").channel_credentials()
        ) as ch:
            ok = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
            assert ok.status == health_pb2.HealthCheckResponse.SERVING  # probes stay open
        assert await check(None) == grpc.StatusCode.UNAVAILABLE  # no certificate: no handshake
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), timeout=3
                )
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # plaintext: refused
    finally:
        await server.stop(0)


def test_a_run_keeps_its_tenant_token_and_clients_never_see_it() -> None:
    """The token rides in the run's record (an adopted run resumes with it) and in its
    config (graph code, workers); what leaves the runtime for clients has it scrubbed."""
    from mesh_core.adapters.redis.records import RunRecord
    from mesh_core.security import CONFIG_KEY_TENANT_TOKEN
    from runtime_svc.runs import RunRequest
    from runtime_svc.visibility import public_payload

    req = RunRequest("acme", "r1", "t1", "agent", tenant_token="tok")
    assert "tok" not in repr(req)
    rec = RunRecord("r1", "acme", "t1", "agent", spec=req.to_spec())
    assert RunRequest.from_record(rec).tenant_token == "tok"
    event = {"config": {"configurable": {CONFIG_KEY_TENANT_TOKEN: "tok", "x": 1}}}
    assert public_payload(event, "t1", "acme:t1") == {"config": {"configurable": {"x": 1}}}
    # not persisted either: LangGraph copies configurable strings into checkpoint metadata
    from langgraph.checkpoint.base import get_checkpoint_metadata

    config: Any = {"configurable": {CONFIG_KEY_TENANT_TOKEN: "tok", "x": "y"}}
    assert get_checkpoint_metadata(config, {}) == {"x": "y"}


def test_internal_security_flags_say_what_is_wrong(tmp_path: Path) -> None:
    files = issue_dev_pki(tmp_path / "pki", tiers=("runtime",))
    tls = {
        "ca": str(files.ca),
        "cert": str(files.cert("runtime")),
        "key": str(files.key("runtime")),
    }
    assert not InternalSecurity.from_flags().enabled
    with pytest.raises(ValueError, match="go together"):
        InternalSecurity.from_flags(ca=tls["ca"])
    with pytest.raises(ValueError, match="need mutual TLS"):
        InternalSecurity.from_flags(token_public_key=str(files.token_public))
    with pytest.raises(ValueError, match="--tenant-token-public-key"):
        InternalSecurity.from_flags(**tls)
    with pytest.raises(ValueError, match="--tenant-token-key"):
        InternalSecurity.from_flags(**tls, issues_tokens=True)
    with pytest.raises(ValueError, match="does not exist"):
        InternalSecurity.from_flags(**{**tls, "cert": str(tmp_path / "nope.pem")})
    sec = InternalSecurity.from_flags(**tls, token_public_key=str(files.token_public))
    assert sec.enabled and sec.verifier is not None and sec.issuer is None


def test_gateway_tokens_live_as_long_as_what_they_are_for(tmp_path: Path) -> None:
    import time

    from gateway._tokens import CALL_TOKEN_TTL, RUN_TOKEN_SLACK, TenantTokens
    from mesh_core.limits import LimitsTable

    files = issue_dev_pki(tmp_path / "pki", tiers=())
    verifier = TenantTokenVerifier.from_file(files.token_public)
    limits = LimitsTable()
    tokens = TenantTokens(TenantTokenIssuer.from_file(files.token_private), limits)
    ((header, call),) = tokens.call("acme")
    assert header == "x-lgmesh-tenant-token" and tokens.call("acme") == ((header, call),)
    assert verifier.verify(call).expires <= time.time() + CALL_TOKEN_TTL + 1
    run = verifier.verify(tokens.run_token("acme", "r1", delay=600))
    lifetime = 600 + limits.for_tenant("acme").max_run_seconds + RUN_TOKEN_SLACK
    assert (run.tenant, run.run_id) == ("acme", "r1")
    assert run.expires >= time.time() + lifetime - 5
    assert TenantTokens(None, limits).call("acme") == ()
    assert TenantTokens(None, limits).run_token("acme", "r1") == ""


async def test_a_verified_token_is_remembered_until_it_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from mesh_core.security import TENANT_TOKEN_HEADER, verified_tenant

    files = issue_dev_pki(tmp_path / "pki", tiers=())
    verifier = TenantTokenVerifier.from_file(files.token_public)
    policy = CallerPolicy({}, tenant_scoped={"/x.Y/Z"}, verifier=verifier)
    token = TenantTokenIssuer.from_file(files.token_private).issue("acme", ttl=60)

    class Refused(Exception):
        pass

    class Context:
        def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
            return ((TENANT_TOKEN_HEADER, token),)

        async def abort_with_status(self, status: grpc.Status) -> None:
            raise Refused(status.code)

    calls = []
    real_verify = verifier.verify
    monkeypatch.setattr(verifier, "verify", lambda t: calls.append(t) or real_verify(t))
    for _ in range(3):
        await policy._check_tenant(None, Context())
        claims = verified_tenant()
        assert claims is not None and claims.tenant == "acme"
    assert len(calls) == 1  # checked once, remembered
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Refused) as info:
        await policy._check_tenant(None, Context())
    assert info.value.args[0] == grpc.StatusCode.UNAUTHENTICATED

"""Bad bytes and bad JSON get INVALID_ARGUMENT with the field, never UNKNOWN or INTERNAL."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2

from gateway.auth import ApiKeyAuth
from mesh_core.errors import InvalidArgumentError, UnauthenticatedError
from mesh_core.jsonvalue import from_struct, from_value, parse_json, to_value
from mesh_core.rpc import MeshServer


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_refused_with_their_path(bad: float) -> None:
    v = struct_pb2.Value()
    v.struct_value.fields["a"].list_value.values.add().number_value = 1
    v.struct_value.fields["a"].list_value.values.add().number_value = bad
    with pytest.raises(InvalidArgumentError) as info:
        from_value(v, "run.input")
    assert info.value.violations[0].field == "run.input.a[1]"
    s = struct_pb2.Struct()
    s.fields["x"].number_value = bad
    with pytest.raises(InvalidArgumentError, match=r"run\.config\.x"):
        from_struct(s, "run.config")
    assert from_value(to_value({"a": [1, 2.5]})) == {"a": [1, 2.5]}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("NaN", "not valid JSON"),
        ('{"a": Infinity}', "not valid JSON"),
        ("[" * 5000 + "]" * 5000, "nested deeper"),
        ("[" * 150 + "]" * 150, "nested deeper"),
        ("{bad", "not valid JSON"),
    ],
)
def test_parse_json_refuses_what_json_cannot_carry(text: str, problem: str) -> None:
    with pytest.raises(InvalidArgumentError, match=problem) as info:
        parse_json(text, "arguments_json")
    assert info.value.violations[0].field == "arguments_json"


def test_parse_json_accepts_plain_json() -> None:
    assert parse_json('{"a": [1, {"b": null}]}', "f") == {"a": [1, {"b": None}]}
    assert parse_json("[" * 99 + "]" * 99, "f") is not None


def test_conflicting_credentials_are_refused() -> None:
    auth = ApiKeyAuth.from_sources(None, "acme=A,beta=B")
    assert auth.authenticate([("authorization", "Bearer A"), ("x-api-key", "A")]) == "acme"
    with pytest.raises(UnauthenticatedError) as info:
        auth.authenticate([("authorization", "Bearer B"), ("x-api-key", "A")])
    assert info.value.reason == "API_KEY_CONFLICT"


async def test_undecodable_requests_get_invalid_argument() -> None:
    from grpc_health.v1 import health_pb2

    server = MeshServer("t", "127.0.0.1:0")
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary("/grpc.health.v1.Health/Check")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(b"\x0a\x05\xff\xfe\xfd\xfc\xfb")  # a string field, invalid UTF-8
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "could not be decoded" in (info.value.details() or "")
            assert "DecodeError" not in (info.value.details() or "")
            ok = await ch.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )(health_pb2.HealthCheckRequest())
            assert ok.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(0)

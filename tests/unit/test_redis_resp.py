"""The lean Redis client's RESP encoder and parser (pure functions)."""

from __future__ import annotations

import pytest
from redis.exceptions import NoScriptError, ResponseError

from mesh_core.adapters.redis._lean import _Incomplete, _parse, pack_command


def test_pack_command_is_an_array_of_bulk_strings() -> None:
    assert (
        pack_command("SET", b"k", 1, "é")
        == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$2\r\n\xc3\xa9\r\n"
    )


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"+OK\r\n", b"OK"),
        (b":42\r\n", 42),
        (b"$-1\r\n", None),
        (b"$0\r\n\r\n", b""),
        (b"$5\r\nhe\r\no\r\n", b"he\r\no"),  # CRLF inside a bulk string
        (b"*-1\r\n", None),
        (b"*3\r\n$1\r\na\r\n:1\r\n*1\r\n$-1\r\n", [b"a", 1, [None]]),
    ],
)
def test_parse_values(raw: bytes, value: object) -> None:
    assert _parse(raw, 0) == (value, len(raw))


def test_error_replies_become_exceptions_of_redis_py() -> None:
    err, _ = _parse(b"-ERR boom\r\n", 0)
    assert isinstance(err, ResponseError) and str(err) == "ERR boom"
    noscript, _ = _parse(b"-NOSCRIPT No matching script\r\n", 0)
    assert isinstance(noscript, NoScriptError)


@pytest.mark.parametrize("raw", [b"+OK", b"$5\r\nhel", b"*2\r\n:1\r\n", b":"])
def test_partial_replies_wait_for_more_data(raw: bytes) -> None:
    with pytest.raises(_Incomplete):
        _parse(raw, 0)

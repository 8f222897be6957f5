"""Scripts over lean, pipelined connections: the hot path of every run.

Every write a run makes (checkpoints, task writes, run records) is one Lua script call.
redis-py spends ~140 µs of CPU per call on a connection-pool checkout, a command
encoder, a stream reader and several awaits; on a busy 2-core machine each await is
also a chance to lose the GIL to another thread. :class:`LeanScripts` sends
``EVALSHA`` over a few asyncio connections of its own: the command is packed into one
``transport.write``, replies are parsed as they arrive and handed to the waiting
future in order (pipelining), ~25 µs per call (``bench/redis_client.py``).

Everything else (pipelines, reads, admin commands) stays on redis-py. Errors are
redis-py's own exception types, so retries (``mesh_core.retry``) and error mapping
are unchanged: ``ConnectionError`` when a connection drops (every call in flight on
it fails and may be retried: the scripts are idempotent), ``TimeoutError`` when a
reply is overdue, ``ResponseError`` / ``NoScriptError`` for error replies (a missing
script is loaded again with ``EVAL``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlparse

from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    NoScriptError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["LeanScript", "LeanScripts"]

_CRLF = b"\r\n"


def _encode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int | float):
        return repr(value).encode()
    return str(value).encode()


def pack_command(*args: Any) -> bytes:
    """RESP array of bulk strings (one buffer: one write)."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = _encode(a)
        parts.append(b"$%d\r\n" % len(b))
        parts.append(b)
        parts.append(_CRLF)
    return b"".join(parts)


class _Incomplete(Exception):
    pass


def _parse(buf: bytearray | bytes, pos: int) -> tuple[Any, int]:
    """One RESP2 reply from ``buf`` at ``pos``: (value, next pos); _Incomplete if partial.
    Error replies are returned as ResponseError instances (raised by the caller)."""
    end = buf.find(_CRLF, pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    line = bytes(buf[pos + 1 : end])
    nxt = end + 2
    if kind == 0x24:  # $ bulk string
        n = int(line)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            raise _Incomplete
        return bytes(buf[nxt : nxt + n]), nxt + n + 2
    if kind == 0x2B:  # + simple string
        return line, nxt
    if kind == 0x3A:  # : integer
        return int(line), nxt
    if kind == 0x2A:  # * array
        n = int(line)
        if n < 0:
            return None, nxt
        out = []
        for _ in range(n):
            item, nxt = _parse(buf, nxt)
            out.append(item)
        return out, nxt
    if kind == 0x2D:  # - error
        text = line.decode(errors="replace")
        return (NoScriptError(text) if text.startswith("NOSCRIPT") else ResponseError(text)), nxt
    raise ConnectionError(f"unexpected reply type {chr(kind)!r} from Redis")


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.buf = bytearray()
        self.closed = asyncio.Event()
        self.error: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        try:
            while self.waiting and pos < len(buf):
                try:
                    value, pos = _parse(buf, pos)
                except _Incomplete:
                    break
                fut = self.waiting.popleft()
                if fut.done():
                    continue
                if isinstance(value, ResponseError):
                    fut.set_exception(value)
                else:
                    fut.set_result(value)
        except (ValueError, ConnectionError) as exc:
            self._fail(ConnectionError(f"bad reply from Redis: {exc}"))
            if self.transport is not None:
                self.transport.close()
            return
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError("Redis connection lost"))
        self.closed.set()

    def _fail(self, exc: Exception) -> None:
        self.error = exc
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(exc)

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def send(self, payload: bytes) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self.usable:
            fut.set_exception(self.error or ConnectionError("Redis connection closed"))
            return fut
        self.waiting.append(fut)
        assert self.transport is not None
        self.transport.write(payload)
        return fut


class LeanScripts:
    """EVALSHA over ``size`` pipelined connections to the server in ``url``."""

    def __init__(
        self,
        url: str,
        *,
        size: int = 4,
        socket_timeout: float = 5.0,
        connect_timeout: float = 2.0,
    ) -> None:
        u = urlparse(url)
        if u.scheme not in ("redis", ""):
            raise ValueError(f"lean scripts need a redis:// URL, not {u.scheme}://")
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 6379
        self.username = unquote(u.username) if u.username else None
        self.password = unquote(u.password) if u.password else None
        path = (u.path or "/").strip("/")
        self.db = int(path) if path else 0
        self.size = size
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self._conns: list[_Connection | None] = [None] * size
        self._connecting: list[asyncio.Future[_Connection] | None] = [None] * size
        self._watchdog: asyncio.Task[None] | None = None
        self._closed = False

    async def _connect(self, i: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(_Connection, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(
                f"cannot connect to Redis at {self.host}:{self.port}: {type(exc).__name__}"
            ) from exc
        setup = []
        if self.password is not None:
            args = (
                ["AUTH", self.username, self.password]
                if self.username
                else [
                    "AUTH",
                    self.password,
                ]
            )
            setup.append(conn.send(pack_command(*args)))
        if self.db:
            setup.append(conn.send(pack_command("SELECT", self.db)))
        try:
            async with asyncio.timeout(self.socket_timeout):
                for fut in setup:
                    await fut
        except ResponseError as exc:
            if conn.transport is not None:
                conn.transport.close()
            raise AuthenticationError("Redis refused the credentials") from exc
        self._conns[i] = conn
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch())
        return conn

    async def _conn(self) -> _Connection:
        # the usable connection with the fewest calls in flight; connect one if needed
        best: _Connection | None = None
        free = -1
        for i, c in enumerate(self._conns):
            if c is not None and c.usable:
                if best is None or len(c.waiting) < len(best.waiting):
                    best = c
            elif free < 0:
                free = i
        if best is not None and (not best.waiting or free < 0):
            return best
        i = free
        pending = self._connecting[i]
        if pending is None:
            pending = asyncio.ensure_future(self._connect(i))
            self._connecting[i] = pending

            def forget(_f: asyncio.Future[_Connection], i: int = i) -> None:
                self._connecting[i] = None

            pending.add_done_callback(forget)
        return await asyncio.shield(pending)

    async def _watch(self) -> None:
        """Close a connection whose oldest call waits past the timeout (its calls fail
        with TimeoutError, the next call reconnects)."""
        ages: dict[int, tuple[int, float]] = {}
        loop = asyncio.get_running_loop()
        while not self._closed:
            await asyncio.sleep(min(1.0, self.socket_timeout / 2))
            now = loop.time()
            for i, c in enumerate(self._conns):
                if c is None or not c.waiting:
                    ages.pop(i, None)
                    continue
                head = id(c.waiting[0])
                seen = ages.get(i)
                if seen is None or seen[0] != head:
                    ages[i] = (head, now)
                elif now - seen[1] > self.socket_timeout:
                    c._fail(RedisTimeoutError("Redis did not answer in time"))
                    if c.transport is not None:
                        c.transport.close()
                    ages.pop(i, None)

    async def evalsha(self, sha: str, script: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        conn = await self._conn()
        try:
            return await conn.send(pack_command("EVALSHA", sha, len(keys), *keys, *args))
        except NoScriptError:  # a restarted server forgot it: EVAL loads it again
            conn = await self._conn()
            return await conn.send(pack_command("EVAL", script, len(keys), *keys, *args))

    async def aclose(self) -> None:
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(BaseException):
                await self._watchdog
        for c in self._conns:
            if c is not None and c.transport is not None:
                c.transport.close()
        self._conns = [None] * self.size


class LeanScript:
    """A Lua script called like redis-py's ``Script``: ``await script(keys=..., args=...)``.

    With ``client=`` (a pipeline), the call is queued on it as redis-py would.
    """

    def __init__(self, lean: LeanScripts, fallback: Any, script: str) -> None:
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()
        self._lean = lean
        self._fallback = fallback  # redis-py's Script, for pipelines

    async def __call__(
        self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None
    ) -> Any:
        if client is not None:
            return await self._fallback(keys=keys, args=args, client=client)
        return await self._lean.evalsha(self.sha, self.script, keys, args)

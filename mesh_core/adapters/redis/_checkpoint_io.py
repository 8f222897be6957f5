"""Plumbing of the Redis checkpointer: script registry, error mapping, connections."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

import redis
import redis.asyncio as aredis
from langgraph.checkpoint.serde.base import SerializerProtocol
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mesh_core.adapters.redis import _checkpoint_lua as lua
from mesh_core.errors import FailedPreconditionError, StaleOwnerError, UnavailableError

__all__ = ["SaverConnection", "Scripts", "check_bytes_client", "ns_bounds", "redis_errors"]


class _Setup(Protocol):
    async def asetup(self) -> None: ...


S = TypeVar("S", bound=_Setup)


@dataclass(frozen=True)
class Scripts:
    put: Any
    put_step: Any
    put_writes: Any
    bump: Any
    get: Any
    fix_latest: Any
    delete_for_runs: Any
    prune: Any
    prune_keep_last: Any
    delete_fenced: Any

    @classmethod
    def register(cls, client: Any) -> Scripts:
        return cls(
            put=client.register_script(lua.PUT),
            put_step=client.register_script(lua.PUT_STEP),
            put_writes=client.register_script(lua.PUT_WRITES),
            bump=client.register_script(lua.BUMP_FENCE),
            get=client.register_script(lua.GET_TUPLE),
            fix_latest=client.register_script(lua.FIX_LATEST),
            delete_for_runs=client.register_script(lua.DELETE_FOR_RUNS),
            prune=client.register_script(lua.PRUNE_KEEP_LATEST),
            prune_keep_last=client.register_script(lua.PRUNE_KEEP_LAST),
            delete_fenced=client.register_script(lua.DELETE_THREAD_FENCED),
        )

    def all(self) -> list[Any]:
        return [
            self.put,
            self.put_step,
            self.put_writes,
            self.bump,
            self.get,
            self.fix_latest,
            self.delete_for_runs,
            self.prune,
            self.prune_keep_last,
            self.delete_fenced,
        ]


@contextlib.contextmanager
def redis_errors(thread_id: str = "", token: str = "") -> Iterator[None]:
    """Map Redis failures onto the mesh's error tree (never swallowed)."""
    try:
        yield
    except ResponseError as exc:
        text = str(exc)
        if text.startswith(lua.STALE_MARKER):
            stored = text[len(lua.STALE_MARKER) :].strip()
            raise StaleOwnerError(
                f"thread {thread_id!r} is owned by a newer holder "
                f"(fencing token {token} < {stored})",
                metadata={"thread_id": thread_id, "token": token, "stored_token": stored},
            ) from None
        raise
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise UnavailableError("checkpoint store unavailable") from exc


def check_bytes_client(client: Any, name: str) -> None:
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", {}) or {}
    if kwargs.get("decode_responses"):
        raise FailedPreconditionError(f"{name} must be created with decode_responses=False")


def ns_bounds(ns: str, before: str | None) -> tuple[bytes, bytes]:
    nsb = ns.encode()
    hi = b"(" + nsb + b"\x00" + before.encode() if before else b"[" + nsb + b"\x00\xff"
    return hi, b"[" + nsb + b"\x00"


class SaverConnection(Generic[S]):
    """What ``MeshCheckpointer.from_conn_string`` returns: use ``with`` or ``async with``."""

    def __init__(
        self,
        cls: Callable[..., S],
        url: str,
        *,
        prefix: str,
        ttl: float | None,
        serde: SerializerProtocol | None,
    ) -> None:
        self._cls, self._url = cls, url
        self._prefix, self._ttl, self._serde = prefix, ttl, serde
        self._async: aredis.Redis | None = None
        self._sync: redis.Redis | None = None

    def _open(self) -> S:
        self._async = aredis.Redis.from_url(self._url)
        self._sync = redis.Redis.from_url(self._url)
        return self._cls(
            self._async,
            prefix=self._prefix,
            ttl=self._ttl,
            serde=self._serde,
            sync_redis=self._sync,
        )

    def __enter__(self) -> S:
        return self._open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sync is not None:
            self._sync.close()
        self._async = self._sync = None

    async def __aenter__(self) -> S:
        saver = self._open()
        try:
            await saver.asetup()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return saver

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._async is not None:
            await self._async.aclose()
        if self._sync is not None:
            self._sync.close()
        self._async = self._sync = None

"""The synchronous client (langgraph_sdk's ``get_sync_client``): the async client run on
a private event loop thread, every method and stream proxied to it.

One implementation serves both, so the sync client can never drift from the async one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

from mesh_client._client import MeshClient

__all__ = ["SyncMeshClient", "get_sync_client"]


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="mesh-client", daemon=True
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def iterate(self, agen: AsyncIterator[Any]) -> Iterator[Any]:
        it = aiter(agen)
        try:
            while True:
                try:
                    yield self.run(_next(it))
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(it, "aclose", None)
            if close is not None:
                self.run(close())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


async def _next(it: AsyncIterator[Any]) -> Any:
    return await anext(it)


class _SyncResource:
    def __init__(self, resource: Any, loop: _Loop) -> None:
        self._resource = resource
        self._loop = loop

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._resource, name)
        if name.startswith("_") or not callable(method):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = self._loop.run(_invoke(method, args, kwargs))
            if hasattr(result, "__aiter__"):
                return self._loop.iterate(result)
            return result

        call.__name__ = name
        call.__doc__ = method.__doc__
        return call


async def _invoke(method: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    result = method(*args, **kwargs)
    if asyncio.iscoroutine(result):
        return await result
    return result  # an async iterator (stream, join_stream): iterated by the caller


class SyncMeshClient:
    """``client.threads``, ``client.runs``, ``client.assistants`` with blocking methods;
    streams are plain iterators."""

    def __init__(self, url: str, api_key: str, *, ca_file: str | None = None) -> None:
        self._loop = _Loop()
        self._client: MeshClient = self._loop.run(_make(url, api_key, ca_file))
        self.threads = _SyncResource(self._client.threads, self._loop)
        self.runs = _SyncResource(self._client.runs, self._loop)
        self.assistants = _SyncResource(self._client.assistants, self._loop)

    def close(self) -> None:
        self._loop.run(self._client.close())
        self._loop.close()

    def __enter__(self) -> SyncMeshClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _make(url: str, api_key: str, ca_file: str | None) -> MeshClient:
    return MeshClient(url, api_key, ca_file=ca_file)  # its channel belongs to the client's loop


def get_sync_client(
    *, url: str = "127.0.0.1:50051", api_key: str, ca_file: str | None = None
) -> SyncMeshClient:
    return SyncMeshClient(url, api_key, ca_file=ca_file)

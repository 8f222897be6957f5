"""An etcd client that stays authenticated.

With auth enabled, etcd hands out a token at ``Authenticate`` that expires
(``--auth-token-ttl``, 5 minutes by default) and is forgotten when etcd restarts.
aetcd authenticates once, at connect. :class:`MeshEtcdClient` authenticates again
every ``refresh_every`` seconds and at once when etcd rejects the token (the call that
met the rejection fails as ``UnavailableError``, which every etcd caller retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aetcd

__all__ = ["MeshEtcdClient"]

log = logging.getLogger(__name__)


class MeshEtcdClient(aetcd.Client):
    def __init__(self, *args: Any, refresh_every: float = 60.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refresh_every = refresh_every
        self._refresher: asyncio.Task[None] | None = None
        self._stale: asyncio.Event | None = None

    @property
    def authenticating(self) -> bool:
        return self._username is not None and self._password is not None

    async def connect(self) -> None:
        await super().connect()
        if self.authenticating and self._refresher is None:
            self._stale = asyncio.Event()
            self._refresher = asyncio.create_task(self._refresh_loop(), name="etcd-auth")

    def token_rejected(self) -> None:
        """etcd refused the token (restarted, or it expired): authenticate again now."""
        if self._stale is not None:
            self._stale.set()

    async def reauthenticate(self) -> None:
        resp = await self.auth_stub.Authenticate(
            aetcd.rpc.AuthenticateRequest(name=self._username, password=self._password),
            timeout=self._timeout,
        )
        self.metadata = (("token", resp.token),)
        if self._watcher is not None:  # new watches carry the new token
            self._watcher._metadata = self.metadata

    async def _refresh_loop(self) -> None:
        assert self._stale is not None
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stale.wait(), self._refresh_every)
            self._stale.clear()
            try:
                await self.reauthenticate()
                failures = 0
            except Exception as exc:  # etcd away: try again soon
                failures += 1
                if failures in (1, 10):
                    log.warning("etcd authentication failed (%s); retrying", type(exc).__name__)
                self._stale.set()
                await asyncio.sleep(min(2.0, 0.2 * failures))

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(BaseException):
                await self._refresher
            self._refresher = None
        await super().close()

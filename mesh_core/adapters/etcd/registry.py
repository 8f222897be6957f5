"""The runtime registry: live runtimes under their session lease, for the gateway's placement.

Each runtime puts ``/<prefix>/runtimes/<runtime_id>`` (JSON: address, capacity,
running, roles) bound to its session lease, so a dead runtime drops out of the
list within its TTL without anyone cleaning up.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass

import aetcd

from mesh_core.adapters.etcd.keys import EtcdKeys
from mesh_core.adapters.etcd.session import EtcdSession, translate_etcd_errors
from mesh_core.errors import FailedPreconditionError

__all__ = ["RuntimeInfo", "RuntimeRegistry", "list_runtimes"]

log = logging.getLogger(__name__)

DEFAULT_ROLES: tuple[str, ...] = ("owner", "worker")


@dataclass(frozen=True)
class RuntimeInfo:
    """A live runtime as the gateway sees it.

    Attributes:
        runtime_id: unique per process (also its thread-lease holder id).
        address: where its internal gRPC server listens (``host:port``).
        capacity: how many runs it takes at once (0 = none).
        running: how many runs it has now.
        roles: ``"owner"`` and/or ``"worker"``.
        serving: False while it cannot do its job (Redis or NATS unreachable); peers
            use it to decide who should take a thread over.
        serving_since: wall-clock time it last started serving (0: unknown).
    """

    runtime_id: str
    address: str
    capacity: int
    running: int = 0
    roles: tuple[str, ...] = DEFAULT_ROLES
    serving: bool = True
    serving_since: float = 0.0

    @property
    def has_room(self) -> bool:
        return self.serving and self.running < self.capacity

    def encode(self) -> bytes:
        data = dataclasses.asdict(self)
        data["roles"] = list(self.roles)
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> RuntimeInfo:
        """Parse a registry value; ValueError if it is not one."""
        try:
            data = json.loads(raw)
            return cls(
                runtime_id=str(data["runtime_id"]),
                address=str(data["address"]),
                capacity=int(data["capacity"]),
                running=int(data["running"]),
                roles=tuple(str(r) for r in data["roles"]),
                serving=bool(data.get("serving", True)),
                serving_since=float(data.get("serving_since", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("malformed runtime registry entry") from exc


async def list_runtimes(client: aetcd.Client, keys: EtcdKeys) -> list[RuntimeInfo]:
    """Every registered runtime, sorted by id (for readers without a session, e.g. the gateway).

    Entries that do not parse are logged and left out.
    """
    with translate_etcd_errors("runtime registry list", client):
        found = await client.get_prefix(keys.runtimes_prefix.encode())
    out: list[RuntimeInfo] = []
    for kv in found:
        try:
            out.append(RuntimeInfo.decode(kv.value))
        except ValueError:
            log.warning(
                "skipping malformed runtime registry entry %r", kv.key.decode(errors="replace")
            )
    out.sort(key=lambda r: r.runtime_id)
    return out


class RuntimeRegistry:
    """This process's entry in the registry, plus reading everyone's."""

    def __init__(self, session: EtcdSession, prefix: str | None = None) -> None:
        self.session = session
        self.keys = EtcdKeys(session.settings.prefix if prefix is None else prefix)
        self._info: RuntimeInfo | None = None

    @property
    def info(self) -> RuntimeInfo | None:
        """What this process last registered (None before ``register``/after ``deregister``)."""
        return self._info

    async def _put(self, info: RuntimeInfo) -> None:
        gen = self.session.require_valid("register in the runtime registry")
        with self.session.lease_bound("runtime registry put", gen):
            await self.session.client.put(
                self.keys.runtime(info.runtime_id).encode(), info.encode(), lease=gen.lease_id
            )

    async def register(self, info: RuntimeInfo) -> None:
        """Publish this runtime, bound to the session lease."""
        await self._put(info)
        self._info = info

    async def update(self, **changes: object) -> None:
        """Publish new figures (``running=``, ``serving=``)."""
        if self._info is None:
            raise FailedPreconditionError("runtime is not registered")
        info = dataclasses.replace(self._info, **changes)  # type: ignore[arg-type]
        await self._put(info)
        self._info = info

    async def list(self) -> list[RuntimeInfo]:
        return await list_runtimes(self.session.client, self.keys)

    async def deregister(self) -> None:
        """Remove this runtime's entry (e.g. while draining). No-op if not registered."""
        if self._info is None:
            return
        with translate_etcd_errors("runtime registry delete", self.session.client):
            await self.session.client.delete(self.keys.runtime(self._info.runtime_id).encode())
        self._info = None

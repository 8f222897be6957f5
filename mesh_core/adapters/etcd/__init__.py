"""etcd adapters: key names, the process session (lease + self-fencing), thread leases, registry."""

from mesh_core.adapters.etcd.keys import EtcdKeys
from mesh_core.adapters.etcd.leases import ThreadLease, ThreadLeases, ThreadOwner, read_thread_owner
from mesh_core.adapters.etcd.registry import RuntimeInfo, RuntimeRegistry, list_runtimes
from mesh_core.adapters.etcd.session import (
    DEFAULT_MARGIN,
    DEFAULT_TTL,
    SESSION_LOST,
    EtcdSession,
    new_etcd_client,
)

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_TTL",
    "SESSION_LOST",
    "EtcdKeys",
    "EtcdSession",
    "RuntimeInfo",
    "RuntimeRegistry",
    "ThreadLease",
    "ThreadLeases",
    "ThreadOwner",
    "list_runtimes",
    "new_etcd_client",
    "read_thread_owner",
]

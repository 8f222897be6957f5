"""Every etcd key the mesh uses, in one place.

All keys live under ``/<prefix>/`` so several meshes (and parallel test runs) can
share one etcd. Keys are ``str`` here; the adapters encode them as UTF-8.

Layout::

    /<prefix>/threads/<thread_id>      owner of a thread; bound to the owner's process
                                       lease; its create_revision is the fencing token
    /<prefix>/runtimes/<runtime_id>    a live runtime (address, capacity, load, roles);
                                       bound to that runtime's process lease
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EtcdKeys"]


def _check_part(kind: str, value: str) -> str:
    if not value:
        raise ValueError(f"{kind} must not be empty")
    if "\x00" in value:
        raise ValueError(f"{kind} must not contain NUL characters")
    return value


@dataclass(frozen=True)
class EtcdKeys:
    prefix: str

    @property
    def root(self) -> str:
        """Everything of this mesh (``/<prefix>/``)."""
        return f"/{self.prefix}/"

    # -- thread ownership ------------------------------------------------------------
    @property
    def threads_prefix(self) -> str:
        return f"{self.root}threads/"

    def thread_owner(self, thread_id: str) -> str:
        """Owner of one thread; exists only while a runtime holds the thread."""
        return self.threads_prefix + _check_part("thread_id", thread_id)

    def thread_id_of(self, key: str) -> str:
        """Inverse of :meth:`thread_owner`."""
        if not key.startswith(self.threads_prefix):
            raise ValueError("not a thread owner key of this mesh")
        return key[len(self.threads_prefix) :]

    # -- runtime registry --------------------------------------------------------------
    @property
    def runtimes_prefix(self) -> str:
        return f"{self.root}runtimes/"

    def runtime(self, runtime_id: str) -> str:
        """A live runtime's registration."""
        return self.runtimes_prefix + _check_part("runtime_id", runtime_id)

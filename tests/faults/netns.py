"""Several hosts on one machine: a bridge in the test's own network namespace layout.

The bridge carries one address per backend (etcd, Redis, NATS each bind their own), so a
runtime in its own namespace can be cut from exactly one backend with a blackhole route
(established connections stall, new ones fail, as in a real partition) and healed by
deleting the route. Everything is created fresh with random names and removed at the
end; it needs root and iproute2 (tests skip, naming what is missing, without them).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["Topology", "missing_prerequisite", "topology"]


def missing_prerequisite() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` command is not on PATH"
    probe = f"lgmprobe{random.randrange(1 << 20):x}"
    try:
        subprocess.run(["ip", "netns", "add", probe], check=True, capture_output=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"`ip netns add` failed: {getattr(exc, 'stderr', b'') or exc!r}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    subprocess.run(cmd, check=True, capture_output=True)


@dataclass
class Topology:
    tag: str
    subnet: str  # e.g. "10.213.45"
    backends: dict[str, str] = field(default_factory=dict)  # name -> address on the bridge
    namespaces: dict[str, str] = field(default_factory=dict)  # ns -> its address
    _links: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"lgmbr{self.tag}"

    def add_host(self, name: str) -> tuple[str, str]:
        """A namespace with one veth on the bridge; returns (namespace, its address)."""
        n = len(self.namespaces) + 1
        ns = f"lgm{self.tag}{name}"
        host_end, ns_end = f"lgm{self.tag}h{n}", f"lgm{self.tag}n{n}"
        address = f"{self.subnet}.{20 + n}"
        _ip("netns", "add", ns)
        self.namespaces[ns] = address
        _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        self._links.append(host_end)
        _ip("link", "set", host_end, "master", self.bridge)
        _ip("link", "set", host_end, "up")
        _ip("link", "set", ns_end, "netns", ns)
        _ip("addr", "add", f"{address}/24", "dev", ns_end, ns=ns)
        _ip("link", "set", ns_end, "up", ns=ns)
        _ip("link", "set", "lo", "up", ns=ns)
        return ns, address

    def cut(self, ns: str, backend: str) -> None:
        _ip("route", "add", "blackhole", f"{self.backends[backend]}/32", ns=ns)

    def heal(self, ns: str, backend: str) -> None:
        _ip("route", "del", "blackhole", f"{self.backends[backend]}/32", ns=ns)

    def wrapper(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]


@contextlib.contextmanager
def topology(backends: tuple[str, ...] = ("etcd", "redis", "nats")) -> Iterator[Topology]:
    tag = f"{random.randrange(1 << 16):04x}"
    topo = Topology(tag=tag, subnet=f"10.{random.randrange(200, 250)}.{random.randrange(256)}")
    try:
        _ip("link", "add", topo.bridge, "type", "bridge")
        # The primary address (added first) is the source of everything else this host
        # sends over the bridge, so cutting a backend's address cuts only that backend.
        _ip("addr", "add", f"{topo.subnet}.254/24", "dev", topo.bridge)
        for i, name in enumerate(backends, start=1):
            address = f"{topo.subnet}.{i}"
            _ip("addr", "add", f"{address}/24", "dev", topo.bridge)
            topo.backends[name] = address
        _ip("link", "set", topo.bridge, "up")
        yield topo
    finally:
        for ns in topo.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for link in topo._links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        subprocess.run(["ip", "link", "del", topo.bridge], capture_output=True)

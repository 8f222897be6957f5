"""A whole mesh as real processes (gateways + runtimes) over the fixture's servers."""

from __future__ import annotations

import os
from pathlib import Path

from mesh_cli.launcher import ServiceProcess, free_port
from mesh_client import MeshClient
from mesh_core.localservers import LocalServers
from mesh_core.security import (
    PLAINTEXT,
    TENANT_TOKEN_HEADER,
    InternalSecurity,
    TenantTokenIssuer,
    TlsIdentity,
    issue_dev_pki,
)

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = str(Path(__file__).with_name("graphs.yaml"))
LIMITS = str(Path(__file__).with_name("limits.yaml"))
LIMITS_TENANTS = (
    "bulk",
    "q-conc",
    "q-rate",
    "q-streams",
    "q-time",
    "q-deep",
    "q-sends",
    "q-state",
    "q-share",
)
# ``fuzz``: tests/e2e/test_fuzz.py's own tenant (whatever it creates stays there).
API_KEYS = ",".join(
    ["acme=acme-key", "beta=beta-key", "fuzz=fuzz-key", *(f"{t}={t}-key" for t in LIMITS_TENANTS)]
)
#: a backend user's tier -> the tier of its certificate
_CERT_TIER = {"llm": "llm-gateway"}


class MeshCluster:
    def __init__(
        self,
        infra: LocalServers,
        prefix: str,
        tmp: Path,
        *,
        graphs: str = GRAPHS,
        lease_ttl: int = 3,
        extra_env: dict[str, str] | None = None,
        echo: bool = False,
        metrics: bool = False,
        tls: bool = True,
    ) -> None:
        """``tls``: every internal hop over mutual TLS with tenant tokens (a throwaway
        PKI in ``tmp/pki``), as deployed; False only for a plaintext baseline (bench)."""
        self.infra = infra
        self.pki = issue_dev_pki(tmp / "pki") if tls else None
        self.prefix = prefix
        self.tmp = tmp
        self.graphs = graphs
        self.lease_ttl = lease_ttl
        # Each service runs as its tier's own backend user (least privilege, as deployed);
        # test instrumentation inside graphs uses the admin's Redis (LGMESH_TEST_REDIS_URL).
        self.env = {
            "LGMESH_TEST_REDIS_URL": infra.redis_url,
            "LGMESH_PREFIX": prefix,
            "LGMESH_API_KEYS": API_KEYS,
            "LGMESH_TENANT_LIMITS": LIMITS,
            **(extra_env or {}),
        }
        self.runtimes: list[ServiceProcess] = []
        self.gateways: list[ServiceProcess] = []
        self.others: list[ServiceProcess] = []
        self.metrics = metrics
        self.metrics_ports: dict[str, int] = {}
        self._clients: list[MeshClient] = []
        self._echo = print if echo or os.environ.get("LGMESH_TEST_ECHO") else None

    def env_for(self, tier: str) -> dict[str, str]:
        """The environment of a ``tier`` process: the cluster's, with that tier's URLs
        and certificate (``llm``: the LLM gateway)."""
        tls = self.pki.env(_CERT_TIER.get(tier, tier)) if self.pki is not None else {}
        return {**self.env, **self.infra.env(tier, self.prefix), **tls}

    def security(self, tier: str) -> InternalSecurity:
        """Mutual TLS as a ``tier`` service of this cluster (plaintext without TLS)."""
        if self.pki is None:
            return PLAINTEXT
        return InternalSecurity(TlsIdentity.from_pki(self.pki, tier))

    def tenant_metadata(self, tenant: str) -> tuple[tuple[str, str], ...]:
        """A tenant token for ``tenant``, as a gateway would sign it (none without TLS)."""
        if self.pki is None:
            return ()
        token = TenantTokenIssuer.from_file(self.pki.token_private).issue(tenant, ttl=600)
        return ((TENANT_TOKEN_HEADER, token),)

    def _metrics_args(self, name: str) -> list[str]:
        if not self.metrics:
            return []
        port = self.metrics_ports[name] = free_port()
        return ["--metrics-port", str(port)]

    def add_llm_gateway(self, config: str | None = None) -> ServiceProcess:
        """The LLM gateway with its demo config (scripted provider); runtimes started after it use it."""
        proc = ServiceProcess(
            "llm-gateway",
            [
                "llm-gateway",
                "--port",
                "0",
                *self._metrics_args("llm-gateway"),
                *(["--config", config] if config else []),
            ],
            self.env_for("llm"),
            log_file=self.tmp / "llm-gateway.log",
            echo=self._echo,
            cwd=str(ROOT),
        ).start()
        self.others.append(proc)
        self.env["LGMESH_LLM_GATEWAY_ADDR"] = proc.address
        return proc

    def add_tools(self) -> ServiceProcess:
        proc = ServiceProcess(
            "tools",
            ["tools", "--port", "0", *self._metrics_args("tools")],
            self.env_for("tools"),
            log_file=self.tmp / "tools.log",
            echo=self._echo,
            cwd=str(ROOT),
        ).start()
        self.others.append(proc)
        self.env["LGMESH_TOOLS_ADDR"] = proc.address
        return proc

    def add_runtime(
        self,
        *,
        role: str = "both",
        extra: list[str] | None = None,
        wrapper: list[str] | None = None,
    ) -> ServiceProcess:
        n = len(self.runtimes) + 1
        proc = ServiceProcess(
            f"runtime-{n}",
            [
                "runtime",
                "--port",
                "0",
                "--graphs",
                self.graphs,
                "--role",
                role,
                "--lease-ttl",
                str(self.lease_ttl),
                "--runtime-id",
                f"{self.prefix}-rt{n}",
                "--drain-timeout",
                "10",
                *self._metrics_args(f"runtime-{n}"),
                *(extra or []),
            ],
            self.env_for("worker" if role == "worker" else "runtime"),
            log_file=self.tmp / f"runtime-{n}.log",
            echo=self._echo,
            cwd=str(ROOT),
            wrapper=wrapper or (),
        ).start()
        self.runtimes.append(proc)
        return proc

    def add_gateway(self, extra: list[str] | None = None) -> ServiceProcess:
        n = len(self.gateways) + 1
        proc = ServiceProcess(
            f"gateway-{n}",
            ["gateway", "--port", "0", *self._metrics_args(f"gateway-{n}"), *(extra or [])],
            self.env_for("gateway"),
            log_file=self.tmp / f"gateway-{n}.log",
            echo=self._echo,
            cwd=str(ROOT),
        ).start()
        self.gateways.append(proc)
        return proc

    def start(self, runtimes: int = 2, gateways: int = 1) -> MeshCluster:
        for _ in range(runtimes):
            self.add_runtime()
        for _ in range(gateways):
            self.add_gateway()
        return self

    def client(self, api_key: str = "acme-key", gateway: int = 0) -> MeshClient:
        c = MeshClient(self.gateways[gateway].address, api_key)
        self._clients.append(c)
        return c

    async def aclose_clients(self) -> None:
        for c in self._clients:
            await c.close()
        self._clients.clear()

    def stop(self) -> None:
        for p in [*self.gateways, *self.runtimes, *self.others]:
            p.stop()

    def logs(self) -> str:
        procs = [*self.runtimes, *self.gateways, *self.others]
        return "\n".join(f"==== {p.name}\n{p.output()[-4000:]}" for p in procs)

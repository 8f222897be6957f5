"""Start the LiteLLM proxy (from PyPI) as a local, offline, independently written server.

It speaks the OpenAI Chat Completions and Embeddings APIs and Anthropic's Messages
API (``/v1/messages``) on one loopback port. Models answer in mock mode or through
:mod:`tests.support.litellm_scenarios`; nothing leaves the machine: the cost map
is the bundled one, telemetry is off, no database, and every upstream is a mock.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from mesh_core.localservers import find_free_port

__all__ = ["MASTER_KEY", "LiteLLMProxy", "start_litellm_proxy"]

MASTER_KEY = "sk-lgmesh-test-proxy-0123456789"
MOCK_TEXT = "Hello from LiteLLM's mock provider, nice to meet you."
SCENARIOS = ("tools", "parallel", "broken", "cut", "errdone", "errdone-idem", "embed")


@dataclass
class LiteLLMProxy:
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL (``.../v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Anthropic-style base URL (the SDK appends ``/v1/messages``)."""
        return f"http://127.0.0.1:{self.port}"

    def hits(self, model: str) -> int:
        path = self.workdir / "hits.txt"
        if not path.exists():
            return 0
        return sum(1 for line in path.read_text().splitlines() if line == model)

    def log(self) -> str:
        return (self.workdir / "proxy.log").read_text(errors="replace")

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _config() -> dict[str, object]:
    models: list[dict[str, object]] = [
        {
            "model_name": "text",
            "litellm_params": {
                "model": "openai/text",
                "api_key": "unused",
                "mock_response": MOCK_TEXT,
            },
        },
        {
            "model_name": "ratelimited",
            "litellm_params": {
                "model": "openai/ratelimited",
                "api_key": "unused",
                "mock_response": "litellm.RateLimitError",
            },
        },
    ]
    models += [
        {"model_name": name, "litellm_params": {"model": f"meshtest/{name}"}} for name in SCENARIOS
    ]
    return {
        "model_list": models,
        "router_settings": {"num_retries": 0},
        "litellm_settings": {
            "num_retries": 0,
            "telemetry": False,
            "drop_params": True,  # e.g. encoding_format, which the mock embedder ignores
            "custom_provider_map": [
                {"provider": "meshtest", "custom_handler": "litellm_scenarios.handler"}
            ],
            "callbacks": "litellm_scenarios.faults",
        },
    }


def start_litellm_proxy(timeout: float = 90.0) -> LiteLLMProxy:
    exe = Path(sys.executable).with_name("litellm")
    if not exe.exists():
        raise FileNotFoundError(f"{exe} (the litellm[proxy] package of the dev extra)")
    workdir = Path(tempfile.mkdtemp(prefix="lgmesh-litellm-"))
    shutil.copy(Path(__file__).with_name("litellm_scenarios.py"), workdir)
    (workdir / "config.yaml").write_text(yaml.safe_dump(_config()))
    port = find_free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(workdir),
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "MESHTEST_HITS": str(workdir / "hits.txt"),
        "NO_PROXY": "*",
    }
    for var in ("DATABASE_URL", "REDIS_HOST", "REDIS_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        env.pop(var, None)
    log = open(workdir / "proxy.log", "ab")  # noqa: SIM115 - the child writes it
    proc = subprocess.Popen(
        [str(exe), "--config", "config.yaml", "--host", "127.0.0.1", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    proxy = LiteLLMProxy(proc, port, workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(httpx.HTTPError):
            if (
                httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1).status_code
                == 200
            ):
                return proxy
        time.sleep(0.2)  # polling a starting process for readiness
    text = proxy.log()[-3000:]
    proxy.terminate()
    raise RuntimeError(f"the LiteLLM proxy did not start: {text}")

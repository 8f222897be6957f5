"""A service started where its backends are not (nothing listens at the URLs it got)
says so in a line naming the URL and how to point it elsewhere, and keeps saying it
only a few times per half minute while it retries, never several lines a second."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import find_free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 4.0  # seconds of retrying watched; the backoff retries about 4 times a second


def _watch(argv: list[str], env: dict[str, str], first: str) -> list[str]:
    """The process's log lines from the first one containing ``first`` to WINDOW s later."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesh_cli", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    seen = threading.Event()
    start: list[int] = []  # index of the first line containing ``first``, set by the reader

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if first in line and not seen.is_set():
                start.append(len(lines) - 1)
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert seen.wait(60), "\n".join(lines)
        # the reader may have appended more lines by the time this thread wakes: the
        # window starts at the matching line itself, which the reader recorded
        time.sleep(WINDOW)  # a rate is measured over time: a window of retries
        return lines[start[0] :]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)


def test_a_service_without_its_backends_names_them_a_few_times() -> None:
    nats_url = f"nats://127.0.0.1:{find_free_port()}"
    redis_url = f"redis://127.0.0.1:{find_free_port()}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LGMESH_")}
    env.update(
        LGMESH_ETCD_URL=f"http://127.0.0.1:{find_free_port()}",
        LGMESH_NATS_URL=nats_url,
        LGMESH_REDIS_URL=redis_url,
        LGMESH_API_KEYS="t=k",
    )
    results: dict[str, list[str]] = {}
    watchers = [
        threading.Thread(
            target=lambda: results.__setitem__(
                "gateway", _watch(["gateway", "--port", "0"], env, "cannot reach NATS")
            )
        ),
        threading.Thread(
            target=lambda: results.__setitem__(
                "tools", _watch(["tools", "--port", "0"], env, "cannot reach redis")
            )
        ),
    ]
    for w in watchers:
        w.start()
    for w in watchers:
        w.join(90)

    gateway = [line for line in results["gateway"] if "NATS" in line]
    assert f"cannot reach NATS at {nats_url}" in gateway[0]
    assert "--nats-url / LGMESH_NATS_URL" in gateway[0]
    # retried ~4 times a second for WINDOW seconds, logged at most twice
    assert len(gateway) <= 2, gateway
    assert not [line for line in results["gateway"] if "Traceback" in line]

    # "tools is NOT_SERVING (redis)" may come first under load: look at the backend's line
    tools = [line for line in results["tools"] if "cannot reach" in line]
    assert re.search(rf"cannot reach redis at {re.escape(redis_url)}: ", tools[0]), tools
    assert len(tools) == 1, results["tools"]

"""The README, as a newcomer follows it: ``lgmesh dev --demo``, then every grpcurl command
of "Using the gateway with grpcurl" verbatim (the resume example included), each output
checked; and however ``lgmesh dev`` ends, nothing is left behind.

(The README's first command in a fresh clone, pip install included, is
``test_readme_fresh_clone.py``, run by ``.ci/run``.)
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.readme import (
    ROOT,
    DevProcess,
    for_port,
    lgmesh_dev,
    netns_available,
    readme_commands,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SERVICES = ("llm-gateway", "tools", "runtime-1", "runtime-2", "gateway")


@pytest.fixture(scope="module")
def netns() -> bool:
    return netns_available()


@pytest.fixture(scope="module")
def dev(netns: bool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    """``lgmesh dev --demo``: the demo has run and it serves."""
    with lgmesh_dev(["--demo"], tmp_path_factory.mktemp("dev-tmp"), netns=netns) as d:
        d.wait_for("lgmesh dev: serving", timeout=110)
        yield d


def _objects(text: str) -> list[dict[str, Any]]:
    """grpcurl prints one JSON object per message, pretty-printed."""
    dec = json.JSONDecoder()
    out, i, text = [], 0, text.strip()
    while i < len(text):
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
        while i < len(text) and text[i].isspace():
            i += 1
    return out


def test_lgmesh_dev_demo_output(dev: DevProcess) -> None:
    out = dev.output
    assert "LangGraph Mesh is up" in out
    assert f"gateway  127.0.0.1:{dev.port}" in out
    grpcurl = f"grpcurl -plaintext 127.0.0.1:{dev.port} list"
    assert grpcurl in out, "the banner shows a grpcurl command for the real port"
    assert "#n: the event's sequence number" in out
    assert "planner chose 3 topics" in out
    assert "run ended: interrupted" in out
    assert 'answering {"resume": true}' in out
    assert out.count("researcher finished") == 3
    assert "== 3 findings merged; run success" in out
    assert out.count("End of report.") == 1, "the report is shown once"
    for name in SERVICES:
        assert f"{name:>12} | " in out, name
    for marker in ("\x1b[", "LGMESH_READY", "LGMESH_WORKER", "Traceback"):
        assert marker not in out, marker


def _events(out: str) -> list[dict[str, Any]]:
    return [o["event"] for o in _objects(out)]


def _ended(events: list[dict[str, Any]]) -> dict[str, Any]:
    last = events[-1]
    assert last["mode"] == "lifecycle" and last["lifecycle"]["kind"] == "LIFECYCLE_KIND_ENDED"
    lifecycle: dict[str, Any] = last["lifecycle"]
    return lifecycle


def _check_list(out: str, seen: dict[str, Any]) -> None:
    assert {
        "lgmesh.api.v1.RunService",
        "lgmesh.api.v1.ThreadService",
        "lgmesh.api.v1.AssistantService",
        "grpc.health.v1.Health",
    } <= set(out.split())


def _check_describe(out: str, seen: dict[str, Any]) -> None:
    assert "rpc StreamRun ( .lgmesh.api.v1.StreamRunRequest )" in out
    assert "rpc JoinRun ( .lgmesh.api.v1.JoinRunRequest )" in out


def _check_health(out: str, seen: dict[str, Any]) -> None:
    assert json.loads(out) == {"status": "SERVING"}


def _check_assistants(out: str, seen: dict[str, Any]) -> None:
    assistants = {a["assistant_id"]: a for a in json.loads(out)["assistants"]}
    assert {"demo", "agent", "fanout"} <= set(assistants)
    assert assistants["demo"]["graph_id"] == "demo"


def _check_create_thread(out: str, seen: dict[str, Any]) -> None:
    thread = json.loads(out)["thread"]
    assert thread["thread_id"] == "t1" and thread["metadata"] == {"user": "ada"}


def _check_stream(out: str, seen: dict[str, Any]) -> None:
    events = _events(out)
    assert events[0]["lifecycle"]["kind"] == "LIFECYCLE_KIND_STARTED"
    planned = [e["data"] for e in events if e["mode"] == "custom"]
    assert planned and planned[0]["node"] == "planner" and len(planned[0]["topics"]) == 3
    end = _ended(events)
    assert end["status"] == "RUN_STATUS_INTERRUPTED"
    assert end["interrupts"][0]["value"]["question"] == "Research these topics?"
    seqs = [int(e["seq"]) for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    seen["run_id"] = events[0]["run_id"]
    seen["run_events"] = len(events)


def _check_resume(out: str, seen: dict[str, Any]) -> None:
    events = _events(out)
    assert _ended(events)["status"] == "RUN_STATUS_SUCCESS"
    values = [e["data"] for e in events if e["mode"] == "values"]  # the default stream mode
    assert len(values[-1]["findings"]) == 3 and "End of report." in values[-1]["report"]


def _check_state(out: str, seen: dict[str, Any]) -> None:
    state = json.loads(out)["state"]
    assert "End of report." in state["values"]["report"]
    assert len(state["values"]["findings"]) == 3
    meta = state["metadata"]
    assert meta["source"] == "loop" and meta["step"] > 0
    leaked = [k for k in meta if k.startswith("lgmesh_") or k == "fencing_token"]
    assert not leaked, f"internal keys in the checkpoint metadata clients see: {leaked}"
    assert "127.0.0.1" not in json.dumps(meta), meta


def _check_history(out: str, seen: dict[str, Any]) -> None:
    states = json.loads(out)["states"]
    assert 1 <= len(states) <= 5 and all(s["checkpoint_id"] for s in states)
    assert "End of report." in states[0]["values"]["report"]  # newest first
    for state in states:
        assert not [k for k in state["metadata"] if k.startswith("lgmesh_")], state["metadata"]
    seen["<an id from the history>"] = states[-1]["checkpoint_id"]


def _check_update_state(out: str, seen: dict[str, Any]) -> None:
    assert json.loads(out)["checkpoint_id"]


def _check_fork(out: str, seen: dict[str, Any]) -> None:
    done = json.loads(out)
    assert done["run"]["status"] in ("RUN_STATUS_INTERRUPTED", "RUN_STATUS_SUCCESS"), done["run"]
    assert done["values"]["question"] == "and then?"


def _check_join(out: str, seen: dict[str, Any]) -> None:
    events = _events(out)
    after = seen["after_seq"]
    assert 0 < after < seen["run_events"]
    assert [int(e["seq"]) for e in events] == list(range(after + 1, seen["run_events"] + 1))
    assert {e["run_id"] for e in events} == {seen["run_id"]}
    assert _ended(events)["status"] == "RUN_STATUS_INTERRUPTED"


# Each README command is recognised by what it calls; a command the README gains
# without a check here fails the test.
_CHECKS: list[tuple[str, Callable[[str, dict[str, Any]], None]]] = [
    (" list", _check_list),
    ("describe lgmesh.api.v1.RunService", _check_describe),
    ("grpc.health.v1.Health/Check", _check_health),
    ("AssistantService/ListAssistants", _check_assistants),
    ("ThreadService/CreateThread", _check_create_thread),
    ('"resume": true', _check_resume),
    ("RunService/StreamRun", _check_stream),
    ("ThreadService/GetThreadState", _check_state),
    ("RunService/JoinRun", _check_join),
    ("ThreadService/GetThreadHistory", _check_history),
    ("ThreadService/UpdateThreadState", _check_update_state),
    ("RunService/WaitRun", _check_fork),
]


def test_every_grpcurl_command_of_the_readme(dev: DevProcess) -> None:
    commands = [c for c in readme_commands() if "grpcurl" in c or c.startswith("KEY=")]
    prelude = [c for c in commands if c.startswith("KEY=")]
    assert len(prelude) == 1
    # As after `source .venv/bin/activate`: the venv's grpcurl is on PATH.
    env_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    seen: dict[str, Any] = {}
    ran = 0
    for command in commands:
        if command in prelude:
            continue
        check = next((fn for key, fn in _CHECKS if key in command), None)
        assert check is not None, f"no check for the README command {command!r}"
        if "<run id>" in command:  # the README asks for the run id printed above
            seen["<run id>"] = seen["run_id"]
            seen["after_seq"] = int(re.search(r'"after_seq": (\d+)', command)[1])  # type: ignore[index]
        for placeholder in re.findall(r"<[a-z ]+>", command):  # what the reader fills in
            command = command.replace(placeholder, seen[placeholder])
        script = "\n".join([*prelude, command if dev.ns else for_port(command, dev.port)])
        result = dev.exec(
            ["env", f"PATH={env_path}", "bash", "-c", script], timeout=60, cwd=str(ROOT)
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        check(result.stdout, seen)
        ran += 1
    assert ran == len(_CHECKS)


def test_sighup_stops_everything_and_removes_the_temp_dir(dev: DevProcess) -> None:
    """Closing the terminal: within 5 s no server or service is left, nor its temp dir."""
    assert dev.processes(), "lgmesh dev started processes"
    assert [d for d in dev.temp_dirs() if d.startswith("lgmesh-dev-")]
    left, took = dev.signal_and_watch(signal.SIGHUP, within=5.0)
    assert not left, f"still running {took:.1f}s after SIGHUP: {left}\n{dev.output[-3000:]}"
    assert dev.proc.wait(5) == 0
    assert dev.temp_dirs() == []


def test_sigkill_leaves_no_process_and_no_temp_dir(netns: bool, tmp_path: Path) -> None:
    """``kill -9`` runs no clean-up in lgmesh dev: its watchdog stops the servers and
    services and removes the temp dir, within 5 s."""
    with lgmesh_dev(["--runtimes", "1"], tmp_path, netns=netns) as dev:
        dev.wait_for("lgmesh dev: serving", timeout=110)
        started = dev.processes()
        assert len(started) >= 6  # etcd, nats-server, valkey, 3 services, the watchdog
        left, took = dev.signal_and_watch(signal.SIGKILL, within=5.0)
        assert not left, f"still running {took:.1f}s after SIGKILL: {left}"
        assert dev.temp_dirs() == []

"""``lgmesh`` explains itself: every sub-command is listed with a summary, and
``lgmesh <sub-command> --help`` shows every flag with its default and its environment
variable; a configuration problem is one line, never a traceback."""

from __future__ import annotations

import argparse
import re
import sys

import pytest

from mesh_cli import build_parser, main

SUBCOMMANDS = (
    "dev",
    "gateway",
    "runtime",
    "llm-gateway",
    "tools",
    "servers",
    "infra-config",
    "demo",
)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _help_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    return capsys.readouterr().out


def _entries(text: str) -> dict[str, str]:
    """The options section of a help text: flag -> its whole entry, on one line."""
    out: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            out[current] = line
        elif current and line.startswith("    "):
            out[current] += " " + line
        else:
            current = ""
    return {flag: " ".join(entry.split()) for flag, entry in out.items()}


@pytest.fixture(autouse=True)
def _no_lgmesh_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("LGMESH_"):
            monkeypatch.delenv(key)


def test_lgmesh_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    text = " ".join(_help_of(["--help"], capsys).split())
    subs = _subparsers(build_parser({}))
    assert set(subs) == set(SUBCOMMANDS)
    for name, sub in subs.items():
        assert sub.description, f"lgmesh {name} has no description"
        assert re.search(rf"\b{re.escape(name)} \w", text), f"{name} missing from lgmesh --help"
    assert "LGMESH_" in text


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_flag_shows_its_default_and_env_var(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = _subparsers(build_parser({}))[command]
    text = _help_of([command, "--help"], capsys)
    assert text.startswith(f"usage: lgmesh {command} "), "its help names this program"
    assert sub.description is not None
    assert " ".join(sub.description.split()) in " ".join(text.split())
    entries = _entries(text)
    flags = [a for a in sub._actions if a.option_strings and a.dest != "help"]
    for action in flags:
        flag = action.option_strings[-1]
        assert flag in entries, f"lgmesh {command} --help does not list {flag}"
        # "<help> (default: <value> | required; env LGMESH_<NAME>)"
        m = re.search(
            r"\((default: ([^;]+)|required); env (LGMESH_[A-Z_]+)(?:=1)?\)$", entries[flag]
        )
        assert m, f"lgmesh {command} {flag}: no default/env in {entries[flag]!r}"
        shown = m.group(2)
        if action.default not in (None, False, "") and shown is not None:
            assert shown.split()[0] == str(action.default), (flag, shown, action.default)
        if action.default is False:
            assert shown == "off", (flag, shown)


def test_a_flag_takes_its_default_from_the_env_var() -> None:
    ns = build_parser({"LGMESH_CAPACITY": "7", "LGMESH_DEV_DEMO": "1"}).parse_args(["runtime"])
    assert ns.capacity == 7
    assert build_parser({"LGMESH_DEV_DEMO": "1"}).parse_args(["dev"]).demo is True
    assert build_parser({}).parse_args(["runtime", "--capacity", "9"]).capacity == 9


@pytest.mark.parametrize("command", ["gateway", "runtime", "llm-gateway", "tools"])
def test_every_service_takes_payload_keys(command: str) -> None:
    argv = [command, "--graphs", "g.yaml"] if command == "runtime" else [command]
    ns = build_parser({"LGMESH_PAYLOAD_KEYS": "/keys/k"}).parse_args(argv)
    assert ns.payload_keys == "/keys/k"
    assert build_parser({}).parse_args([*argv, "--payload-keys", "/k2"]).payload_keys == "/k2"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["gateway", "--port", "0"], "no API keys: set LGMESH_API_KEYS"),
        (["runtime", "--port", "0"], "--graphs (or LGMESH_GRAPHS) is required"),
        (["tools", "--tls-ca", "ca.pem"], "--tls-ca, --tls-cert and --tls-key go together"),
        (
            ["tools", "--tls-ca", "/no/ca", "--tls-cert", "/no/c", "--tls-key", "/no/k"],
            "TLS CA file /no/ca does not exist",
        ),
        (["llm-gateway", "--tenant-token-public-key", "k.pub"], "tenant tokens need mutual TLS"),
        (
            ["gateway", "--public-tls-cert", "/no/cert.pem", "--public-tls-key", "/no/k"],
            "--public-tls-cert: file /no/cert.pem does not exist",
        ),
        (
            ["runtime", "--graphs", "tests/e2e/graphs.yaml", "--payload-keys", "/nonexistent/k"],
            "payload key file '/nonexistent/k': No such file or directory",
        ),
        (
            [
                "gateway",
                "--api-keys-file",
                "deploy/compose/config/api-keys.yaml",
                "--payload-keys",
                "/x/k",
            ],
            "payload key file '/x/k'",
        ),
        (["llm-gateway", "--payload-keys", "/no/k"], "payload key file '/no/k'"),
        (["tools", "--payload-keys", "/no/k"], "payload key file '/no/k'"),
    ],
)
def test_configuration_errors_are_one_line(argv: list[str], says: str) -> None:
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("LGMESH_")}
    if "--public-tls-cert" in argv:
        env["LGMESH_API_KEYS"] = "t=k"
    proc = subprocess.run(
        [sys.executable, "-m", "mesh_cli", *argv], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2
    assert says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_core_imports_no_service() -> None:
    """mesh_core is what every service shares: importing all of it pulls in no service,
    no CLI and no demo."""
    import importlib
    import pkgutil
    import subprocess

    import mesh_core

    names = [m.name for m in pkgutil.walk_packages(mesh_core.__path__, "mesh_core.")]
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}: importlib.import_module(n)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('gateway', 'runtime_svc', 'llm_gateway_svc', 'tool_svc', 'mesh_cli', 'mesh_demo'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"mesh_core imports {out.stdout.strip()}"
    assert importlib.import_module("mesh_core")


def test_lgmesh_dev_refuses_a_taken_port() -> None:
    """Never a quiet move to another port: the README's commands would reach whoever
    holds it."""
    import os
    import socket
    import subprocess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LGMESH_")}
        proc = subprocess.run(
            [sys.executable, "-m", "mesh_cli", "dev", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert proc.returncode == 2
    assert f"port {port} is taken" in proc.stdout and "--port" in proc.stdout
    assert "starting" not in proc.stdout  # refused before anything started

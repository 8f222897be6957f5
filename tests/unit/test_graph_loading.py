"""Loading graphs from a graphs file (``langgraph.json`` or YAML): schemas that do not
come out empty, one clear line for every mistake, paths that belong to the file, and
``dependencies`` / ``env`` handled."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from runtime_svc.graphs import GraphConfigError, GraphRegistry

STATE_MODULE = """
import operator
import typing
from typing import Annotated

from langgraph.graph import START, StateGraph


class Inner(typing.TypedDict):
    name: str


class State(typing.TypedDict, total=False):  # typing's, not typing_extensions'
    question: typing.Required[str]
    inner: Inner
    notes: Annotated[list[str], operator.add]


def answer(state: State) -> dict:
    return {"notes": [state["question"]]}


builder = StateGraph(State)
builder.add_node("answer", answer)
builder.add_edge(START, "answer")
graph = builder.compile()
"""


def _project(tmp_path: Path, files: dict[str, str], config: dict[str, object]) -> Path:
    """A project dir with a langgraph.json; module names are unique per test, since
    loaded modules stay imported."""
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    cfg = tmp_path / "langgraph.json"
    cfg.write_text(json.dumps(config))
    return cfg


def _unique() -> str:
    return f"agent_{uuid.uuid4().hex[:8]}"


def test_a_typing_typeddict_state_gets_its_real_input_schema(tmp_path: Path) -> None:
    mod = _unique()
    cfg = _project(tmp_path, {f"{mod}.py": STATE_MODULE}, {"graphs": {"g": f"{mod}:graph"}})
    schema = GraphRegistry.from_file(cfg)["g"].schemas.input
    assert set(schema["properties"]) == {"question", "inner", "notes"}
    assert schema["required"] == ["question"]
    inner = schema["$defs"]["Inner"]
    assert inner["properties"]["name"]["type"] == "string" and inner["required"] == ["name"]


def test_a_schema_that_cannot_be_rendered_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mod = _unique()
    src = """
        from typing_extensions import TypedDict
        from langgraph.graph import START, StateGraph

        class Opaque:
            pass

        class State(TypedDict):
            thing: Opaque

        b = StateGraph(State)
        b.add_node("n", lambda s: {})
        b.add_edge(START, "n")
        graph = b.compile()
    """
    cfg = _project(tmp_path, {f"{mod}.py": src}, {"graphs": {"odd": f"{mod}:graph"}})
    with caplog.at_level(logging.WARNING, "lgmesh.graphs"):
        entry = GraphRegistry.from_file(cfg)["odd"]
    assert entry.schemas.input == {}
    said = [r.getMessage() for r in caplog.records if "input schema" in r.getMessage()]
    assert len(said) == 1 and "'odd'" in said[0] and "not validated" in said[0]


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("{mod}_typo:graph", "no module named '{mod}_typo'"),
        ("{mod}:grahp", "{mod} has no attribute 'grahp'"),
        ("./nowhere.py:graph", "no file"),
        ("{mod}", "must look like 'module:attr'"),
        ("{mod}:broken", "calling {mod}:broken failed: RuntimeError: boom ("),
        ("{mod}_bad:graph", "importing {mod}_bad failed: ModuleNotFoundError"),
    ],
)
def test_every_mistake_is_one_line_naming_the_file_and_graph(
    tmp_path: Path, ref: str, says: str
) -> None:
    mod = _unique()
    files = {
        f"{mod}.py": "def broken():\n    raise RuntimeError('boom')\n",
        f"{mod}_bad.py": "import not_a_module_anywhere\n",
    }
    cfg = _project(tmp_path, files, {"graphs": {"g": ref.format(mod=mod)}})
    with pytest.raises(GraphConfigError) as err:
        GraphRegistry.from_file(cfg)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"graphs file {cfg}: graph 'g': "), msg
    assert says.format(mod=mod) in msg, msg


def test_module_paths_resolve_from_the_graphs_file_not_the_cwd(tmp_path: Path) -> None:
    pkg = _unique()
    files = {f"proj/{pkg}/__init__.py": "", f"proj/{pkg}/agent.py": STATE_MODULE}
    cfg = _project(tmp_path, files, {"graphs": {"g": f"{pkg}.agent:graph"}})
    moved = tmp_path / "proj" / "langgraph.json"
    cfg.rename(moved)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import sys\nfrom runtime_svc.graphs import GraphRegistry\n"
        f"print(sorted(GraphRegistry.from_file({str(moved)!r})))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['g']"


def test_dependencies_and_env_keys(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pkg = _unique()
    var = f"LGMESH_TEST_{uuid.uuid4().hex[:6].upper()}"
    files = {
        f"libs/src/{pkg}/__init__.py": f"import os\nSEEN = os.environ.get({var!r})\n",
        f"{pkg}_graph.py": STATE_MODULE + f"\nfrom {pkg} import SEEN\n",
        ".env": f"# comment\nexport {var}='from the file'\n",
    }
    config = {
        "dependencies": ["./libs", "langgraph"],
        "env": ".env",
        "graphs": {"g": f"./{pkg}_graph.py:graph"},
        "python_version": "3.11",
        "auth": {"path": "x.py:auth"},
    }
    cfg = _project(tmp_path, files, config)
    try:
        with caplog.at_level(logging.WARNING, "lgmesh.graphs"):
            reg = GraphRegistry.from_file(cfg)
        assert list(reg) == ["g"]
        assert sys.modules[pkg].SEEN == "from the file"  # env set before the graphs load
        said = " | ".join(r.getMessage() for r in caplog.records)
        assert "'python_version' is a build-time setting" in said
        assert "'auth' is not used by LangGraph Mesh" in said

        config["dependencies"] = ["surely-not-installed-pkg>=1"]
        cfg.write_text(json.dumps(config))
        with pytest.raises(
            GraphConfigError, match=re.escape("'surely-not-installed-pkg>=1' is not installed")
        ):
            GraphRegistry.from_file(cfg)
        config["dependencies"] = ["./missing"]
        cfg.write_text(json.dumps(config))
        with pytest.raises(
            GraphConfigError, match=re.escape("dependency './missing': no directory")
        ):
            GraphRegistry.from_file(cfg)
    finally:
        os.environ.pop(var, None)


def test_a_variable_already_set_wins_over_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = _unique()
    var = f"LGMESH_TEST_{uuid.uuid4().hex[:6].upper()}"
    monkeypatch.setenv(var, "from the process")
    cfg = _project(
        tmp_path,
        {f"{mod}.py": STATE_MODULE},
        {"env": {var: "from the file"}, "graphs": {"g": f"{mod}:graph"}},
    )
    GraphRegistry.from_file(cfg)
    assert os.environ[var] == "from the process"


def test_runtime_with_a_typo_says_one_line(tmp_path: Path) -> None:
    """The process a user starts: exit 2 and one line, no traceback."""
    cfg = tmp_path / "graphs.yaml"
    cfg.write_text("graphs:\n  demo: mesh_demo.graphz:demo\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LGMESH_")}
    proc = subprocess.run(
        [sys.executable, "-m", "mesh_cli", "runtime", "--graphs", str(cfg), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"lgmesh runtime: graphs file {cfg}: graph 'demo': no module named 'mesh_demo.graphz'"
    ], proc.stderr

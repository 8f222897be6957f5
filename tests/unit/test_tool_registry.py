"""tool_svc config parsing, tool loading by import path, argument validation."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.tools import BaseTool, tool

from mesh_core.config import InfraSettings
from mesh_core.errors import InvalidArgumentError, NotFoundError
from tool_svc import ToolConfigError, ToolServiceSettings, ToolSpec, load_registry
from tool_svc._settings import DEFAULT_CONFIG_PATH


def typed_function(city: str, days: int = 3, units: list[str] | None = None) -> str:
    """Weather forecast.

    Args:
        city: the city.
        days: how many days.
        units: unit names.
    """
    return f"{city}:{days}:{units}"


async def async_function(x: int) -> int:
    """Double x."""
    return 2 * x


@tool
def decorated(text: str) -> str:
    """Echo the text."""
    return text


class CustomTool(BaseTool):
    name: str = "custom"
    description: str = "A BaseTool subclass."

    def _run(self, *args: Any, **kwargs: Any) -> str:
        return "custom"


CUSTOM = CustomTool()
NOT_A_TOOL = 42


def _settings(*specs: ToolSpec, **kw: Any) -> ToolServiceSettings:
    return ToolServiceSettings(infra=InfraSettings(), tools=specs, **kw)


def test_default_config_loads_the_demo_tools() -> None:
    settings = ToolServiceSettings.from_config_file(DEFAULT_CONFIG_PATH, infra=InfraSettings())
    registry = load_registry(settings)
    assert {"search", "record_payment", "divide", "wait"} <= set(registry.names())
    assert registry.get("wait").is_async
    assert not registry.get("record_payment").is_async


def test_every_kind_of_tool_loads_with_a_schema() -> None:
    registry = load_registry(
        _settings(
            ToolSpec("tests.unit.test_tool_registry:typed_function", timeout=2, max_concurrency=3),
            ToolSpec("tests.unit.test_tool_registry.async_function"),
            ToolSpec("tests.unit.test_tool_registry:decorated"),
            ToolSpec("tests.unit.test_tool_registry:CUSTOM", name="renamed"),
            default_timeout=7,
        )
    )
    assert registry.names() == ["typed_function", "async_function", "decorated", "renamed"]
    fn = registry.get("typed_function")
    assert (fn.timeout, fn.max_concurrency, fn.is_async) == (2, 3, False)
    assert fn.description == "Weather forecast."
    props = fn.args_schema["properties"]
    assert props["city"]["type"] == "string"
    assert props["city"]["description"] == "the city."
    assert props["days"]["default"] == 3
    assert fn.args_schema["required"] == ["city"]
    assert registry.get("async_function").is_async
    assert registry.get("async_function").timeout == 7
    assert registry.get("decorated").args_schema["properties"]["text"]["type"] == "string"


def test_validation_reports_each_bad_field() -> None:
    fn = load_registry(_settings(ToolSpec("tests.unit.test_tool_registry:typed_function"))).get(
        "typed_function"
    )
    fn.validate({"city": "Paris", "days": 2, "units": ["C"]})
    with pytest.raises(InvalidArgumentError) as info:
        fn.validate({"days": "two", "units": ["C", 5]})
    fields = {v.field: v.description for v in info.value.violations}
    assert set(fields) == {"arguments.city", "arguments.days", "arguments.units[1]"}
    assert "required" in fields["arguments.city"]
    assert info.value.reason == "TOOL_ARGUMENTS_INVALID"


def test_unknown_tool_is_not_found() -> None:
    registry = load_registry(_settings(ToolSpec("tests.unit.test_tool_registry:decorated")))
    with pytest.raises(NotFoundError):
        registry.get("nope")
    with pytest.raises(NotFoundError):
        registry.select(["decorated", "nope"])


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("no_such_module_xyz:thing", "cannot import module"),
        ("tests.unit.test_tool_registry:missing", "has no attribute"),
        ("tests.unit.test_tool_registry:NOT_A_TOOL", "is not a tool"),
        ("justaname", "must look like"),
    ],
)
def test_bad_imports_fail_clearly(path: str, match: str) -> None:
    with pytest.raises(ToolConfigError, match=match):
        load_registry(_settings(ToolSpec(path)))


def test_duplicate_names_are_rejected() -> None:
    spec = ToolSpec("tests.unit.test_tool_registry:decorated")
    with pytest.raises(ToolConfigError, match="two tools"):
        load_registry(_settings(spec, spec))


def test_config_mapping_is_checked() -> None:
    infra = InfraSettings()
    s = ToolServiceSettings.from_mapping(
        {
            "defaults": {"timeout": 3, "max_concurrency": 4, "max_queue_wait": 0},
            "thread_pool_size": 5,
            "idempotency_ttl": 60,
            "tools": ["a.b:c", {"import": "d.e:f", "timeout": 1.5}],
        },
        infra=infra,
        port=0,
    )
    assert (s.default_timeout, s.default_max_concurrency, s.default_max_queue_wait) == (3, 4, 0)
    assert (s.thread_pool_size, s.idempotency_ttl, s.port) == (5, 60, 0)
    assert s.tools == (ToolSpec("a.b:c"), ToolSpec("d.e:f", timeout=1.5))
    with pytest.raises(ToolConfigError, match="unknown keys"):
        ToolServiceSettings.from_mapping({"tools": [], "tool": []}, infra=infra)
    with pytest.raises(ToolConfigError, match="must be > 0"):
        ToolServiceSettings.from_mapping({"tools": [{"import": "a:b", "timeout": 0}]}, infra=infra)
    with pytest.raises(ToolConfigError, match="must be a number"):
        ToolServiceSettings.from_mapping({"defaults": {"timeout": "1"}}, infra=infra)

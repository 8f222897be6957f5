"""The one enum <-> name table, the task error read back from a checkpoint, webhook hosts."""

from __future__ import annotations

import pytest
from lgmesh.api.v1 import types_pb2

from gateway.assistants import merge_config
from mesh_core import api_names as names
from mesh_core.errors import InvalidArgumentError
from mesh_core.webhooks import check_webhook, parse_allow_hosts
from runtime_svc._convert import task_error


def test_every_enum_value_is_named_once() -> None:
    for enum, table, prefix in (
        (types_pb2.StreamMode, names.STREAM_MODE, "STREAM_MODE_"),
        (types_pb2.RunStatus, names.RUN_STATUS, "RUN_STATUS_"),
        (types_pb2.ThreadStatus, names.THREAD_STATUS, "THREAD_STATUS_"),
        (types_pb2.MultitaskStrategy, names.MULTITASK_STRATEGY, "MULTITASK_STRATEGY_"),
        (types_pb2.LifecycleKind, names.LIFECYCLE_KIND, "LIFECYCLE_KIND_"),
        (types_pb2.CancelAction, names.CANCEL_ACTION, "CANCEL_ACTION_"),
        (types_pb2.Durability, names.DURABILITY, "DURABILITY_"),
        (types_pb2.OnCompletion, names.ON_COMPLETION, "ON_COMPLETION_"),
    ):
        values = {v.number for v in enum.DESCRIPTOR.values if v.number}
        assert set(table.values()) == values, prefix
        for value in values:
            name = names.name_of(table, value)
            assert enum.Name(value) == prefix + name.upper().replace("-", "_")
    assert names.name_of(names.STREAM_MODE, names.STREAM_MODE["messages-tuple"]) == "messages"
    assert names.name_of(names.RUN_STATUS, 0) == ""
    with pytest.raises(ValueError, match="known: values"):
        names.value_of(names.STREAM_MODE, "everything", "stream_mode")


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        ("ValueError('boom')", "ValueError", "boom"),
        ('KeyError("it\'s")', "KeyError", "it's"),
        ("langgraph.errors.GraphRecursionError('too deep')", "GraphRecursionError", "too deep"),
        ("RuntimeError()", "RuntimeError", ""),
        ("something odd", "Exception", "something odd"),
        (ValueError("live"), "ValueError", "live"),
    ],
)
def test_task_error_type_is_the_exception_class(error: object, kind: str, message: str) -> None:
    got = task_error(error)
    assert (got.type, got.message) == (kind, message)


def test_webhook_hosts() -> None:
    allowed = parse_allow_hosts("127.0.0.1, .example.com")
    assert check_webhook("http://127.0.0.1:8080/x", allowed)
    assert check_webhook("https://hooks.example.com/x", allowed)
    for bad in ("http://10.0.0.1/x", "ftp://127.0.0.1/x", "http:///x", "https://example.org/"):
        with pytest.raises(InvalidArgumentError):
            check_webhook(bad, allowed)
    with pytest.raises(InvalidArgumentError) as none:
        check_webhook("http://127.0.0.1/x", ())
    assert "allows no webhook hosts" in none.value.violations[0].description


def test_run_config_lies_over_the_assistants() -> None:
    base = {"configurable": {"a": 1, "b": 2}, "recursion_limit": 5, "tags": ["x"]}
    over = {"configurable": {"b": 3}, "tags": ["y"]}
    assert merge_config(base, over) == {
        "configurable": {"a": 1, "b": 3},
        "recursion_limit": 5,
        "tags": ["y"],
    }

"""Error transport and small helpers of the remote executor."""

from __future__ import annotations

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from runtime_svc.remote import RemoteTaskError, TaskQueueSettings
from runtime_svc.remote._wire import ErrorInfo, error_from_info, error_info

SERDE = JsonPlusSerializer()


class OddInitError(Exception):
    def __init__(self, code: int, *, detail: str) -> None:
        super().__init__(f"{code}: {detail}")


def test_builtin_error_keeps_type_message_and_notes() -> None:
    exc = ValueError("bad value")
    exc.add_note("During task with name 'work'")
    back = error_from_info(error_info(SERDE, exc), task_name="work", worker_id="w1")
    assert type(back) is ValueError and str(back) == "bad value"
    assert back.__notes__ == ["During task with name 'work'", "Raised on remote worker w1"]


def test_error_whose_init_differs_is_still_its_type() -> None:
    info = error_info(SERDE, OddInitError(7, detail="x"))
    back = error_from_info(info, task_name="work", worker_id="w1")
    assert isinstance(back, OddInitError)
    assert back.args == ("7: x",)


def test_error_of_a_module_the_owner_never_imported_is_a_remote_task_error() -> None:
    info = ErrorInfo(module="not_imported_here.mod", qualname="SecretError", message="nope")
    back = error_from_info(info, task_name="work", worker_id="w9")
    assert isinstance(back, RemoteTaskError)
    assert "SecretError: nope" in str(back)
    assert back.error_type == "not_imported_here.mod.SecretError"
    assert back.reason == "REMOTE_TASK_FAILED"
    assert "w9" in str(back)


def test_non_exception_class_is_not_instantiated() -> None:
    info = ErrorInfo(module="builtins", qualname="dict", message="x")
    assert isinstance(error_from_info(info, task_name="t", worker_id="w"), RemoteTaskError)


def test_unserializable_args_become_strings() -> None:
    info = error_info(SERDE, RuntimeError(object()))
    assert isinstance(info.args[0], str)


def test_queue_settings_validate() -> None:
    with pytest.raises(ValueError):
        TaskQueueSettings(ack_wait=0)
    with pytest.raises(ValueError):
        TaskQueueSettings(max_deliveries=0)
    assert TaskQueueSettings(ack_wait=3).heartbeat_interval == 1.0

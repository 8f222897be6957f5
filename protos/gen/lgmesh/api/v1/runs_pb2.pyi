from google.protobuf import struct_pb2 as _struct_pb2
from lgmesh.api.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CancelRunsStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANCEL_RUNS_STATUS_UNSPECIFIED: _ClassVar[CancelRunsStatus]
    CANCEL_RUNS_STATUS_PENDING: _ClassVar[CancelRunsStatus]
    CANCEL_RUNS_STATUS_RUNNING: _ClassVar[CancelRunsStatus]
    CANCEL_RUNS_STATUS_ALL: _ClassVar[CancelRunsStatus]
CANCEL_RUNS_STATUS_UNSPECIFIED: CancelRunsStatus
CANCEL_RUNS_STATUS_PENDING: CancelRunsStatus
CANCEL_RUNS_STATUS_RUNNING: CancelRunsStatus
CANCEL_RUNS_STATUS_ALL: CancelRunsStatus

class StreamRunRequest(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _types_pb2.RunSpec
    def __init__(self, run: _Optional[_Union[_types_pb2.RunSpec, _Mapping]] = ...) -> None: ...

class StreamRunResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _types_pb2.RunEvent
    def __init__(self, event: _Optional[_Union[_types_pb2.RunEvent, _Mapping]] = ...) -> None: ...

class WaitRunRequest(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _types_pb2.RunSpec
    def __init__(self, run: _Optional[_Union[_types_pb2.RunSpec, _Mapping]] = ...) -> None: ...

class WaitRunResponse(_message.Message):
    __slots__ = ("run", "values")
    RUN_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    run: _types_pb2.Run
    values: _struct_pb2.Value
    def __init__(self, run: _Optional[_Union[_types_pb2.Run, _Mapping]] = ..., values: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class CreateRunRequest(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _types_pb2.RunSpec
    def __init__(self, run: _Optional[_Union[_types_pb2.RunSpec, _Mapping]] = ...) -> None: ...

class CreateRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _types_pb2.Run
    def __init__(self, run: _Optional[_Union[_types_pb2.Run, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("thread_id", "run_id")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    run_id: str
    def __init__(self, thread_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _types_pb2.Run
    def __init__(self, run: _Optional[_Union[_types_pb2.Run, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("thread_id", "status", "limit", "offset")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    status: _types_pb2.RunStatus
    limit: int
    offset: int
    def __init__(self, thread_id: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.RunStatus, str]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[_types_pb2.Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[_types_pb2.Run, _Mapping]]] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("thread_id", "run_id", "action", "wait")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    run_id: str
    action: _types_pb2.CancelAction
    wait: bool
    def __init__(self, thread_id: _Optional[str] = ..., run_id: _Optional[str] = ..., action: _Optional[_Union[_types_pb2.CancelAction, str]] = ..., wait: _Optional[bool] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _types_pb2.Run
    def __init__(self, run: _Optional[_Union[_types_pb2.Run, _Mapping]] = ...) -> None: ...

class JoinRunRequest(_message.Message):
    __slots__ = ("thread_id", "run_id", "after_seq", "stream_modes")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    STREAM_MODES_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    run_id: str
    after_seq: int
    stream_modes: _containers.RepeatedScalarFieldContainer[_types_pb2.StreamMode]
    def __init__(self, thread_id: _Optional[str] = ..., run_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., stream_modes: _Optional[_Iterable[_Union[_types_pb2.StreamMode, str]]] = ...) -> None: ...

class JoinRunResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _types_pb2.RunEvent
    def __init__(self, event: _Optional[_Union[_types_pb2.RunEvent, _Mapping]] = ...) -> None: ...

class WaitForRunRequest(_message.Message):
    __slots__ = ("thread_id", "run_id")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    run_id: str
    def __init__(self, thread_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class WaitForRunResponse(_message.Message):
    __slots__ = ("run", "values")
    RUN_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    run: _types_pb2.Run
    values: _struct_pb2.Value
    def __init__(self, run: _Optional[_Union[_types_pb2.Run, _Mapping]] = ..., values: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class DeleteRunRequest(_message.Message):
    __slots__ = ("thread_id", "run_id")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    run_id: str
    def __init__(self, thread_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class DeleteRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CancelRunsRequest(_message.Message):
    __slots__ = ("thread_id", "run_ids", "status", "action")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    status: CancelRunsStatus
    action: _types_pb2.CancelAction
    def __init__(self, thread_id: _Optional[str] = ..., run_ids: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[CancelRunsStatus, str]] = ..., action: _Optional[_Union[_types_pb2.CancelAction, str]] = ...) -> None: ...

class CancelRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[_types_pb2.Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[_types_pb2.Run, _Mapping]]] = ...) -> None: ...

from lgmesh.api.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecuteRunRequest(_message.Message):
    __slots__ = ("tenant_id", "run_id", "spec", "resume", "after_seq")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    run_id: str
    spec: _types_pb2.RunSpec
    resume: bool
    after_seq: int
    def __init__(self, tenant_id: _Optional[str] = ..., run_id: _Optional[str] = ..., spec: _Optional[_Union[_types_pb2.RunSpec, _Mapping]] = ..., resume: _Optional[bool] = ..., after_seq: _Optional[int] = ...) -> None: ...

class ExecuteRunResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _types_pb2.RunEvent
    def __init__(self, event: _Optional[_Union[_types_pb2.RunEvent, _Mapping]] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("tenant_id", "thread_id", "run_id", "action")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    thread_id: str
    run_id: str
    action: _types_pb2.CancelAction
    def __init__(self, tenant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., run_id: _Optional[str] = ..., action: _Optional[_Union[_types_pb2.CancelAction, str]] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: bool
    def __init__(self, found: _Optional[bool] = ...) -> None: ...

class GetThreadStateRequest(_message.Message):
    __slots__ = ("tenant_id", "thread_id", "assistant_id", "checkpoint_id", "subgraphs")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBGRAPHS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    thread_id: str
    assistant_id: str
    checkpoint_id: str
    subgraphs: bool
    def __init__(self, tenant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., assistant_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., subgraphs: _Optional[bool] = ...) -> None: ...

class GetThreadStateResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: _types_pb2.ThreadState
    def __init__(self, state: _Optional[_Union[_types_pb2.ThreadState, _Mapping]] = ...) -> None: ...

class ListGraphsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGraphsResponse(_message.Message):
    __slots__ = ("graphs",)
    GRAPHS_FIELD_NUMBER: _ClassVar[int]
    graphs: _containers.RepeatedCompositeFieldContainer[_types_pb2.Assistant]
    def __init__(self, graphs: _Optional[_Iterable[_Union[_types_pb2.Assistant, _Mapping]]] = ...) -> None: ...

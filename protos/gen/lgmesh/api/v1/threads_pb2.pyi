from google.protobuf import struct_pb2 as _struct_pb2
from lgmesh.api.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateThreadRequest(_message.Message):
    __slots__ = ("thread_id", "metadata", "if_exists_return")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    IF_EXISTS_RETURN_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    metadata: _struct_pb2.Struct
    if_exists_return: bool
    def __init__(self, thread_id: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., if_exists_return: _Optional[bool] = ...) -> None: ...

class CreateThreadResponse(_message.Message):
    __slots__ = ("thread",)
    THREAD_FIELD_NUMBER: _ClassVar[int]
    thread: _types_pb2.Thread
    def __init__(self, thread: _Optional[_Union[_types_pb2.Thread, _Mapping]] = ...) -> None: ...

class GetThreadRequest(_message.Message):
    __slots__ = ("thread_id",)
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    def __init__(self, thread_id: _Optional[str] = ...) -> None: ...

class GetThreadResponse(_message.Message):
    __slots__ = ("thread",)
    THREAD_FIELD_NUMBER: _ClassVar[int]
    thread: _types_pb2.Thread
    def __init__(self, thread: _Optional[_Union[_types_pb2.Thread, _Mapping]] = ...) -> None: ...

class GetThreadStateRequest(_message.Message):
    __slots__ = ("thread_id", "checkpoint_id", "subgraphs")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBGRAPHS_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    checkpoint_id: str
    subgraphs: bool
    def __init__(self, thread_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., subgraphs: _Optional[bool] = ...) -> None: ...

class GetThreadStateResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: _types_pb2.ThreadState
    def __init__(self, state: _Optional[_Union[_types_pb2.ThreadState, _Mapping]] = ...) -> None: ...

class DeleteThreadRequest(_message.Message):
    __slots__ = ("thread_id",)
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    def __init__(self, thread_id: _Optional[str] = ...) -> None: ...

class DeleteThreadResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SearchThreadsRequest(_message.Message):
    __slots__ = ("metadata", "status", "limit", "offset")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    metadata: _struct_pb2.Struct
    status: _types_pb2.ThreadStatus
    limit: int
    offset: int
    def __init__(self, metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., status: _Optional[_Union[_types_pb2.ThreadStatus, str]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class SearchThreadsResponse(_message.Message):
    __slots__ = ("threads",)
    THREADS_FIELD_NUMBER: _ClassVar[int]
    threads: _containers.RepeatedCompositeFieldContainer[_types_pb2.Thread]
    def __init__(self, threads: _Optional[_Iterable[_Union[_types_pb2.Thread, _Mapping]]] = ...) -> None: ...

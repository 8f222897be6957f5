from google.protobuf import struct_pb2 as _struct_pb2
from lgmesh.api.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PruneStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRUNE_STRATEGY_UNSPECIFIED: _ClassVar[PruneStrategy]
    PRUNE_STRATEGY_KEEP_LATEST: _ClassVar[PruneStrategy]
    PRUNE_STRATEGY_DELETE: _ClassVar[PruneStrategy]
PRUNE_STRATEGY_UNSPECIFIED: PruneStrategy
PRUNE_STRATEGY_KEEP_LATEST: PruneStrategy
PRUNE_STRATEGY_DELETE: PruneStrategy

class CreateThreadRequest(_message.Message):
    __slots__ = ("thread_id", "metadata", "if_exists_return", "ttl_seconds", "graph_id")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    IF_EXISTS_RETURN_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    metadata: _struct_pb2.Struct
    if_exists_return: bool
    ttl_seconds: float
    graph_id: str
    def __init__(self, thread_id: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., if_exists_return: _Optional[bool] = ..., ttl_seconds: _Optional[float] = ..., graph_id: _Optional[str] = ...) -> None: ...

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

class UpdateThreadRequest(_message.Message):
    __slots__ = ("thread_id", "metadata", "ttl_seconds")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    metadata: _struct_pb2.Struct
    ttl_seconds: float
    def __init__(self, thread_id: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., ttl_seconds: _Optional[float] = ...) -> None: ...

class UpdateThreadResponse(_message.Message):
    __slots__ = ("thread",)
    THREAD_FIELD_NUMBER: _ClassVar[int]
    thread: _types_pb2.Thread
    def __init__(self, thread: _Optional[_Union[_types_pb2.Thread, _Mapping]] = ...) -> None: ...

class GetThreadStateRequest(_message.Message):
    __slots__ = ("thread_id", "checkpoint_id", "subgraphs", "checkpoint_ns")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBGRAPHS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    checkpoint_id: str
    subgraphs: bool
    checkpoint_ns: str
    def __init__(self, thread_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., subgraphs: _Optional[bool] = ..., checkpoint_ns: _Optional[str] = ...) -> None: ...

class GetThreadStateResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: _types_pb2.ThreadState
    def __init__(self, state: _Optional[_Union[_types_pb2.ThreadState, _Mapping]] = ...) -> None: ...

class GetThreadHistoryRequest(_message.Message):
    __slots__ = ("thread_id", "limit", "before", "metadata", "checkpoint_ns", "checkpoint_id")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    limit: int
    before: str
    metadata: _struct_pb2.Struct
    checkpoint_ns: str
    checkpoint_id: str
    def __init__(self, thread_id: _Optional[str] = ..., limit: _Optional[int] = ..., before: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., checkpoint_ns: _Optional[str] = ..., checkpoint_id: _Optional[str] = ...) -> None: ...

class GetThreadHistoryResponse(_message.Message):
    __slots__ = ("states",)
    STATES_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedCompositeFieldContainer[_types_pb2.ThreadState]
    def __init__(self, states: _Optional[_Iterable[_Union[_types_pb2.ThreadState, _Mapping]]] = ...) -> None: ...

class UpdateThreadStateRequest(_message.Message):
    __slots__ = ("thread_id", "values", "as_node", "checkpoint_id", "checkpoint_ns")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    AS_NODE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    values: _struct_pb2.Value
    as_node: str
    checkpoint_id: str
    checkpoint_ns: str
    def __init__(self, thread_id: _Optional[str] = ..., values: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., as_node: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., checkpoint_ns: _Optional[str] = ...) -> None: ...

class UpdateThreadStateResponse(_message.Message):
    __slots__ = ("checkpoint_id", "checkpoint_ns")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    checkpoint_ns: str
    def __init__(self, checkpoint_id: _Optional[str] = ..., checkpoint_ns: _Optional[str] = ...) -> None: ...

class DeleteThreadRequest(_message.Message):
    __slots__ = ("thread_id",)
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    def __init__(self, thread_id: _Optional[str] = ...) -> None: ...

class DeleteThreadResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CopyThreadRequest(_message.Message):
    __slots__ = ("thread_id",)
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    def __init__(self, thread_id: _Optional[str] = ...) -> None: ...

class CopyThreadResponse(_message.Message):
    __slots__ = ("thread",)
    THREAD_FIELD_NUMBER: _ClassVar[int]
    thread: _types_pb2.Thread
    def __init__(self, thread: _Optional[_Union[_types_pb2.Thread, _Mapping]] = ...) -> None: ...

class PruneThreadsRequest(_message.Message):
    __slots__ = ("thread_ids", "strategy")
    THREAD_IDS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    thread_ids: _containers.RepeatedScalarFieldContainer[str]
    strategy: PruneStrategy
    def __init__(self, thread_ids: _Optional[_Iterable[str]] = ..., strategy: _Optional[_Union[PruneStrategy, str]] = ...) -> None: ...

class PruneThreadsResponse(_message.Message):
    __slots__ = ("pruned_count",)
    PRUNED_COUNT_FIELD_NUMBER: _ClassVar[int]
    pruned_count: int
    def __init__(self, pruned_count: _Optional[int] = ...) -> None: ...

class SearchThreadsRequest(_message.Message):
    __slots__ = ("metadata", "status", "limit", "offset", "ids")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    metadata: _struct_pb2.Struct
    status: _types_pb2.ThreadStatus
    limit: int
    offset: int
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., status: _Optional[_Union[_types_pb2.ThreadStatus, str]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchThreadsResponse(_message.Message):
    __slots__ = ("threads",)
    THREADS_FIELD_NUMBER: _ClassVar[int]
    threads: _containers.RepeatedCompositeFieldContainer[_types_pb2.Thread]
    def __init__(self, threads: _Optional[_Iterable[_Union[_types_pb2.Thread, _Mapping]]] = ...) -> None: ...

class CountThreadsRequest(_message.Message):
    __slots__ = ("metadata", "status")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    metadata: _struct_pb2.Struct
    status: _types_pb2.ThreadStatus
    def __init__(self, metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., status: _Optional[_Union[_types_pb2.ThreadStatus, str]] = ...) -> None: ...

class CountThreadsResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

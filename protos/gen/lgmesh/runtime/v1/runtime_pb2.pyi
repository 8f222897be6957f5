from google.protobuf import struct_pb2 as _struct_pb2
from lgmesh.api.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecuteRunRequest(_message.Message):
    __slots__ = ("tenant_id", "run_id", "spec", "resume", "after_seq", "graph_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    run_id: str
    spec: _types_pb2.RunSpec
    resume: bool
    after_seq: int
    graph_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., run_id: _Optional[str] = ..., spec: _Optional[_Union[_types_pb2.RunSpec, _Mapping]] = ..., resume: _Optional[bool] = ..., after_seq: _Optional[int] = ..., graph_id: _Optional[str] = ...) -> None: ...

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

class GetRunOutputRequest(_message.Message):
    __slots__ = ("tenant_id", "thread_id", "output", "interrupts")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    thread_id: str
    output: _types_pb2.RunOutputRef
    interrupts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Interrupt]
    def __init__(self, tenant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., output: _Optional[_Union[_types_pb2.RunOutputRef, _Mapping]] = ..., interrupts: _Optional[_Iterable[_Union[_types_pb2.Interrupt, _Mapping]]] = ...) -> None: ...

class GetRunOutputResponse(_message.Message):
    __slots__ = ("found", "values")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    found: bool
    values: _struct_pb2.Value
    def __init__(self, found: _Optional[bool] = ..., values: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class GetThreadStateRequest(_message.Message):
    __slots__ = ("tenant_id", "thread_id", "assistant_id", "checkpoint_id", "subgraphs", "checkpoint_ns")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBGRAPHS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    thread_id: str
    assistant_id: str
    checkpoint_id: str
    subgraphs: bool
    checkpoint_ns: str
    def __init__(self, tenant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., assistant_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., subgraphs: _Optional[bool] = ..., checkpoint_ns: _Optional[str] = ...) -> None: ...

class GetThreadStateResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: _types_pb2.ThreadState
    def __init__(self, state: _Optional[_Union[_types_pb2.ThreadState, _Mapping]] = ...) -> None: ...

class GetThreadHistoryRequest(_message.Message):
    __slots__ = ("tenant_id", "thread_id", "graph_id", "limit", "before", "metadata", "checkpoint_ns", "checkpoint_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    thread_id: str
    graph_id: str
    limit: int
    before: str
    metadata: _struct_pb2.Struct
    checkpoint_ns: str
    checkpoint_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., graph_id: _Optional[str] = ..., limit: _Optional[int] = ..., before: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., checkpoint_ns: _Optional[str] = ..., checkpoint_id: _Optional[str] = ...) -> None: ...

class GetThreadHistoryResponse(_message.Message):
    __slots__ = ("states",)
    STATES_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedCompositeFieldContainer[_types_pb2.ThreadState]
    def __init__(self, states: _Optional[_Iterable[_Union[_types_pb2.ThreadState, _Mapping]]] = ...) -> None: ...

class UpdateThreadStateRequest(_message.Message):
    __slots__ = ("tenant_id", "thread_id", "graph_id", "values", "as_node", "checkpoint_id", "checkpoint_ns")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    AS_NODE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    thread_id: str
    graph_id: str
    values: _struct_pb2.Value
    as_node: str
    checkpoint_id: str
    checkpoint_ns: str
    def __init__(self, tenant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., graph_id: _Optional[str] = ..., values: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., as_node: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., checkpoint_ns: _Optional[str] = ...) -> None: ...

class UpdateThreadStateResponse(_message.Message):
    __slots__ = ("checkpoint_id", "checkpoint_ns")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    checkpoint_ns: str
    def __init__(self, checkpoint_id: _Optional[str] = ..., checkpoint_ns: _Optional[str] = ...) -> None: ...

class DeleteThreadRequest(_message.Message):
    __slots__ = ("tenant_id", "thread_id", "checkpoints_only")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    thread_id: str
    checkpoints_only: bool
    def __init__(self, tenant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., checkpoints_only: _Optional[bool] = ...) -> None: ...

class DeleteThreadResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CopyThreadRequest(_message.Message):
    __slots__ = ("tenant_id", "source_thread_id", "target_thread_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    source_thread_id: str
    target_thread_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., source_thread_id: _Optional[str] = ..., target_thread_id: _Optional[str] = ...) -> None: ...

class CopyThreadResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PruneThreadRequest(_message.Message):
    __slots__ = ("tenant_id", "thread_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    thread_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., thread_id: _Optional[str] = ...) -> None: ...

class PruneThreadResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGraphsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGraphsResponse(_message.Message):
    __slots__ = ("graphs",)
    GRAPHS_FIELD_NUMBER: _ClassVar[int]
    graphs: _containers.RepeatedCompositeFieldContainer[_types_pb2.Assistant]
    def __init__(self, graphs: _Optional[_Iterable[_Union[_types_pb2.Assistant, _Mapping]]] = ...) -> None: ...

class GetGraphRequest(_message.Message):
    __slots__ = ("graph_id", "xray")
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    XRAY_FIELD_NUMBER: _ClassVar[int]
    graph_id: str
    xray: int
    def __init__(self, graph_id: _Optional[str] = ..., xray: _Optional[int] = ...) -> None: ...

class GetGraphResponse(_message.Message):
    __slots__ = ("graph",)
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    graph: _struct_pb2.Struct
    def __init__(self, graph: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetGraphSchemasRequest(_message.Message):
    __slots__ = ("graph_id",)
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    graph_id: str
    def __init__(self, graph_id: _Optional[str] = ...) -> None: ...

class GetGraphSchemasResponse(_message.Message):
    __slots__ = ("schemas",)
    SCHEMAS_FIELD_NUMBER: _ClassVar[int]
    schemas: _struct_pb2.Struct
    def __init__(self, schemas: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetSubgraphsRequest(_message.Message):
    __slots__ = ("graph_id", "namespace", "recurse")
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    RECURSE_FIELD_NUMBER: _ClassVar[int]
    graph_id: str
    namespace: str
    recurse: bool
    def __init__(self, graph_id: _Optional[str] = ..., namespace: _Optional[str] = ..., recurse: _Optional[bool] = ...) -> None: ...

class GetSubgraphsResponse(_message.Message):
    __slots__ = ("subgraphs",)
    SUBGRAPHS_FIELD_NUMBER: _ClassVar[int]
    subgraphs: _struct_pb2.Struct
    def __init__(self, subgraphs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_MODE_UNSPECIFIED: _ClassVar[StreamMode]
    STREAM_MODE_VALUES: _ClassVar[StreamMode]
    STREAM_MODE_UPDATES: _ClassVar[StreamMode]
    STREAM_MODE_CUSTOM: _ClassVar[StreamMode]
    STREAM_MODE_MESSAGES: _ClassVar[StreamMode]
    STREAM_MODE_DEBUG: _ClassVar[StreamMode]
    STREAM_MODE_TASKS: _ClassVar[StreamMode]
    STREAM_MODE_CHECKPOINTS: _ClassVar[StreamMode]

class Durability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DURABILITY_UNSPECIFIED: _ClassVar[Durability]
    DURABILITY_SYNC: _ClassVar[Durability]
    DURABILITY_ASYNC: _ClassVar[Durability]
    DURABILITY_EXIT: _ClassVar[Durability]

class OnCompletion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_COMPLETION_UNSPECIFIED: _ClassVar[OnCompletion]
    ON_COMPLETION_DELETE: _ClassVar[OnCompletion]
    ON_COMPLETION_KEEP: _ClassVar[OnCompletion]

class MultitaskStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MULTITASK_STRATEGY_UNSPECIFIED: _ClassVar[MultitaskStrategy]
    MULTITASK_STRATEGY_REJECT: _ClassVar[MultitaskStrategy]
    MULTITASK_STRATEGY_ENQUEUE: _ClassVar[MultitaskStrategy]
    MULTITASK_STRATEGY_INTERRUPT: _ClassVar[MultitaskStrategy]
    MULTITASK_STRATEGY_ROLLBACK: _ClassVar[MultitaskStrategy]

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_PENDING: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_SUCCESS: _ClassVar[RunStatus]
    RUN_STATUS_ERROR: _ClassVar[RunStatus]
    RUN_STATUS_INTERRUPTED: _ClassVar[RunStatus]
    RUN_STATUS_CANCELLED: _ClassVar[RunStatus]
    RUN_STATUS_TIMEOUT: _ClassVar[RunStatus]

class ThreadStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    THREAD_STATUS_UNSPECIFIED: _ClassVar[ThreadStatus]
    THREAD_STATUS_IDLE: _ClassVar[ThreadStatus]
    THREAD_STATUS_BUSY: _ClassVar[ThreadStatus]
    THREAD_STATUS_INTERRUPTED: _ClassVar[ThreadStatus]
    THREAD_STATUS_ERROR: _ClassVar[ThreadStatus]

class CancelAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANCEL_ACTION_UNSPECIFIED: _ClassVar[CancelAction]
    CANCEL_ACTION_INTERRUPT: _ClassVar[CancelAction]
    CANCEL_ACTION_ROLLBACK: _ClassVar[CancelAction]

class LifecycleKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIFECYCLE_KIND_UNSPECIFIED: _ClassVar[LifecycleKind]
    LIFECYCLE_KIND_STARTED: _ClassVar[LifecycleKind]
    LIFECYCLE_KIND_RESUMED: _ClassVar[LifecycleKind]
    LIFECYCLE_KIND_ENDED: _ClassVar[LifecycleKind]
    LIFECYCLE_KIND_QUEUED: _ClassVar[LifecycleKind]
STREAM_MODE_UNSPECIFIED: StreamMode
STREAM_MODE_VALUES: StreamMode
STREAM_MODE_UPDATES: StreamMode
STREAM_MODE_CUSTOM: StreamMode
STREAM_MODE_MESSAGES: StreamMode
STREAM_MODE_DEBUG: StreamMode
STREAM_MODE_TASKS: StreamMode
STREAM_MODE_CHECKPOINTS: StreamMode
DURABILITY_UNSPECIFIED: Durability
DURABILITY_SYNC: Durability
DURABILITY_ASYNC: Durability
DURABILITY_EXIT: Durability
ON_COMPLETION_UNSPECIFIED: OnCompletion
ON_COMPLETION_DELETE: OnCompletion
ON_COMPLETION_KEEP: OnCompletion
MULTITASK_STRATEGY_UNSPECIFIED: MultitaskStrategy
MULTITASK_STRATEGY_REJECT: MultitaskStrategy
MULTITASK_STRATEGY_ENQUEUE: MultitaskStrategy
MULTITASK_STRATEGY_INTERRUPT: MultitaskStrategy
MULTITASK_STRATEGY_ROLLBACK: MultitaskStrategy
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_PENDING: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_SUCCESS: RunStatus
RUN_STATUS_ERROR: RunStatus
RUN_STATUS_INTERRUPTED: RunStatus
RUN_STATUS_CANCELLED: RunStatus
RUN_STATUS_TIMEOUT: RunStatus
THREAD_STATUS_UNSPECIFIED: ThreadStatus
THREAD_STATUS_IDLE: ThreadStatus
THREAD_STATUS_BUSY: ThreadStatus
THREAD_STATUS_INTERRUPTED: ThreadStatus
THREAD_STATUS_ERROR: ThreadStatus
CANCEL_ACTION_UNSPECIFIED: CancelAction
CANCEL_ACTION_INTERRUPT: CancelAction
CANCEL_ACTION_ROLLBACK: CancelAction
LIFECYCLE_KIND_UNSPECIFIED: LifecycleKind
LIFECYCLE_KIND_STARTED: LifecycleKind
LIFECYCLE_KIND_RESUMED: LifecycleKind
LIFECYCLE_KIND_ENDED: LifecycleKind
LIFECYCLE_KIND_QUEUED: LifecycleKind

class Command(_message.Message):
    __slots__ = ("resume", "resume_map", "update", "goto")
    RESUME_FIELD_NUMBER: _ClassVar[int]
    RESUME_MAP_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    GOTO_FIELD_NUMBER: _ClassVar[int]
    resume: _struct_pb2.Value
    resume_map: bool
    update: _struct_pb2.Value
    goto: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, resume: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., resume_map: _Optional[bool] = ..., update: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., goto: _Optional[_Iterable[str]] = ...) -> None: ...

class RunSpec(_message.Message):
    __slots__ = ("thread_id", "assistant_id", "input", "command", "config", "context", "metadata", "stream_modes", "multitask_strategy", "interrupt_before", "interrupt_after", "stream_subgraphs", "if_not_exists_create", "checkpoint_id", "durability", "after_seconds", "webhook", "on_completion")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    STREAM_MODES_FIELD_NUMBER: _ClassVar[int]
    MULTITASK_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    INTERRUPT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    INTERRUPT_AFTER_FIELD_NUMBER: _ClassVar[int]
    STREAM_SUBGRAPHS_FIELD_NUMBER: _ClassVar[int]
    IF_NOT_EXISTS_CREATE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    DURABILITY_FIELD_NUMBER: _ClassVar[int]
    AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    ON_COMPLETION_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    assistant_id: str
    input: _struct_pb2.Value
    command: Command
    config: _struct_pb2.Struct
    context: _struct_pb2.Struct
    metadata: _struct_pb2.Struct
    stream_modes: _containers.RepeatedScalarFieldContainer[StreamMode]
    multitask_strategy: MultitaskStrategy
    interrupt_before: _containers.RepeatedScalarFieldContainer[str]
    interrupt_after: _containers.RepeatedScalarFieldContainer[str]
    stream_subgraphs: bool
    if_not_exists_create: bool
    checkpoint_id: str
    durability: Durability
    after_seconds: float
    webhook: str
    on_completion: OnCompletion
    def __init__(self, thread_id: _Optional[str] = ..., assistant_id: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., stream_modes: _Optional[_Iterable[_Union[StreamMode, str]]] = ..., multitask_strategy: _Optional[_Union[MultitaskStrategy, str]] = ..., interrupt_before: _Optional[_Iterable[str]] = ..., interrupt_after: _Optional[_Iterable[str]] = ..., stream_subgraphs: _Optional[bool] = ..., if_not_exists_create: _Optional[bool] = ..., checkpoint_id: _Optional[str] = ..., durability: _Optional[_Union[Durability, str]] = ..., after_seconds: _Optional[float] = ..., webhook: _Optional[str] = ..., on_completion: _Optional[_Union[OnCompletion, str]] = ...) -> None: ...

class Interrupt(_message.Message):
    __slots__ = ("id", "value")
    ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    id: str
    value: _struct_pb2.Value
    def __init__(self, id: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class RunError(_message.Message):
    __slots__ = ("type", "message", "quota")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    quota: QuotaLimit
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., quota: _Optional[_Union[QuotaLimit, _Mapping]] = ...) -> None: ...

class QuotaLimit(_message.Message):
    __slots__ = ("limit", "value")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    limit: str
    value: int
    def __init__(self, limit: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "thread_id", "assistant_id", "status", "metadata", "created_at", "updated_at", "multitask_strategy", "interrupts", "error", "attempts")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    MULTITASK_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    thread_id: str
    assistant_id: str
    status: RunStatus
    metadata: _struct_pb2.Struct
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    multitask_strategy: MultitaskStrategy
    interrupts: _containers.RepeatedCompositeFieldContainer[Interrupt]
    error: RunError
    attempts: int
    def __init__(self, run_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., assistant_id: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., multitask_strategy: _Optional[_Union[MultitaskStrategy, str]] = ..., interrupts: _Optional[_Iterable[_Union[Interrupt, _Mapping]]] = ..., error: _Optional[_Union[RunError, _Mapping]] = ..., attempts: _Optional[int] = ...) -> None: ...

class Lifecycle(_message.Message):
    __slots__ = ("kind", "status", "runtime_id", "interrupts", "error", "output")
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ID_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    kind: LifecycleKind
    status: RunStatus
    runtime_id: str
    interrupts: _containers.RepeatedCompositeFieldContainer[Interrupt]
    error: RunError
    output: RunOutputRef
    def __init__(self, kind: _Optional[_Union[LifecycleKind, str]] = ..., status: _Optional[_Union[RunStatus, str]] = ..., runtime_id: _Optional[str] = ..., interrupts: _Optional[_Iterable[_Union[Interrupt, _Mapping]]] = ..., error: _Optional[_Union[RunError, _Mapping]] = ..., output: _Optional[_Union[RunOutputRef, _Mapping]] = ...) -> None: ...

class RunOutputRef(_message.Message):
    __slots__ = ("graph_id", "checkpoint_id", "checkpoint_ns")
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    graph_id: str
    checkpoint_id: str
    checkpoint_ns: str
    def __init__(self, graph_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., checkpoint_ns: _Optional[str] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("run_id", "seq", "mode", "data", "namespace", "lifecycle", "time")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    seq: int
    mode: str
    data: _struct_pb2.Value
    namespace: _containers.RepeatedScalarFieldContainer[str]
    lifecycle: Lifecycle
    time: _timestamp_pb2.Timestamp
    def __init__(self, run_id: _Optional[str] = ..., seq: _Optional[int] = ..., mode: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., namespace: _Optional[_Iterable[str]] = ..., lifecycle: _Optional[_Union[Lifecycle, _Mapping]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Thread(_message.Message):
    __slots__ = ("thread_id", "metadata", "created_at", "updated_at", "status", "ttl_seconds", "graph_id")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    metadata: _struct_pb2.Struct
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    status: ThreadStatus
    ttl_seconds: float
    graph_id: str
    def __init__(self, thread_id: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[ThreadStatus, str]] = ..., ttl_seconds: _Optional[float] = ..., graph_id: _Optional[str] = ...) -> None: ...

class ThreadTask(_message.Message):
    __slots__ = ("id", "name", "interrupts", "error", "state", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    interrupts: _containers.RepeatedCompositeFieldContainer[Interrupt]
    error: RunError
    state: ThreadState
    result: _struct_pb2.Value
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., interrupts: _Optional[_Iterable[_Union[Interrupt, _Mapping]]] = ..., error: _Optional[_Union[RunError, _Mapping]] = ..., state: _Optional[_Union[ThreadState, _Mapping]] = ..., result: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class ThreadState(_message.Message):
    __slots__ = ("values", "next", "checkpoint_id", "parent_checkpoint_id", "metadata", "created_at", "tasks", "interrupts", "checkpoint_ns")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    values: _struct_pb2.Value
    next: _containers.RepeatedScalarFieldContainer[str]
    checkpoint_id: str
    parent_checkpoint_id: str
    metadata: _struct_pb2.Struct
    created_at: _timestamp_pb2.Timestamp
    tasks: _containers.RepeatedCompositeFieldContainer[ThreadTask]
    interrupts: _containers.RepeatedCompositeFieldContainer[Interrupt]
    checkpoint_ns: str
    def __init__(self, values: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., next: _Optional[_Iterable[str]] = ..., checkpoint_id: _Optional[str] = ..., parent_checkpoint_id: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[ThreadTask, _Mapping]]] = ..., interrupts: _Optional[_Iterable[_Union[Interrupt, _Mapping]]] = ..., checkpoint_ns: _Optional[str] = ...) -> None: ...

class Assistant(_message.Message):
    __slots__ = ("assistant_id", "graph_id", "description", "input_schema", "output_schema", "context_schema", "nodes", "config", "context", "metadata", "version", "name", "created_at", "updated_at")
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    assistant_id: str
    graph_id: str
    description: str
    input_schema: _struct_pb2.Struct
    output_schema: _struct_pb2.Struct
    context_schema: _struct_pb2.Struct
    nodes: _containers.RepeatedScalarFieldContainer[str]
    config: _struct_pb2.Struct
    context: _struct_pb2.Struct
    metadata: _struct_pb2.Struct
    version: int
    name: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, assistant_id: _Optional[str] = ..., graph_id: _Optional[str] = ..., description: _Optional[str] = ..., input_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., output_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., nodes: _Optional[_Iterable[str]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., version: _Optional[int] = ..., name: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

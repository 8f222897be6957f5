from google.protobuf import struct_pb2 as _struct_pb2
from lgmesh.api.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListAssistantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAssistantsResponse(_message.Message):
    __slots__ = ("assistants",)
    ASSISTANTS_FIELD_NUMBER: _ClassVar[int]
    assistants: _containers.RepeatedCompositeFieldContainer[_types_pb2.Assistant]
    def __init__(self, assistants: _Optional[_Iterable[_Union[_types_pb2.Assistant, _Mapping]]] = ...) -> None: ...

class GetAssistantRequest(_message.Message):
    __slots__ = ("assistant_id", "with_schemas")
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    WITH_SCHEMAS_FIELD_NUMBER: _ClassVar[int]
    assistant_id: str
    with_schemas: bool
    def __init__(self, assistant_id: _Optional[str] = ..., with_schemas: _Optional[bool] = ...) -> None: ...

class GetAssistantResponse(_message.Message):
    __slots__ = ("assistant",)
    ASSISTANT_FIELD_NUMBER: _ClassVar[int]
    assistant: _types_pb2.Assistant
    def __init__(self, assistant: _Optional[_Union[_types_pb2.Assistant, _Mapping]] = ...) -> None: ...

class CreateAssistantRequest(_message.Message):
    __slots__ = ("graph_id", "config", "context", "metadata", "assistant_id", "if_exists_return", "name", "description")
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    IF_EXISTS_RETURN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    graph_id: str
    config: _struct_pb2.Struct
    context: _struct_pb2.Struct
    metadata: _struct_pb2.Struct
    assistant_id: str
    if_exists_return: bool
    name: str
    description: str
    def __init__(self, graph_id: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., assistant_id: _Optional[str] = ..., if_exists_return: _Optional[bool] = ..., name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class CreateAssistantResponse(_message.Message):
    __slots__ = ("assistant",)
    ASSISTANT_FIELD_NUMBER: _ClassVar[int]
    assistant: _types_pb2.Assistant
    def __init__(self, assistant: _Optional[_Union[_types_pb2.Assistant, _Mapping]] = ...) -> None: ...

class UpdateAssistantRequest(_message.Message):
    __slots__ = ("assistant_id", "graph_id", "config", "context", "metadata", "name", "description")
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    assistant_id: str
    graph_id: str
    config: _struct_pb2.Struct
    context: _struct_pb2.Struct
    metadata: _struct_pb2.Struct
    name: str
    description: str
    def __init__(self, assistant_id: _Optional[str] = ..., graph_id: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class UpdateAssistantResponse(_message.Message):
    __slots__ = ("assistant",)
    ASSISTANT_FIELD_NUMBER: _ClassVar[int]
    assistant: _types_pb2.Assistant
    def __init__(self, assistant: _Optional[_Union[_types_pb2.Assistant, _Mapping]] = ...) -> None: ...

class DeleteAssistantRequest(_message.Message):
    __slots__ = ("assistant_id",)
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    assistant_id: str
    def __init__(self, assistant_id: _Optional[str] = ...) -> None: ...

class DeleteAssistantResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SearchAssistantsRequest(_message.Message):
    __slots__ = ("metadata", "graph_id", "name", "limit", "offset")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    metadata: _struct_pb2.Struct
    graph_id: str
    name: str
    limit: int
    offset: int
    def __init__(self, metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., graph_id: _Optional[str] = ..., name: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class SearchAssistantsResponse(_message.Message):
    __slots__ = ("assistants",)
    ASSISTANTS_FIELD_NUMBER: _ClassVar[int]
    assistants: _containers.RepeatedCompositeFieldContainer[_types_pb2.Assistant]
    def __init__(self, assistants: _Optional[_Iterable[_Union[_types_pb2.Assistant, _Mapping]]] = ...) -> None: ...

class CountAssistantsRequest(_message.Message):
    __slots__ = ("metadata", "graph_id", "name")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    metadata: _struct_pb2.Struct
    graph_id: str
    name: str
    def __init__(self, metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., graph_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CountAssistantsResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class ListAssistantVersionsRequest(_message.Message):
    __slots__ = ("assistant_id", "metadata", "limit", "offset")
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    assistant_id: str
    metadata: _struct_pb2.Struct
    limit: int
    offset: int
    def __init__(self, assistant_id: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListAssistantVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[_types_pb2.Assistant]
    def __init__(self, versions: _Optional[_Iterable[_Union[_types_pb2.Assistant, _Mapping]]] = ...) -> None: ...

class SetLatestAssistantVersionRequest(_message.Message):
    __slots__ = ("assistant_id", "version")
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    assistant_id: str
    version: int
    def __init__(self, assistant_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class SetLatestAssistantVersionResponse(_message.Message):
    __slots__ = ("assistant",)
    ASSISTANT_FIELD_NUMBER: _ClassVar[int]
    assistant: _types_pb2.Assistant
    def __init__(self, assistant: _Optional[_Union[_types_pb2.Assistant, _Mapping]] = ...) -> None: ...

class GetAssistantGraphRequest(_message.Message):
    __slots__ = ("assistant_id", "xray")
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    XRAY_FIELD_NUMBER: _ClassVar[int]
    assistant_id: str
    xray: int
    def __init__(self, assistant_id: _Optional[str] = ..., xray: _Optional[int] = ...) -> None: ...

class GetAssistantGraphResponse(_message.Message):
    __slots__ = ("graph",)
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    graph: _struct_pb2.Struct
    def __init__(self, graph: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetAssistantSchemasRequest(_message.Message):
    __slots__ = ("assistant_id",)
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    assistant_id: str
    def __init__(self, assistant_id: _Optional[str] = ...) -> None: ...

class GetAssistantSchemasResponse(_message.Message):
    __slots__ = ("schemas",)
    SCHEMAS_FIELD_NUMBER: _ClassVar[int]
    schemas: _struct_pb2.Struct
    def __init__(self, schemas: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetAssistantSubgraphsRequest(_message.Message):
    __slots__ = ("assistant_id", "namespace", "recurse")
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    RECURSE_FIELD_NUMBER: _ClassVar[int]
    assistant_id: str
    namespace: str
    recurse: bool
    def __init__(self, assistant_id: _Optional[str] = ..., namespace: _Optional[str] = ..., recurse: _Optional[bool] = ...) -> None: ...

class GetAssistantSubgraphsResponse(_message.Message):
    __slots__ = ("subgraphs",)
    SUBGRAPHS_FIELD_NUMBER: _ClassVar[int]
    subgraphs: _struct_pb2.Struct
    def __init__(self, subgraphs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

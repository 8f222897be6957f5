"""Python clients for LangGraph Mesh: the public API client (``get_client``, and
``get_sync_client`` for blocking code), shaped like ``langgraph_sdk``.

``mesh_client.llm.MeshChatModel`` (LLM gateway) and ``mesh_client.tools.remote_tools``
(tool service) live in their own modules so this import stays light.
"""

from mesh_client import errors
from mesh_client._client import MeshClient, get_client
from mesh_client._convert import StreamPart
from mesh_client._sync import SyncMeshClient, get_sync_client

__all__ = [
    "MeshClient",
    "StreamPart",
    "SyncMeshClient",
    "errors",
    "get_client",
    "get_sync_client",
]

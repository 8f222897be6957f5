"""Python clients for LangGraph Mesh: the public API client (``get_client``).

``mesh_client.llm.MeshChatModel`` (LLM gateway) and ``mesh_client.tools.remote_tools``
(tool service) live in their own modules so this import stays light.
"""

from mesh_client._client import MeshClient, StreamPart, get_client

__all__ = ["MeshClient", "StreamPart", "get_client"]

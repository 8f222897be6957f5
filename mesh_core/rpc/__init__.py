"""gRPC plumbing every service shares: server bootstrap, health, reflection, errors."""

from mesh_core.rpc._errors import ErrorTranslationInterceptor, abort_with
from mesh_core.rpc._server import DEFAULT_MAX_MESSAGE_BYTES, MeshServer

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "ErrorTranslationInterceptor", "MeshServer", "abort_with"]

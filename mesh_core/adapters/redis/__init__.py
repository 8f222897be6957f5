"""Redis adapters: key names, the fenced checkpointer, run and thread records."""

from mesh_core.adapters.redis.keys import RedisKeys

__all__ = ["RedisKeys"]

"""Every Redis key the mesh uses, in one place.

All keys live under a configurable prefix. Keys that belong to one thread carry
the thread's hash tag ``{<thread_id>}`` so a thread's keys share a Redis Cluster
slot and one Lua script can touch them all.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RedisKeys"]


@dataclass(frozen=True)
class RedisKeys:
    prefix: str

    # -- per thread (hash-tagged) -------------------------------------------------
    def tag(self, thread_id: str) -> str:
        return "{" + thread_id + "}"

    def thread_fence(self, thread_id: str) -> str:
        """Highest fencing token seen for the thread (etcd create_revision)."""
        return f"{self.prefix}:{self.tag(thread_id)}:fence"

    def thread_record(self, thread_id: str) -> str:
        """Hash: tenant, metadata, status, timestamps."""
        return f"{self.prefix}:{self.tag(thread_id)}:thread"

    def thread_runs(self, thread_id: str) -> str:
        """Sorted set of the thread's run ids by creation time."""
        return f"{self.prefix}:{self.tag(thread_id)}:runs"

    def thread_queue(self, thread_id: str) -> str:
        """List of run ids waiting for the thread (enqueue strategy)."""
        return f"{self.prefix}:{self.tag(thread_id)}:queue"

    def run_record(self, thread_id: str, run_id: str) -> str:
        return f"{self.prefix}:{self.tag(thread_id)}:run:{run_id}"

    def checkpoint_prefix(self, thread_id: str) -> str:
        """Root of the checkpointer's keys for the thread (checkpoints, writes, indexes)."""
        return f"{self.prefix}:{self.tag(thread_id)}:cp"

    # -- global ----------------------------------------------------------------------
    def threads_index(self, tenant_id: str) -> str:
        """Sorted set of a tenant's thread ids by update time."""
        return f"{self.prefix}:tenant:{tenant_id}:threads"

    def active_runs(self) -> str:
        """Hash run_id -> thread_id of runs recorded as pending/running (the sweeper's worklist)."""
        return f"{self.prefix}:runs:active"

    def run_index(self, run_id: str) -> str:
        """run_id -> thread_id, so a run can be found without its thread."""
        return f"{self.prefix}:runindex:{run_id}"

    def rate_bucket(self, scope: str, window: int) -> str:
        """A rate-limit window counter (LLM gateway), e.g. scope='tenant:acme:rpm'."""
        return f"{self.prefix}:rl:{scope}:{window}"

    def llm_idempotency(self, key: str) -> str:
        return f"{self.prefix}:llm:idem:{key}"

    def llm_cache(self, digest: str) -> str:
        return f"{self.prefix}:llm:cache:{digest}"

    def llm_usage(self, tenant_id: str) -> str:
        """Hash of token counters for a tenant."""
        return f"{self.prefix}:llm:usage:{tenant_id}"

    def tool_idempotency(self, key: str) -> str:
        return f"{self.prefix}:tool:idem:{key}"

    def tool_idempotency_lock(self, key: str) -> str:
        return f"{self.prefix}:tool:idemlock:{key}"

"""Every Redis key the mesh uses, in one place.

All keys live under a configurable prefix. Keys that belong to one thread carry
the thread's hash tag ``{<thread_id>}`` so a thread's keys share a Redis Cluster
slot and one Lua script can touch them all.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CheckpointKeys", "RedisKeys"]


@dataclass(frozen=True)
class CheckpointKeys:
    """The checkpointer's keys of one thread; all share the thread's hash tag.

    Field names inside the hashes/sorted sets carry the namespace and checkpoint id
    (``ns \\0 id ...``), so the key set stays fixed however many namespaces a thread has.
    """

    fence: str  # string: highest fencing token seen
    latest: str  # hash ns -> newest checkpoint id (also the namespace registry)
    index: str  # zset (lex) "ns\0id" of every checkpoint
    records: str  # hash "ns\0id" -> checkpoint record (checkpoint, metadata, parent)
    blob_fields: str  # hash "ns\0id" -> msgpack list of the blob fields it reads
    blobs: str  # hash "ns\0channel\0version" -> channel value
    writes: str  # hash "ns\0id\0task\0idx" -> pending write
    writes_index: str  # zset (lex) of the writes fields, ranged per checkpoint
    runs_index: str  # zset (lex) "run_id\0ns\0id" for delete_for_runs

    def all(self) -> tuple[str, ...]:
        return (
            self.fence,
            self.latest,
            self.index,
            self.records,
            self.blob_fields,
            self.blobs,
            self.writes,
            self.writes_index,
            self.runs_index,
        )


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

    def checkpoint_keys(self, thread_id: str) -> CheckpointKeys:
        """Every key the checkpointer keeps for the thread (fixed set, any number of namespaces)."""
        root = self.checkpoint_prefix(thread_id)
        return CheckpointKeys(
            fence=self.thread_fence(thread_id),
            latest=f"{root}:latest",
            index=f"{root}:ix",
            records=f"{root}:rec",
            blob_fields=f"{root}:bf",
            blobs=f"{root}:blob",
            writes=f"{root}:w",
            writes_index=f"{root}:wx",
            runs_index=f"{root}:rx",
        )

    def checkpoint_latest_pattern(self) -> str:
        """SCAN pattern matching every thread's ``latest`` key (admin paths only, never hot)."""
        escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.prefix)
        return escaped + ":{*}:cp:latest"

    def thread_of_checkpoint_latest(self, key: str) -> str | None:
        """The thread id of a key matched by :meth:`checkpoint_latest_pattern`."""
        head, tail = self.prefix + ":{", "}:cp:latest"
        if key.startswith(head) and key.endswith(tail) and len(key) > len(head) + len(tail):
            return key[len(head) : -len(tail)]
        return None

    # -- global ----------------------------------------------------------------------
    def threads_index(self, tenant_id: str) -> str:
        """Sorted set of a tenant's thread ids by update time."""
        return f"{self.prefix}:tenant:{tenant_id}:threads"

    def active_runs(self) -> str:
        """Hash run_id -> thread_id of runs recorded as pending/running (the sweeper's worklist)."""
        return f"{self.prefix}:runs:active"

    def schedule(self, kind: str) -> str:
        """Sorted set job id -> due time (epoch s) of one kind of job (delayed runs, webhooks)."""
        return f"{self.prefix}:sched:{kind}"

    def schedule_data(self, kind: str) -> str:
        """Hash job id -> the job's JSON payload (same kind)."""
        return f"{self.prefix}:sched:{kind}:data"

    def assistants_index(self, tenant_id: str) -> str:
        """Sorted set of a tenant's assistant ids by update time."""
        return f"{self.prefix}:tenant:{tenant_id}:assistants"

    def assistant(self, tenant_id: str, assistant_id: str) -> str:
        """Hash: ``latest`` version number and one field per version (JSON)."""
        return f"{self.prefix}:tenant:{tenant_id}:assistant:{assistant_id}"

    def run_index(self, run_id: str) -> str:
        """run_id -> thread_id, so a run can be found without its thread."""
        return f"{self.prefix}:runindex:{run_id}"

    def rate_bucket(self, scope: str, window: int) -> str:
        """A rate-limit window counter (LLM gateway), e.g. scope='tenant:acme:rpm'.

        One admission checks a tenant's and a model's buckets in one script, so every
        bucket shares the ``{rl}`` hash tag (one Redis Cluster slot for all of them).
        """
        return f"{self.prefix}:{{rl}}:{scope}:{window}"

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

    def demo_payments(self, account: str) -> str:
        """Hash count/total_cents of mesh_demo's side-effecting ``record_payment`` tool."""
        return f"{self.prefix}:demo:payments:{account}"

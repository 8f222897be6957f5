"""A per-run view of the mesh checkpointer that only writes while this runtime owns the thread.

Two independent guards (invariant 1):
- self-fencing: before every write the thread lease is checked; once the runtime's etcd
  session may have expired (last keepalive + TTL - margin) the write is refused here;
  a write waiting out a Redis outage checks it again before every retry;
- the Redis fence: every write carries the lease's fencing token (the etcd key's
  create_revision) and the checkpointer's script rejects it if a newer owner stored a
  higher token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Protocol

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)

from mesh_core.adapters.redis import FENCING_TOKEN_KEY
from mesh_core.adapters.redis.checkpointer import MAX_STATE_BYTES_KEY, StateTooLargeError
from mesh_core.errors import QuotaExceededError

__all__ = ["FENCING_TOKEN_KEY", "FencedCheckpointer"]


class _Lease(Protocol):
    token: int

    def check(self) -> None: ...


def _with_token(
    config: RunnableConfig, token: int, max_state_bytes: int | None = None
) -> RunnableConfig:
    conf = dict(config.get("configurable") or {})
    conf[FENCING_TOKEN_KEY] = token
    if max_state_bytes:
        conf[MAX_STATE_BYTES_KEY] = max_state_bytes
    return {**config, "configurable": conf}


class FencedCheckpointer(BaseCheckpointSaver[Any]):
    """The owner's view of the checkpointer: every write carries the lease's fencing
    token (and, with ``tenant``, the tenant's state size limit)."""

    def __init__(
        self,
        base: BaseCheckpointSaver[Any],
        lease: _Lease,
        *,
        tenant: str = "",
        max_state_bytes: int | None = None,
    ) -> None:
        super().__init__(serde=base.serde)
        with_abort = getattr(base, "with_abort", None)
        self.base: Any = with_abort(lease.check) if with_abort is not None else base
        self.lease = lease
        self.tenant = tenant
        self.max_state_bytes = max_state_bytes
        self.puts = 0  # checkpoints written through this view (retention counts them)
        #: the last root checkpoint written through this view: (its config, its channel
        #: values as LangGraph handed them over), or None
        self.last_root: tuple[RunnableConfig, dict[str, Any]] | None = None

    @property
    def config_specs(self) -> list[Any]:
        return list(self.base.config_specs)

    def get_next_version(self, current: Any, channel: None) -> Any:
        return self.base.get_next_version(current, channel)

    # -- reads go straight through ------------------------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self.base.aget_tuple(config)

    def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        return self.base.alist(config, filter=filter, before=before, limit=limit)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.base.get_tuple(config)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        return self.base.list(config, filter=filter, before=before, limit=limit)

    # -- writes are fenced ----------------------------------------------------------------
    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        self.lease.check()
        try:
            out = await self.base.aput(
                _with_token(config, self.lease.token, self.max_state_bytes),
                checkpoint,
                metadata,
                new_versions,
            )
        except StateTooLargeError as exc:
            raise QuotaExceededError(
                exc.message, tenant=self.tenant, limit="max_state_bytes", value=exc.limit
            ) from None
        self.puts += 1
        if not (out.get("configurable") or {}).get("checkpoint_ns"):
            self.last_root = (out, checkpoint["channel_values"])
        return out

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.lease.check()
        await self.base.aput_writes(
            _with_token(config, self.lease.token), writes, task_id, task_path
        )

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        self.lease.check()
        return self.base.put(
            _with_token(config, self.lease.token), checkpoint, metadata, new_versions
        )

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.lease.check()
        self.base.put_writes(_with_token(config, self.lease.token), writes, task_id, task_path)

    async def aprune_keep_last(self, thread_id: str, keep: int) -> int:
        self.lease.check()
        return int(await self.base.aprune_keep_last(thread_id, keep, token=self.lease.token))

    async def abump_fence(self, thread_id: str) -> None:
        """Store this lease's token as the thread's fence (StaleOwnerError if a newer one is)."""
        self.lease.check()
        await self.base.abump_fence(thread_id, self.lease.token)

    async def adelete_thread(self, thread_id: str) -> None:
        self.lease.check()
        await self.base.adelete_thread_fenced(thread_id, token=self.lease.token)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy the source's checkpoints onto the target (this lease's thread)."""
        self.lease.check()
        await self.base.abump_fence(target_thread_id, self.lease.token)
        await self.base.acopy_thread(source_thread_id, target_thread_id)

    async def adelete_run_checkpoints(self, thread_id: str, run_ids: Sequence[str]) -> None:
        self.lease.check()
        await self.base.adelete_run_checkpoints(thread_id, run_ids, token=self.lease.token)

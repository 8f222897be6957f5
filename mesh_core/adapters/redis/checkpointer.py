"""The mesh's LangGraph checkpointer: fenced, atomic, on plain Redis 7 / Valkey.

:class:`MeshCheckpointer` is a ``BaseCheckpointSaver`` (langgraph-checkpoint 4.3.2)
with the semantics of LangGraph's ``InMemorySaver`` and these guarantees:

* **Atomic, one round trip.** ``put`` and ``put_writes`` are each one ``EVALSHA`` of
  a Lua script: a reader sees a whole checkpoint (record, blobs, latest pointer) or
  none of it. ``get_tuple`` is one script call too (record + blobs + writes).
* **Fenced.** When ``config["configurable"]["fencing_token"]`` (an int: the etcd
  ``create_revision`` of the thread's ownership key) is present, the same script
  rejects the write if a higher token is stored for the thread and raises
  :class:`~mesh_core.errors.StaleOwnerError`; an equal or higher token is stored.
  LangGraph 1.2.22 passes the caller's ``configurable`` keys through to every
  ``put``/``put_writes`` (root graph and subgraphs; see the tests). Code that builds
  its own configs can bind a token with :meth:`MeshCheckpointer.with_fencing_token`.
  A new owner calls :meth:`MeshCheckpointer.abump_fence` right after acquiring the
  thread, so a zombie is rejected even before the new owner's first checkpoint.
* **Constant-cost reads.** A per-namespace "latest" pointer and lexicographic
  sorted sets; the hot path never SCANs. ``list(None)`` and ``delete_for_runs``
  (admin paths) SCAN the prefix for threads.
* **Cluster-ready.** A thread's keys share its hash tag (see ``RedisKeys``) and
  their number is fixed (nine) however many namespaces the thread has, so a TTL
  refresh on write is nine ``PEXPIRE`` inside the script.
* **Deletion.** ``delete_thread`` removes all nine keys of the thread, its fence too.

Worker path: a task rebuilt on a worker (``prepare_single_task``) inherits the
``configurable`` of the config it is given; a subgraph run there checkpoints under
its own ``checkpoint_ns`` and is fenced only if that config carries the token (or
the worker uses ``with_fencing_token``).

Serializer: LangGraph's ``JsonPlusSerializer`` without pickle fallback by default.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import redis
import redis.asyncio as aredis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from mesh_core.adapters.redis._checkpoint_codec import (
    FENCING_TOKEN_KEY,
    MAX_STATE_BYTES_KEY,
    SEP,
    PutPlan,
    check_token,
    decode_tuple,
    encode_put,
    encode_writes,
    fencing_token,
    metadata_matches,
    reseal_copy,
    target,
)
from mesh_core.adapters.redis._checkpoint_io import (
    SaverConnection,
    Scripts,
    check_bytes_client,
    ns_bounds,
    redis_errors,
)
from mesh_core.adapters.redis._checkpoint_steps import StepWrites, joined, settle_all
from mesh_core.adapters.redis.client import call_redis
from mesh_core.adapters.redis.keys import CheckpointKeys, RedisKeys
from mesh_core.errors import FailedPreconditionError, MeshError
from mesh_core.retry import Retry
from mesh_core.security._codec import PayloadCodec

T = TypeVar("T")

__all__ = ["FENCING_TOKEN_KEY", "MAX_STATE_BYTES_KEY", "MeshCheckpointer", "StateTooLargeError"]

_PAGE = 100
_STATE_SIZES_KEPT = 4096


class StateTooLargeError(MeshError):
    """A checkpoint would make the thread's state larger than its limit (not written)."""

    reason = "STATE_TOO_LARGE"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the thread's state would take {size} bytes, above its limit of {limit}")
        self.size = size
        self.limit = limit


def _loader(client: aredis.Redis, source: str) -> Callable[[], Awaitable[str]]:
    async def load() -> str:
        return str(await client.script_load(source))

    return load


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _as_bytes(raw: Any) -> list[bytes]:
    return [m if isinstance(m, bytes) else str(m).encode() for m in raw]


class MeshCheckpointer(BaseCheckpointSaver[str]):
    """Fenced LangGraph checkpointer on Redis/Valkey (see the module docstring).

    Args:
        redis: ``redis.asyncio.Redis`` (``decode_responses=False``) for the async API,
            which the mesh runtime uses.
        prefix: namespace of every key (the mesh's configured prefix).
        ttl: seconds a thread's checkpoints live after its last write (None: forever).
        serde: serializer (default: ``JsonPlusSerializer()``, no pickle fallback).
        sync_redis: ``redis.Redis`` for the sync API (``get_tuple``, ``put``, ... as used
            by ``graph.invoke``); the sync methods raise FailedPreconditionError without it.
        retry: how long the async API rides out a Redis outage (default: the mesh's retry
            budget); past it, ``BackendUnavailableError``. Every script is idempotent.
        merge_steps: save a superstep's last writes with its checkpoint in one script
            call (see ``_checkpoint_steps``); the async API only.
        codec: seal records, blobs and writes, each bound to its thread (see
            ``_checkpoint_codec``); None stores them as they are.
    """

    def __init__(
        self,
        redis: aredis.Redis,
        *,
        prefix: str,
        ttl: float | None = None,
        serde: SerializerProtocol | None = None,
        sync_redis: redis.Redis | None = None,
        retry: Retry | None = None,
        merge_steps: bool = True,
        codec: PayloadCodec | None = None,
    ) -> None:
        super().__init__(serde=serde or JsonPlusSerializer())
        self.codec = codec
        self.retry = retry or Retry()
        self._abort: Callable[[], None] | None = None
        self._steps: StepWrites | None = StepWrites() if merge_steps else None
        check_bytes_client(redis, "redis")
        if sync_redis is not None:
            check_bytes_client(sync_redis, "sync_redis")
        if ttl is not None and ttl <= 0:
            raise FailedPreconditionError("ttl must be positive (or None for no expiry)")
        self.redis = redis
        self.sync_redis = sync_redis
        self.keys = RedisKeys(prefix)
        self.ttl = ttl
        self._ttl_ms = str(max(1, int(ttl * 1000))) if ttl else "0"
        self._bound_token: int | None = None
        self._ascripts = Scripts.register(redis)
        # (thread, ns) -> channel -> bytes of its latest value written from this process
        self._state_sizes: OrderedDict[tuple[str, str], dict[str, int]] = OrderedDict()
        self._sscripts = Scripts.register(sync_redis) if sync_redis is not None else None

    # -- construction helpers -------------------------------------------------------
    @classmethod
    def from_conn_string(
        cls,
        url: str,
        *,
        prefix: str,
        ttl: float | None = None,
        serde: SerializerProtocol | None = None,
    ) -> SaverConnection[MeshCheckpointer]:
        """A saver owning its connections, usable with ``with`` or ``async with``.

        Both forms create a sync and an async client from ``url``. ``async with`` also
        preloads the scripts and closes both clients on exit; plain ``with`` (for sync
        graphs: ``invoke``/``stream``) closes the sync client and releases the async one.
        """
        return SaverConnection(cls, url, prefix=prefix, ttl=ttl, serde=serde)

    def with_fencing_token(self, token: int) -> MeshCheckpointer:
        """A view of this saver whose writes carry ``token`` when the config has none."""
        clone = copy.copy(self)
        clone._bound_token = check_token(token)
        return clone

    def with_abort(self, abort: Callable[[], None]) -> MeshCheckpointer:
        """A view of this saver that calls ``abort()`` before each retry (an owner passes
        its lease check: once it lost the thread, waiting for Redis is pointless)."""
        clone = copy.copy(self)
        clone._abort = abort
        return clone

    # -- state size ---------------------------------------------------------------------
    def _check_state_size(self, plan: PutPlan, config: RunnableConfig) -> dict[str, int]:
        """The state's channel sizes after this put; StateTooLargeError past the limit in
        the config. The sizes of channels this put leaves alone are those last written
        from this process (after a failover they count from their next write)."""
        known = self._state_sizes.get((plan.thread_id, plan.ns)) or {}
        sizes = {**known, **plan.blob_sizes}
        limit = (config.get("configurable") or {}).get(MAX_STATE_BYTES_KEY)
        if isinstance(limit, int) and limit > 0:
            total = sum(sizes.values())
            if total > limit:
                raise StateTooLargeError(total, limit)
        return sizes

    def _remember_sizes(self, plan: PutPlan, sizes: dict[str, int]) -> None:
        key = (plan.thread_id, plan.ns)
        self._state_sizes[key] = sizes
        self._state_sizes.move_to_end(key)
        while len(self._state_sizes) > _STATE_SIZES_KEPT:
            self._state_sizes.popitem(last=False)

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await call_redis(self.retry, what, fn, abort=self._abort)

    def _keys(self, thread_id: str) -> CheckpointKeys:
        return self.keys.checkpoint_keys(thread_id)

    def _sync(self) -> tuple[redis.Redis, Scripts]:
        if self.sync_redis is None or self._sscripts is None:
            raise FailedPreconditionError(
                "MeshCheckpointer has no sync Redis client: pass sync_redis= "
                "or use the async methods"
            )
        return self.sync_redis, self._sscripts

    async def asetup(self) -> None:
        """Load the scripts now, so the first put is a single EVALSHA too."""
        with redis_errors():
            for script in self._ascripts.all():
                script.sha = await self._call("script load", _loader(self.redis, script.script))

    def setup(self) -> None:
        client, scripts = self._sync()
        with redis_errors():
            for script in scripts.all():
                script.sha = client.script_load(script.script)

    # -- fencing ---------------------------------------------------------------------
    async def abump_fence(self, thread_id: str, token: int) -> None:
        """Store ``token`` as the thread's fence; StaleOwnerError if a higher one is stored."""
        tok = str(check_token(token))
        with redis_errors(thread_id, tok):
            await self._call(
                "fence bump",
                lambda: self._ascripts.bump(
                    keys=self._keys(thread_id).all(), args=[tok, self._ttl_ms]
                ),
            )

    def bump_fence(self, thread_id: str, token: int) -> None:
        client, scripts = self._sync()
        tok = str(check_token(token))
        with redis_errors(thread_id, tok):
            scripts.bump(keys=self._keys(thread_id).all(), args=[tok, self._ttl_ms], client=client)

    async def aget_fence(self, thread_id: str) -> int | None:
        with redis_errors(thread_id):
            raw = await self._call(
                "fence read", lambda: self.redis.get(self.keys.thread_fence(thread_id))
            )
        return int(raw) if raw is not None else None

    # -- async API ---------------------------------------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id, ns, cid = target(config)
        with redis_errors(thread_id):
            reply = await self._call(
                "checkpoint read",
                lambda: self._ascripts.get(keys=self._keys(thread_id).all(), args=[ns, cid or ""]),
            )
        return decode_tuple(self.serde, thread_id, ns, reply, self.codec)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        plan = encode_put(self.serde, config, checkpoint, metadata, new_versions, self.codec)
        sizes = self._check_state_size(plan, config)
        tok = fencing_token(config, self._bound_token)
        parent = target(config)[2]
        riders = (
            self._steps.take((plan.thread_id, plan.ns, parent), tok)
            if self._steps is not None and parent
            else []
        )
        keys = self._keys(plan.thread_id).all()
        try:
            with redis_errors(plan.thread_id, tok):
                if riders:
                    wargs = joined(riders)
                    await self._call(
                        "step write",
                        lambda: self._ascripts.put_step(
                            keys=keys,
                            args=[tok, self._ttl_ms, len(wargs), *wargs, *plan.args],
                        ),
                    )
                else:
                    await self._call(
                        "checkpoint write",
                        lambda: self._ascripts.put(keys=keys, args=[tok, self._ttl_ms, *plan.args]),
                    )
        except BaseException as exc:
            settle_all(riders, exc)
            raise
        settle_all(riders)
        self._remember_sizes(plan, sizes)
        return plan.config

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        thread_id, ns, cid = target(config)
        if cid is None:
            raise FailedPreconditionError("put_writes needs configurable.checkpoint_id")
        args = encode_writes(
            self.serde, ns, cid, writes, task_id, task_path, thread_id=thread_id, codec=self.codec
        )
        tok = fencing_token(config, self._bound_token)
        taken: list[Any] = []
        flat: list[str | bytes] = args
        if self._steps is not None:
            key = (thread_id, ns, cid)
            entry = self._steps.add(key, args, tok)
            await asyncio.sleep(0)  # the step's checkpoint put, if submitted with us, takes them
            claimed = self._steps.take_if_waiting(key, entry)
            if claimed is None:
                await entry.future  # saved inside the checkpoint's script call
                return
            taken = claimed
            flat = joined(taken)
        keys = self._keys(thread_id).all()
        try:
            with redis_errors(thread_id, tok):
                await self._call(
                    "writes save",
                    lambda: self._ascripts.put_writes(keys=keys, args=[tok, self._ttl_ms, *flat]),
                )
        except BaseException as exc:
            settle_all(taken, exc)
            raise
        settle_all(taken)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        if limit is not None and limit <= 0:
            return
        ns_filter, cid, before_id = self._list_args(config, before)
        threads = [t async for t in self._athreads()] if config is None else [target(config)[0]]
        count = 0
        for thread_id in threads:
            async for tup in self._alist_thread(thread_id, ns_filter, cid, before_id, filter):
                yield tup
                count += 1
                if limit is not None and count >= limit:
                    return

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every key of the thread (all namespaces, writes, blobs and its fence)."""
        with redis_errors(thread_id):
            await self._call(
                "thread delete", lambda: self.redis.delete(*self._keys(str(thread_id)).all())
            )

    async def adelete_run_checkpoints(
        self, thread_id: str, run_ids: Sequence[str], *, token: int | None = None
    ) -> None:
        """Delete one thread's checkpoints (and writes) made by these runs, fenced by
        ``token``: the thread goes back to the checkpoint before them (rollback)."""
        runs = [str(r) for r in run_ids if r and SEP not in str(r)]
        if not runs:
            return
        tok = "" if token is None else str(check_token(token))
        with redis_errors(thread_id, tok):
            await self._call(
                "run checkpoints delete",
                lambda: self._ascripts.delete_for_runs(
                    keys=self._keys(thread_id).all(), args=[tok, *runs]
                ),
            )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only each namespace's newest checkpoint (or delete all with "delete").

        Not ``DeltaChannel``-aware: a delta channel's older history is dropped too.
        """
        self._check_strategy(strategy)
        for thread_id in thread_ids:
            if strategy == "delete":
                await self.adelete_thread(thread_id)
                continue
            with redis_errors(thread_id):
                await self._ascripts.prune(keys=self._keys(thread_id).all(), args=[])

    async def adelete_thread_fenced(self, thread_id: str, *, token: int) -> None:
        """Delete the thread's checkpoints, writes and blobs if ``token`` is not stale; the
        fence stays, so a former owner cannot write into the deleted thread."""
        tok = str(check_token(token))
        with redis_errors(thread_id, tok):
            await self._call(
                "thread delete",
                lambda: self._ascripts.delete_fenced(keys=self._keys(thread_id).all(), args=[tok]),
            )

    async def aprune_keep_last(self, thread_id: str, keep: int, *, token: int | None = None) -> int:
        """Keep the newest ``keep`` checkpoints of each namespace of the thread (with their
        writes and blobs), fenced by ``token``; returns how many were dropped.

        Not ``DeltaChannel``-aware: a graph using delta channels needs every checkpoint
        back to the last snapshot (keep all of them for such graphs).
        """
        if keep < 1:
            raise FailedPreconditionError("keep at least one checkpoint")
        tok = "" if token is None else str(check_token(token))
        with redis_errors(thread_id, tok):
            dropped = await self._call(
                "checkpoint retention",
                lambda: self._ascripts.prune_keep_last(
                    keys=self._keys(thread_id).all(), args=[tok, keep]
                ),
            )
        return int(dropped)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) made by these runs, in every thread.

        Admin path: SCANs the prefix for threads. Blobs are kept (they may be shared).
        """
        runs = [str(r) for r in run_ids if r and SEP not in str(r)]
        if not runs:
            return
        async for thread_id in self._athreads():
            with redis_errors(thread_id):
                await self._ascripts.delete_for_runs(
                    keys=self._keys(thread_id).all(), args=["", *runs]
                )

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of a thread onto another (merging)."""
        src, dst = self._keys(source_thread_id), self._keys(target_thread_id)
        with redis_errors(source_thread_id):
            pipe = self.redis.pipeline(transaction=True)
            self._queue_reads(pipe, src)
            data = await pipe.execute()
        if not data[0]:
            return
        with redis_errors(target_thread_id):
            pipe = self.redis.pipeline(transaction=True)
            namespaces = self._queue_copy(
                pipe, dst, self._resealed(data, source_thread_id, target_thread_id)
            )
            await self._ascripts.fix_latest(
                keys=dst.all(), args=[self._ttl_ms, *namespaces], client=pipe
            )
            await pipe.execute()

    # -- sync API ------------------------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        client, scripts = self._sync()
        thread_id, ns, cid = target(config)
        with redis_errors(thread_id):
            reply = scripts.get(
                keys=self._keys(thread_id).all(), args=[ns, cid or ""], client=client
            )
        return decode_tuple(self.serde, thread_id, ns, reply, self.codec)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        client, scripts = self._sync()
        plan = encode_put(self.serde, config, checkpoint, metadata, new_versions, self.codec)
        tok = fencing_token(config, self._bound_token)
        with redis_errors(plan.thread_id, tok):
            scripts.put(
                keys=self._keys(plan.thread_id).all(),
                args=[tok, self._ttl_ms, *plan.args],
                client=client,
            )
        return plan.config

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        client, scripts = self._sync()
        thread_id, ns, cid = target(config)
        if cid is None:
            raise FailedPreconditionError("put_writes needs configurable.checkpoint_id")
        args = encode_writes(
            self.serde, ns, cid, writes, task_id, task_path, thread_id=thread_id, codec=self.codec
        )
        tok = fencing_token(config, self._bound_token)
        with redis_errors(thread_id, tok):
            scripts.put_writes(
                keys=self._keys(thread_id).all(), args=[tok, self._ttl_ms, *args], client=client
            )

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        if limit is not None and limit <= 0:
            return
        ns_filter, cid, before_id = self._list_args(config, before)
        threads = list(self._threads()) if config is None else [target(config)[0]]
        count = 0
        for thread_id in threads:
            for tup in self._list_thread(thread_id, ns_filter, cid, before_id, filter):
                yield tup
                count += 1
                if limit is not None and count >= limit:
                    return

    def delete_thread(self, thread_id: str) -> None:
        client, _ = self._sync()
        with redis_errors(thread_id):
            client.delete(*self._keys(str(thread_id)).all())

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        client, scripts = self._sync()
        self._check_strategy(strategy)
        for thread_id in thread_ids:
            if strategy == "delete":
                self.delete_thread(thread_id)
                continue
            with redis_errors(thread_id):
                scripts.prune(keys=self._keys(thread_id).all(), args=[], client=client)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        client, scripts = self._sync()
        runs = [str(r) for r in run_ids if r and SEP not in str(r)]
        if not runs:
            return
        for thread_id in self._threads():
            with redis_errors(thread_id):
                scripts.delete_for_runs(
                    keys=self._keys(thread_id).all(), args=["", *runs], client=client
                )

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        client, scripts = self._sync()
        src, dst = self._keys(source_thread_id), self._keys(target_thread_id)
        with redis_errors(source_thread_id):
            pipe = client.pipeline(transaction=True)
            self._queue_reads(pipe, src)
            data = pipe.execute()
        if not data[0]:
            return
        with redis_errors(target_thread_id):
            pipe = client.pipeline(transaction=True)
            namespaces = self._queue_copy(
                pipe, dst, self._resealed(data, source_thread_id, target_thread_id)
            )
            scripts.fix_latest(keys=dst.all(), args=[self._ttl_ms, *namespaces], client=pipe)
            pipe.execute()

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Same scheme as InMemorySaver: zero-padded counter plus a random fraction,
        so versions made on forked branches never collide on a blob field."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # -- shared helpers ------------------------------------------------------------------
    @staticmethod
    def _check_strategy(strategy: str) -> None:
        if strategy not in ("keep_latest", "delete"):
            raise FailedPreconditionError(f"unknown prune strategy {strategy!r}")

    @staticmethod
    def _list_args(
        config: RunnableConfig | None, before: RunnableConfig | None
    ) -> tuple[str | None, str | None, str | None]:
        ns_filter: str | None = None
        cid: str | None = None
        if config is not None:
            conf = config.get("configurable") or {}
            raw_ns = conf.get("checkpoint_ns")
            ns_filter = None if raw_ns is None else str(raw_ns)
            cid = conf.get("checkpoint_id") or None
        before_id = ((before or {}).get("configurable") or {}).get("checkpoint_id") or None
        return ns_filter, cid, before_id

    @staticmethod
    def _queue_reads(pipe: Any, src: CheckpointKeys) -> None:
        for key in (src.latest, src.records, src.blob_fields, src.blobs, src.writes):
            pipe.hgetall(key)
        for key in (src.index, src.writes_index, src.runs_index):
            pipe.zrange(key, 0, -1)

    def _resealed(
        self, data: builtins.list[Any], source: str, target_thread: str
    ) -> builtins.list[Any]:
        records, blobs, writes = reseal_copy(
            self.codec, source, target_thread, data[1], data[3], data[4]
        )
        return [data[0], records, data[2], blobs, writes, *data[5:]]

    @staticmethod
    def _queue_copy(
        pipe: Any, dst: CheckpointKeys, data: builtins.list[Any]
    ) -> builtins.list[bytes]:
        latest, records, blob_fields, blobs, writes = data[:5]
        for key, mapping in (
            (dst.records, records),
            (dst.blob_fields, blob_fields),
            (dst.blobs, blobs),
            (dst.writes, writes),
        ):
            if mapping:
                pipe.hset(key, mapping=mapping)
        for key, members in zip(
            (dst.index, dst.writes_index, dst.runs_index), data[5:], strict=True
        ):
            if members:
                pipe.zadd(key, dict.fromkeys(members, 0))
        return list(latest)

    def _decode_page(
        self, thread_id: str, ns: str, replies: builtins.list[Any]
    ) -> builtins.list[CheckpointTuple]:
        out = []
        for reply in replies:
            tup = decode_tuple(self.serde, thread_id, ns, reply, self.codec)
            if tup is not None:
                out.append(tup)
        return out

    async def _athreads(self) -> AsyncIterator[str]:
        seen: set[str] = set()
        with redis_errors():
            async for raw in self.redis.scan_iter(
                match=self.keys.checkpoint_latest_pattern(), count=500
            ):
                tid = self.keys.thread_of_checkpoint_latest(raw.decode())
                if tid is not None and tid not in seen:
                    seen.add(tid)
                    yield tid

    def _threads(self) -> Iterator[str]:
        client, _ = self._sync()
        seen: set[str] = set()
        with redis_errors():
            for raw in client.scan_iter(match=self.keys.checkpoint_latest_pattern(), count=500):
                tid = self.keys.thread_of_checkpoint_latest(raw.decode())
                if tid is not None and tid not in seen:
                    seen.add(tid)
                    yield tid

    async def _alist_thread(
        self,
        thread_id: str,
        ns_filter: str | None,
        cid: str | None,
        before_id: str | None,
        flt: dict[str, Any] | None,
    ) -> AsyncIterator[CheckpointTuple]:
        keys = self._keys(thread_id)
        with redis_errors(thread_id):
            if ns_filter is not None:
                namespaces = [ns_filter]
            else:
                namespaces = sorted(_text(k) for k in await self.redis.hkeys(keys.latest))
        for ns in namespaces:
            if cid is not None:
                if before_id is not None and cid >= before_id:
                    continue
                with redis_errors(thread_id):
                    reply = await self._ascripts.get(keys=keys.all(), args=[ns, cid])
                tup = decode_tuple(self.serde, thread_id, ns, reply, self.codec)
                if tup is not None and metadata_matches(tup.metadata, flt):
                    yield tup
                continue
            hi, lo = ns_bounds(ns, before_id)
            while True:
                with redis_errors(thread_id):
                    members = _as_bytes(
                        await self.redis.zrevrangebylex(keys.index, hi, lo, 0, _PAGE)
                    )
                    if not members:
                        break
                    pipe = self.redis.pipeline(transaction=False)
                    for m in members:
                        await self._ascripts.get(
                            keys=keys.all(), args=[ns, m[len(ns.encode()) + 1 :]], client=pipe
                        )
                    replies = await pipe.execute()
                for tup in self._decode_page(thread_id, ns, replies):
                    if metadata_matches(tup.metadata, flt):
                        yield tup
                if len(members) < _PAGE:
                    break
                hi = b"(" + members[-1]

    def _list_thread(
        self,
        thread_id: str,
        ns_filter: str | None,
        cid: str | None,
        before_id: str | None,
        flt: dict[str, Any] | None,
    ) -> Iterator[CheckpointTuple]:
        client, scripts = self._sync()
        keys = self._keys(thread_id)
        with redis_errors(thread_id):
            if ns_filter is not None:
                namespaces = [ns_filter]
            else:
                namespaces = sorted(_text(k) for k in client.hkeys(keys.latest))
        for ns in namespaces:
            if cid is not None:
                if before_id is not None and cid >= before_id:
                    continue
                with redis_errors(thread_id):
                    reply = scripts.get(keys=keys.all(), args=[ns, cid], client=client)
                tup = decode_tuple(self.serde, thread_id, ns, reply, self.codec)
                if tup is not None and metadata_matches(tup.metadata, flt):
                    yield tup
                continue
            hi, lo = ns_bounds(ns, before_id)
            while True:
                with redis_errors(thread_id):
                    members = _as_bytes(client.zrevrangebylex(keys.index, hi, lo, 0, _PAGE))
                    if not members:
                        break
                    pipe = client.pipeline(transaction=False)
                    for m in members:
                        scripts.get(
                            keys=keys.all(), args=[ns, m[len(ns.encode()) + 1 :]], client=pipe
                        )
                    replies = pipe.execute()
                for tup in self._decode_page(thread_id, ns, replies):
                    if metadata_matches(tup.metadata, flt):
                        yield tup
                if len(members) < _PAGE:
                    break
                hi = b"(" + members[-1]

"""Async Python client for the mesh's public gRPC API, shaped like ``langgraph_sdk``.

from mesh_client import get_client

client = get_client(url="127.0.0.1:50051", api_key="dev-key")
thread = await client.threads.create(metadata={"user": "ada"})
async for part in client.runs.stream(thread["thread_id"], "demo", input={...},
                                     stream_mode=["values", "updates"]):
    print(part.event, part.data)

Resources and methods carry langgraph_sdk's names and keyword arguments wherever the
mesh has the concept (see the README's table for what it has not, and why). Errors are
:mod:`mesh_client.errors` exceptions, mapped from the gRPC status in one place.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from lgmesh.api.v1 import (
    assistants_pb2,
    assistants_pb2_grpc,
    runs_pb2,
    runs_pb2_grpc,
    threads_pb2,
    threads_pb2_grpc,
)

from mesh_client._convert import (
    StreamPart,
    assistant_dict,
    part_of,
    run_dict,
    run_spec,
    state_dict,
    thread_dict,
)
from mesh_client.errors import RunFailedError, from_rpc_error
from mesh_core import api_names as names
from mesh_core.jsonvalue import from_struct, from_value, to_struct, to_value

__all__ = ["MeshClient", "StreamPart", "get_client"]

T = TypeVar("T")


class _Resource:
    def __init__(self, client: MeshClient) -> None:
        self._c = client

    async def _call(self, fn: Callable[..., Awaitable[T]], request: Any) -> T:
        try:
            return await fn(request, metadata=self._c.metadata)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None

    async def _stream(self, fn: Callable[..., Any], request: Any) -> AsyncIterator[StreamPart]:
        call = fn(request, metadata=self._c.metadata)
        try:
            async for resp in call:
                yield part_of(resp.event)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None
        finally:
            call.cancel()


def _ttl_seconds(ttl: int | float | dict[str, Any] | None) -> float:
    minutes = ttl.get("ttl") if isinstance(ttl, dict) else ttl
    return float(minutes or 0) * 60.0


def _status(table: Any, value: str | None, what: str) -> int:
    return names.value_of(table, value, what) if value else 0


class ThreadsClient(_Resource):
    """langgraph_sdk's ``client.threads``."""

    async def create(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        thread_id: str | None = None,
        if_exists: str | None = None,
        graph_id: str | None = None,
        ttl: int | float | dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``ttl``: minutes as in langgraph_sdk (a number, or {"ttl": minutes})."""
        resp = await self._call(
            self._c.threads_stub.CreateThread,
            threads_pb2.CreateThreadRequest(
                thread_id=thread_id or "",
                metadata=to_struct(metadata),
                if_exists_return=if_exists == "do_nothing",
                graph_id=graph_id or "",
                ttl_seconds=_ttl_seconds(ttl),
            ),
        )
        return thread_dict(resp.thread)

    async def get(self, thread_id: str) -> dict[str, Any]:
        resp = await self._call(
            self._c.threads_stub.GetThread, threads_pb2.GetThreadRequest(thread_id=thread_id)
        )
        return thread_dict(resp.thread)

    async def update(
        self,
        thread_id: str,
        *,
        metadata: dict[str, Any] | None = None,
        ttl: int | float | dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        resp = await self._call(
            self._c.threads_stub.UpdateThread,
            threads_pb2.UpdateThreadRequest(
                thread_id=thread_id,
                metadata=to_struct(metadata) if metadata else None,
                ttl_seconds=_ttl_seconds(ttl),
            ),
        )
        return thread_dict(resp.thread)

    async def delete(self, thread_id: str) -> None:
        await self._call(
            self._c.threads_stub.DeleteThread, threads_pb2.DeleteThreadRequest(thread_id=thread_id)
        )

    async def search(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        ids: Sequence[str] | None = None,
        status: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        resp = await self._call(
            self._c.threads_stub.SearchThreads,
            threads_pb2.SearchThreadsRequest(
                metadata=to_struct(metadata),
                status=_status(names.THREAD_STATUS, status, "status"),
                limit=limit,
                offset=offset,
                ids=list(ids or ()),
            ),
        )
        return [thread_dict(t) for t in resp.threads]

    async def count(
        self, *, metadata: dict[str, Any] | None = None, status: str | None = None
    ) -> int:
        resp = await self._call(
            self._c.threads_stub.CountThreads,
            threads_pb2.CountThreadsRequest(
                metadata=to_struct(metadata),
                status=_status(names.THREAD_STATUS, status, "status"),
            ),
        )
        return resp.count

    async def copy(self, thread_id: str) -> dict[str, Any]:
        """A new thread with this one's checkpoints and metadata (returned; langgraph_sdk
        returns None)."""
        resp = await self._call(
            self._c.threads_stub.CopyThread, threads_pb2.CopyThreadRequest(thread_id=thread_id)
        )
        return thread_dict(resp.thread)

    async def prune(self, thread_ids: Sequence[str], *, strategy: str = "delete") -> dict[str, Any]:
        resp = await self._call(
            self._c.threads_stub.PruneThreads,
            threads_pb2.PruneThreadsRequest(
                thread_ids=list(thread_ids),
                strategy=names.value_of(names.PRUNE_STRATEGY, strategy, "strategy"),
            ),
        )
        return {"pruned_count": resp.pruned_count}

    async def get_state(
        self,
        thread_id: str,
        checkpoint: dict[str, Any] | None = None,
        checkpoint_id: str | None = None,
        *,
        subgraphs: bool = False,
    ) -> dict[str, Any]:
        resp = await self._call(
            self._c.threads_stub.GetThreadState,
            threads_pb2.GetThreadStateRequest(
                thread_id=thread_id,
                checkpoint_id=checkpoint_id or str((checkpoint or {}).get("checkpoint_id") or ""),
                checkpoint_ns=str((checkpoint or {}).get("checkpoint_ns") or ""),
                subgraphs=subgraphs,
            ),
        )
        return state_dict(resp.state, thread_id)

    async def update_state(
        self,
        thread_id: str,
        values: Any,
        *,
        as_node: str | None = None,
        checkpoint: dict[str, Any] | None = None,
        checkpoint_id: str | None = None,
    ) -> dict[str, Any]:
        resp = await self._call(
            self._c.threads_stub.UpdateThreadState,
            threads_pb2.UpdateThreadStateRequest(
                thread_id=thread_id,
                values=to_value(values),
                as_node=as_node or "",
                checkpoint_id=checkpoint_id or str((checkpoint or {}).get("checkpoint_id") or ""),
                checkpoint_ns=str((checkpoint or {}).get("checkpoint_ns") or ""),
            ),
        )
        return {
            "checkpoint": {
                "thread_id": thread_id,
                "checkpoint_ns": resp.checkpoint_ns,
                "checkpoint_id": resp.checkpoint_id,
                "checkpoint_map": None,
            }
        }

    async def get_history(
        self,
        thread_id: str,
        *,
        limit: int = 10,
        before: str | dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        checkpoint: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        before_id = before.get("checkpoint_id") if isinstance(before, dict) else before
        resp = await self._call(
            self._c.threads_stub.GetThreadHistory,
            threads_pb2.GetThreadHistoryRequest(
                thread_id=thread_id,
                limit=limit,
                before=str(before_id or ""),
                metadata=to_struct(metadata) if metadata else None,
                checkpoint_ns=str((checkpoint or {}).get("checkpoint_ns") or ""),
                checkpoint_id=str((checkpoint or {}).get("checkpoint_id") or ""),
            ),
        )
        return [state_dict(s, thread_id) for s in resp.states]


def _outcome(resp: Any, raise_error: bool) -> Any:
    run = run_dict(resp.run)
    if raise_error and run["status"] == "error":
        raise RunFailedError(run)
    return from_value(resp.values) if resp.HasField("values") else None


class RunsClient(_Resource):
    """langgraph_sdk's ``client.runs``. Run keyword arguments: see ``_convert.run_spec``."""

    def stream(
        self, thread_id: str | None, assistant_id: str, **kwargs: Any
    ) -> AsyncIterator[StreamPart]:
        return self._stream(
            self._c.runs_stub.StreamRun,
            runs_pb2.StreamRunRequest(run=run_spec(thread_id, assistant_id, **kwargs)),
        )

    async def wait(
        self, thread_id: str | None, assistant_id: str, *, raise_error: bool = True, **kwargs: Any
    ) -> Any:
        """The run's output (the thread's values when it ended); a failed run raises
        :class:`~mesh_client.errors.RunFailedError` unless ``raise_error=False``."""
        resp = await self._call(
            self._c.runs_stub.WaitRun,
            runs_pb2.WaitRunRequest(run=run_spec(thread_id, assistant_id, **kwargs)),
        )
        return _outcome(resp, raise_error)

    async def wait_full(
        self, thread_id: str | None, assistant_id: str, **kwargs: Any
    ) -> dict[str, Any]:
        """The ended run and its output, without raising for a failed run."""
        resp = await self._call(
            self._c.runs_stub.WaitRun,
            runs_pb2.WaitRunRequest(run=run_spec(thread_id, assistant_id, **kwargs)),
        )
        return {
            "run": run_dict(resp.run),
            "values": from_value(resp.values) if resp.HasField("values") else None,
        }

    async def create(
        self, thread_id: str | None, assistant_id: str, **kwargs: Any
    ) -> dict[str, Any]:
        resp = await self._call(
            self._c.runs_stub.CreateRun,
            runs_pb2.CreateRunRequest(run=run_spec(thread_id, assistant_id, **kwargs)),
        )
        return run_dict(resp.run)

    async def get(self, thread_id: str, run_id: str) -> dict[str, Any]:
        resp = await self._call(
            self._c.runs_stub.GetRun, runs_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id)
        )
        return run_dict(resp.run)

    async def list(
        self, thread_id: str, *, limit: int = 10, offset: int = 0, status: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        resp = await self._call(
            self._c.runs_stub.ListRuns,
            runs_pb2.ListRunsRequest(
                thread_id=thread_id,
                limit=limit,
                offset=offset,
                status=_status(names.RUN_STATUS, status, "status"),
            ),
        )
        return [run_dict(r) for r in resp.runs]

    async def cancel(
        self, thread_id: str, run_id: str, *, wait: bool = False, action: str = "interrupt"
    ) -> dict[str, Any]:
        resp = await self._call(
            self._c.runs_stub.CancelRun,
            runs_pb2.CancelRunRequest(
                thread_id=thread_id,
                run_id=run_id,
                wait=wait,
                action=names.value_of(names.CANCEL_ACTION, action, "action"),
            ),
        )
        return run_dict(resp.run)

    async def cancel_many(
        self,
        *,
        thread_id: str | None = None,
        run_ids: Sequence[str] | None = None,
        status: str | None = None,
        action: str = "interrupt",
    ) -> builtins.list[dict[str, Any]]:
        resp = await self._call(
            self._c.runs_stub.CancelRuns,
            runs_pb2.CancelRunsRequest(
                thread_id=thread_id or "",
                run_ids=list(run_ids or ()),
                status=_status(names.CANCEL_RUNS_STATUS, status, "status"),
                action=names.value_of(names.CANCEL_ACTION, action, "action"),
            ),
        )
        return [run_dict(r) for r in resp.runs]

    async def delete(self, thread_id: str, run_id: str) -> None:
        await self._call(
            self._c.runs_stub.DeleteRun,
            runs_pb2.DeleteRunRequest(thread_id=thread_id, run_id=run_id),
        )

    async def join(self, thread_id: str, run_id: str, *, raise_error: bool = True) -> Any:
        """Wait for an existing run to end; its output (a failed run raises)."""
        resp = await self._call(
            self._c.runs_stub.WaitForRun,
            runs_pb2.WaitForRunRequest(thread_id=thread_id, run_id=run_id),
        )
        return _outcome(resp, raise_error)

    def join_stream(
        self,
        thread_id: str,
        run_id: str,
        *,
        last_event_id: int | str = 0,
        stream_mode: str | Sequence[str] = (),
    ) -> AsyncIterator[StreamPart]:
        modes = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode)
        return self._stream(
            self._c.runs_stub.JoinRun,
            runs_pb2.JoinRunRequest(
                thread_id=thread_id,
                run_id=run_id,
                after_seq=int(last_event_id or 0),
                stream_modes=[names.value_of(names.STREAM_MODE, m, "stream_mode") for m in modes],
            ),
        )


class AssistantsClient(_Resource):
    """langgraph_sdk's ``client.assistants``."""

    async def get(self, assistant_id: str, *, with_schemas: bool = False) -> dict[str, Any]:
        resp = await self._call(
            self._c.assistants_stub.GetAssistant,
            assistants_pb2.GetAssistantRequest(
                assistant_id=assistant_id, with_schemas=with_schemas
            ),
        )
        return assistant_dict(resp.assistant)

    async def create(
        self,
        graph_id: str,
        config: dict[str, Any] | None = None,
        *,
        context: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        assistant_id: str | None = None,
        if_exists: str | None = None,
        name: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        resp = await self._call(
            self._c.assistants_stub.CreateAssistant,
            assistants_pb2.CreateAssistantRequest(
                graph_id=graph_id,
                config=to_struct(config),
                context=to_struct(context),
                metadata=to_struct(metadata),
                assistant_id=assistant_id or "",
                if_exists_return=if_exists == "do_nothing",
                name=name or "",
                description=description or "",
            ),
        )
        return assistant_dict(resp.assistant)

    async def update(
        self,
        assistant_id: str,
        *,
        graph_id: str | None = None,
        config: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        req = assistants_pb2.UpdateAssistantRequest(
            assistant_id=assistant_id,
            graph_id=graph_id or "",
            name=name or "",
            description=description or "",
        )
        for field, value in (("config", config), ("context", context), ("metadata", metadata)):
            if value is not None:
                getattr(req, field).CopyFrom(to_struct(value))
        resp = await self._call(self._c.assistants_stub.UpdateAssistant, req)
        return assistant_dict(resp.assistant)

    async def delete(self, assistant_id: str) -> None:
        await self._call(
            self._c.assistants_stub.DeleteAssistant,
            assistants_pb2.DeleteAssistantRequest(assistant_id=assistant_id),
        )

    async def search(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        graph_id: str | None = None,
        name: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        resp = await self._call(
            self._c.assistants_stub.SearchAssistants,
            assistants_pb2.SearchAssistantsRequest(
                metadata=to_struct(metadata),
                graph_id=graph_id or "",
                name=name or "",
                limit=limit,
                offset=offset,
            ),
        )
        return [assistant_dict(a) for a in resp.assistants]

    async def count(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        graph_id: str | None = None,
        name: str | None = None,
    ) -> int:
        resp = await self._call(
            self._c.assistants_stub.CountAssistants,
            assistants_pb2.CountAssistantsRequest(
                metadata=to_struct(metadata), graph_id=graph_id or "", name=name or ""
            ),
        )
        return resp.count

    async def get_versions(
        self,
        assistant_id: str,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        resp = await self._call(
            self._c.assistants_stub.ListAssistantVersions,
            assistants_pb2.ListAssistantVersionsRequest(
                assistant_id=assistant_id, metadata=to_struct(metadata), limit=limit, offset=offset
            ),
        )
        return [assistant_dict(a) for a in resp.versions]

    async def set_latest(self, assistant_id: str, version: int) -> dict[str, Any]:
        resp = await self._call(
            self._c.assistants_stub.SetLatestAssistantVersion,
            assistants_pb2.SetLatestAssistantVersionRequest(
                assistant_id=assistant_id, version=version
            ),
        )
        return assistant_dict(resp.assistant)

    async def get_graph(self, assistant_id: str, *, xray: int | bool = False) -> dict[str, Any]:
        depth = -1 if xray is True else int(xray)
        resp = await self._call(
            self._c.assistants_stub.GetAssistantGraph,
            assistants_pb2.GetAssistantGraphRequest(assistant_id=assistant_id, xray=depth),
        )
        return from_struct(resp.graph)

    async def get_schemas(self, assistant_id: str) -> dict[str, Any]:
        resp = await self._call(
            self._c.assistants_stub.GetAssistantSchemas,
            assistants_pb2.GetAssistantSchemasRequest(assistant_id=assistant_id),
        )
        return from_struct(resp.schemas)

    async def get_subgraphs(
        self, assistant_id: str, namespace: str | None = None, recurse: bool = False
    ) -> dict[str, Any]:
        resp = await self._call(
            self._c.assistants_stub.GetAssistantSubgraphs,
            assistants_pb2.GetAssistantSubgraphsRequest(
                assistant_id=assistant_id, namespace=namespace or "", recurse=recurse
            ),
        )
        return from_struct(resp.subgraphs)


def _grpc_target(url: str) -> tuple[str, bool]:
    """A gRPC target and whether to use TLS, from ``host:port`` or a URL as
    ``langgraph_sdk`` takes it (``http://host:port``, ``https://host``, ``grpc://``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url, False
    scheme = scheme.lower()
    if scheme not in ("http", "https", "grpc", "grpcs"):
        raise ValueError(f"unsupported URL scheme {scheme!r} in {url!r}")
    secure = scheme in ("https", "grpcs")
    host = rest.split("/", 1)[0]
    if not host:
        raise ValueError(f"no host in {url!r}")
    if ":" not in host.rpartition("]")[2]:  # no port: the scheme's
        host += ":443" if secure else ":80"
    return host, secure


class MeshClient:
    """``ca_file``: PEM file of the CA that signed the gateway's certificate (its
    public TLS, ``--public-tls-cert``); implies TLS. Without it, ``https://`` URLs use
    the system's trusted CAs."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        channel: grpc.aio.Channel | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.url = url
        self.metadata = [("authorization", f"Bearer {api_key}")]
        target, secure = _grpc_target(url)
        options = [
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ]
        if channel is None and (secure or ca_file):
            roots = Path(ca_file).read_bytes() if ca_file else None
            creds = grpc.ssl_channel_credentials(root_certificates=roots)
            channel = grpc.aio.secure_channel(target, creds, options=options)
        self.channel = channel or grpc.aio.insecure_channel(target, options=options)
        self.threads_stub = threads_pb2_grpc.ThreadServiceStub(self.channel)
        self.runs_stub = runs_pb2_grpc.RunServiceStub(self.channel)
        self.assistants_stub = assistants_pb2_grpc.AssistantServiceStub(self.channel)
        self.threads = ThreadsClient(self)
        self.runs = RunsClient(self)
        self.assistants = AssistantsClient(self)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> MeshClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def get_client(
    *, url: str = "127.0.0.1:50051", api_key: str, ca_file: str | None = None
) -> MeshClient:
    """A client of the gateway at ``url``: ``host:port`` or ``http://host:port``
    (plaintext), ``https://host[:port]`` (TLS); ``ca_file``: TLS trusting this CA."""
    return MeshClient(url, api_key, ca_file=ca_file)

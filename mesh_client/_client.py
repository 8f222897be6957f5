"""Async Python client for the mesh's public gRPC API, shaped like ``langgraph_sdk``.

from mesh_client import get_client

client = get_client(url="127.0.0.1:50051", api_key="dev-key")
thread = await client.threads.create(metadata={"user": "ada"})
async for part in client.runs.stream(thread["thread_id"], "demo", input={...},
                                     stream_mode=["values", "updates"]):
    print(part.event, part.data)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from lgmesh.api.v1 import (
    assistants_pb2,
    assistants_pb2_grpc,
    runs_pb2,
    runs_pb2_grpc,
    threads_pb2,
    threads_pb2_grpc,
    types_pb2,
)

from mesh_core.jsonvalue import from_struct, from_value, to_struct, to_value

__all__ = ["MeshClient", "StreamPart", "get_client"]

_MODES = {
    "values": types_pb2.STREAM_MODE_VALUES,
    "updates": types_pb2.STREAM_MODE_UPDATES,
    "custom": types_pb2.STREAM_MODE_CUSTOM,
    "messages": types_pb2.STREAM_MODE_MESSAGES,
    "debug": types_pb2.STREAM_MODE_DEBUG,
}
_STRATEGIES = {
    "reject": types_pb2.MULTITASK_STRATEGY_REJECT,
    "enqueue": types_pb2.MULTITASK_STRATEGY_ENQUEUE,
    "interrupt": types_pb2.MULTITASK_STRATEGY_INTERRUPT,
    "rollback": types_pb2.MULTITASK_STRATEGY_ROLLBACK,
}
_LIFECYCLE = {
    types_pb2.LIFECYCLE_KIND_STARTED: "started",
    types_pb2.LIFECYCLE_KIND_RESUMED: "resumed",
    types_pb2.LIFECYCLE_KIND_ENDED: "ended",
    types_pb2.LIFECYCLE_KIND_QUEUED: "queued",
}
_STATUS = {
    types_pb2.RUN_STATUS_PENDING: "pending",
    types_pb2.RUN_STATUS_RUNNING: "running",
    types_pb2.RUN_STATUS_SUCCESS: "success",
    types_pb2.RUN_STATUS_ERROR: "error",
    types_pb2.RUN_STATUS_INTERRUPTED: "interrupted",
    types_pb2.RUN_STATUS_CANCELLED: "cancelled",
}


@dataclass
class StreamPart:
    """One event of a run: ``event`` is the stream mode or ``"lifecycle"``."""

    event: str
    data: Any
    run_id: str
    seq: int
    namespace: tuple[str, ...] = ()
    lifecycle: dict[str, Any] = field(default_factory=dict)


def _msg_dict(msg: Any) -> dict[str, Any]:
    out = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return out


def _part(ev: types_pb2.RunEvent) -> StreamPart:
    lc: dict[str, Any] = {}
    if ev.mode == "lifecycle":
        lc = {
            "kind": _LIFECYCLE.get(ev.lifecycle.kind, ""),
            "status": _STATUS.get(ev.lifecycle.status, ""),
            "runtime_id": ev.lifecycle.runtime_id,
            "interrupts": [
                {"id": i.id, "value": from_value(i.value)} for i in ev.lifecycle.interrupts
            ],
        }
        if ev.lifecycle.HasField("error"):
            lc["error"] = {"type": ev.lifecycle.error.type, "message": ev.lifecycle.error.message}
    return StreamPart(
        event=ev.mode,
        data=from_value(ev.data) if ev.HasField("data") else None,
        run_id=ev.run_id,
        seq=ev.seq,
        namespace=tuple(ev.namespace),
        lifecycle=lc,
    )


def _run_dict(run: types_pb2.Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "status": _STATUS.get(run.status, ""),
        "metadata": from_struct(run.metadata),
        "attempts": run.attempts,
        "interrupts": [{"id": i.id, "value": from_value(i.value)} for i in run.interrupts],
        "error": {"type": run.error.type, "message": run.error.message}
        if run.HasField("error")
        else None,
    }


def _thread_dict(t: types_pb2.Thread) -> dict[str, Any]:
    status = types_pb2.ThreadStatus.Name(t.status).removeprefix("THREAD_STATUS_").lower()
    return {"thread_id": t.thread_id, "metadata": from_struct(t.metadata), "status": status}


def _spec(
    thread_id: str | None,
    assistant_id: str,
    *,
    input: Any = None,
    command: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    stream_mode: str | Sequence[str] = ("values",),
    multitask_strategy: str = "reject",
    interrupt_before: Sequence[str] = (),
    interrupt_after: Sequence[str] = (),
    stream_subgraphs: bool = False,
    if_not_exists: str | None = None,
) -> types_pb2.RunSpec:
    modes = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode)
    spec = types_pb2.RunSpec(
        thread_id=thread_id or "",
        assistant_id=assistant_id,
        stream_modes=[_MODES[m] for m in modes],
        multitask_strategy=_STRATEGIES[multitask_strategy],
        interrupt_before=list(interrupt_before),
        interrupt_after=list(interrupt_after),
        stream_subgraphs=stream_subgraphs,
        if_not_exists_create=if_not_exists == "create",
    )
    if command is not None:
        cmd = types_pb2.Command()
        if "resume" in command:
            cmd.resume.CopyFrom(to_value(command["resume"]))
            cmd.resume_map = isinstance(command["resume"], dict) and bool(command.get("resume_map"))
        if command.get("update") is not None:
            cmd.update.CopyFrom(to_value(command["update"]))
        goto = command.get("goto")
        if goto:
            cmd.goto.extend([goto] if isinstance(goto, str) else list(goto))
        spec.command.CopyFrom(cmd)
    elif input is not None:
        spec.input.CopyFrom(to_value(input))
    if config:
        spec.config.CopyFrom(to_struct(config))
    if context:
        spec.context.CopyFrom(to_struct(context))
    if metadata:
        spec.metadata.CopyFrom(to_struct(metadata))
    return spec


class _Base:
    def __init__(self, client: MeshClient) -> None:
        self._c = client

    @property
    def _md(self) -> list[tuple[str, str]]:
        return self._c.metadata


class ThreadsClient(_Base):
    async def create(
        self,
        *,
        thread_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        if_exists: str = "raise",
    ) -> dict[str, Any]:
        resp = await self._c.threads_stub.CreateThread(
            threads_pb2.CreateThreadRequest(
                thread_id=thread_id or "",
                metadata=to_struct(metadata),
                if_exists_return=if_exists == "do_nothing",
            ),
            metadata=self._md,
        )
        return _thread_dict(resp.thread)

    async def get(self, thread_id: str) -> dict[str, Any]:
        resp = await self._c.threads_stub.GetThread(
            threads_pb2.GetThreadRequest(thread_id=thread_id), metadata=self._md
        )
        return _thread_dict(resp.thread)

    async def get_state(
        self, thread_id: str, checkpoint_id: str | None = None, *, subgraphs: bool = False
    ) -> dict[str, Any]:
        resp = await self._c.threads_stub.GetThreadState(
            threads_pb2.GetThreadStateRequest(
                thread_id=thread_id, checkpoint_id=checkpoint_id or "", subgraphs=subgraphs
            ),
            metadata=self._md,
        )
        st = resp.state
        return {
            "values": from_value(st.values) if st.HasField("values") else None,
            "next": list(st.next),
            "checkpoint_id": st.checkpoint_id,
            "parent_checkpoint_id": st.parent_checkpoint_id,
            "metadata": from_struct(st.metadata),
            "tasks": [
                {
                    "id": t.id,
                    "name": t.name,
                    "interrupts": [
                        {"id": i.id, "value": from_value(i.value)} for i in t.interrupts
                    ],
                }
                for t in st.tasks
            ],
            "interrupts": [{"id": i.id, "value": from_value(i.value)} for i in st.interrupts],
        }

    async def delete(self, thread_id: str) -> None:
        await self._c.threads_stub.DeleteThread(
            threads_pb2.DeleteThreadRequest(thread_id=thread_id), metadata=self._md
        )

    async def search(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        status: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        st = getattr(types_pb2, f"THREAD_STATUS_{status.upper()}") if status else 0
        resp = await self._c.threads_stub.SearchThreads(
            threads_pb2.SearchThreadsRequest(
                metadata=to_struct(metadata), status=st, limit=limit, offset=offset
            ),
            metadata=self._md,
        )
        return [_thread_dict(t) for t in resp.threads]


class RunsClient(_Base):
    async def stream(
        self, thread_id: str | None, assistant_id: str, **kwargs: Any
    ) -> AsyncIterator[StreamPart]:
        call = self._c.runs_stub.StreamRun(
            runs_pb2.StreamRunRequest(run=_spec(thread_id, assistant_id, **kwargs)),
            metadata=self._md,
        )
        async for resp in call:
            yield _part(resp.event)

    async def wait(self, thread_id: str | None, assistant_id: str, **kwargs: Any) -> Any:
        """The thread's state values when the run ends (like langgraph_sdk's runs.wait)."""
        resp = await self.wait_full(thread_id, assistant_id, **kwargs)
        return resp["values"]

    async def wait_full(
        self, thread_id: str | None, assistant_id: str, **kwargs: Any
    ) -> dict[str, Any]:
        resp = await self._c.runs_stub.WaitRun(
            runs_pb2.WaitRunRequest(run=_spec(thread_id, assistant_id, **kwargs)), metadata=self._md
        )
        return {
            "run": _run_dict(resp.run),
            "values": from_value(resp.values) if resp.HasField("values") else None,
        }

    async def create(
        self, thread_id: str | None, assistant_id: str, **kwargs: Any
    ) -> dict[str, Any]:
        resp = await self._c.runs_stub.CreateRun(
            runs_pb2.CreateRunRequest(run=_spec(thread_id, assistant_id, **kwargs)),
            metadata=self._md,
        )
        return _run_dict(resp.run)

    async def get(self, thread_id: str, run_id: str) -> dict[str, Any]:
        resp = await self._c.runs_stub.GetRun(
            runs_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id), metadata=self._md
        )
        return _run_dict(resp.run)

    async def list(
        self, thread_id: str, *, limit: int = 10, offset: int = 0
    ) -> list[dict[str, Any]]:
        resp = await self._c.runs_stub.ListRuns(
            runs_pb2.ListRunsRequest(thread_id=thread_id, limit=limit, offset=offset),
            metadata=self._md,
        )
        return [_run_dict(r) for r in resp.runs]

    async def cancel(
        self, thread_id: str, run_id: str, *, wait: bool = False, action: str = "interrupt"
    ) -> dict[str, Any]:
        act = (
            types_pb2.CANCEL_ACTION_ROLLBACK
            if action == "rollback"
            else types_pb2.CANCEL_ACTION_INTERRUPT
        )
        resp = await self._c.runs_stub.CancelRun(
            runs_pb2.CancelRunRequest(thread_id=thread_id, run_id=run_id, wait=wait, action=act),
            metadata=self._md,
        )
        return _run_dict(resp.run)

    async def join_stream(
        self,
        thread_id: str,
        run_id: str,
        *,
        last_event_id: int = 0,
        stream_mode: Sequence[str] = (),
    ) -> AsyncIterator[StreamPart]:
        call = self._c.runs_stub.JoinRun(
            runs_pb2.JoinRunRequest(
                thread_id=thread_id,
                run_id=run_id,
                after_seq=last_event_id,
                stream_modes=[_MODES[m] for m in stream_mode],
            ),
            metadata=self._md,
        )
        async for resp in call:
            yield _part(resp.event)


class AssistantsClient(_Base):
    async def search(self) -> list[dict[str, Any]]:
        resp = await self._c.assistants_stub.ListAssistants(
            assistants_pb2.ListAssistantsRequest(), metadata=self._md
        )
        return [_msg_dict(a) for a in resp.assistants]

    async def get(self, assistant_id: str) -> dict[str, Any]:
        resp = await self._c.assistants_stub.GetAssistant(
            assistants_pb2.GetAssistantRequest(assistant_id=assistant_id), metadata=self._md
        )
        return _msg_dict(resp.assistant)


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
    def __init__(self, url: str, api_key: str, *, channel: grpc.aio.Channel | None = None) -> None:
        self.url = url
        self.metadata = [("authorization", f"Bearer {api_key}")]
        target, secure = _grpc_target(url)
        options = [
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ]
        self.channel = channel or (
            grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(), options=options)
            if secure
            else grpc.aio.insecure_channel(target, options=options)
        )
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


def get_client(*, url: str = "127.0.0.1:50051", api_key: str) -> MeshClient:
    """A client of the gateway at ``url``: ``host:port`` or ``http://host:port``
    (plaintext), ``https://host[:port]`` (TLS)."""
    return MeshClient(url, api_key)

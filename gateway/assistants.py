"""Assistants, as in langgraph_sdk: a graph with its own config, context and metadata.

Every graph the runtimes serve is an assistant whose id is the graph id (version 1, no
config: LangGraph's Agent Server makes the same "system" assistant per graph); those
cannot be changed or deleted. A tenant creates its own on any graph; each update makes
a new version, which becomes the latest (``set_latest`` goes back to another). A run on
an assistant starts from its latest version's config and context, the run's own
config and context laid over them.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from gateway._runtime import GraphInfo, RuntimeClient
from gateway.ids import check_id, check_page
from mesh_core.adapters.redis.assistants import AssistantRecord, AssistantStore
from mesh_core.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
)
from mesh_core.validation import validate_config

__all__ = ["AssistantsEngine", "merge_config"]


def merge_config(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid over ``base``; their ``configurable`` and ``metadata`` merge key by key."""
    out = {**base, **over}
    for key in ("configurable", "metadata"):
        if isinstance(base.get(key), dict) and isinstance(over.get(key), dict):
            out[key] = {**base[key], **over[key]}
    return out


def _matches(
    rec: AssistantRecord, metadata: dict[str, Any] | None, graph_id: str, name: str
) -> bool:
    if graph_id and rec.graph_id != graph_id:
        return False
    if name and name.lower() not in rec.name.lower():
        return False
    return not metadata or all(rec.metadata.get(k) == v for k, v in metadata.items())


class AssistantsEngine:
    def __init__(self, store: AssistantStore, runtime: RuntimeClient) -> None:
        self.store = store
        self.runtime = runtime

    @staticmethod
    def _system(g: GraphInfo) -> AssistantRecord:
        return AssistantRecord(
            assistant_id=g.graph_id,
            graph_id=g.graph_id,
            metadata={"created_by": "system"},
            name=g.graph_id,
            description=g.description,
        )

    async def get(self, tenant: str, assistant_id: str) -> AssistantRecord:
        check_id(assistant_id, "assistant_id")
        graphs = await self.runtime.graphs()
        if assistant_id in graphs:
            return self._system(graphs[assistant_id])
        rec = await self.store.get(tenant, assistant_id)
        if rec is None:
            graphs = await self.runtime.graphs(refresh=True)
            if assistant_id in graphs:
                return self._system(graphs[assistant_id])
            raise NotFoundError(
                f"assistant {assistant_id!r} not found", metadata={"assistant_id": assistant_id}
            )
        return rec

    async def _own(self, tenant: str, assistant_id: str) -> AssistantRecord:
        rec = await self.get(tenant, assistant_id)
        if rec.metadata.get("created_by") == "system" and rec.assistant_id == rec.graph_id:
            raise FailedPreconditionError(
                f"assistant {assistant_id!r} is graph {rec.graph_id!r}'s own assistant and "
                "cannot change: create an assistant on that graph instead",
                reason="SYSTEM_ASSISTANT",
                metadata={"assistant_id": assistant_id},
            )
        return rec

    @staticmethod
    def _check(config: dict[str, Any] | None) -> None:
        if config:
            try:
                validate_config(config)
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(
                    "invalid assistant config",
                    [
                        FieldViolation(v.field.replace("run.config", "config"), v.description)
                        for v in exc.violations
                    ],
                ) from None

    async def create(
        self,
        tenant: str,
        graph_id: str,
        *,
        config: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        assistant_id: str = "",
        if_exists_return: bool = False,
        name: str = "",
        description: str = "",
    ) -> AssistantRecord:
        check_id(graph_id, "graph_id")
        check_id(assistant_id, "assistant_id", required=False)
        await self.runtime.graph(graph_id)
        self._check(config)
        assistant_id = assistant_id or str(uuid.uuid4())
        if assistant_id in await self.runtime.graphs():
            raise AlreadyExistsError(
                f"assistant {assistant_id!r} already exists (a graph's own assistant)",
                metadata={"assistant_id": assistant_id},
            )
        rec = AssistantRecord(
            assistant_id=assistant_id,
            graph_id=graph_id,
            config=config or {},
            context=context or {},
            metadata=metadata or {},
            name=name or graph_id,
            description=description,
        )
        return await self.store.create(tenant, rec, if_exists_return=if_exists_return)

    async def update(
        self,
        tenant: str,
        assistant_id: str,
        *,
        graph_id: str = "",
        config: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str = "",
        description: str = "",
    ) -> AssistantRecord:
        rec = await self._own(tenant, assistant_id)
        if graph_id:
            await self.runtime.graph(graph_id)
        self._check(config)
        new = replace(
            rec,
            graph_id=graph_id or rec.graph_id,
            config=config if config is not None else rec.config,
            context=context if context is not None else rec.context,
            metadata={**rec.metadata, **metadata} if metadata is not None else rec.metadata,
            name=name or rec.name,
            description=description or rec.description,
        )
        return await self.store.add_version(tenant, new)

    async def delete(self, tenant: str, assistant_id: str) -> None:
        await self._own(tenant, assistant_id)
        await self.store.delete(tenant, assistant_id)

    async def search(
        self,
        tenant: str,
        *,
        metadata: dict[str, Any] | None = None,
        graph_id: str = "",
        name: str = "",
        limit: int = 10,
        offset: int = 0,
    ) -> list[AssistantRecord]:
        limit, offset = check_page(limit, offset)
        graphs = await self.runtime.graphs(refresh=True)
        every = [self._system(graphs[g]) for g in sorted(graphs)]
        every += await self.store.list(tenant)
        found = [r for r in every if _matches(r, metadata, graph_id, name)]
        return found[offset : offset + limit]

    async def count(
        self,
        tenant: str,
        *,
        metadata: dict[str, Any] | None = None,
        graph_id: str = "",
        name: str = "",
    ) -> int:
        return len(
            await self.search(
                tenant, metadata=metadata, graph_id=graph_id, name=name, limit=1 << 30
            )
        )

    async def versions(
        self,
        tenant: str,
        assistant_id: str,
        *,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[AssistantRecord]:
        rec = await self.get(tenant, assistant_id)
        if rec.metadata.get("created_by") == "system" and rec.assistant_id == rec.graph_id:
            every = [rec]
        else:
            every = await self.store.versions(tenant, assistant_id)
        limit, offset = check_page(limit, offset)
        found = [r for r in every if _matches(r, metadata, "", "")]
        return found[offset : offset + limit]

    async def set_latest(self, tenant: str, assistant_id: str, version: int) -> AssistantRecord:
        await self._own(tenant, assistant_id)
        return await self.store.set_latest(tenant, assistant_id, version)

    # -- the graph behind it ---------------------------------------------------------------
    async def graph_json(self, tenant: str, assistant_id: str, xray: int) -> dict[str, Any]:
        rec = await self.get(tenant, assistant_id)
        return await self.runtime.graph_json(rec.graph_id, xray)

    async def schemas(self, tenant: str, assistant_id: str) -> dict[str, Any]:
        rec = await self.get(tenant, assistant_id)
        return await self.runtime.schemas(rec.graph_id)

    async def subgraphs(
        self, tenant: str, assistant_id: str, namespace: str, recurse: bool
    ) -> dict[str, Any]:
        rec = await self.get(tenant, assistant_id)
        return await self.runtime.subgraphs(rec.graph_id, namespace, recurse)

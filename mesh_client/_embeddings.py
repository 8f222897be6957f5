"""``MeshEmbeddings``: LangChain ``Embeddings`` served by the LLM gateway's ``Embed`` RPC.

    emb = MeshEmbeddings(target="127.0.0.1:50070", model="embed")
    vectors = emb.embed_documents(["a", "b", "c"])

Texts go to the gateway ``chunk_size`` at a time (one ``Embed`` call each; the
gateway batches upstream again by its provider's batch size). Inside a LangGraph
task each call carries an idempotency key derived from the task, like
:class:`mesh_client.llm.MeshChatModel`: a re-run task gets the stored vectors back
instead of paying again. Errors are those of :mod:`mesh_client._llm_errors`.
"""

from __future__ import annotations

from typing import Any

import grpc
from langchain_core.embeddings import Embeddings
from lgmesh.llm.v1 import llm_pb2 as pb
from pydantic import BaseModel, ConfigDict, PrivateAttr

from mesh_client._llm_common import GatewayStubs, call_context, request_key
from mesh_client._llm_errors import from_rpc_error

__all__ = ["MeshEmbeddings"]

DEFAULT_CHUNK_SIZE = 256


class MeshEmbeddings(BaseModel, Embeddings):
    """Embeddings served by ``llm_gateway_svc``.

    Attributes:
        target: the gateway's gRPC address; None: ``config["configurable"]["lgmesh_llm_target"]``.
        model: a model alias of the gateway's routing table whose targets embed.
        tenant: sent as ``x-lgmesh-tenant`` unless the run's metadata names one.
        timeout: seconds each ``Embed`` call may take.
        chunk_size: most texts in one ``Embed`` call.
        idempotency: derive idempotency keys from the running LangGraph task.
        bypass_cache: skip the gateway's response cache.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    target: str | None = None
    model: str = "embed"
    tenant: str = "default"
    timeout: float | None = 60.0
    chunk_size: int = DEFAULT_CHUNK_SIZE
    idempotency: bool = True
    bypass_cache: bool = False

    _stubs: GatewayStubs = PrivateAttr(default_factory=GatewayStubs)

    def _requests(self, texts: list[str]) -> tuple[list[pb.EmbedRequest], str, Any]:
        target, md = call_context("MeshEmbeddings", self.target, self.tenant)
        size = max(1, self.chunk_size)
        reqs = []
        for i in range(0, len(texts), size):
            req = pb.EmbedRequest(
                model=self.model, inputs=texts[i : i + size], bypass_cache=self.bypass_cache
            )
            req.idempotency_key = request_key(req, "", self.idempotency)
            reqs.append(req)
        return reqs, target, md

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        reqs, target, md = self._requests(texts)
        out: list[list[float]] = []
        for req in reqs:
            try:
                resp = self._stubs.sync(target).Embed(req, timeout=self.timeout, metadata=md)
            except grpc.RpcError as err:
                raise from_rpc_error(err) from None
            out += [list(e.values) for e in resp.embeddings]
        return out

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        reqs, target, md = self._requests(texts)
        out: list[list[float]] = []
        for req in reqs:
            try:
                resp = await self._stubs.aio(target).Embed(req, timeout=self.timeout, metadata=md)
            except grpc.RpcError as err:
                raise from_rpc_error(err) from None
            out += [list(e.values) for e in resp.embeddings]
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]

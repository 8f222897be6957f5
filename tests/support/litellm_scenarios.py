"""Model behaviours for the LiteLLM proxy used as an independent server in the tests.

Loaded *inside* the LiteLLM proxy process (``custom_provider_map`` and
``callbacks`` in its config). It only decides what a "model" says; every byte
on the wire (OpenAI chunks, error events, ``[DONE]``, the Anthropic Messages
translation of ``/v1/messages``, embeddings envelopes) is LiteLLM's own code:
its stream wrapper builds the chunks, its proxy frames them.

Models (``meshtest/<name>``):

``tools``            one tool call ``get_weather({"city": "Paris"})``, text first
``parallel``         two tool calls (Paris, Tokyo) in one answer
``broken``           streams some text, then fails (the proxy sends an error event
                     and ends the stream without ``[DONE]``)
``cut``              streams some text, then the connection is dropped mid-body
``embed``            embeddings: ``DIMENSIONS`` floats per text, derived from the text

and, through the callback, for any model whose name starts with ``errdone``: the
stream gets an error event followed by ``[DONE]`` (the vLLM / SGLang shape) after
its first chunks; a 429 from model ``ratelimited`` carries ``Retry-After: 3``.

Each upstream call is appended to ``$MESHTEST_HITS`` (one line: the model), so a
test can count what reached the "provider".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from litellm import EmbeddingResponse, ModelResponse
from litellm.integrations.custom_logger import CustomLogger
from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import Embedding, GenericStreamingChunk, Usage

DIMENSIONS = 12
CHUNK_PAUSE_S = 0.002
TEXT = "Let me check the weather."
CALLS = {
    "tools": [("call_paris", "get_weather", {"city": "Paris"})],
    "parallel": [
        ("call_paris", "get_weather", {"city": "Paris"}),
        ("call_tokyo", "get_weather", {"city": "Tokyo"}),
    ],
}


def _hit(model: str) -> None:
    path = os.environ.get("MESHTEST_HITS")
    if path:
        with open(path, "a") as f:
            f.write(model + "\n")


def _name(model: str) -> str:
    return model.split("/")[-1]


def _usage(messages: list[Any]) -> dict[str, int]:
    prompt = sum(len(str(m.get("content") or "").split()) for m in messages)
    return {"prompt_tokens": prompt, "completion_tokens": 7, "total_tokens": prompt + 7}


def _vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0, 6) for b in digest[:DIMENSIONS]]


class MeshTestLLM(CustomLLM):
    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        model = _name(kwargs["model"])
        _hit(model)
        calls = CALLS.get(model, [])
        message: dict[str, Any] = {"role": "assistant", "content": TEXT}
        if calls:
            message["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                for i, n, a in calls
            ]
        return ModelResponse(
            model=model,
            choices=[
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if calls else "stop",
                }
            ],
            usage=Usage(**_usage(kwargs.get("messages") or [])),
        )

    async def astreaming(self, *args: Any, **kwargs: Any) -> AsyncIterator[GenericStreamingChunk]:
        model = _name(kwargs["model"])
        _hit(model)
        words = TEXT.split(" ")
        for i, word in enumerate(words):
            await asyncio.sleep(CHUNK_PAUSE_S)
            yield _gchunk(word + (" " if i < len(words) - 1 else ""))
            if i == 2 and model == "broken":
                raise RuntimeError("the model server lost its GPU")
            if i == 2 and model == "cut":
                # Abandon the response mid-body: the server closes the connection.
                raise asyncio.CancelledError
        for n, (call_id, name, args) in enumerate(CALLS.get(model, [])):
            raw = json.dumps(args)
            half = len(raw) // 2
            yield _gchunk("", tool=(n, call_id, name, raw[:half]))
            yield _gchunk("", tool=(n, None, None, raw[half:]))
        u = _usage(kwargs.get("messages") or [])
        yield {
            "text": "",
            "tool_use": None,
            "is_finished": True,
            "finish_reason": "tool_calls" if model in CALLS else "stop",
            "usage": {
                "prompt_tokens": u["prompt_tokens"],
                "completion_tokens": u["completion_tokens"],
                "total_tokens": u["total_tokens"],
            },
            "index": 0,
        }

    async def aembedding(self, *args: Any, **kwargs: Any) -> EmbeddingResponse:
        texts = list(kwargs.get("input") or [])
        _hit("embed")
        return EmbeddingResponse(
            model=_name(kwargs["model"]),
            data=[
                Embedding(embedding=_vector(t), index=i, object="embedding")
                for i, t in enumerate(texts)
            ],
            usage=Usage(prompt_tokens=sum(len(t.split()) for t in texts), completion_tokens=0),
        )


def _gchunk(text: str, tool: tuple[int, Any, Any, str] | None = None) -> GenericStreamingChunk:
    tool_use = None
    if tool is not None:
        index, call_id, name, args = tool
        tool_use = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": args},
            "index": index,
        }
    return {
        "text": text,
        "tool_use": tool_use,  # type: ignore[typeddict-item]
        "is_finished": False,
        "finish_reason": "",
        "usage": None,
        "index": 0,
    }


class MeshTestFaults(CustomLogger):
    """Faults only the proxy's hooks can cause: an error event then [DONE], Retry-After."""

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict[str, Any]
    ) -> AsyncIterator[Any]:
        n = 0
        async for chunk in response:
            yield chunk
            n += 1
            if str(request_data.get("model", "")).startswith("errdone") and n == 3:
                error = {"error": {"message": "the scheduler preempted this request", "code": 500}}
                yield f"data: {json.dumps(error)}\n\n"
                return

    async def async_post_call_response_headers_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, response: Any, request_headers: Any
    ) -> dict[str, str] | None:
        if response is None and data.get("model") == "ratelimited":
            return {"retry-after": "3"}
        return None


handler = MeshTestLLM()
faults = MeshTestFaults()
_STARTED = time.time()

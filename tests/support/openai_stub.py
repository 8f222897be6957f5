"""A local OpenAI Chat Completions server for tests and benchmarks (a real HTTP process).

    python -m tests.support.openai_stub --port 0    # prints "openai_stub ready port=N"

It answers ``POST /v1/chat/completions`` (JSON, or SSE with ``stream: true``) with an
echo of the last user message; a last user message starting with ``/tool`` makes it
call the first offered tool. Faults are queued per model through the admin API:

    POST /admin/faults {"model": "m" or "*", "faults": [F, ...], "repeat": false}
        F = {"status": 500} | {"status": 429, "retry_after": 0.5}
          | {"delay": 2.0}  (then answer) | {"drop": true}  (close, no answer)
          | {"drop_after_chunks": 2}  (streams: close mid-stream)
        repeat: the last fault of the queue stays forever.
    GET  /admin/stats   {"hits": N, "by_model": {...}, "arrivals": {model: [t, ...]}}
    POST /admin/reset
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["StubState", "main", "make_server"]


class StubState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits = 0
        self.by_model: dict[str, int] = {}
        self.arrivals: dict[str, list[float]] = {}
        self.faults: dict[str, list[dict[str, Any]]] = {}
        self.sticky: dict[str, bool] = {}

    def arrive(self, model: str) -> dict[str, Any] | None:
        """Count a hit and take the next fault queued for the model (or for '*')."""
        with self.lock:
            self.hits += 1
            self.by_model[model] = self.by_model.get(model, 0) + 1
            self.arrivals.setdefault(model, []).append(time.time())
            for key in (model, "*"):
                queue = self.faults.get(key)
                if queue:
                    if len(queue) == 1 and self.sticky.get(key):
                        return queue[0]
                    return queue.pop(0)
            return None

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "hits": self.hits,
                "by_model": dict(self.by_model),
                "arrivals": dict(self.arrivals),
            }

    def reset(self) -> None:
        with self.lock:
            self.__init__()  # type: ignore[misc]


def _words(text: str) -> int:
    return len(str(text or "").split())


def _answer(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]], dict[str, int]]:
    messages = body.get("messages") or []
    last_user = next(
        (str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), ""
    )
    tools = body.get("tools") or []
    calls: list[dict[str, Any]] = []
    content = f"echo: {last_user}"
    if tools and last_user.startswith("/tool") and messages and messages[-1].get("role") == "user":
        name = tools[0]["function"]["name"]
        args = json.dumps({"input": last_user[len("/tool") :].strip()})
        calls = [
            {
                "id": f"call_{len(messages)}",
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
        ]
        content = ""
    prompt = sum(_words(m.get("content")) for m in messages)
    completion = _words(content) + sum(_words(c["function"]["arguments"]) for c in calls)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return content, calls, usage


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle + delayed ACK
    # add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _json(self, code: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> dict[str, Any]:
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b"{}"
        doc = json.loads(raw or b"{}")
        return doc if isinstance(doc, dict) else {}

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def do_GET(self) -> None:
        if self.path == "/admin/stats":
            self._json(200, self.server.state.stats())
        elif self.path in ("/health", "/v1/models"):
            self._json(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})
        else:
            self._json(404, {"error": {"type": "not_found"}})

    def do_POST(self) -> None:
        state = self.server.state
        try:
            body = self._body()
        except ValueError:
            self._json(400, {"error": {"type": "invalid_json"}})
            return
        if self.path == "/admin/faults":
            key = str(body.get("model", "*"))
            with state.lock:
                state.faults.setdefault(key, []).extend(body.get("faults") or [])
                state.sticky[key] = bool(body.get("repeat"))
            self._json(200, {"ok": True})
            return
        if self.path == "/admin/reset":
            state.reset()
            self._json(200, {"ok": True})
            return
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"type": "not_found"}})
            return
        model = str(body.get("model") or "")
        fault = state.arrive(model) or {}
        if fault.get("delay"):
            time.sleep(float(fault["delay"]))
        if fault.get("drop"):
            self._drop()
            return
        status = int(fault.get("status") or 200)
        if status != 200:
            headers = {}
            if fault.get("retry_after") is not None:
                headers["retry-after"] = str(fault["retry_after"])
            self._json(
                status, {"error": {"type": f"stub_{status}", "message": "injected"}}, headers
            )
            return
        content, calls, usage = _answer(body)
        if body.get("stream"):
            self._stream(body, model, content, calls, usage, fault.get("drop_after_chunks"))
            return
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if calls:
            message["tool_calls"] = calls
        self._json(
            200,
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if calls else "stop",
                    }
                ],
                "usage": usage,
            },
        )

    def _stream(
        self,
        body: dict[str, Any],
        model: str,
        content: str,
        calls: list[dict[str, Any]],
        usage: dict[str, int],
        drop_after: Any,
    ) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def event(doc: Any) -> None:
            data = (
                b"data: " + (doc if isinstance(doc, bytes) else json.dumps(doc).encode()) + b"\n\n"
            )
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-stub",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        pieces: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        words = content.split(" ")
        pieces += [
            {"content": w + (" " if i < len(words) - 1 else "")}
            for i, w in enumerate(words)
            if content
        ]
        for i, c in enumerate(calls):
            args = c["function"]["arguments"]
            pieces.append(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["function"]["name"], "arguments": args[:5]},
                        }
                    ]
                }
            )
            pieces.append({"tool_calls": [{"index": i, "function": {"arguments": args[5:]}}]})
        for n, delta in enumerate(pieces):
            if drop_after is not None and n >= int(drop_after):
                self._drop()
                return
            event(chunk(delta))
        event(chunk({}, "tool_calls" if calls else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            event(
                {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion.chunk",
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
        event(b"[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: StubState


def make_server(host: str = "127.0.0.1", port: int = 0) -> _Server:
    server = _Server((host, port), _Handler)
    server.state = StubState()
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="openai_stub")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    ns = p.parse_args(argv)
    server = make_server(ns.host, ns.port)
    port = server.server_address[1]
    print(f"openai_stub ready port={port}", flush=True)
    fd = os.environ.get("LGMESH_READY_FD")  # the mesh's launcher waits for this line
    if fd:
        ready = {"address": f"{ns.host}:{port}", "pid": os.getpid()}
        os.write(int(fd), (json.dumps(ready) + "\n").encode())
        os.close(int(fd))
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

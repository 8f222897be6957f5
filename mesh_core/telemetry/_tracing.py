"""OpenTelemetry tracing across the mesh: gateway -> runtime -> worker (NATS) -> LLM gateway / tools.

Tracing is on only when an OTLP endpoint is configured. Without one, :func:`setup_tracing`
returns a disabled :class:`Tracing` whose interceptor lists are empty (nothing is added to
the gRPC servers or channels, so there is no per-call cost) and whose tracer is the no-op
tracer.

Context crosses process boundaries as W3C Trace Context (``traceparent`` / ``tracestate``):
in gRPC metadata (the interceptors below) and in NATS message headers
(:func:`inject_nats_headers` / :func:`extract_nats_headers`).

Usage in a service::

    tracing = setup_tracing(TracingSettings.from_env("runtime"), set_global=True)
    server = MeshServer("runtime", addr, interceptors=tracing.server_interceptors())
    channel = grpc.aio.insecure_channel(target, interceptors=tracing.client_interceptors())
    ...
    headers = inject_nats_headers({"Nats-Msg-Id": task_id})    # owner, before publish
    with tracing.start_span("task run", parent_headers=msg.headers):  # worker, on receive
        ...
    tracing.shutdown()                                          # flushes pending spans
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from mesh_core.config import env_float, env_str

if TYPE_CHECKING:  # the SDK is imported only when tracing is switched on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "TRACE_HEADERS",
    "Tracing",
    "TracingServerInterceptor",
    "TracingSettings",
    "extract_nats_headers",
    "inject_nats_headers",
    "setup_tracing",
    "trace_metadata",
    "tracing_client_interceptors",
]

#: Header / metadata keys that carry the trace context (W3C Trace Context).
TRACE_HEADERS = ("traceparent", "tracestate")
INSTRUMENTATION_NAME = "lgmesh"
_PROPAGATOR = TraceContextTextMapPropagator()
# Probes and reflection would only add noise to every trace backend.
_UNTRACED_SERVICE_PREFIXES = ("grpc.health.", "grpc.reflection.")
# OTel semantic conventions: on the server side only these codes are errors
# (NOT_FOUND etc. are the caller's problem, not the server's).
_SERVER_ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


@dataclass(frozen=True)
class TracingSettings:
    """How a service exports traces.

    Attributes:
        endpoint: OTLP/HTTP base URL of the collector (``http://otel-collector:4318``);
            spans go to ``<endpoint>/v1/traces``. ``None`` turns tracing off entirely.
        service_name: ``service.name`` of the spans (``lgmesh-gateway``, ...).
        sample_ratio: fraction of new traces recorded (children follow their parent).
        instance_id: ``service.instance.id`` (defaults to the host / pod name).
    """

    endpoint: str | None = None
    service_name: str = "lgmesh"
    sample_ratio: float = 1.0
    instance_id: str = ""

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> TracingSettings:
        """Read ``OTEL_EXPORTER_OTLP_ENDPOINT`` (unset or empty: off),
        ``OTEL_SERVICE_NAME`` (default ``lgmesh-<service>``) and ``OTEL_TRACES_SAMPLER_ARG``."""
        env = os.environ if env is None else env
        endpoint = env_str(env, "OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        ratio = env_float(env, "OTEL_TRACES_SAMPLER_ARG", 1.0)
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"OTEL_TRACES_SAMPLER_ARG must be within [0, 1], got {ratio}")
        return cls(
            endpoint=endpoint or None,
            service_name=env_str(env, "OTEL_SERVICE_NAME", f"lgmesh-{service}"),
            sample_ratio=ratio,
            instance_id=env_str(env, "HOSTNAME", ""),
        )

    @property
    def traces_url(self) -> str | None:
        if self.endpoint is None:
            return None
        base = self.endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


class Tracing:
    """A service's tracer, its gRPC interceptors and its exporter's lifecycle."""

    def __init__(self, tracer: Tracer, provider: TracerProvider | None) -> None:
        self.tracer = tracer
        self._provider = provider

    @property
    def enabled(self) -> bool:
        return self._provider is not None

    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """Interceptors for ``MeshServer(..., interceptors=...)``; empty when disabled."""
        return [TracingServerInterceptor(self.tracer)] if self.enabled else []

    def client_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        """Interceptors for ``grpc.aio.insecure_channel(..., interceptors=...)``; empty when disabled."""
        return tracing_client_interceptors(self.tracer) if self.enabled else []

    @contextlib.contextmanager
    def start_span(
        self,
        name: str,
        *,
        parent_headers: Mapping[str, str] | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> Iterator[Span]:
        """Start a span and make it current.

        With ``parent_headers`` (NATS message headers) the span continues the trace
        that :func:`inject_nats_headers` put there (a worker running a task, for instance);
        otherwise it is a child of the current span.
        """
        if not self.enabled:
            yield trace.INVALID_SPAN
            return
        parent = extract_nats_headers(parent_headers) if parent_headers is not None else None
        with self.tracer.start_as_current_span(
            name, context=parent, kind=kind, attributes=dict(attributes or {})
        ) as span:
            yield span

    def force_flush(self, timeout_millis: int = 5_000) -> bool:
        return True if self._provider is None else self._provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Export what is pending and stop the exporter (call on service shutdown)."""
        if self._provider is not None:
            self._provider.shutdown()


def setup_tracing(
    settings: TracingSettings,
    *,
    set_global: bool = False,
    exporter: SpanExporter | None = None,
) -> Tracing:
    """Build a :class:`Tracing` from ``settings``.

    ``settings.endpoint is None`` (and no ``exporter``) gives a disabled, zero-cost Tracing.
    ``set_global=True`` also installs the provider as OpenTelemetry's global one, so spans
    that graph / tool code creates with ``opentelemetry.trace.get_tracer`` join the mesh's
    traces (once per process; services do it, tests should not). ``exporter`` replaces the
    OTLP exporter (tests).
    """
    if exporter is None:
        url = settings.traces_url
        if url is None:
            return _remember(Tracing(trace.NoOpTracer(), None), set_global)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=url)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create(
        {
            "service.name": settings.service_name,
            "service.namespace": "lgmesh",
            "service.instance.id": settings.instance_id or socket.gethostname(),
        }
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio))
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1_000))
    if set_global:
        trace.set_tracer_provider(provider)
    return _remember(Tracing(provider.get_tracer(INSTRUMENTATION_NAME), provider), set_global)


_current: Tracing | None = None


def _remember(tracing: Tracing, set_global: bool) -> Tracing:
    global _current
    if set_global:
        _current = tracing
    return tracing


def current_tracing() -> Tracing:
    """The process's tracing (set by ``setup_tracing(..., set_global=True)``; off until then).

    MeshServer and the mesh's own gRPC channels pick their interceptors from it.
    """
    global _current
    if _current is None:
        _current = Tracing(trace.NoOpTracer(), None)
    return _current


# --- NATS headers ---------------------------------------------------------------------------


def inject_nats_headers(
    headers: MutableMapping[str, str] | None = None,
    *,
    context: otel_context.Context | None = None,
) -> dict[str, str]:
    """Return ``headers`` (a new dict) plus ``traceparent``/``tracestate`` of the current span.

    Without a recording span in ``context`` (default: the current one) nothing is added, so
    this costs a dict copy when tracing is off.
    """
    out: dict[str, str] = dict(headers or {})
    _PROPAGATOR.inject(out, context=context)
    return out


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace context as gRPC metadata pairs (empty without a recording span).

    For callers that build their own channels (sync or aio) without the client
    interceptors, e.g. ``mesh_client``'s LLM / tool clients inside a graph node:
    ``stub.Call(req, metadata=(*md, *trace_metadata()))`` continues the node's trace.
    """
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return tuple(carrier.items())


def extract_nats_headers(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The trace context carried by NATS message ``headers`` (an empty context if none)."""
    if not headers:
        return otel_context.Context()
    carrier = {k.lower(): v for k, v in headers.items() if k.lower() in TRACE_HEADERS}
    return _PROPAGATOR.extract(carrier, context=otel_context.Context())


# --- gRPC -----------------------------------------------------------------------------------


def _split(method: str) -> tuple[str, str]:
    parts = method.strip("/").split("/")
    return (parts[0], parts[1]) if len(parts) == 2 else ("unknown", method)


def _traced(method: str) -> bool:
    return not method.lstrip("/").startswith(_UNTRACED_SERVICE_PREFIXES)


def _rpc_attributes(method: str) -> dict[str, str]:
    service, name = _split(method)
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


def _metadata_carrier(metadata: Any) -> dict[str, str]:
    carrier: dict[str, str] = {}
    for key, value in metadata or ():
        if key in TRACE_HEADERS and isinstance(value, str):
            carrier[key] = value
    return carrier


def _set_grpc_status(span: Span, code: grpc.StatusCode, *, server: bool) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK and (not server or code in _SERVER_ERROR_CODES):
        # The code name only: status details may echo user input; they stay out of traces.
        span.set_status(Status(StatusCode.ERROR, code.name))


def _server_code(context: grpc.aio.ServicerContext, exc: BaseException | None) -> grpc.StatusCode:
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN if exc is not None else grpc.StatusCode.OK


class TracingServerInterceptor(grpc.aio.ServerInterceptor):
    """Continues the caller's trace (``traceparent`` metadata) with a SERVER span per RPC."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    @contextlib.contextmanager
    def _span(
        self, method: str, parent: otel_context.Context, context: grpc.aio.ServicerContext
    ) -> Iterator[Span]:
        with self._tracer.start_as_current_span(
            method.lstrip("/"),
            context=parent,
            kind=SpanKind.SERVER,
            attributes=_rpc_attributes(method),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                _set_grpc_status(span, _server_code(context, exc), server=True)
                raise
            _set_grpc_status(span, _server_code(context, None), server=True)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not _traced(method):
            return handler
        parent = _PROPAGATOR.extract(
            _metadata_carrier(handler_call_details.invocation_metadata),
            context=otel_context.Context(),
        )
        span = functools.partial(self._span, method, parent)
        des, ser = handler.request_deserializer, handler.response_serializer

        if handler.unary_unary is not None:
            uu_inner = handler.unary_unary

            async def uu(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with span(context):
                    return await uu_inner(request, context)

            return grpc.unary_unary_rpc_method_handler(uu, des, ser)
        if handler.stream_unary is not None:
            su_inner = handler.stream_unary

            async def su(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                with span(context):
                    return await su_inner(requests, context)

            return grpc.stream_unary_rpc_method_handler(su, des, ser)
        if handler.unary_stream is not None:
            us_inner = handler.unary_stream

            async def us(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with span(context):
                    async for item in us_inner(request, context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(us, des, ser)
        if handler.stream_stream is not None:
            ss_inner = handler.stream_stream

            async def ss(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                with span(context):
                    async for item in ss_inner(requests, context):
                        yield item

            return grpc.stream_stream_rpc_method_handler(ss, des, ser)
        return handler


class _ClientTracer:
    """A CLIENT span per outgoing RPC, its context sent as ``traceparent`` metadata.

    The span ends when the call completes (its status code recorded), including calls
    whose streams the caller abandons (CANCELLED).
    """

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._finishing: set[asyncio.Task[None]] = set()

    async def _intercept(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        raw = details.method
        method = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not _traced(method):
            return await continuation(details, request)
        span = self._tracer.start_span(
            method.lstrip("/"), kind=SpanKind.CLIENT, attributes=_rpc_attributes(method)
        )
        metadata = grpc.aio.Metadata(
            *((k, v) for k, v in (details.metadata or ()) if k not in TRACE_HEADERS)
        )
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        for key, value in carrier.items():
            metadata.add(key, value)
        try:
            call = await continuation(details._replace(metadata=metadata), request)
        except BaseException as exc:
            code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else grpc.StatusCode.UNKNOWN
            _set_grpc_status(span, code, server=False)
            span.end()
            raise
        call.add_done_callback(functools.partial(self._on_done, span))
        return call

    def _on_done(self, span: Span, call: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._finish(span, call))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish(self, span: Span, call: Any) -> None:
        try:
            code = await call.code()
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
        except Exception:
            code = grpc.StatusCode.UNKNOWN
        _set_grpc_status(span, code, server=False)
        span.end()


# grpc.aio files an interceptor under the FIRST of the four kinds it is an instance of,
# so each kind needs its own object.
class _UnaryUnaryTracer(_ClientTracer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await self._intercept(continuation, client_call_details, request)


class _UnaryStreamTracer(_ClientTracer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await self._intercept(continuation, client_call_details, request)


class _StreamUnaryTracer(_ClientTracer, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._intercept(continuation, client_call_details, request_iterator)


class _StreamStreamTracer(_ClientTracer, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._intercept(continuation, client_call_details, request_iterator)


def tracing_client_interceptors(tracer: Tracer) -> list[grpc.aio.ClientInterceptor]:
    """One client interceptor per call kind (unary/stream x unary/stream), all on ``tracer``."""
    return [
        _UnaryUnaryTracer(tracer),
        _UnaryStreamTracer(tracer),
        _StreamUnaryTracer(tracer),
        _StreamStreamTracer(tracer),
    ]

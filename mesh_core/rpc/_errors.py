"""Translate exceptions raised by servicers into gRPC status, in one place.

Also what happens before a servicer runs: a request the server cannot decode (corrupt
wire format, invalid UTF-8, nesting beyond protobuf's limit) gets INVALID_ARGUMENT
(reason ``UNDECODABLE_REQUEST``) and one rate-limited log line, never UNKNOWN with
protobuf's text or a traceback in the log.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
from grpc_status import rpc_status

from mesh_core.errors import InvalidArgumentError, MeshError, to_rpc_status
from mesh_core.logs import RateLimitedLog

log = logging.getLogger(__name__)
_bad_requests = RateLimitedLog(log, interval=60.0, burst=3)


class _Undecodable:
    """Stands for a request the method's deserializer refused."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def _safe(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError, RecursionError, ...
            return _Undecodable(type(exc).__name__)

    return deserialize


def _refuse_undecodable(request: Any, method: str) -> None:
    if isinstance(request, _Undecodable):
        _bad_requests.warning(
            method, "refused an undecodable request to %s (%s)", method, request.error
        )
        raise InvalidArgumentError(
            "the request could not be decoded as the method's message "
            "(corrupt protobuf, invalid UTF-8 in a string, or nested too deep)",
            reason="UNDECODABLE_REQUEST",
        )


async def abort_with(context: grpc.aio.ServicerContext, err: MeshError) -> NoReturn:
    await context.abort_with_status(rpc_status.to_status(to_rpc_status(err)))
    raise AssertionError("unreachable")  # abort raises


async def _handle(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> NoReturn:
    if isinstance(exc, MeshError):
        await abort_with(context, exc)
    log.exception("unhandled error in %s", method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error (see server logs)")
    raise AssertionError("unreachable")


def _is_abort(exc: BaseException) -> bool:
    # grpc.aio raises AbortError out of context.abort(); let it through untouched.
    return type(exc).__name__ in ("AbortError", "InternalError") and type(
        exc
    ).__module__.startswith("grpc")


class ErrorTranslationInterceptor(grpc.aio.ServerInterceptor):
    """MeshError -> its status with details; anything else -> INTERNAL with no traceback."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method

        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def uu(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    _refuse_undecodable(request, method)
                    return await inner_uu(request, context)
                except Exception as exc:
                    if _is_abort(exc):
                        raise
                    await _handle(context, exc, method)

            return grpc.unary_unary_rpc_method_handler(
                uu, _safe(handler.request_deserializer), handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def us(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                try:
                    _refuse_undecodable(request, method)
                    async for item in inner_us(request, context):
                        yield item
                except Exception as exc:
                    if _is_abort(exc):
                        raise
                    await _handle(context, exc, method)

            return grpc.unary_stream_rpc_method_handler(
                us, _safe(handler.request_deserializer), handler.response_serializer
            )
        return handler

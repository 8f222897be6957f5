"""Translate exceptions raised by servicers into gRPC status, in one place."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
from grpc_status import rpc_status

from mesh_core.errors import MeshError, to_rpc_status

log = logging.getLogger(__name__)


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
                    return await inner_uu(request, context)
                except Exception as exc:
                    if _is_abort(exc):
                        raise
                    await _handle(context, exc, method)

            return grpc.unary_unary_rpc_method_handler(
                uu, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def us(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                try:
                    async for item in inner_us(request, context):
                        yield item
                except Exception as exc:
                    if _is_abort(exc):
                        raise
                    await _handle(context, exc, method)

            return grpc.unary_stream_rpc_method_handler(
                us, handler.request_deserializer, handler.response_serializer
            )
        return handler

"""What the project's gRPC emulators share: an error that becomes the RPC's status, and a
generic service built from the client library's own request and response types."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import grpc

# rpc name -> (implementation, request type, response serializer)
Methods = Mapping[str, tuple[Callable[[Any], Any], Any, Callable[[Any], bytes]]]


class Abort(Exception):
    """Raised by an implementation: the RPC answers `code` with `message`."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


def generic_service(name: str, methods: Methods) -> grpc.GenericRpcHandler:
    handlers = {
        rpc: grpc.unary_unary_rpc_method_handler(
            _handler(method),
            request_deserializer=request_type.deserialize,
            response_serializer=serialize,
        )
        for rpc, (method, request_type, serialize) in methods.items()
    }
    return grpc.method_handlers_generic_handler(name, handlers)


def _handler(method: Callable[[Any], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(request)
        except Abort as exc:
            context.abort(exc.code, exc.message)

    return call

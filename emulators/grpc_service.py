"""What the project's gRPC emulators share: an error that becomes the RPC's status, a
generic service built from the client library's own request and response types, and the
small conversions and pages their RPCs use."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2

_M = TypeVar("_M", bound=Any)

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


def stamp(seconds: float) -> timestamp_pb2.Timestamp:
    made = timestamp_pb2.Timestamp()
    made.FromNanoseconds(int(seconds * 1e9))
    return made


def seconds(stamp_or_duration: Any) -> float:
    return float(stamp_or_duration.ToNanoseconds()) / 1e9


def copy(message: _M) -> _M:
    """A deep copy of a proto-plus message (what a server hands out is never its own)."""
    copied: _M = type(message).deserialize(type(message).serialize(message))
    return copied


def page(items: list[Any], size: int, token: str, most: int) -> tuple[list[Any], str]:
    """One page of `items` from the offset in `token`, at most `most` long, and the next
    page's token ("" after the last)."""
    try:
        start = int(token) if token else 0
    except ValueError:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid page_token") from None
    end = start + (min(size, most) if size > 0 else most)
    return items[start:end], (str(end) if end < len(items) else "")


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """An OIDC-shaped token without a signature, for emulated targets to read."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."

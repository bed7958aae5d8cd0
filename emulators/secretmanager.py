"""A Secret Manager emulator: an in-memory gRPC server for ``SecretManagerService``.

Google ships no Secret Manager emulator, so this one is built from the client library's
own generated message classes (proto-plus types in ``google.cloud.secretmanager_v1``).
The package has no ``*_pb2_grpc`` servicer base class, so the methods are registered as a
generic handler under the service's full name, each with the request type's
``deserialize`` and the response type's ``serialize``. Any client of the real API talks
to it unchanged over an insecure channel (see ``client()``).

Supported: CreateSecret, GetSecret, ListSecrets, DeleteSecret, AddSecretVersion,
GetSecretVersion, AccessSecretVersion (numbers and the ``latest`` alias),
ListSecretVersions, DisableSecretVersion, EnableSecretVersion, DestroySecretVersion.
Errors use the real status codes: NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT,
FAILED_PRECONDITION (disabled or destroyed versions), UNIMPLEMENTED (list filters,
every other method). Names keep the project id as given (the real service answers with
the project number). Nothing is persisted.

Run it alone with ``python -m emulators.secretmanager --port 8095``; clients find it
through ``SECRET_MANAGER_EMULATOR_HOST`` (a convention of this project: the real client
library does not read that variable, see ``client()``).
"""

from __future__ import annotations

import argparse
import re
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, TypeVar

import google_crc32c
import grpc
from google.cloud.secretmanager_v1.services.secret_manager_service import (
    SecretManagerServiceClient,
    transports,
)
from google.cloud.secretmanager_v1.types import resources, service
from google.protobuf import empty_pb2, timestamp_pb2

from .grpc_service import Abort as _Abort
from .grpc_service import generic_service

SERVICE_NAME = "google.cloud.secretmanager.v1.SecretManagerService"
ENV_VAR = "SECRET_MANAGER_EMULATOR_HOST"
MAX_PAYLOAD = 64 * 1024  # the real service's limit

_PROJECT = re.compile(r"^projects/([^/]+)$")
_SECRET = re.compile(r"^projects/([^/]+)/secrets/([^/]+)$")
_VERSION = re.compile(r"^projects/([^/]+)/secrets/([^/]+)/versions/([^/]+)$")
_SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")

State = resources.SecretVersion.State
_M = TypeVar("_M", bound=Any)


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def _crc32c(data: bytes) -> int:
    return int(google_crc32c.value(data))


@dataclass
class _Version:
    number: int
    data: bytes
    created: timestamp_pb2.Timestamp
    state: Any = State.ENABLED
    destroyed: timestamp_pb2.Timestamp | None = None


@dataclass
class _Secret:
    project: str
    secret_id: str
    message: resources.Secret
    versions: dict[int, _Version] = field(default_factory=dict)
    next_version: int = 1


class SecretStore:
    """The emulator's state and the methods, one per RPC, each holding the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[tuple[str, str], _Secret] = {}

    # -- helpers ---------------------------------------------------------------------
    def _secret(self, name: str) -> _Secret:
        match = _SECRET.match(name)
        if not match:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret name: {name!r}")
        found = self._secrets.get((match.group(1), match.group(2)))
        if found is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret [{name}] not found.")
        return found

    def _version(self, name: str) -> tuple[_Secret, _Version]:
        match = _VERSION.match(name)
        if not match:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid version name: {name!r}")
        project, secret_id, version = match.groups()
        secret = self._secret(f"projects/{project}/secrets/{secret_id}")
        if version == "latest":
            if not secret.versions:
                raise _Abort(
                    grpc.StatusCode.NOT_FOUND, f"Secret [{secret.message.name}] has no versions."
                )
            return secret, secret.versions[max(secret.versions)]
        if not version.isdigit() or int(version) < 1:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid version id: {version!r}")
        found = secret.versions.get(int(version))
        if found is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")
        return secret, found

    @staticmethod
    def _version_message(secret: _Secret, version: _Version) -> resources.SecretVersion:
        message = resources.SecretVersion(
            name=f"{secret.message.name}/versions/{version.number}",
            create_time=version.created,
            state=version.state,
            etag=f'"{version.number}-{int(version.state)}"',
        )
        if version.destroyed is not None:
            message.destroy_time = version.destroyed
        return message

    @staticmethod
    def _page(items: list[Any], size: int, token: str) -> tuple[list[Any], str]:
        try:
            start = int(token) if token else 0
        except ValueError:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid page_token") from None
        size = size if size > 0 else 25_000
        end = start + size
        return items[start:end], (str(end) if end < len(items) else "")

    @staticmethod
    def _no_filter(filter_: str) -> None:
        if filter_:
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "the emulator does not support filters")

    # -- secrets ---------------------------------------------------------------------
    def create_secret(self, request: service.CreateSecretRequest) -> resources.Secret:
        match = _PROJECT.match(request.parent)
        if not match:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid parent: {request.parent!r}")
        if not _SECRET_ID.match(request.secret_id):
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret_id: {request.secret_id!r}"
            )
        key = (match.group(1), request.secret_id)
        with self._lock:
            if key in self._secrets:
                raise _Abort(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"Secret [{request.parent}/secrets/{request.secret_id}] already exists.",
                )
            message = _copy(request.secret)
            message.name = f"{request.parent}/secrets/{request.secret_id}"
            message.create_time = _now()
            message.etag = '"1"'
            if not message.replication:
                message.replication = resources.Replication(
                    automatic=resources.Replication.Automatic()
                )
            self._secrets[key] = _Secret(key[0], key[1], message)
            return _copy(message)

    def get_secret(self, request: service.GetSecretRequest) -> resources.Secret:
        with self._lock:
            return _copy(self._secret(request.name).message)

    def list_secrets(self, request: service.ListSecretsRequest) -> service.ListSecretsResponse:
        match = _PROJECT.match(request.parent)
        if not match:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid parent: {request.parent!r}")
        self._no_filter(request.filter)
        with self._lock:
            secrets = [
                _copy(s.message)
                for (project, _), s in sorted(self._secrets.items())
                if project == match.group(1)
            ]
        page, token = self._page(secrets, request.page_size, request.page_token)
        return service.ListSecretsResponse(
            secrets=page, next_page_token=token, total_size=len(secrets)
        )

    def delete_secret(self, request: service.DeleteSecretRequest) -> empty_pb2.Empty:
        with self._lock:
            secret = self._secret(request.name)
            if request.etag and request.etag != secret.message.etag:
                raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, "etag does not match")
            del self._secrets[(secret.project, secret.secret_id)]
        return empty_pb2.Empty()

    # -- versions --------------------------------------------------------------------
    def add_secret_version(self, request: service.AddSecretVersionRequest) -> Any:
        data = bytes(request.payload.data)
        if len(data) > MAX_PAYLOAD:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "payload is larger than 64 KiB")
        if "data_crc32c" in request.payload and request.payload.data_crc32c != _crc32c(data):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "data_crc32c does not match the data")
        with self._lock:
            secret = self._secret(request.parent)
            version = _Version(secret.next_version, data, _now())
            secret.versions[version.number] = version
            secret.next_version += 1
            return self._version_message(secret, version)

    def get_secret_version(self, request: service.GetSecretVersionRequest) -> Any:
        with self._lock:
            return self._version_message(*self._version(request.name))

    def access_secret_version(
        self, request: service.AccessSecretVersionRequest
    ) -> service.AccessSecretVersionResponse:
        with self._lock:
            secret, version = self._version(request.name)
            if version.state != State.ENABLED:
                state = State(version.state).name
                raise _Abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Secret Version [{secret.message.name}/versions/{version.number}] is in "
                    f"{state} state.",
                )
            return service.AccessSecretVersionResponse(
                name=f"{secret.message.name}/versions/{version.number}",
                payload=resources.SecretPayload(
                    data=version.data, data_crc32c=_crc32c(version.data)
                ),
            )

    def list_secret_versions(
        self, request: service.ListSecretVersionsRequest
    ) -> service.ListSecretVersionsResponse:
        self._no_filter(request.filter)
        with self._lock:
            secret = self._secret(request.parent)
            versions = [  # newest first, as the real service lists them
                self._version_message(secret, secret.versions[n])
                for n in sorted(secret.versions, reverse=True)
            ]
        page, token = self._page(versions, request.page_size, request.page_token)
        return service.ListSecretVersionsResponse(
            versions=page, next_page_token=token, total_size=len(versions)
        )

    def _set_state(self, name: str, state: Any) -> resources.SecretVersion:
        with self._lock:
            secret, version = self._version(name)
            if version.state == State.DESTROYED:
                raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, f"{name} is destroyed")
            version.state = state
            if state == State.DESTROYED:
                version.data = b""
                version.destroyed = _now()
            return self._version_message(secret, version)

    def disable_secret_version(self, request: service.DisableSecretVersionRequest) -> Any:
        return self._set_state(request.name, State.DISABLED)

    def enable_secret_version(self, request: service.EnableSecretVersionRequest) -> Any:
        return self._set_state(request.name, State.ENABLED)

    def destroy_secret_version(self, request: service.DestroySecretVersionRequest) -> Any:
        return self._set_state(request.name, State.DESTROYED)

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()


def _copy(message: _M) -> _M:
    copied: _M = type(message).deserialize(type(message).serialize(message))
    return copied


def _empty(message: empty_pb2.Empty) -> bytes:
    return bytes(message.SerializeToString())


def generic_handler(store: SecretStore) -> grpc.GenericRpcHandler:
    """The RPCs, each with its request type's ``deserialize`` and response serializer."""
    r, s = resources, service
    methods: dict[str, tuple[Callable[[Any], Any], Any, Callable[[Any], bytes]]] = {
        "CreateSecret": (store.create_secret, s.CreateSecretRequest, r.Secret.serialize),
        "GetSecret": (store.get_secret, s.GetSecretRequest, r.Secret.serialize),
        "ListSecrets": (store.list_secrets, s.ListSecretsRequest, s.ListSecretsResponse.serialize),
        "DeleteSecret": (store.delete_secret, s.DeleteSecretRequest, _empty),
        "AddSecretVersion": (
            store.add_secret_version,
            s.AddSecretVersionRequest,
            r.SecretVersion.serialize,
        ),
        "GetSecretVersion": (
            store.get_secret_version,
            s.GetSecretVersionRequest,
            r.SecretVersion.serialize,
        ),
        "AccessSecretVersion": (
            store.access_secret_version,
            s.AccessSecretVersionRequest,
            s.AccessSecretVersionResponse.serialize,
        ),
        "ListSecretVersions": (
            store.list_secret_versions,
            s.ListSecretVersionsRequest,
            s.ListSecretVersionsResponse.serialize,
        ),
        "DisableSecretVersion": (
            store.disable_secret_version,
            s.DisableSecretVersionRequest,
            r.SecretVersion.serialize,
        ),
        "EnableSecretVersion": (
            store.enable_secret_version,
            s.EnableSecretVersionRequest,
            r.SecretVersion.serialize,
        ),
        "DestroySecretVersion": (
            store.destroy_secret_version,
            s.DestroySecretVersionRequest,
            r.SecretVersion.serialize,
        ),
    }
    return generic_service(SERVICE_NAME, methods)


class SecretManagerEmulator:
    """The emulator on ``127.0.0.1:port`` (0 = a free port), served from this process."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", max_workers: int = 16) -> None:
        self.bind_host = host
        self.requested_port = port
        self.max_workers = max_workers
        self.store = SecretStore()
        self.port: int | None = None
        self._server: grpc.Server | None = None

    @property
    def host(self) -> str:
        """``HOST:PORT`` for ``SECRET_MANAGER_EMULATOR_HOST``."""
        if self.port is None:
            raise RuntimeError("the Secret Manager emulator is not started")
        return f"{self.bind_host}:{self.port}"

    def start(self) -> SecretManagerEmulator:
        if self._server is not None:
            return self
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="secrets")
        )
        server.add_generic_rpc_handlers((generic_handler(self.store),))
        port = server.add_insecure_port(f"{self.bind_host}:{self.requested_port}")
        if port == 0:
            raise RuntimeError(f"cannot bind {self.bind_host}:{self.requested_port}")
        server.start()
        self._server, self.port = server, port
        return self

    def stop(self, grace: float | None = 0.5) -> None:
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None

    def reset(self) -> None:
        self.store.clear()

    def wait(self) -> None:
        if self._server is not None:
            self._server.wait_for_termination()

    def __enter__(self) -> SecretManagerEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def client(host: str) -> SecretManagerServiceClient:
    """A real ``SecretManagerServiceClient`` talking to the emulator at ``host``."""
    channel = grpc.insecure_channel(host)
    return SecretManagerServiceClient(
        transport=transports.SecretManagerServiceGrpcTransport(channel=channel)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.secretmanager", description="Secret Manager emulator (gRPC)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    emulator = SecretManagerEmulator(port=args.port, host=args.host).start()
    print(f"export {ENV_VAR}={emulator.host}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

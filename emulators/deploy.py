"""NoETL deployed on the emulator stack from ``infra/deployment.json``, as Terraform deploys
it to a project: the same functions, entry points, environment, secret environment, push
subscriptions and private/public split, run from the deployable artifact.

``deploy(stack)`` builds the artifact (``make package``), copies it out of the repository,
gives it a virtualenv of its own requirements, stores the platform secrets in the stack's
Secret Manager emulator and hands them to the functions as secret environment variables
(as Cloud Run does), starts every declared function on a port chosen up front (each one's
URL is in the others' environment), subscribes the push-fed ones with the declared ack
deadline, backoff, dead letter and OIDC token, and makes every private function refuse
Cloud Tasks requests without the invoker's token. What a test changes (a shorter lease, a
fault file) it passes as overrides, named in the call.
"""

from __future__ import annotations

import base64
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noetl_core.devtools import package

from .processes import free_port
from .stack import DECLARATION, HOST, EmulatorStack, Function

LEASE_MARGIN = 30  # seconds a lease outlives the worker's timeout (see docs/cloud.md)


@dataclass
class Deployed:
    functions: dict[str, Function]
    client_env: dict[str, str]  # what a client (CLI, test) of this deployment sets
    source: Path  # the artifact's copy the functions run from
    python: Path  # the interpreter of the artifact's own virtualenv


def account(name: str, project: str) -> str:
    return f"{DECLARATION['service_accounts'][name]}@{project}.iam.gserviceaccount.com"


def fill(value: str, project: str, bucket: str, urls: Mapping[str, str]) -> str:
    """A declared value with its placeholders replaced for this deployment."""
    out = value.replace("{project}", project).replace("{bucket}", bucket)
    for name, url in urls.items():
        out = out.replace(f"{{url:{name}}}", url)
    for name in DECLARATION["service_accounts"]:
        out = out.replace(f"{{account:{name}}}", account(name, project))
    for name, topic in DECLARATION["topics"].items():
        out = out.replace(f"{{topic:{name}}}", topic)
    for field in ("name", "location"):
        out = out.replace(f"{{queue:{field}}}", str(DECLARATION["tasks_queue"][field]))
    if "{" in out:
        raise ValueError(f"infra/deployment.json: unknown placeholder in {value!r}")
    return out


def lease_seconds(declaration: Mapping[str, Any] = DECLARATION) -> int:
    """The claim lease: a block lives at most its function's timeout (Cloud Run ends the
    request then), so a lease of the timeout plus a margin is never taken from a block
    that is still running."""
    return int(declaration["functions"]["worker"]["timeout_seconds"]) + LEASE_MARGIN


def _store_secrets(stack: EmulatorStack) -> dict[str, str]:
    """Each declared secret, created with a fresh random value (32 random bytes in url-safe
    base64: a Fernet key, as `noetl-sealing-key` must be); name -> value."""
    from google.cloud import secretmanager

    from .secretmanager import client as secret_manager_client

    client = secret_manager_client(stack.secrets_host)
    values = {}
    for name in DECLARATION["secrets"]:
        parent = f"projects/{stack.project}"
        client.create_secret(
            parent=parent,
            secret_id=name,
            secret=secretmanager.Secret(replication={"automatic": {}}),
        )
        value = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        client.add_secret_version(
            parent=f"{parent}/secrets/{name}",
            payload=secretmanager.SecretPayload(data=value.encode()),
        )
        values[name] = value
    return values


def deploy(
    stack: EmulatorStack,
    *,
    env: Mapping[str, str] | None = None,
    function_env: Mapping[str, Mapping[str, str]] | None = None,
    push: Mapping[str, Mapping[str, Any]] | None = None,
) -> Deployed:
    """Deploy every declared function on ``stack``. ``env`` overrides shared variables,
    ``function_env`` one function's, ``push`` one push subscription's declared fields."""
    artifact = package.build()
    source = stack.workdir / "function-source"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(artifact.folder, source)
    python = package.function_python(source / "requirements.txt")

    declared = DECLARATION["functions"]
    ports = {name: free_port(HOST) for name in declared}
    urls = {name: f"http://{HOST}:{port}" for name, port in ports.items()}
    shared = {k: fill(v, stack.project, stack.bucket, urls) for k, v in DECLARATION["env"].items()}
    shared["NOETL_LEASE_SECONDS"] = str(lease_seconds())
    stored = _store_secrets(stack)
    shared |= {k: stored[secret] for k, secret in DECLARATION["secret_env"].items()}
    shared |= dict(env or {})

    invoker, pusher = account("invoker", stack.project), account("pusher", stack.project)
    made: dict[str, Function] = {}
    for name, spec in declared.items():
        own = {**shared, "NOETL_HOME": str(stack.workdir / f"{name}-home")}
        own |= {
            k: fill(v, stack.project, stack.bucket, urls) for k, v in spec.get("env", {}).items()
        }
        own |= {k: stored[secret] for k, secret in spec.get("secret_env", {}).items()}
        own |= dict((function_env or {}).get(name, {}))
        subscription = {**spec.get("push", {}), **(push or {}).get(name, {})}
        made[name] = stack.add_function(
            name,
            spec["entry_point"],
            "cloudevent" if subscription else "http",
            source=source / "main.py",
            push_topic=DECLARATION["topics"][subscription["topic"]] if subscription else None,
            env=own,
            max_delivery_attempts=subscription.get("max_delivery_attempts", 5),
            ack_deadline=subscription.get("ack_deadline_seconds", 30),
            retry_policy=(
                (subscription["min_backoff_seconds"], subscription["max_backoff_seconds"])
                if subscription
                else None
            ),
            port=ports[name],
            python=python,
            oidc=(pusher, urls[name]) if subscription else None,
            subscription=subscription.get("subscription"),
        )
        if not spec["public"]:
            stack.tasks.protect(urls[name], {invoker})
    client = {k: v for k, v in shared.items() if k != "NOETL_HOME"}
    return Deployed(made, client, source, python)

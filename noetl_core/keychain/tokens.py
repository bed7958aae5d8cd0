"""Keychain entries that are tokens fetched when read: `oauth2` and `google_id_token`.

`oauth2` (upstream NoETL's form): a request to the token endpoint (`endpoint`, or
`token_url`), `method` POST, `headers`, and `data` sent form-encoded, whose templates may
read `workload` and other entries (`{{ keychain.creds.client_secret }}`). `credential:
alias` names a registered credential whose `client_id`, `client_secret`, `token_url`,
`scope` and `audience` fill what `data` and the entry leave out; `grant_type` defaults to
`client_credentials`. The entry's fields are the endpoint's JSON answer (`access_token`,
`token_type`, `expires_in`, ...).

`google_id_token`: an ID token whose audience is `target_audience` (a private Cloud Run
service's URL), as `{id_token, access_token (the same token), token_type: Bearer,
audience}`. From a service account when the entry names one (upstream's
`service_account_credential`, a registered credential holding the key JSON, or
`service_account_secret`, a Secret Manager version holding it; signed by google-auth);
otherwise from the metadata server's identity endpoint, the identity of the Cloud Run
service or VM the block runs on. The metadata server is `GCE_METADATA_HOST` (as
google-auth reads it), else `metadata.google.internal`.

A token is kept for the execution until `ttl_seconds`, else `expires_in`, else the
token's own `exp` says it expires (fetched again a little before).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from .. import settings
from ..errors import KeychainError

TIMEOUT = 10.0
METADATA_HOST = "metadata.google.internal"
IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
# fields of a token answer that say how to use it, not the token: never masked
PUBLIC_FIELDS = frozenset(
    {"token_type", "expires_in", "ext_expires_in", "scope", "audience", "issued_at", "not_before"}
)
# form fields of a token request that name things rather than prove identity
PUBLIC_DATA = frozenset({"grant_type", "scope", "audience", "resource", "client_id", "username"})

Render = Callable[[Any, str], Any]
Mask = Callable[..., None]


def oauth2(
    entry: dict[str, Any],
    credential: Callable[[str], dict[str, Any]],
    render: Render,
    mask: Mask,
    open_sealed: Callable[[Any, str], Any] = lambda value, where: value,
) -> dict[str, Any]:
    name = entry["name"]
    where = f"keychain {name}"
    defaults: dict[str, Any] = {}
    if entry.get("credential") is not None:
        found = credential(str(render(entry["credential"], f"{where}.credential")))
        defaults = dict(found.get("data") or {})
    url = entry.get("endpoint") or entry.get("token_url")
    url = render(url, f"{where}.endpoint") if url is not None else None
    url = url or defaults.get("token_url") or defaults.get("endpoint")
    if not url:
        raise KeychainError(
            f"{where}: no token endpoint (`endpoint`, or `token_url` in its credential)",
            code="bad_keychain",
        )
    written = {k: open_sealed(v, f"{where}.data.{k}") for k, v in (entry.get("data") or {}).items()}
    data = {str(k): v for k, v in render(written, f"{where}.data").items()}
    for key in ("client_id", "client_secret", "scope", "audience"):
        if defaults.get(key) not in (None, "") and key not in data:
            data[key] = defaults[key]
    data.setdefault("grant_type", "client_credentials")
    form = {k: _form(v) for k, v in data.items() if v is not None}
    mask([v for k, v in form.items() if k not in PUBLIC_DATA])
    headers = {
        str(k): str(v) for k, v in render(entry.get("headers") or {}, f"{where}.headers").items()
    }
    method = str(entry.get("method") or "POST").upper()
    answer = _request(where, method, str(url), headers, form)
    if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
        raise KeychainError(
            f"{where}: the token endpoint {_safe(str(url))} answered without an access_token",
            code="token_unavailable",
        )
    return answer


def google_id_token(
    entry: dict[str, Any],
    credential: Callable[[str], dict[str, Any]],
    render: Render,
    secret: Callable[[str, str], str],
) -> dict[str, Any]:
    where = f"keychain {entry['name']}"
    raw = entry.get("target_audience", entry.get("audience"))
    audience = str(render(raw, f"{where}.target_audience"))
    info: dict[str, Any] | None = None
    if entry.get("service_account_credential") is not None:
        alias = str(
            render(entry["service_account_credential"], f"{where}.service_account_credential")
        )
        data = dict(credential(alias).get("data") or {})
        info = data.get("service_account_info") or data
    elif entry.get("service_account_secret") is not None:
        ref = str(render(entry["service_account_secret"], f"{where}.service_account_secret"))
        try:
            info = json.loads(secret(ref, f"{where}.service_account_secret"))
        except ValueError:
            raise KeychainError(
                f"{where}: the secret {ref!r} is not a service account key (JSON)",
                code="bad_credential",
            ) from None
    token = (
        _signed_id_token(where, info, audience) if info is not None else _metadata(where, audience)
    )
    return {"id_token": token, "access_token": token, "token_type": "Bearer", "audience": audience}


def refresh_at(entry: dict[str, Any], values: dict[str, Any], now: float) -> float | None:
    """When a token entry's values should be fetched again (None: never, in this execution)."""
    lifetime: float | None = None
    if entry.get("ttl_seconds") is not None:
        lifetime = float(entry["ttl_seconds"])
    elif _number(values.get("expires_in")) is not None:
        lifetime = _number(values.get("expires_in"))
    else:
        expires = _jwt_exp(values.get("id_token") or values.get("access_token"))
        if expires is not None:
            lifetime = expires - now
    if lifetime is None:
        return None
    return now + lifetime - min(30.0, max(lifetime, 0.0) * 0.1)


def secret_part(values: dict[str, Any]) -> list[Any]:
    """The values of a token entry to mask: the tokens, not how to use them."""
    return [v for k, v in values.items() if k not in PUBLIC_FIELDS]


# -- requests -----------------------------------------------------------------------------


def _request(
    where: str, method: str, url: str, headers: dict[str, str], form: dict[str, str]
) -> Any:
    import httpx

    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            if method == "GET":
                response = client.get(url, headers=headers, params=form)
            else:
                response = client.post(url, headers=headers, data=form)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise KeychainError(
            f"{where}: the token endpoint {_safe(url)} is unreachable: {type(exc).__name__}",
            code="token_unavailable",
            retryable=not isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol),
        ) from None
    if not 200 <= response.status_code < 300:
        said = _oauth_error(response)
        raise KeychainError(
            f"{where}: the token endpoint {_safe(url)} answered {response.status_code}"
            + (f" ({said})" if said else ""),
            code="token_unavailable",
            retryable=response.status_code in (408, 429) or response.status_code >= 500,
        )
    try:
        return response.json()
    except ValueError:
        raise KeychainError(
            f"{where}: the token endpoint {_safe(url)} answered with something not JSON",
            code="token_unavailable",
        ) from None


def _metadata(where: str, audience: str) -> str:
    import httpx

    host = settings.environ("GCE_METADATA_HOST") or settings.environ("GCE_METADATA_ROOT")
    host = (host or METADATA_HOST).rstrip("/")
    base = host if "://" in host else f"http://{host}"
    query = urlencode({"audience": audience, "format": "full"})
    url = f"{base}{IDENTITY_PATH}?{query}"
    try:
        with httpx.Client(timeout=httpx.Timeout(TIMEOUT, connect=3.0)) as client:
            response = client.get(url, headers={"Metadata-Flavor": "Google"})
    except httpx.HTTPError as exc:
        raise KeychainError(
            f"{where}: no metadata server at {base} to issue an ID token "
            f"({type(exc).__name__}; outside Google Cloud, set GCE_METADATA_HOST or name a "
            "service account with `service_account_credential`)",
            code="token_unavailable",
            retryable=True,
        ) from None
    token = response.text.strip()
    if response.status_code != 200 or response.headers.get("metadata-flavor") != "Google":
        raise KeychainError(
            f"{where}: the metadata server at {base} refused an ID token for {audience!r}: "
            f"{response.status_code}",
            code="token_unavailable",
            retryable=response.status_code >= 500,
        )
    if token.count(".") != 2:
        raise KeychainError(
            f"{where}: the metadata server at {base} answered something that is not a JWT",
            code="token_unavailable",
        )
    return token


def _signed_id_token(where: str, info: Any, audience: str) -> str:
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise KeychainError(
            f"{where}: the service account key must be JSON with type service_account",
            code="bad_credential",
        )
    try:
        import google.auth.exceptions
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account
    except ImportError:
        raise KeychainError(
            f"{where}: signing with a service account key needs google-auth (the gcp extra)",
            code="token_unavailable",
        ) from None
    try:
        creds = service_account.IDTokenCredentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, target_audience=audience
        )
        creds.refresh(Request())
    except (google.auth.exceptions.GoogleAuthError, ValueError) as exc:
        raise KeychainError(
            f"{where}: no ID token for {audience!r} from the service account key: "
            f"{type(exc).__name__}",
            code="token_unavailable",
            retryable=isinstance(exc, google.auth.exceptions.TransportError),
        ) from None
    return str(creds.token)


# -- helpers --------------------------------------------------------------------------------


def _form(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)  # OAuth2 scopes are space-separated
    return str(value)


def _oauth_error(response: Any) -> str:
    """RFC 6749's `error` (and description) of a refused request; never the body else."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return ""
    text = str(body["error"])
    if isinstance(body.get("error_description"), str):
        text += f": {body['error_description'][:200]}"
    return text


def _safe(url: str) -> str:
    from ..tools.http import safe_url

    return safe_url(url)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _jwt_exp(token: Any) -> float | None:
    """The `exp` claim of a JWT, read without verifying (only to know when to refresh)."""
    if not isinstance(token, str) or token.count(".") != 2:
        return None
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None

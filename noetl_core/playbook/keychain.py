"""Validation of a playbook's `keychain:` entries: their forms, checked without reading
any value (reading is `noetl_core.keychain.providers`' job, inside the block that needs
it; validation and the gateway never import it).

    {name, kind: secrets, provider: env|file|aws|gcp, map: {field: reference}}
    {name, kind: static,  map: {field: value}}
    {name, kind: bearer,  token: value}
    {name, kind: credential, alias: registered-credential-name}
    {name, kind: oauth2, endpoint | token_url, method?, headers?, data?, credential?,
     ttl_seconds?}                                 (a token from an OAuth2 token endpoint)
    {name, kind: google_id_token, target_audience | audience,
     service_account_credential? | service_account_secret?, ttl_seconds?}
                                                   (a Google ID token for an audience)

Upstream NoETL's `scope` (global, catalog, local, shared) and `auto_renew` are accepted:
here every entry is cached per execution and a token is fetched again when it expires.
"""

from __future__ import annotations

from typing import Any

KINDS = ("secrets", "static", "bearer", "credential", "oauth2", "google_id_token")
SCOPES = ("global", "catalog", "local", "shared")
PROVIDERS = ("env", "file", "aws", "gcp")


def problems(entry: Any) -> list[tuple[str, str]]:
    """Validation of one keychain entry, as (sub-path, message)."""
    if not isinstance(entry, dict):
        return [("", "a keychain entry is a mapping with `name` and `kind`")]
    out = []
    if not isinstance(entry.get("name"), str) or not entry["name"].isidentifier():
        out.append(("name", "a keychain entry needs a `name` usable in templates"))
    kind = entry.get("kind")
    if kind not in KINDS:
        out.append(("kind", f"unknown keychain kind {kind!r} (known: {', '.join(KINDS)})"))
    elif kind == "secrets":
        if entry.get("provider") not in PROVIDERS:
            out.append(("provider", f"expected one of {', '.join(PROVIDERS)}"))
        if not isinstance(entry.get("map"), dict) or not entry["map"]:
            out.append(("map", "`secrets` needs `map: {field: secret reference}`"))
    elif kind == "static" and not isinstance(entry.get("map"), dict):
        out.append(("map", "`static` needs `map: {field: value}`"))
    elif kind == "bearer" and not isinstance(entry.get("token"), str):
        out.append(("token", "`bearer` needs `token`"))
    elif kind == "credential" and not isinstance(entry.get("alias"), str):
        out.append(("alias", "`credential` needs `alias`, a registered credential name"))
    elif kind == "oauth2":
        out.extend(_oauth2(entry))
    elif kind == "google_id_token":
        out.extend(_google_id_token(entry))
    if kind in ("oauth2", "google_id_token"):
        out.extend(_token_common(entry))
    return out


def _oauth2(entry: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    given = [key for key in ("endpoint", "token_url") if entry.get(key) is not None]
    if len(given) > 1:
        out.append(("token_url", "give `endpoint` or `token_url`, not both"))
    for key in given:
        if not isinstance(entry[key], str) or not entry[key]:
            out.append((key, f"`{key}` must be the token endpoint's URL"))
    credential = entry.get("credential")
    if credential is not None and not isinstance(credential, str):
        out.append(("credential", "`credential` must name a registered credential"))
    if not given and credential is None:
        out.append(
            (
                "endpoint",
                "`oauth2` needs `endpoint` (the token URL), or `credential` naming a "
                "registered credential with `token_url`",
            )
        )
    for key in ("headers", "data"):
        if entry.get(key) is not None and not isinstance(entry[key], dict):
            out.append((key, f"`{key}` must be a mapping"))
    method = entry.get("method")
    if method is not None and (
        not isinstance(method, str) or method.upper() not in ("POST", "GET")
    ):
        out.append(("method", "`method` is POST (the default) or GET"))
    return out


def _google_id_token(entry: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    given = [key for key in ("target_audience", "audience") if entry.get(key) is not None]
    if not given:
        out.append(
            ("target_audience", "`google_id_token` needs `target_audience` (the service's URL)")
        )
    elif len(given) > 1:
        out.append(("audience", "give `target_audience` or `audience`, not both"))
    elif not isinstance(entry[given[0]], str) or not entry[given[0]]:
        out.append((given[0], f"`{given[0]}` must be a URL or audience string"))
    sources = [
        key
        for key in ("service_account_credential", "service_account_secret")
        if entry.get(key) is not None
    ]
    if len(sources) > 1:
        out.append(
            (sources[1], "give `service_account_credential` or `service_account_secret`, not both")
        )
    for key in sources:
        if not isinstance(entry[key], str) or not entry[key]:
            out.append((key, f"`{key}` must be a string"))
    return out


def _token_common(entry: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    ttl = entry.get("ttl_seconds")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
        out.append(("ttl_seconds", "`ttl_seconds` must be a positive number"))
    scope = entry.get("scope")
    if scope is not None and scope not in SCOPES:
        out.append(
            (
                "scope",
                f"`scope` is upstream's cache scope ({', '.join(SCOPES)}); an OAuth2 "
                "scope goes in `data: {scope: ...}`",
            )
        )
    if entry.get("auto_renew") is not None and not isinstance(entry["auto_renew"], bool):
        out.append(("auto_renew", "`auto_renew` must be true or false"))
    return out

"""Validation of a playbook's `keychain:` entries: their forms, checked without reading
any value (reading is `noetl_core.keychain.providers`' job, inside the block that needs
it; validation and the gateway never import it).

    {name, kind: secrets, provider: env|file|aws|gcp, map: {field: reference}}
    {name, kind: static,  map: {field: value}}
    {name, kind: bearer,  token: value}
    {name, kind: credential, alias: registered-credential-name}
"""

from __future__ import annotations

from typing import Any

KINDS = ("secrets", "static", "bearer", "credential")
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
    return out

"""Validate HubSpot request bodies against HubSpot's published OpenAPI request schemas.

The schemas are cut from HubSpot's OpenAPI documents into ``tests/fixtures/hubspot/openapi``
(source and commit in its README). A body is checked against the dated document of the path it
was sent to and against the numbered version of the same operation, with one addition: an object
schema that lists its properties accepts no others (HubSpot's schemas leave that open, so a
misspelt optional field would otherwise pass).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft4Validator

SCHEMAS = Path(__file__).parent / "fixtures" / "hubspot" / "openapi"

#: Dated path prefix -> the numbered version of the same operations.
NUMBERED = {
    "/crm/objects/2026-03/": "/crm/v3/objects/",
    "/crm/properties/2026-03/": "/crm/v3/properties/",
    "/crm/associations/2026-03/": "/crm/v4/associations/",
    "/webhooks/2026-03/": "/webhooks/v3/",
}

#: Operations we call with a body that HubSpot's OpenAPI collection does not describe.
UNPUBLISHED = frozenset({("POST", "/oauth/v2/private-apps/get/access-token-info")})


@cache
def _operations() -> list[tuple[str, re.Pattern[str], str, dict[str, Any]]]:
    """Every (method, path pattern, file, body schema with its components) in the fixtures."""
    found = []
    for file in sorted(SCHEMAS.glob("*/*.json")):
        document = json.loads(file.read_text())
        components = _closed(document["components"])
        for template, methods in document["paths"].items():
            pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
            for method, operation in methods.items():
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                found.append((method.upper(), pattern, f"{file.parent.name}/{file.name}",
                              {**_closed(schema), "components": components}))
    return found


def _closed(node: Any) -> Any:
    """``node`` with ``additionalProperties: false`` on every object schema that lists properties."""
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: (_closed(value) if key != "properties" else {name: _closed(sub) for name, sub in value.items()})
           for key, value in node.items()}
    if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


def schemas_for(method: str, path: str) -> list[tuple[str, dict[str, Any]]]:
    """Return ``(file, schema)`` for the dated operation at ``path`` and its numbered twin."""
    numbered = next((numbered + path[len(dated):] for dated, numbered in NUMBERED.items()
                     if path.startswith(dated)), None)
    out = []
    for wanted in (path, numbered):
        matches = [(file, schema) for verb, pattern, file, schema in _operations()
                   if wanted and verb == method and pattern.match(wanted)]
        if not matches:
            raise AssertionError(f"{method} {wanted or path}: no request schema in {SCHEMAS}")
        out.extend(matches[:1])
    return out


def body_errors(method: str, url: str, body: Any) -> list[str]:
    """Return every way ``body`` breaks the published schema of ``method url`` (empty when valid)."""
    path = urlsplit(url).path
    if (method, path) in UNPUBLISHED:
        return []
    errors = []
    for file, schema in schemas_for(method, path):
        for error in Draft4Validator(schema).iter_errors(body):
            where = "/".join(str(part) for part in error.absolute_path) or "(body)"
            errors.append(f"{method} {path} [{file}] {where}: {error.message}")
    return errors


def assert_valid_bodies(calls: Iterable[Any]) -> int:
    """Check the JSON body of every request ``responses`` captured; return how many had one.

    Raises ``AssertionError`` listing each violation (or an operation with no known schema).
    """
    checked, errors = 0, []
    for call in calls:
        raw = call.request.body
        if raw in (None, b"", ""):
            continue
        body = json.loads(raw)
        errors.extend(body_errors(call.request.method, call.request.url, body))
        checked += 1
    assert not errors, "HubSpot request bodies break the published schemas:\n" + "\n".join(errors)
    return checked

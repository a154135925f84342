"""HubSpot inbound: request signatures (v1, v2, v3) and payload parsing.

Two endpoints share this module:

* ``/webhooks/hubspot`` receives the Webhooks API (app subscriptions): a JSON array of at most
  100 events, legacy ``contact.*`` and generic ``object.*`` alike, signed with the app's client
  secret (v3, older requests v1). https://developers.hubspot.com/docs/api/webhooks
* ``/webhooks/hubspot/workflow`` receives a workflow "Send a webhook" action: one JSON object,
  signed with v2 or authenticated by an API-key header.
  https://developers.hubspot.com/docs/methods/workflows/webhook_information

Signatures are checked over the raw bytes before anything is parsed.
https://developers.hubspot.com/docs/api/webhooks/validating-requests
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.base import InboundRequest, IntakeContext, PayloadError, SignatureError, secret_list
from connectors.events import ACTIVITY_KINDS, CRM_KINDS, LeadEvent, utc_from_millis
from connectors.hubspot.fields import PROPERTY_FIELDS, REDACTED, canonical_value
from connectors.hubspot.notifications import parse_notification

# --- mapping tables --------------------------------------------------------------------------

#: The only escapes v3 decodes in the request URI, exactly as HubSpot lists them (upper case).
V3_URI_ESCAPES: dict[str, str] = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}

#: Where the workflow body may carry the contact id, in order of preference. ``canonical-vid``
#: (legacy contact JSON) is the surviving id after merges, so it beats ``vid``.
WORKFLOW_ID_KEYS: tuple[str, ...] = ("objectId", "canonical-vid", "vid", "hs_object_id", "id")

#: Envelope keys of a workflow body that are not contact properties.
WORKFLOW_META_KEYS = frozenset(WORKFLOW_ID_KEYS) | {
    "portal-id", "portalId", "properties", "leadloop_event", "occurredAt", "occurred_at",
    "createdAt", "updatedAt", "archived", "merged-vids", "is-contact", "profile-token", "profile-url",
}

SIGNATURE_V3_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
SIGNATURE_HEADER = "X-HubSpot-Signature"
SIGNATURE_VERSION_HEADER = "X-HubSpot-Signature-Version"
DEFAULT_API_KEY_HEADER = "X-Leadloop-Api-Key"

#: v3 tolerance on ``X-HubSpot-Request-Timestamp`` (epoch ms), both directions.
TIMESTAMP_TOLERANCE_MS = 5 * 60 * 1000
MAX_EVENTS = 100
_KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# One message per failure; tests assert each one.
NO_SECRET = "no HubSpot client secret configured (HUBSPOT_CLIENT_SECRETS)"
NO_CREDENTIAL = "no HubSpot client secret or workflow API key configured"
MISSING_SIGNATURE = "missing X-HubSpot-Signature-v3 or X-HubSpot-Signature header"
MISSING_SIGNATURE_OR_KEY = "missing HubSpot signature or API key header"
UNKNOWN_VERSION = "unknown or missing X-HubSpot-Signature-Version"
BAD_TIMESTAMP = "missing or malformed X-HubSpot-Request-Timestamp"
STALE_TIMESTAMP = "X-HubSpot-Request-Timestamp is more than 5 minutes old"
FUTURE_TIMESTAMP = "X-HubSpot-Request-Timestamp is more than 5 minutes in the future"
MISMATCH = "HubSpot signature does not match"
API_KEY_MISMATCH = "API key does not match"


# --- signatures ------------------------------------------------------------------------------

def hubspot_signature_v1(secret: str, body: bytes) -> str:
    """Return the v1 signature: hex SHA-256 of client secret + body (a hash, not an HMAC)."""
    return hashlib.sha256(secret.encode() + body).hexdigest()


def hubspot_signature_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    """Return the v2 signature: hex SHA-256 of client secret + method + full URI + body."""
    return hashlib.sha256(secret.encode() + method.encode() + uri.encode() + body).hexdigest()


def hubspot_signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """Return the v3 signature: base64 HMAC-SHA256 over method + decoded URI + body + timestamp."""
    source = method.encode() + decode_v3_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


def decode_v3_uri(uri: str) -> str:
    """Return ``uri`` with only HubSpot's listed escapes decoded (``%20``, ``%3D`` stay as-is)."""
    return re.sub("|".join(V3_URI_ESCAPES), lambda m: V3_URI_ESCAPES[m.group(0)], uri)


def verify_hubspot_signature(request: InboundRequest, secrets: list[str], *, now: float | None = None,
                             legacy_versions: frozenset[str] = frozenset({"v1", "v2"})) -> None:
    """Check the v3 signature, or, only when no v3 header is present, a v1/v2 one.

    ``now`` is epoch seconds (default: the clock). Any secret in ``secrets`` may match
    (rotation). Raises ``SignatureError`` with one distinct message per failure.
    """
    if not secrets:
        raise SignatureError(NO_SECRET)
    headers = request.headers
    v3 = headers.get(SIGNATURE_V3_HEADER)
    if v3:
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        if not timestamp.isdigit():
            raise SignatureError(BAD_TIMESTAMP)
        now_ms = (time.time() if now is None else now) * 1000
        if now_ms - int(timestamp) > TIMESTAMP_TOLERANCE_MS:
            raise SignatureError(STALE_TIMESTAMP)
        if int(timestamp) - now_ms > TIMESTAMP_TOLERANCE_MS:
            raise SignatureError(FUTURE_TIMESTAMP)
        expected = [hubspot_signature_v3(s, request.method, request.url, request.body, timestamp)
                    for s in secrets]
        _match_any(v3, expected)
        return
    legacy = headers.get(SIGNATURE_HEADER)
    if not legacy:
        raise SignatureError(MISSING_SIGNATURE)
    version = headers.get(SIGNATURE_VERSION_HEADER, "").strip().lower()
    if version not in legacy_versions:
        raise SignatureError(UNKNOWN_VERSION)
    if version == "v1":
        expected = [hubspot_signature_v1(s, request.body) for s in secrets]
    else:
        expected = [hubspot_signature_v2(s, request.method, request.url, request.body) for s in secrets]
    _match_any(legacy.strip().lower(), expected)


def _match_any(given: str, expected: list[str]) -> None:
    # Compare against every secret (no early exit) so timing says nothing about which one matched.
    ok = False
    for candidate in expected:
        ok |= hmac.compare_digest(given.encode(), candidate.encode())
    if not ok:
        raise SignatureError(MISMATCH)


def verify_webhook(request: InboundRequest, context: IntakeContext, *, now: float | None = None) -> None:
    """``Endpoint.verify`` for ``/hubspot``: raises ``SignatureError`` unless HubSpot signed it."""
    verify_hubspot_signature(request, secret_list(context.config.get("HUBSPOT_CLIENT_SECRETS")), now=now)


def verify_workflow(request: InboundRequest, context: IntakeContext, *, now: float | None = None) -> None:
    """``Endpoint.verify`` for ``/hubspot/workflow``: a v2 (or v3) signature or the API-key header.

    Raises ``SignatureError``. A present but wrong API key is refused even if a signature could
    also be checked, so a misconfigured workflow fails loudly.
    """
    config = context.config
    secrets = secret_list(config.get("HUBSPOT_CLIENT_SECRETS"))
    keys = secret_list(config.get("HUBSPOT_WORKFLOW_API_KEYS"))
    header = config.get("HUBSPOT_WORKFLOW_API_KEY_HEADER") or DEFAULT_API_KEY_HEADER
    if not secrets and not keys:
        raise SignatureError(NO_CREDENTIAL)
    given_key = request.headers.get(header)
    if given_key and keys:
        ok = False
        for key in keys:
            ok |= hmac.compare_digest(given_key.encode(), key.encode())
        if not ok:
            raise SignatureError(API_KEY_MISMATCH)
        return
    signed = request.headers.get(SIGNATURE_V3_HEADER) or request.headers.get(SIGNATURE_HEADER)
    if signed:
        verify_hubspot_signature(request, secrets, now=now, legacy_versions=frozenset({"v2"}))
        return
    raise SignatureError(MISSING_SIGNATURE_OR_KEY)


# --- Webhooks API payload --------------------------------------------------------------------

def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from None


def parse_webhook(request: InboundRequest, context: IntakeContext) -> list[LeadEvent]:
    """``Endpoint.parse`` for ``/hubspot``: return one ``LeadEvent`` per notification.

    Raises ``PayloadError`` for anything but a JSON array of at most 100 well-formed events.
    Legacy (``contact.*``) and generic (``object.*``) notifications may be mixed; objects other
    than contacts (``deal.*``, ``objectTypeId`` "0-3" ...) come back as kind ``ignored``
    (``connectors.hubspot.notifications``).
    """
    payload = _load_json(request.body)
    if not isinstance(payload, list):
        raise PayloadError("expected a JSON array of HubSpot events")
    if len(payload) > MAX_EVENTS:
        raise PayloadError(f"too many events: {len(payload)} (HubSpot sends at most {MAX_EVENTS})")
    return [parse_notification(index, item) for index, item in enumerate(payload)]


# --- workflow "Send a webhook" payload -------------------------------------------------------

def parse_workflow(request: InboundRequest, context: IntakeContext) -> list[LeadEvent]:
    """``Endpoint.parse`` for ``/hubspot/workflow``: return one event for the body.

    A body with ``"leadloop_event": "<kind>"`` is an activity of that kind; any other object is
    the enrolled contact (``record_snapshot``). The key is the body's SHA-256, since a workflow
    retry resends the same body. Raises ``PayloadError``.
    """
    body = _load_json(request.body)
    if not isinstance(body, dict):
        raise PayloadError("expected a JSON object (the workflow's contact or a custom body)")
    key = "workflow:" + hashlib.sha256(request.body).hexdigest()
    props = body.get("properties") if isinstance(body.get("properties"), dict) else {}
    flat = {k: _property_value(v) for k, v in {**body, **props}.items() if k not in WORKFLOW_META_KEYS}
    crm_id = _workflow_id(body, props)
    email = flat.get("email")
    email = email.strip().lower() if isinstance(email, str) and email.strip() else None
    if not crm_id and not email:
        raise PayloadError("workflow body has no contact id (objectId, vid, hs_object_id, id) and no email")
    occurred_at = _workflow_time(body, props) or context.now
    ids = {"crm": "hubspot" if crm_id else None, "crm_id": crm_id, "email": email}
    if "leadloop_event" in body:
        kind = body["leadloop_event"]
        if not isinstance(kind, str) or not _KIND_PATTERN.match(kind) or kind in CRM_KINDS:
            raise PayloadError("leadloop_event: must be an activity kind in lower_snake_case "
                               f"(e.g. {', '.join(sorted(ACTIVITY_KINDS)[:2])}), not a CRM kind")
        properties = {k: v for k, v in flat.items() if k != "email"}
        return [LeadEvent(source="hubspot", kind=kind, event_key=key, occurred_at=occurred_at,
                          properties=properties, raw=body, **ids)]
    fields: dict[str, Any] = {}
    redacted: list[str] = []
    for name, value in flat.items():
        canonical = PROPERTY_FIELDS.get(name, name)
        if value == REDACTED:
            redacted.append(canonical)
        else:
            fields[canonical] = canonical_value(canonical, value)
    properties = {"redacted": redacted} if redacted else {}
    return [LeadEvent(source="hubspot", kind="record_snapshot", event_key=key, occurred_at=occurred_at,
                      fields=fields, properties=properties, raw=body, **ids)]


def _property_value(value: Any) -> Any:
    # The legacy contact JSON nests each property as {"value": ..., "versions": [...]}.
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


def _workflow_id(body: Mapping[str, Any], props: Mapping[str, Any]) -> str | None:
    for source in (body, props):
        for name in WORKFLOW_ID_KEYS:
            value = _property_value(source.get(name))
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _workflow_time(body: Mapping[str, Any], props: Mapping[str, Any]) -> datetime | None:
    candidates = [body.get("occurredAt"), body.get("occurred_at"), body.get("updatedAt"),
                  _property_value(props.get("lastmodifieddate"))]
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool):
            return utc_from_millis(value)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            if text.isdigit():
                return utc_from_millis(int(text))
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise PayloadError(f"unreadable timestamp {text!r} in workflow body") from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None

"""The generic signed intake for website and product activity: ``POST /webhooks/events``.

Signature like Stripe's: ``X-Leadloop-Signature: t=<unix>,v1=<hex hmac-sha256 of "t.body">``,
checked over the raw bytes against every secret in ``LEADLOOP_EVENTS_SECRETS`` (rotation), with a
300-second tolerance either way. Only then is the JSON parsed and validated (marshmallow).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from connectors import registry
from connectors.base import Endpoint, InboundRequest, IntakeContext, PayloadError, SignatureError, secret_list
from connectors.events import LeadEvent
from integration.store.validation import EARLIEST, LATEST, event_problems

SIGNATURE_HEADER = "X-Leadloop-Signature"
TOLERANCE_SECONDS = 300
MAX_EVENTS = 1000
MAX_BODY = 5 * 1024 * 1024


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """Return the ``X-Leadloop-Signature`` value for ``body`` (what senders compute)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(request: InboundRequest, context: IntakeContext, now: float | None = None) -> None:
    """Raise ``SignatureError`` unless the body was signed by a configured secret, recently
    (``now``: epoch seconds, default the wall clock)."""
    secrets = secret_list(context.config.get("LEADLOOP_EVENTS_SECRETS"))
    if not secrets:
        raise SignatureError("no signing secret configured (LEADLOOP_EVENTS_SECRETS)")
    header = request.headers.get(SIGNATURE_HEADER)
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit():
        raise SignatureError("signature header has no valid timestamp (t=)")
    if not signatures:
        raise SignatureError("signature header has no v1 signature")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise SignatureError("timestamp outside the 300 s tolerance")
    signed = timestamp.encode() + b"." + request.body
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            return
    raise SignatureError("signature does not match")


def _storable_time(moment: datetime) -> None:
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValidationError(f"must be between {EARLIEST.year} and {LATEST.year}")


def _registered_crm(name: str) -> None:
    crms = sorted(registry())
    if name not in crms:
        raise ValidationError(f"Must be one of: {', '.join(crms)}.")


class EventSchema(Schema):
    class Meta:
        unknown = INCLUDE  # senders may add fields; we keep them in raw

    # ``metadata`` describes each field in /openapi.json (integration.web.openapi).
    id = fields.String(required=True, validate=validate.Length(min=1, max=200),
                       metadata={"description": "your unique id of the event; a redelivery is absorbed"})
    type = fields.String(required=True, validate=validate.Length(min=1, max=40),
                         metadata={"description": "a built-in activity kind or one the rules file declares"})
    occurred_at = fields.AwareDateTime(required=True, format="iso", validate=_storable_time,
                                       error_messages={"invalid_awareness": "must be ISO-8601 with an offset"},
                                       metadata={"description": f"ISO-8601 with an offset, {EARLIEST.year}-"
                                                                f"{LATEST.year}"})
    email = fields.Email(load_default=None, metadata={"description": "who, by email (and/or crm + crm_id)"})
    crm = fields.String(load_default=None, validate=_registered_crm,
                        metadata={"description": "the CRM owning the record `crm_id`"})
    crm_id = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    properties = fields.Dict(keys=fields.String(), load_default=dict, metadata={
        "description": "what happened: `asset`, `url`, `form`, `campaign` ...; for `form_submit`, `fields` "
                       "holds lead fields under leadloop's names"})

    @validates_schema
    def _identity(self, data: dict[str, Any], **_: Any) -> None:
        if bool(data.get("crm")) != bool(data.get("crm_id")):
            raise ValidationError("crm and crm_id go together", "crm_id")
        if not data.get("email") and not data.get("crm"):
            raise ValidationError("an event needs an email or crm + crm_id", "email")


_event_schema = EventSchema()


def _flatten(messages: Any, path: str = "") -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            sub = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
            out.extend(_flatten(value, sub))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{path or '$'}: {m}" for m in messages]
    return [f"{path or '$'}: {messages}"]


def parse(request: InboundRequest, context: IntakeContext) -> list[LeadEvent]:
    """Return the events of a JSON array body; raises ``PayloadError`` listing every mistake of
    every event (field errors, unknown types, values the store would refuse), each by position."""
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise PayloadError("body must be a JSON array of events")
    if len(data) > MAX_EVENTS:
        raise PayloadError(f"at most {MAX_EVENTS} events per request (got {len(data)})")
    known = context.activity_kinds
    events, mistakes = [], []
    for index, raw in enumerate(data):
        try:
            item = _event_schema.load(raw)
        except ValidationError as exc:
            mistakes += _flatten(exc.messages, f"[{index}]")
            continue
        if item["type"] not in known:
            mistakes.append(f"[{index}].type: unknown event type {item['type']!r}")
            continue
        event = _event_of(raw, item)
        mistakes += [f"[{index}].{problem}" for problem in event_problems(event)]
        events.append(event)
    if mistakes:
        raise PayloadError("; ".join(mistakes))
    return events


def _event_of(raw: Any, item: dict[str, Any]) -> LeadEvent:
    if item["crm"]:
        # One record, one key: e.g. Salesforce ids arrive as 15 or 18 characters.
        item["crm_id"] = registry()[item["crm"]].normalise_id(item["crm_id"])
    properties = dict(item["properties"])
    form_fields = properties.get("fields") if item["type"] == "form_submit" else None
    return LeadEvent(
        source="web", kind=item["type"], event_key=item["id"], occurred_at=item["occurred_at"].astimezone(UTC),
        crm=item["crm"], crm_id=item["crm_id"], email=(item["email"] or "").lower() or None,
        fields=dict(form_fields) if isinstance(form_fields, dict) else {},
        properties=properties, raw=raw,
    )


ENDPOINT = Endpoint(rule="/events", name="events", verify=verify, parse=parse, max_body=MAX_BODY,
                    checks_storable=True)

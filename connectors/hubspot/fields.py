"""HubSpot properties under leadloop's names: contacts (canonical lead fields), deals and rep
activity (the ``deal_change``/``rep_activity`` properties), and values written as the text HubSpot
properties take. One table each, read by the webhook parsers, the client, the deal and activity
reads and setup.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

#: What HubSpot sends instead of a sensitive property's value.
#: https://developers.hubspot.com/docs/api/webhooks (sensitive data)
REDACTED = "REDACTED"

#: HubSpot contact property -> canonical field name. Unmapped properties keep their HubSpot name.
PROPERTY_FIELDS: dict[str, str] = {
    "email": "email",
    "firstname": "first_name",
    "lastname": "last_name",
    "company": "company",
    "jobtitle": "job_title",
    "phone": "phone",
    "mobilephone": "mobile_phone",
    "country": "country",
    "state": "state",
    "city": "city",
    "industry": "industry",
    "numemployees": "employees",
    "annualrevenue": "annual_revenue",
    "website": "website",
    "hs_analytics_source": "lead_source",
    "hs_lead_status": "lead_status",
    "lifecyclestage": "lifecycle_stage",
    "hubspot_owner_id": "owner_id",
}

#: Canonical fields that hold numbers (``scoring.fields.LEAD_FIELDS``) and the type each takes.
#: HubSpot sends every property value as text; the Salesforce connector already types these,
#: so the same person must not be stored as ``"250"`` here and ``250`` there.
NUMBER_FIELDS: dict[str, type] = {"employees": int, "annual_revenue": float}


def canonical_value(name: str, value: Any) -> Any:
    """Return a HubSpot property value typed as the canonical field ``name`` holds it.

    Numeric text becomes a number; anything else (e.g. a range like ``"25-50"`` picked from the
    default ``numemployees`` dropdown) is returned as sent, never refused.
    """
    kind = NUMBER_FIELDS.get(name)
    if kind is None or not isinstance(value, str):
        return value
    try:
        number = float(value.strip().replace(",", ""))
    except ValueError:
        return value
    if not math.isfinite(number):
        return value
    return int(number) if kind is int and number.is_integer() else number


def format_value(value: Any) -> str:
    """Return ``value`` as HubSpot property text: numbers plain, booleans true/false, UTC ISO 'Z'."""
    if value is None:
        return ""  # an empty string clears the property
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        text = format(Decimal(repr(value)) if isinstance(value, float) else value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "\n".join(format_value(v) for v in value)
    return str(value)
# --- deals and rep activity (``deal_change`` / ``rep_activity`` properties) ------------------

#: HubSpot deal property -> ``deal_change`` property (``connectors.events.DEAL_PROPERTIES``).
#: ``hs_is_closed``/``hs_is_closed_won`` are the stage's own flags (from the pipeline stage's
#: ``isClosed`` and probability): won and lost are read from them, never from ``dealstage``'s id.
#: https://developers.hubspot.com/docs/api/crm/pipelines
DEAL_PROPERTY_FIELDS: dict[str, str] = {
    "pipeline": "pipeline", "dealstage": "stage", "amount": "amount", "deal_currency_code": "currency",
    "createdate": "created_at", "closedate": "closed_at", "hs_is_closed": "is_closed",
    "hs_is_closed_won": "is_won",
}

#: objectTypeId of a rep activity -> its type, and the properties read back, per type, under
#: their ``rep_activity`` names. https://developers.hubspot.com/docs/api/crm/calls (emails, meetings)
ACTIVITY_TYPES: dict[str, str] = {"0-48": "call", "0-49": "email", "0-47": "meeting"}
_ACTIVITY_COMMON = {"hubspot_owner_id": "owner_id", "hs_createdate": "logged_at", "hs_timestamp": "activity_at"}
ACTIVITY_PROPERTY_FIELDS: dict[str, dict[str, str]] = {
    "call": {**_ACTIVITY_COMMON, "hs_call_direction": "direction", "hs_call_status": "status"},
    "email": {**_ACTIVITY_COMMON, "hs_email_direction": "direction", "hs_email_status": "status"},
    "meeting": {**_ACTIVITY_COMMON, "hs_meeting_outcome": "status"},
}
#: ``hs_call_direction`` / ``hs_email_direction`` -> direction from the rep's side. An
#: ``INCOMING_EMAIL`` is the lead's reply, not the rep acting.
DIRECTIONS: dict[str, str] = {"OUTBOUND": "outbound", "INBOUND": "inbound", "EMAIL": "outbound",
                              "FORWARDED_EMAIL": "outbound", "INCOMING_EMAIL": "inbound"}
_TIMES = frozenset({"created_at", "closed_at", "logged_at", "activity_at"})
_FLAGS = frozenset({"is_closed", "is_won"})


def record_value(name: str, value: Any) -> Any:
    """Return a deal or activity property value (HubSpot sends text) as its ``name`` holds it.

    Times become ISO 8601 (HubSpot sends epoch milliseconds or ISO text), flags booleans, the
    amount decimal text, the currency upper case, directions ``inbound``/``outbound``; an empty
    value (a cleared property) is None. Raises ``ValueError`` for a value of the wrong kind.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if name in _TIMES:
        return _iso_time(text)
    if name in _FLAGS:
        if text.lower() not in ("true", "false"):
            raise ValueError("must be true or false")
        return text.lower() == "true"
    if name == "amount":
        try:
            amount = Decimal(text.replace(",", ""))
        except InvalidOperation:
            raise ValueError("must be a number") from None
        if not amount.is_finite():
            raise ValueError("must be a number")
        return format(amount.normalize(), "f")
    if name == "currency":
        return text.upper()
    if name == "direction":
        return DIRECTIONS.get(text.upper())
    return text


def _iso_time(text: str) -> str:
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC).isoformat()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("must be a date-time (epoch milliseconds or ISO 8601)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat()

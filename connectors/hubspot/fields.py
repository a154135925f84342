"""HubSpot contact properties under leadloop's canonical field names (one table, read by the
webhook parsers, the client and setup), and values written as the text HubSpot properties take.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal
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

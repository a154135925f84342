"""Salesforce writes keyed by leadloop: the Lead of a web-only lead, and the external-ID key field.

Both the Lead leadloop creates and every Task it creates carry the outbox row's key in
``Leadloop_Key__c``, a Text field marked External ID and Unique (created by ``leadloop setup
salesforce``; on Task it is an Activity custom field). The client reads the record by that key
first (``GET /sobjects/{type}/Leadloop_Key__c/{key}``) and writes it with an upsert by the same
key (``PATCH``: 201 ``created: true``, 200 ``created: false`` for a record that exists, 300 when
the key matches several), so a retry after a crash between Salesforce's create and our commit
finds the record instead of creating a second one.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm

A Lead needs ``LastName`` and ``Company``; when the person did not give them leadloop writes
``[not provided]``, the text Salesforce's own Web-to-Lead uses for a required field left blank.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import LEADLOOP_FIELDS, RecordCreate

#: The External ID + Unique text field holding leadloop's key, on Lead and on Task (Activity).
KEY_FIELD = "Leadloop_Key__c"
#: Written into a field Salesforce requires when the lead did not give it (Lead: LastName, Company).
MISSING_VALUE = "[not provided]"
#: Canonical lead field -> (Lead field, its length). Country and state are left out: orgs with State
#: and Country/Territory Picklists accept only their own values there; industry is a picklist.
LEAD_TEXT_FIELDS: dict[str, tuple[str, int]] = {
    "first_name": ("FirstName", 40), "last_name": ("LastName", 80), "company": ("Company", 255),
    "job_title": ("Title", 128), "phone": ("Phone", 40), "mobile_phone": ("MobilePhone", 40),
    "city": ("City", 40), "website": ("Website", 255),
}
#: Canonical lead field -> Lead number field (written only when the value is a number).
LEAD_NUMBER_FIELDS: dict[str, str] = {"employees": "NumberOfEmployees", "annual_revenue": "AnnualRevenue"}
REQUIRED_LEAD_FIELDS = ("LastName", "Company")
EMAIL_MAX = 80


def lead_body(create: RecordCreate, leadloop_fields: Mapping[str, str],
              format_leadloop: Any) -> dict[str, Any]:
    """Return the Lead's fields: what is known, placeholders, leadloop's fields, owner and status.

    ``leadloop_fields`` maps ``LEADLOOP_FIELDS`` keys to the custom fields; ``format_leadloop(key,
    value)`` formats a value for its field. Raises ``ValueError`` for an unknown leadloop field
    or a stage field that would set the Lead's id or key.
    """
    body: dict[str, Any] = {"Email": create.email[:EMAIL_MAX]}
    for canonical, (name, length) in LEAD_TEXT_FIELDS.items():
        value = create.lead_fields.get(canonical)
        if value not in (None, ""):
            body[name] = str(value)[:length]
    for canonical, name in LEAD_NUMBER_FIELDS.items():
        value = create.lead_fields.get(canonical)
        if isinstance(value, int | float) and not isinstance(value, bool):
            body[name] = int(value) if name == "NumberOfEmployees" else value
    for name in REQUIRED_LEAD_FIELDS:
        body.setdefault(name, MISSING_VALUE)
    for key, value in create.fields.items():
        if key not in LEADLOOP_FIELDS:
            raise ValueError(f"unknown leadloop field {key!r}")
        body[leadloop_fields[key]] = format_leadloop(key, value)
    if create.owner_id:
        body["OwnerId"] = create.owner_id
    reserved = {"Id", "id", "attributes", KEY_FIELD} & set(create.crm_fields)
    if reserved:
        raise ValueError(f"crm_fields may not set {', '.join(sorted(reserved))}")
    body.update(create.crm_fields)
    return body


def duplicate_text(error: Mapping[str, Any]) -> str:
    """Return a DUPLICATES_DETECTED error as text: Salesforce's message, the rule, the matches.

    The detail is under ``duplicateResut`` (sic) in many captured responses and under
    ``duplicateResult`` in others; both are read.
    """
    text = f"{error.get('errorCode')}: {error.get('message')}"
    detail = error.get("duplicateResult") or error.get("duplicateResut") or {}
    if not isinstance(detail, Mapping):
        return text
    matches = [f"{(match.get('record') or {}).get('attributes', {}).get('type') or result.get('entityType')} "
               f"{(match.get('record') or {}).get('Id')}"
               for result in detail.get("matchResults") or [] for match in result.get("matchRecords") or []]
    extra = [f"rule {detail['duplicateRule']}"] if detail.get("duplicateRule") else []
    extra += [f"matches {', '.join(matches)}"] if matches else []
    return f"{text} ({'; '.join(extra)})" if extra else text

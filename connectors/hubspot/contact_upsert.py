"""HubSpot contacts for web-only leads: a batch upsert by email creates or finds each contact.

``POST /crm/objects/{version}/contacts/batch/upsert`` with ``idProperty: email`` updates a contact
that exists and creates a missing one (``new`` says which), at most 100 inputs a call. A contact's
email is unique, so a retry after a crash between HubSpot's create and our commit finds the
contact the first attempt created instead of making a second one. HubSpot: "Partial upserts are
not supported when using email as the idProperty", so every input carries the full set of
properties leadloop writes for the person.
https://developers.hubspot.com/docs/api/crm/contacts
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.base import LEADLOOP_FIELDS, RecordCreate, WriteOutcome
from connectors.hubspot.fields import format_value

BATCH_SIZE = 100
#: Canonical lead field -> contact property written at creation: the free-text ones. Industry and
#: number of employees are dropdowns in a default portal, where a value typed on a web form would
#: fail the whole input; source, lifecycle stage, lead status and owner come from elsewhere.
CREATE_PROPERTIES: dict[str, str] = {
    "email": "email", "first_name": "firstname", "last_name": "lastname", "company": "company",
    "job_title": "jobtitle", "phone": "phone", "mobile_phone": "mobilephone", "country": "country",
    "state": "state", "city": "city", "website": "website",
}
#: Error categories that fail the same way on every retry: recorded, not retried.
FINAL_CATEGORIES = frozenset({"VALIDATION_ERROR", "INVALID_EMAIL", "MISSING_SCOPES", "OBJECT_NOT_FOUND"})


def contact_properties(create: RecordCreate) -> dict[str, str]:
    """Return the contact's properties: what is known, leadloop's fields, owner and stage fields."""
    props = {name: format_value(create.lead_fields[canonical]) for canonical, name in CREATE_PROPERTIES.items()
             if create.lead_fields.get(canonical) not in (None, "")}
    props["email"] = create.email
    props.update({f"leadloop_{key}": format_value(value) for key, value in create.fields.items()
                  if key in LEADLOOP_FIELDS})
    if create.owner_id:
        props["hubspot_owner_id"] = str(create.owner_id)
    props.update({name: format_value(value) for name, value in create.crm_fields.items()})
    return props


def upsert_batches(creates: Sequence[RecordCreate]) -> list[list[RecordCreate]]:
    """Split into calls of at most 100, never the same email twice in one call."""
    batches: list[list[RecordCreate]] = []
    for create in creates:
        current = batches[-1] if batches else []
        if not batches or len(current) >= BATCH_SIZE or any(c.email.lower() == create.email.lower()
                                                             for c in current):
            batches.append([])
        batches[-1].append(create)
    return batches


def upsert_body(batch: Sequence[RecordCreate]) -> dict[str, Any]:
    """Return the batch upsert body: the email is the id, each input traced by its key."""
    return {"inputs": [{"id": c.email, "idProperty": "email", "objectWriteTraceId": c.key,
                        "properties": contact_properties(c)} for c in batch]}


def upsert_outcomes(batch: Sequence[RecordCreate], status: int, body: Any, error: str,
                    final_statuses: frozenset[int]) -> dict[str, WriteOutcome]:
    """Return one outcome per create from the upsert's answer (200, 207, or a refused call).

    Results and errors are matched by ``objectWriteTraceId``, else by email. A create with
    neither a result nor an error of its own stays pending (retryable).
    """
    if status not in (200, 207):
        return {c.key: WriteOutcome(c.key, ok=False, error=error, retryable=status not in final_statuses)
                for c in batch}
    body = body if isinstance(body, Mapping) else {}
    by_key = {c.key: c for c in batch}
    by_email = {c.email.lower(): c.key for c in batch}
    outcomes: dict[str, WriteOutcome] = {}
    for result in body.get("results") or []:
        key = result.get("objectWriteTraceId")
        if key not in by_key:
            key = by_email.get(str((result.get("properties") or {}).get("email") or "").lower())
        if key is not None and result.get("id") is not None:
            outcomes[key] = WriteOutcome(key, ok=True, external_id=str(result["id"]))
    for err in body.get("errors") or []:
        context = err.get("context") or {}
        keys = [k for k in context.get("objectWriteTraceId", []) if k in by_key]
        keys += [by_email[i.lower()] for i in map(str, context.get("ids", [])) if i.lower() in by_email]
        category = err.get("category") or err.get("code") or "error"
        for key in keys:
            outcomes.setdefault(key, WriteOutcome(key, ok=False, error=f"{category}: {err.get('message', '')}",
                                                  retryable=category not in FINAL_CATEGORIES))
    for create in batch:
        outcomes.setdefault(create.key, WriteOutcome(create.key, ok=False, retryable=True,
                                                     error="HubSpot returned neither a contact nor an error"))
    return outcomes

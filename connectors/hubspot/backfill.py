"""Reading a HubSpot portal's history for ``leadloop import hubspot``: contacts page by page.

Each page is one call to the contacts list with the properties leadloop maps and the history of
the lifecycle stage and lead status, then the page's deals (associations, then a batch read).
What comes back is plain records under leadloop's names; storing them is the integration's job.
The caller keeps the page cursor (``after``) to resume, and waits out a ``CrmRateLimited``
(a 429, or the shared budget spent) before asking for the same page again: the client's
limiter (``connectors.hubspot.client.RateLimiter``) paces the calls within HubSpot's limits.
https://developers.hubspot.com/docs/api-reference/latest/crm/objects/contacts
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.base import CrmError
from connectors.hubspot.client import HubSpotClient, error_message
from connectors.hubspot.deals import associated_ids, read_deals
from connectors.hubspot.fields import DEAL_PROPERTY_FIELDS, PROPERTY_FIELDS, canonical_value, record_value
from connectors.hubspot.paths import api_path

#: Contacts per page: with ``propertiesWithHistory`` HubSpot returns fewer per call (50 in a batch
#: read), so the list is asked for 50 at a time. https://developers.hubspot.com/docs/api/crm/contacts
PAGE_SIZE = 50
#: The status properties whose history becomes the lead's stage changes.
HISTORY_PROPERTIES = ("lifecyclestage", "hs_lead_status")


@dataclass(frozen=True)
class ContactRecord:
    """One contact with its history, under leadloop's names."""

    id: str
    created_at: datetime
    updated_at: datetime | None
    #: Current values under canonical names (``connectors.hubspot.fields.PROPERTY_FIELDS``).
    fields: dict[str, Any]
    #: Canonical status field -> ``(value, when it was set)`` oldest first.
    history: dict[str, list[tuple[str, datetime]]]
    #: The contact's deals as ``deal_change`` properties (stage, is_closed, is_won, amount, closed_at ...).
    deals: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ContactPage:
    contacts: list[ContactRecord]
    #: The cursor of the next page; None after the last one.
    after: str | None


def read_contact_page(client: HubSpotClient, after: str | None = None, *, limit: int = PAGE_SIZE) -> ContactPage:
    """Return one page of contacts (with their deals) from the cursor ``after`` (None: the first page).

    Raises ``CrmRateLimited`` (429 or the shared budget: wait ``retry_after`` and ask again),
    ``CrmAuthError`` and ``CrmError``.
    """
    params: dict[str, Any] = {"limit": limit, "archived": "false", "properties": ",".join(PROPERTY_FIELDS),
                              "propertiesWithHistory": ",".join(HISTORY_PROPERTIES)}
    if after:
        params["after"] = after
    response = client.request("GET", api_path("contacts.list"), params=params)
    if response.status_code != 200:
        raise CrmError(f"HubSpot contacts list -> {response.status_code}: {error_message(response)}")
    body = response.json()
    contacts = [_contact(result) for result in body.get("results", [])]
    deals = contact_deals(client, [contact.id for contact in contacts]) if contacts else {}
    contacts = [ContactRecord(c.id, c.created_at, c.updated_at, c.fields, c.history, deals.get(c.id, []))
                for c in contacts]
    after_next = ((body.get("paging") or {}).get("next") or {}).get("after")
    return ContactPage(contacts, str(after_next) if after_next else None)


def contact_deals(client: HubSpotClient, contact_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Return ``{contact id: [deal properties]}`` for the contacts' associated deals."""
    links = associated_ids(client, "contacts", "deals", contact_ids)
    deal_ids = sorted({deal for deals in links.values() for deal in deals})
    deals = read_deals(client, deal_ids) if deal_ids else {}
    found: dict[str, list[dict[str, Any]]] = {}
    for contact, linked in links.items():
        for deal_id in linked:
            if deal_id in deals:
                props = {name: record_value(name, deals[deal_id].get(prop))
                         for prop, name in DEAL_PROPERTY_FIELDS.items()}
                found.setdefault(contact, []).append({"id": deal_id, **props})
    return found


def _contact(result: dict[str, Any]) -> ContactRecord:
    props = result.get("properties") or {}
    fields = {canonical: canonical_value(canonical, props[name]) for name, canonical in PROPERTY_FIELDS.items()
              if props.get(name) not in (None, "")}
    history: dict[str, list[tuple[str, datetime]]] = {}
    for name, items in (result.get("propertiesWithHistory") or {}).items():
        changes = [(str(item["value"]), _time(item["timestamp"])) for item in items or []
                   if item.get("value") not in (None, "") and item.get("timestamp")]
        history[PROPERTY_FIELDS.get(name, name)] = sorted(changes, key=lambda change: change[1])
    created = _time(result.get("createdAt") or props.get("createdate"))
    updated = result.get("updatedAt") or props.get("lastmodifieddate")
    return ContactRecord(str(result["id"]), created, _time(updated) if updated else None, fields, history)


def _time(value: Any) -> datetime:
    return datetime.fromisoformat(record_value("created_at", value)).astimezone(UTC)

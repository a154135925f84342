"""One Webhooks API notification -> one ``LeadEvent``, in either of HubSpot's two formats.

* Legacy ("classic") subscriptions name the object in the type: ``contact.propertyChange``.
* Generic subscriptions say ``object.propertyChange`` and carry ``objectTypeId`` ("0-1" contact,
  "0-3" deal ...); apps on the developer platform subscribe in this format.
  https://developers.hubspot.com/changelog/public-beta-generic-webhook-subscriptions
  https://developers.hubspot.com/docs/apps/legacy-apps/public-apps/create-generic-webhook-subscriptions

A contact change means the same ``LeadEvent`` whichever format delivered it, and its
idempotency key is built from the change itself (portal, object, what changed, ``occurredAt``),
never from the delivery (``eventId``, ``subscriptionId``, ``appId``, ``attemptNumber``), so the
legacy and the generic notification of one change, or the same change delivered to a legacy app
and to its developer-platform successor, are stored once. This assumes HubSpot stamps both
notifications of one change with the same ``occurredAt`` (the time of the change in the CRM).

Deals are outcomes (kind ``deal_change``) and calls, emails and meetings rep activity (kind
``rep_activity``): record events naming the deal or activity in ``record_id``, what the
notification says of it in ``properties`` (``connectors.events.DEAL_PROPERTIES``), and, for an
association with a contact, that contact in ``contact_ids`` (or ``removed_contact_ids``). A deal
notification carries no stage flags: the pipeline reads the deal back (``connectors.hubspot.deals``).
Other objects (companies, tickets, unknown type ids) are kind ``ignored``: stored with their raw
payload and a normalised description in ``properties``, answered 200, never turned into a lead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from connectors.base import PayloadError
from connectors.events import LeadEvent, utc_from_millis
from connectors.hubspot.fields import (
    ACTIVITY_PROPERTY_FIELDS,
    ACTIVITY_TYPES,
    DEAL_PROPERTY_FIELDS,
    PROPERTY_FIELDS,
    REDACTED,
    canonical_value,
    record_value,
)

# --- mapping tables --------------------------------------------------------------------------

#: objectTypeId -> object name, from "Using object APIs" (object type IDs).
#: https://developers.hubspot.com/docs/api/crm/using-object-apis
OBJECT_TYPES: dict[str, str] = {
    "0-1": "contact", "0-2": "company", "0-3": "deal", "0-5": "ticket", "0-27": "task",
    "0-46": "note", "0-47": "meeting", "0-48": "call", "0-49": "email", "0-136": "lead",
}
CONTACT = "0-1"

#: Object names as legacy types and association types spell them (``deal.creation``,
#: ``MEETING_EVENT_TO_CONTACT``, lower-cased) -> objectTypeId. Names not listed stay as they are.
OBJECT_NAMES: dict[str, str] = {name: type_id for type_id, name in OBJECT_TYPES.items()} | {"meeting_event": "0-47"}

#: The change (what follows the dot in the subscription type) -> kind, for contacts. Other
#: objects' changes are ``ignored``; an unknown change is ``ignored`` for contacts too.
CONTACT_KINDS: dict[str, str] = {
    "creation": "lead_created",
    "propertyChange": "field_change",
    "deletion": "deletion",
    "restore": "restore",
    "privacyDeletion": "privacy_deletion",  # legacy only: it has no generic form
    "merge": "merge",
    "associationChange": "association_change",
}

#: Changes identified by object + change + time alone (no property, no merged ids).
PLAIN_CHANGES = frozenset({"creation", "deletion", "restore", "privacyDeletion"})

#: objectTypeId -> the record event kind of the objects that are outcomes or rep activity.
RECORD_KINDS: dict[str, str] = {"0-3": "deal_change", **{type_id: "rep_activity" for type_id in ACTIVITY_TYPES}}


# --- validating accessor ---------------------------------------------------------------------

class Fields:
    """Validating accessor over one event object; errors name the index and the field."""

    def __init__(self, where: str, data: Mapping[str, Any]):
        self.where = where
        self.data = data

    def error(self, name: str, problem: str) -> PayloadError:
        return PayloadError(f"{self.where}.{name}: {problem}")

    def integer(self, name: str, what: str = "") -> int:
        value = self.data.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            suffix = f" ({what})" if what else ""
            raise self.error(name, f"must be an integer{suffix}")
        return value

    def string(self, name: str) -> str:
        value = self.data.get(name)
        if not isinstance(value, str) or not value:
            raise self.error(name, "must be a non-empty string")
        return value

    def boolean(self, name: str, default: bool | None = None) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, "must be true or false")
        return value

    def integer_list(self, name: str) -> list[int]:
        value = self.data.get(name)
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise self.error(name, "must be a list of integers")
        return value


# --- parsing ---------------------------------------------------------------------------------

def parse_notification(index: int, item: Any) -> LeadEvent:
    """Return the ``LeadEvent`` of one notification; raises ``PayloadError`` naming ``[index].field``."""
    if not isinstance(item, dict):
        raise PayloadError(f"[{index}]: must be an object")
    f = Fields(f"[{index}]", item)
    # Current deliveries say ``subscriptionType``; the older docs (and their samples) ``eventType``.
    subscription_type = f.string("subscriptionType" if "subscriptionType" in item else "eventType")
    prefix, _, change = subscription_type.partition(".")
    generic = prefix == "object"
    # Association events of the generic format carry no objectId: both sides are in from/to.
    object_id = f.integer("objectId") if change != "associationChange" or "objectId" in item else None
    occurred_ms = f.integer("occurredAt", "epoch ms")
    portal = f.integer("portalId")
    subscription_id, event_id = f.integer("subscriptionId"), f.integer("eventId")
    if "attemptNumber" in item:
        f.integer("attemptNumber")
    event = {"source": "hubspot", "crm": "hubspot", "occurred_at": utc_from_millis(occurred_ms), "raw": item}
    if change == "associationChange":
        return _association(f, generic, portal, occurred_ms, event)
    assert object_id is not None
    type_id = f.string("objectTypeId") if generic else OBJECT_NAMES.get(prefix, prefix)
    if type_id in RECORD_KINDS:
        return _record_event(f, type_id, object_id, change, portal, subscription_id, event_id, occurred_ms, event)
    is_contact = type_id == CONTACT
    kind = CONTACT_KINDS.get(change, "ignored") if is_contact else "ignored"
    described = _described(type_id, object_id, change)
    key = f"{portal}:{type_id}:{object_id}:{change}:{occurred_ms}"
    if change == "propertyChange":
        return _property_change(f, is_contact, key, object_id, described, event)
    if change == "merge":
        return _merge(f, is_contact, portal, type_id, occurred_ms, described, event)
    if change not in PLAIN_CHANGES:
        # A type we do not know: nothing says what identifies its change, so key on the delivery
        # (a redelivery keeps eventId and occurredAt; attemptNumber is left out).
        key = f"{portal}:{subscription_id}:{event_id}:{occurred_ms}:{object_id}"
    crm_id = str(object_id) if is_contact else _record(type_id, object_id)
    return LeadEvent(kind=kind, event_key=key, crm_id=crm_id, properties={} if is_contact else described,
                     **event)


def _record_event(f: Fields, type_id: str, object_id: int, change: str, portal: int, subscription_id: int,
                  event_id: int, occurred_ms: int, event: dict[str, Any]) -> LeadEvent:
    """A deal's or rep activity's own change (its associations: ``_association``)."""
    key = f"{portal}:{type_id}:{object_id}:{change}:{occurred_ms}"
    properties: dict[str, Any] = {"change": change, **_activity_type(type_id)}
    if change == "propertyChange":
        name = f.string("propertyName")
        value = f.data.get("propertyValue")
        if value is not None and not isinstance(value, str | int | float):
            raise f.error("propertyValue", "must be a string")
        redacted = value == REDACTED or f.data.get("isSensitive") is True
        if redacted and value != REDACTED:
            event["raw"] = {**f.data, "propertyValue": REDACTED}
        key = f"{key}:{_digest(name, REDACTED if redacted else None if value is None else str(value))}"
        table = DEAL_PROPERTY_FIELDS if type_id == "0-3" else ACTIVITY_PROPERTY_FIELDS[ACTIVITY_TYPES[type_id]]
        if redacted:
            properties.update(property=name, redacted=True)
        elif name in table:
            try:
                properties[table[name]] = record_value(table[name], value)
            except ValueError as exc:
                raise f.error("propertyValue", f"{name} {exc}") from None
        else:
            properties.update(property=name, value=value)
    elif change == "merge":
        object_id, properties["merged_ids"] = _merged(f)
        key = f"{portal}:{type_id}:{object_id}:merge:{occurred_ms}:{_digest(*sorted(properties['merged_ids']))}"
    elif change not in PLAIN_CHANGES:
        key = f"{portal}:{subscription_id}:{event_id}:{occurred_ms}:{object_id}"
    return LeadEvent(kind=RECORD_KINDS[type_id], event_key=key, record_id=str(object_id), properties=properties,
                     **event)


def _activity_type(type_id: str) -> dict[str, str]:
    return {"activity_type": ACTIVITY_TYPES[type_id]} if type_id in ACTIVITY_TYPES else {}


def _property_change(f: Fields, is_contact: bool, key: str, object_id: int, described: dict[str, Any],
                     event: dict[str, Any]) -> LeadEvent:
    name = f.string("propertyName")
    value = f.data.get("propertyValue")
    if value is not None and not isinstance(value, str | int | float):
        raise f.error("propertyValue", "must be a string")
    # Sensitive properties arrive as "REDACTED" (legacy) or flagged ``isSensitive`` (generic).
    # https://developers.hubspot.com/docs/api/webhooks (sensitive data)
    redacted = value == REDACTED or f.data.get("isSensitive") is True
    if redacted and value != REDACTED:
        event["raw"] = {**f.data, "propertyValue": REDACTED}  # never keep the value, not even in raw
    sent = REDACTED if redacted else None if value is None else str(value)
    key = f"{key}:{_digest(name, sent)}"
    if not is_contact:
        detail = {"property": name, "value": None if redacted else value}
        if redacted:
            detail["redacted"] = True
        return LeadEvent(kind="ignored", event_key=key, crm_id=_record(described["object_type_id"], object_id),
                         properties={**described, **detail}, **event)
    canonical = PROPERTY_FIELDS.get(name, name)
    if redacted:
        fields, properties = {}, {"redacted": [canonical]}
    else:
        fields, properties = {canonical: canonical_value(canonical, value)}, {}
    return LeadEvent(kind="field_change", event_key=key, crm_id=str(object_id), fields=fields,
                     properties=properties, **event)


def _merge(f: Fields, is_contact: bool, portal: int, type_id: str, occurred_ms: int,
           described: dict[str, Any], event: dict[str, Any]) -> LeadEvent:
    survivor, merged_ids = _merged(f)
    key = f"{portal}:{type_id}:{survivor}:merge:{occurred_ms}:{_digest(*sorted(merged_ids))}"
    if is_contact:
        return LeadEvent(kind="merge", event_key=key, crm_id=str(survivor),
                         properties={"merged_ids": merged_ids}, **event)
    properties = {**described, "object_id": str(survivor), "merged_ids": merged_ids}
    return LeadEvent(kind="ignored", event_key=key, crm_id=_record(type_id, survivor), properties=properties,
                     **event)


def _merged(f: Fields) -> tuple[int, list[str]]:
    """Return the survivor of a merge and the ids merged into it. The survivor is ``newObjectId``
    (which can be a new id); the primary and every merged id are remapped to it.
    https://developers.hubspot.com/changelog/new-subscription-types-for-webhooks"""
    survivor = f.integer("newObjectId" if "newObjectId" in f.data else "primaryObjectId")
    merged = f.integer_list("mergedObjectIds")
    if "primaryObjectId" in f.data:
        merged = [f.integer("primaryObjectId"), *merged]
    return survivor, list(dict.fromkeys(str(i) for i in merged if i != survivor))


def _association(f: Fields, generic: bool, portal: int, occurred_ms: int, event: dict[str, Any]) -> LeadEvent:
    """One association added or removed. HubSpot sends it once from each side (DEAL_TO_CONTACT
    and CONTACT_TO_DEAL): the key names both ends in a fixed order, so the pair is stored once."""
    from_id, to_id = f.integer("fromObjectId"), f.integer("toObjectId")
    if generic:
        from_type, to_type = f.string("fromObjectTypeId"), f.string("toObjectTypeId")
    else:
        # Legacy events name both ends only in associationType, e.g. CONTACT_TO_COMPANY.
        left, sep, right = f.string("associationType").partition("_TO_")
        if not sep or not left or not right:
            raise f.error("associationType", "must name both ends, e.g. CONTACT_TO_COMPANY")
        from_type, to_type = OBJECT_NAMES.get(left.lower(), left.lower()), OBJECT_NAMES.get(right.lower(),
                                                                                             right.lower())
    removed = f.boolean("associationRemoved")
    primary = f.boolean("isPrimaryAssociation", default=False)
    ends = sorted([(from_type, from_id), (to_type, to_id)])
    key = ":".join([str(portal), "association", *(f"{t}/{i}" for t, i in ends),
                    "removed" if removed else "added", "primary" if primary else "plain", str(occurred_ms)])
    contact = next((end for end in ends if end[0] == CONTACT), None)
    own = contact or ends[0]
    other = ends[1] if own == ends[0] else ends[0]
    link = {"associated_type": OBJECT_TYPES.get(other[0], other[0]), "associated_type_id": other[0],
            "associated_id": str(other[1]), "removed": removed, "primary": primary}
    if contact is not None and other[0] in RECORD_KINDS:
        # A deal's or activity's people: a record event, resolved to leads by the pipeline.
        people = {"removed_contact_ids" if removed else "contact_ids": [str(contact[1])], "primary": primary}
        return LeadEvent(kind=RECORD_KINDS[other[0]], event_key=key, record_id=str(other[1]),
                         properties={"change": "associationChange", **_activity_type(other[0]), **people}, **event)
    if contact is not None:
        return LeadEvent(kind="association_change", event_key=key, crm_id=str(contact[1]), properties=link,
                         **event)
    return LeadEvent(kind="ignored", event_key=key, crm_id=_record(*own),
                     properties={**_described(own[0], own[1], "associationChange"), **link}, **event)


# --- helpers ---------------------------------------------------------------------------------

def _described(type_id: str, object_id: int, change: str) -> dict[str, Any]:
    """The normalised description an ``ignored`` object event keeps in ``properties``."""
    return {"object_type": OBJECT_TYPES.get(type_id, type_id), "object_type_id": type_id,
            "object_id": str(object_id), "change": change}


def _record(type_id: str, object_id: int) -> str:
    # Deal, company ... ids share the number space with contact ids: keep them apart.
    return f"{OBJECT_TYPES.get(type_id, type_id)}:{object_id}"


def _digest(*parts: Any) -> str:
    """A short stable digest: property values and merged-id lists can be long, keys may not."""
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()[:16]

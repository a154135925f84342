"""Salesforce opportunities and rep activity (Task, Event) as record events, and a Lead's conversion.

An Opportunity is a deal (kind ``deal_change``), a Task or an Event rep activity (kind
``rep_activity``): record events naming the record in ``record_id`` and its latest state in
``properties`` (an outbound message carries the record as it is now, not the change, so
``change`` is ``snapshot``; names as in ``connectors.events.DEAL_PROPERTIES`` and
``REP_ACTIVITY_PROPERTIES``). Won and lost are the stage's own flags ``IsWon``/``IsClosed``,
"directly controlled by StageName", never the stage's name.
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_opportunity.htm

The people a record concerns (``contact_ids``): an opportunity's ``ContactId`` (its primary
contact role, API 46.0+), a Task's or Event's ``WhoId`` (a Lead or a Contact).
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_task.htm
A converted Lead names its Contact and Opportunity (``ConvertedContactId``,
``ConvertedOpportunityId``): ``conversion`` reads them for the Lead's own snapshot.
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_lead.htm
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.base import PayloadError
from connectors.events import LeadEvent
from connectors.salesforce.values import SALESFORCE_ID, id18, parse_datetime, to_bool

# --- mapping tables --------------------------------------------------------------------------

#: sObject type -> the record event kind.
RECORD_SOBJECTS: dict[str, str] = {"Opportunity": "deal_change", "Task": "rep_activity", "Event": "rep_activity"}

#: Opportunity field -> ``deal_change`` property. ``RecordTypeId`` stands for the pipeline (an org
#: with several sales processes has one record type each); without it the pipeline is ``default``.
OPPORTUNITY_FIELDS: dict[str, str] = {
    "StageName": "stage", "Amount": "amount", "CurrencyIsoCode": "currency", "CreatedDate": "created_at",
    "CloseDate": "closed_at", "IsClosed": "is_closed", "IsWon": "is_won", "RecordTypeId": "pipeline",
}
#: Task / Event field -> ``rep_activity`` property.
ACTIVITY_FIELDS: dict[str, str] = {
    "OwnerId": "owner_id", "CreatedDate": "logged_at", "ActivityDate": "activity_at",
    "ActivityDateTime": "activity_at", "StartDateTime": "activity_at", "CallType": "direction", "Status": "status",
}
#: ``TaskSubtype`` -> activity type. "Log a Call" saves a ``Call``; a plain to-do is a ``Task``.
#: The subtype is set on create and not updatable; without it a Task is a ``task``.
TASK_SUBTYPES: dict[str, str] = {"Call": "call", "Email": "email", "ListEmail": "email", "Task": "task",
                                 "Cadence": "task", "LinkedIn": "task"}
#: ``CallType`` -> direction from the rep's side (``Internal``: none).
CALL_TYPES: dict[str, str] = {"Inbound": "inbound", "Outbound": "outbound"}
#: Lead fields about its conversion: record metadata, never lead fields.
CONVERSION_FIELDS: dict[str, str] = {
    "IsConverted": "converted", "ConvertedContactId": "converted_contact_id",
    "ConvertedOpportunityId": "converted_opportunity_id", "ConvertedAccountId": "converted_account_id",
    "ConvertedDate": "converted_date",
}
#: The people a record concerns.
PEOPLE_FIELDS = ("ContactId", "WhoId")


# --- values ----------------------------------------------------------------------------------

def _record_id(value: Any, where: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not SALESFORCE_ID.match(value):
        raise PayloadError(f"{where}: not a Salesforce id")
    return id18(value)


def _amount(value: Any, where: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise PayloadError(f"{where}: expected a number") from None
    if isinstance(value, bool) or not amount.is_finite():
        raise PayloadError(f"{where}: expected a number")
    return format(amount.normalize(), "f")


def _flag(value: Any, where: str) -> bool | None:
    if value in (None, ""):
        return None
    try:
        return to_bool(value)
    except ValueError as exc:
        raise PayloadError(f"{where}: {exc}") from None


def _moment(value: Any, where: str) -> str | None:
    """A date-time, or a date (``CloseDate``, ``ActivityDate``: midnight UTC), as ISO 8601."""
    if value in (None, ""):
        return None
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            raise PayloadError(f"{where}: expected a date (YYYY-MM-DD)") from None
        return datetime(day.year, day.month, day.day).isoformat() + "+00:00"
    return parse_datetime(value, where).isoformat()


def _text(value: Any, where: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise PayloadError(f"{where}: expected text")
    return str(value)


#: ``deal_change``/``rep_activity`` property -> how to read its value.
READERS: dict[str, Callable[[Any, str], Any]] = {
    "stage": _text, "amount": _amount, "currency": _text, "created_at": _moment, "closed_at": _moment,
    "is_closed": _flag, "is_won": _flag, "pipeline": _record_id, "owner_id": _record_id, "logged_at": _moment,
    "activity_at": _moment, "status": _text,
}


# --- events ----------------------------------------------------------------------------------

def record_event(sobject_type: str, sf_fields: Mapping[str, Any], where: str, **event: Any) -> LeadEvent:
    """Return the ``deal_change``/``rep_activity`` of an Opportunity, Task or Event record.

    ``event`` holds the LeadEvent's source, key, time, raw payload and extra ``properties``.
    Raises ``PayloadError`` naming ``where`` and the field for a value of the wrong kind.
    """
    kind = RECORD_SOBJECTS[sobject_type]
    table = OPPORTUNITY_FIELDS if kind == "deal_change" else ACTIVITY_FIELDS
    properties: dict[str, Any] = {"change": "snapshot"}
    for api_name, name in table.items():
        if api_name in sf_fields:
            value = sf_fields[api_name]
            properties[name] = (CALL_TYPES.get(str(value)) if name == "direction"
                                else READERS[name](value, f"{where}.{api_name}"))
    if sobject_type == "Task":
        properties["activity_type"] = TASK_SUBTYPES.get(str(sf_fields.get("TaskSubtype")), "task")
    elif sobject_type == "Event":
        properties["activity_type"] = "meeting"
    people = [_record_id(sf_fields.get(name), f"{where}.{name}") for name in PEOPLE_FIELDS]
    properties["contact_ids"] = [person for person in people if person]
    record_id = _record_id(sf_fields.get("Id"), f"{where}.Id")
    return LeadEvent(kind=kind, crm="salesforce", record_id=record_id,
                     properties={**properties, **event.pop("properties", {})}, **event)


def conversion(sf_fields: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Return what a Lead's snapshot says of its conversion (empty unless it was converted):
    ``converted_contact_id``, ``converted_opportunity_id`` (18 characters), ``converted_date``."""
    converted = _flag(sf_fields.get("IsConverted"), f"{where}.IsConverted")
    contact = _record_id(sf_fields.get("ConvertedContactId"), f"{where}.ConvertedContactId")
    if converted is False or (converted is None and contact is None):
        return {}
    found = {"converted_contact_id": contact,
             "converted_opportunity_id": _record_id(sf_fields.get("ConvertedOpportunityId"),
                                                    f"{where}.ConvertedOpportunityId"),
             "converted_date": _moment(sf_fields.get("ConvertedDate"), f"{where}.ConvertedDate")}
    return {name: value for name, value in found.items() if value is not None}

"""HubSpot generic (``object.*``) notifications: one test per event type, fixture named after it.

The contact fixtures are the generic deliveries of the changes in the legacy fixtures of the
same name (``object_deletion_contact.json`` <-> ``contact_deletion.json``), so each pair must give
the same ``LeadEvent`` and the same key.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.base import InboundRequest, IntakeContext, PayloadError
from connectors.hubspot.webhook import parse_webhook

FIXTURES = Path(__file__).parent / "fixtures" / "hubspot"


def load(name: str) -> list[dict]:
    return json.loads((FIXTURES / name).read_text())


def events(payload: list[dict] | str):
    body = (FIXTURES / payload).read_bytes() if isinstance(payload, str) else json.dumps(payload).encode()
    return parse_webhook(InboundRequest("POST", "https://leadloop.example/webhooks/hubspot", {}, body),
                         IntakeContext({}))


def one(payload: list[dict] | str):
    (event,) = events(payload)
    assert (event.source, event.crm) == ("hubspot", "hubspot")
    return event


def meaning(event) -> tuple:
    """Everything a LeadEvent says, except the raw payload it came in."""
    return (event.kind, event.event_key, event.occurred_at, event.crm, event.crm_id, event.email,
            event.fields, event.properties)


# --- contacts: the same LeadEvent as the legacy format -----------------------------------------

@pytest.mark.parametrize(("generic", "legacy", "kind"), [
    ("object_creation_contact.json", "contact_creation.raw", "lead_created"),
    ("object_propertyChange_contact.json", "contact_property_change.json", "field_change"),
    ("object_propertyChange_contact_sensitive.json", "contact_property_change_redacted.json", "field_change"),
    ("object_deletion_contact.json", "contact_deletion.json", "deletion"),
    ("object_restore_contact.json", "contact_restore.json", "restore"),
])
def test_contact_event_means_what_its_legacy_twin_means(generic, legacy, kind):
    event, twin = one(generic), one(legacy)
    assert event.kind == kind
    assert meaning(event) == meaning(twin)
    assert event.raw == load(generic)[0]


def test_object_creation_contact():
    event = one("object_creation_contact.json")
    assert (event.kind, event.crm_id) == ("lead_created", "138017612137")
    assert event.occurred_at == datetime(2025, 7, 15, 21, 12, 0, 733000, tzinfo=UTC)
    assert event.event_key == "48807704:0-1:138017612137:creation:1752613920733"
    assert (event.fields, event.properties) == ({}, {})


def test_object_property_change_contact_maps_the_property():
    event = one("object_propertyChange_contact.json")
    assert (event.kind, event.crm_id) == ("field_change", "847297356")
    assert event.fields == {"job_title": "Head of Operations"}
    assert event.event_key.startswith("891472211:0-1:847297356:propertyChange:1715203105000:")


def test_object_property_change_sensitive_keeps_no_value():
    event = one("object_propertyChange_contact_sensitive.json")
    assert (event.fields, event.properties) == ({}, {"redacted": ["passport_number"]})


def test_a_property_flagged_sensitive_is_redacted_even_if_a_value_came():
    body = load("object_propertyChange_contact_sensitive.json")
    body[0]["propertyValue"] = "X1234567"
    event = one(body)
    assert (event.fields, event.properties) == ({}, {"redacted": ["passport_number"]})
    assert event.raw["propertyValue"] == "REDACTED"  # not even the raw payload keeps it
    assert "X1234567" not in json.dumps([event.raw, event.event_key])
    assert event.event_key == one("object_propertyChange_contact_sensitive.json").event_key


def test_object_merge_contact_remaps_primary_and_merged_ids_to_the_new_id():
    event = one("object_merge_contact.json")
    assert (event.kind, event.crm_id) == ("merge", "300")
    assert event.properties == {"merged_ids": ["100", "200", "250"]}


def test_object_merge_contact_means_what_the_legacy_merge_means():
    legacy = load("contact_merge.json")[0]
    generic = dict(legacy, subscriptionType="object.merge", objectTypeId="0-1", eventId=1, subscriptionId=2, appId=3)
    assert meaning(one([generic])) == meaning(one([legacy]))


def test_object_association_change_contact_fires_from_both_sides_and_is_one_change():
    company_side, contact_side = events("object_associationChange_contact.json")
    legacy = one("contact_association_change.json")
    for event in (company_side, contact_side, legacy):
        assert (event.kind, event.crm_id) == ("association_change", "100")
        assert event.properties == {"associated_type": "company", "associated_type_id": "0-2",
                                    "associated_id": "300", "removed": False, "primary": False}
    assert company_side.event_key == contact_side.event_key == legacy.event_key
    assert legacy.event_key == "62515:association:0-1/100:0-2/300:added:plain:1700000000001"


def test_association_removed_and_primary_are_other_changes():
    base = load("object_associationChange_contact.json")[0]
    keys = {one([dict(base, **flags)]).event_key for flags in (
        {}, {"associationRemoved": True}, {"isPrimaryAssociation": True})}
    assert len(keys) == 3


def test_legacy_contact_event_types_from_other_apps_dedupe_too():
    # The same change delivered to a legacy app and to its developer-platform successor.
    legacy = load("contact_deletion.json")[0]
    again = dict(legacy, appId=2090843, subscriptionId=4100004, eventId=5100000004, attemptNumber=0)
    assert one([legacy]).event_key == one([again]).event_key


# --- deals: outcomes, record events naming the deal --------------------------------------------

@pytest.mark.parametrize(("name", "properties"), [
    ("object_creation_deal.json", {"change": "creation"}),
    ("object_propertyChange_deal.json", {"change": "propertyChange", "stage": "closedwon"}),
    ("object_deletion_deal.json", {"change": "deletion"}),
    ("object_restore_deal.json", {"change": "restore"}),
    ("object_merge_deal.json", {"change": "merge", "merged_ids": ["7891099"]}),
])
def test_deal_events_are_record_events_naming_the_deal(name, properties):
    event = one(name)
    assert (event.kind, event.record_id, event.crm_id, event.email, event.fields) == \
        ("deal_change", "7891023", None, None, {})
    assert event.properties == properties
    assert event.raw == load(name)[0]  # kept untouched
    assert event.event_key.startswith("62515:0-3:7891023:")


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("dealstage", "closedwon", {"stage": "closedwon"}),  # the stage's id only: won/lost come from its flags
    ("pipeline", "default", {"pipeline": "default"}),
    ("amount", "12000.00", {"amount": "12000"}),
    ("amount", "", {"amount": None}),  # cleared
    ("deal_currency_code", "eur", {"currency": "EUR"}),
    ("closedate", "1700000200000", {"closed_at": "2023-11-14T22:16:40+00:00"}),
    ("createdate", "2026-05-04T10:00:00.000Z", {"created_at": "2026-05-04T10:00:00+00:00"}),
    ("hs_is_closed_won", "true", {"is_won": True}),
    ("dealname", "Acme, 200 trucks", {"property": "dealname", "value": "Acme, 200 trucks"}),
])
def test_deal_property_changes_are_named_and_typed(name, value, expected):
    body = load("object_propertyChange_deal.json")
    body[0].update(propertyName=name, propertyValue=value)
    assert one(body).properties == {"change": "propertyChange", **expected}


@pytest.mark.parametrize(("name", "value", "message"), [
    ("amount", "a lot", "[0].propertyValue: amount must be a number"),
    ("closedate", "next week", "[0].propertyValue: closedate must be a date-time (epoch milliseconds or ISO 8601)"),
    ("hs_is_closed_won", "yes", "[0].propertyValue: hs_is_closed_won must be true or false"),
])
def test_a_deal_property_of_the_wrong_kind_is_a_400(name, value, message):
    body = load("object_propertyChange_deal.json")
    body[0].update(propertyName=name, propertyValue=value)
    with pytest.raises(PayloadError) as info:
        events(body)
    assert str(info.value) == message


def test_legacy_deal_event_and_generic_deal_event_share_the_key():
    generic = load("object_propertyChange_deal.json")[0]
    legacy = {k: v for k, v in generic.items() if k not in ("objectTypeId", "isSensitive")}
    legacy.update(subscriptionType="deal.propertyChange", eventId=77, subscriptionId=78, appId=54321)
    assert one([legacy]).event_key == one([generic]).event_key
    assert one([legacy]).properties == one([generic]).properties


def test_deal_contact_association_names_the_contact_once():
    deal_side, contact_side = events("object_associationChange_deal.json")
    assert deal_side.event_key == contact_side.event_key
    for event in (deal_side, contact_side):
        assert (event.kind, event.record_id, event.crm_id) == ("deal_change", "7891023", None)
        assert event.properties == {"change": "associationChange", "contact_ids": ["100"], "primary": False}


def test_a_removed_deal_association_names_the_contact_as_removed():
    body = load("object_associationChange_deal.json")[:1]
    body[0]["associationRemoved"] = True
    assert one(body).properties == {"change": "associationChange", "removed_contact_ids": ["100"], "primary": False}


def test_legacy_contact_to_deal_association_is_the_same_change():
    generic = load("object_associationChange_deal.json")[1]
    legacy = {k: v for k, v in generic.items() if k not in ("fromObjectTypeId", "toObjectTypeId",
                                                            "associationCategory", "associationTypeId")}
    legacy.update(subscriptionType="contact.associationChange", objectId=100, eventId=88)
    assert meaning(one([legacy])) == meaning(one([generic]))


def test_association_without_a_contact_is_ignored_and_described():
    body = load("object_associationChange_deal.json")[:1]
    body[0].update(associationType="DEAL_TO_COMPANY", associationTypeId=341, toObjectId=300, toObjectTypeId="0-2")
    event = one(body)
    assert (event.kind, event.crm_id) == ("ignored", "company:300")  # ends in a fixed order: 0-2 before 0-3
    assert event.properties == {"object_type": "company", "object_type_id": "0-2", "object_id": "300",
                                "change": "associationChange", "associated_type": "deal", "associated_type_id": "0-3",
                                "associated_id": "7891023", "removed": False, "primary": False}


# --- engagements: calls, emails, meetings are rep activity ------------------------------------

@pytest.mark.parametrize(("name", "record_id", "properties"), [
    ("object_creation_call.json", "45012301", {"change": "creation", "activity_type": "call"}),
    ("object_propertyChange_call.json", "45012301",
     {"change": "propertyChange", "activity_type": "call", "status": "COMPLETED"}),
    ("object_deletion_call.json", "45012301", {"change": "deletion", "activity_type": "call"}),
    ("object_restore_call.json", "45012301", {"change": "restore", "activity_type": "call"}),
    ("object_creation_email.json", "45012302", {"change": "creation", "activity_type": "email"}),
    ("object_propertyChange_email.json", "45012302",
     {"change": "propertyChange", "activity_type": "email", "direction": "outbound"}),
    ("object_deletion_email.json", "45012302", {"change": "deletion", "activity_type": "email"}),
    ("object_restore_email.json", "45012302", {"change": "restore", "activity_type": "email"}),
    ("object_creation_meeting.json", "45012303", {"change": "creation", "activity_type": "meeting"}),
    ("object_propertyChange_meeting.json", "45012303",
     {"change": "propertyChange", "activity_type": "meeting", "status": "COMPLETED"}),
    ("object_deletion_meeting.json", "45012303", {"change": "deletion", "activity_type": "meeting"}),
    ("object_restore_meeting.json", "45012303", {"change": "restore", "activity_type": "meeting"}),
])
def test_engagement_events_are_rep_activity(name, record_id, properties):
    event = one(name)
    assert (event.kind, event.record_id, event.crm_id) == ("rep_activity", record_id, None)
    assert event.properties == properties
    assert event.raw == load(name)[0]


@pytest.mark.parametrize(("name", "record_id", "activity_type"), [
    ("object_associationChange_call.json", "45012301", "call"),
    ("object_associationChange_email.json", "45012302", "email"),
    ("object_associationChange_meeting.json", "45012303", "meeting"),
])
def test_engagement_contact_association_names_the_contact_once(name, record_id, activity_type):
    activity_side, contact_side = events(name)
    assert activity_side.event_key == contact_side.event_key
    for event in (activity_side, contact_side):
        assert (event.kind, event.record_id) == ("rep_activity", record_id)
        assert event.properties == {"change": "associationChange", "activity_type": activity_type,
                                    "contact_ids": ["100"], "primary": False}


def test_an_incoming_email_is_inbound():
    body = load("object_propertyChange_email.json")
    body[0]["propertyValue"] = "INCOMING_EMAIL"
    assert one(body).properties["direction"] == "inbound"


def test_a_sensitive_engagement_property_keeps_no_value():
    body = load("object_propertyChange_call.json")
    body[0].update(propertyName="hs_call_body", propertyValue="confidential notes", isSensitive=True)
    event = one(body)
    assert event.properties == {"change": "propertyChange", "activity_type": "call", "property": "hs_call_body",
                                "redacted": True}
    assert "confidential" not in json.dumps([event.raw, event.event_key])


@pytest.mark.parametrize(("type_id", "crm_id"), [("2-3456789", "2-3456789:45012301"), ("0-999", "0-999:45012301")])
def test_unknown_object_types_are_ignored_under_their_type_id(type_id, crm_id):
    body = load("object_creation_call.json")
    body[0]["objectTypeId"] = type_id
    event = one(body)
    assert (event.kind, event.crm_id, event.properties["object_type"]) == ("ignored", crm_id, type_id)


def test_unknown_generic_change_is_ignored_and_keyed_on_the_delivery():
    body = load("object_creation_contact.json")
    body[0]["subscriptionType"] = "object.someFutureChange"
    event = one(body)
    assert (event.kind, event.crm_id) == ("ignored", "138017612137")
    assert event.event_key == "48807704:4100001:5100000001:1752613920733:138017612137"


# --- malformed --------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "change", "message"), [
    ("object_creation_contact.json", {"objectTypeId": None}, "[0].objectTypeId: must be a non-empty string"),
    ("object_creation_contact.json", {"objectTypeId": 1}, "[0].objectTypeId: must be a non-empty string"),
    ("object_creation_contact.json", {"objectId": None}, "[0].objectId: must be an integer"),
    ("object_associationChange_contact.json", {"fromObjectTypeId": None},
     "[0].fromObjectTypeId: must be a non-empty string"),
    ("object_associationChange_contact.json", {"toObjectId": "100"}, "[0].toObjectId: must be an integer"),
    ("object_associationChange_contact.json", {"associationRemoved": "false"},
     "[0].associationRemoved: must be true or false"),
    ("contact_association_change.json", {"associationType": "CONTACT"},
     "[0].associationType: must name both ends, e.g. CONTACT_TO_COMPANY"),
    ("object_merge_contact.json", {"mergedObjectIds": None}, "[0].mergedObjectIds: must be a list of integers"),
])
def test_malformed_generic_events_name_the_field(name, change, message):
    body = load(name)[:1]
    for key, value in change.items():
        if value is None:
            body[0].pop(key, None)
        else:
            body[0][key] = value
    with pytest.raises(PayloadError) as info:
        events(body)
    assert str(info.value) == message
    assert info.value.status == 400

"""HubSpot payload parsing: one test per event type (fixture named after it), validation, keys."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.base import InboundRequest, IntakeContext, PayloadError
from connectors.hubspot import connector
from connectors.hubspot.webhook import parse_webhook, parse_workflow

FIXTURES = Path(__file__).parent / "fixtures" / "hubspot"


def events(name: str, body: bytes | None = None):
    raw = body if body is not None else (FIXTURES / name).read_bytes()
    return parse_webhook(InboundRequest("POST", "https://leadloop.example/webhooks/hubspot", {}, raw),
                         IntakeContext({}))


def one(name: str):
    (event,) = events(name)
    assert event.source == "hubspot" and event.crm == "hubspot"
    return event


def test_endpoints_and_config_keys():
    assert [(e.rule, e.name) for e in connector.endpoints] == [
        ("/hubspot", "hubspot"), ("/hubspot/workflow", "hubspot_workflow")]
    assert "HUBSPOT_CLIENT_SECRETS" in connector.settings


def test_contact_creation():
    event = one("contact_creation.raw")
    assert event.kind == "lead_created"
    assert event.crm_id == "138017612137"
    assert event.occurred_at == datetime(2025, 7, 15, 21, 12, 0, 733000, tzinfo=UTC)
    # Keyed on the change (portal, object type, object, change, time), not on the delivery.
    assert event.event_key == "48807704:0-1:138017612137:creation:1752613920733"
    assert event.fields == {} and event.properties == {}
    assert event.raw == json.loads((FIXTURES / "contact_creation.raw").read_bytes())[0]


def test_contact_property_change_maps_the_property_name():
    event = one("contact_property_change.json")
    assert event.kind == "field_change"
    assert event.fields == {"job_title": "Head of Operations"}
    assert event.crm_id == "847297356"


def test_contact_property_change_redacted_value_is_not_stored():
    event = one("contact_property_change_redacted.json")
    assert event.kind == "field_change"
    assert event.fields == {}
    assert event.properties == {"redacted": ["passport_number"]}  # unknown property keeps its name


def test_legacy_event_type_key():
    change, creation = events("legacy_docs_batch.json")
    assert (change.kind, change.fields) == ("field_change", {"lifecycle_stage": "subscriber"})
    assert creation.kind == "lead_created" and creation.crm_id == "1246978"


def test_contact_merge():
    event = one("contact_merge.json")
    assert event.kind == "merge"
    assert event.crm_id == "100"
    assert event.properties == {"merged_ids": ["200"]}


def test_contact_merge_into_a_new_id_lists_the_primary_as_merged():
    body = json.loads((FIXTURES / "contact_merge.json").read_text())
    body[0]["newObjectId"] = 300
    event = events("", json.dumps(body).encode())[0]
    assert event.crm_id == "300"
    assert event.properties == {"merged_ids": ["100", "200"]}


def test_contact_association_change():
    event = one("contact_association_change.json")
    assert (event.kind, event.crm_id) == ("association_change", "100")


def test_contact_privacy_deletion():
    event = one("contact_privacy_deletion.json")
    assert (event.kind, event.crm_id) == ("privacy_deletion", "200")


def test_contact_deletion():
    event = one("contact_deletion.json")
    assert (event.kind, event.crm_id) == ("deletion", "200")


def test_contact_restore():
    assert one("contact_restore.json").kind == "restore"


def test_other_objects_are_stored_as_ignored():
    event = one("company_creation.json")
    assert (event.kind, event.crm_id) == ("ignored", "company:900")  # never mistaken for contact 900


def test_redelivery_has_the_same_key():
    first = json.loads((FIXTURES / "contact_deletion.json").read_text())
    again = [dict(first[0], attemptNumber=5)]
    assert events("", json.dumps(first).encode())[0].event_key == \
        events("", json.dumps(again).encode())[0].event_key


def test_reused_event_id_on_another_object_has_another_key():
    body = json.loads((FIXTURES / "contact_deletion.json").read_text())
    other = [dict(body[0], objectId=201)]
    assert events("", json.dumps(body).encode())[0].event_key != \
        events("", json.dumps(other).encode())[0].event_key


def test_empty_batch():
    assert events("", b"[]") == []


def test_hundred_events_accepted_more_refused():
    base = json.loads((FIXTURES / "contact_restore.json").read_text())[0]
    batch = [dict(base, eventId=i) for i in range(100)]
    assert len(events("", json.dumps(batch).encode())) == 100
    with pytest.raises(PayloadError, match="too many events: 101"):
        events("", json.dumps([*batch, base]).encode())


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "body is not valid JSON"),
    (b"\xff\xfe", "body is not valid JSON"),
    (b'{"eventId": 1}', "expected a JSON array"),
    (b"[1]", "[0]: must be an object"),
])
def test_unrecognisable_bodies(body, message):
    with pytest.raises(PayloadError) as info:
        events("", body)
    assert str(info.value).startswith(message)
    assert info.value.status == 400


@pytest.mark.parametrize(("field", "value", "message"), [
    ("occurredAt", "1700000000000", "[3].occurredAt: must be an integer (epoch ms)"),
    ("occurredAt", None, "[3].occurredAt: must be an integer (epoch ms)"),
    ("objectId", True, "[3].objectId: must be an integer"),
    ("portalId", 1.5, "[3].portalId: must be an integer"),
    ("eventId", "x", "[3].eventId: must be an integer"),
    ("subscriptionId", [], "[3].subscriptionId: must be an integer"),
    ("subscriptionType", "", "[3].subscriptionType: must be a non-empty string"),
    ("attemptNumber", "0", "[3].attemptNumber: must be an integer"),
])
def test_wrong_typed_fields_name_index_and_field(field, value, message):
    base = json.loads((FIXTURES / "contact_restore.json").read_text())[0]
    batch = [dict(base) for _ in range(4)]
    if value is None:
        del batch[3][field]
    else:
        batch[3][field] = value
    with pytest.raises(PayloadError) as info:
        events("", json.dumps(batch).encode())
    assert str(info.value) == message


def test_property_change_without_property_name():
    body = json.loads((FIXTURES / "contact_property_change.json").read_text())
    del body[0]["propertyName"]
    with pytest.raises(PayloadError, match=r"\[0\]\.propertyName: must be a non-empty string"):
        events("", json.dumps(body).encode())


def test_merge_without_merged_ids():
    body = json.loads((FIXTURES / "contact_merge.json").read_text())
    body[0]["mergedObjectIds"] = ["200"]
    with pytest.raises(PayloadError, match=r"\[0\]\.mergedObjectIds: must be a list of integers"):
        events("", json.dumps(body).encode())


# --- workflow bodies -------------------------------------------------------------------------

def workflow(name: str, body: bytes | None = None, now: datetime | None = None):
    raw = body if body is not None else (FIXTURES / name).read_bytes()
    request = InboundRequest("POST", "https://leadloop.example/webhooks/hubspot/workflow", {}, raw)
    (event,) = parse_workflow(request, IntakeContext({}, now=now) if now else IntakeContext({}))
    return event


def test_workflow_contact_snapshot():
    raw = (FIXTURES / "workflow_contact.json").read_bytes()
    event = workflow("workflow_contact.json")
    assert event.kind == "record_snapshot"
    assert (event.crm, event.crm_id, event.email) == ("hubspot", "138017612137", "jane.doe@example.com")
    assert event.fields == {"email": "Jane.Doe@Example.com", "first_name": "Jane", "last_name": "Doe",
                            "job_title": "CTO", "company": "Example Corp", "lifecycle_stage": "lead",
                            "lastmodifieddate": "2025-07-15T21:12:00.733Z", "custom_fit": "yes"}
    assert event.occurred_at == datetime(2025, 7, 15, 21, 12, 0, 733000, tzinfo=UTC)
    assert event.event_key == "workflow:" + hashlib.sha256(raw).hexdigest()


def test_workflow_legacy_contact_json():
    event = workflow("workflow_contact_legacy.json")
    assert (event.crm_id, event.email) == ("101", "max@example.com")
    assert event.fields == {"email": "max@example.com", "first_name": "Max",
                            "lastmodifieddate": "1700000000000"}
    assert event.occurred_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_workflow_custom_activity():
    event = workflow("workflow_activity.json", now=datetime(2026, 1, 2, tzinfo=UTC))
    assert event.kind == "content_download"
    assert (event.crm_id, event.email) == ("138017612137", "jane.doe@example.com")
    assert event.properties == {"asset": "coverage-map", "url": "https://example.com/coverage-map.pdf"}
    assert event.occurred_at == datetime(2026, 1, 2, tzinfo=UTC)


def test_workflow_email_only_body():
    event = workflow("", b'{"email": "Lead@Example.com", "firstname": "Lee"}')
    assert (event.crm, event.crm_id, event.email) == (None, None, "lead@example.com")
    assert event.fields == {"email": "Lead@Example.com", "first_name": "Lee"}


def test_workflow_retry_has_the_same_key():
    assert workflow("workflow_activity.json").event_key == workflow("workflow_activity.json").event_key


@pytest.mark.parametrize(("body", "message"), [
    (b"[]", "expected a JSON object"),
    (b"", "body is not valid JSON"),
    (b'{"firstname": "No Id"}', "workflow body has no contact id"),
    (b'{"leadloop_event": "merge", "email": "a@b.c"}', "leadloop_event: must be an activity kind"),
    (b'{"leadloop_event": "Page View", "email": "a@b.c"}', "leadloop_event: must be an activity kind"),
    (b'{"email": "a@b.c", "occurred_at": "yesterday"}', "unreadable timestamp"),
])
def test_workflow_refusals(body, message):
    with pytest.raises(PayloadError) as info:
        workflow("", body)
    assert str(info.value).startswith(message)

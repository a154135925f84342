"""Generic (``object.*``) HubSpot notifications over HTTP: signed, stored, deduplicated, scored.

The developer-platform app subscribes in the generic format; a portal moving from the legacy app
may get both for a while. Either way a contact must end up exactly as the legacy format leaves
it, and other objects must be stored (200) without ever becoming a lead.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from integration.store.models import Event, Lead, ScoreRecord
from tests.conftest import drain, post_hubspot

FIXTURES = Path(__file__).parent / "fixtures" / "hubspot"
PORTAL, LEGACY_APP, PROJECT_APP = 62515, 54321, 2090843
TYPE_IDS = {"contact": "0-1", "company": "0-2", "deal": "0-3"}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def at(days_ago: float) -> datetime:
    return (datetime.now(UTC) - timedelta(days=days_ago)).replace(microsecond=0)


def legacy(subscription_type: str, object_id: int, event_id: int, occurred: datetime, **extra: Any) -> dict:
    return {"eventId": event_id, "subscriptionId": 20 + event_id % 7, "portalId": PORTAL, "appId": LEGACY_APP,
            "occurredAt": ms(occurred), "subscriptionType": subscription_type, "attemptNumber": 0,
            "objectId": object_id, "changeSource": "CRM_UI", "sourceId": "userId:76023669", **extra}


def generic(event: dict) -> dict:
    """The generic delivery of the same change: another app, subscription and event id."""
    prefix, _, change = event["subscriptionType"].partition(".")
    out = dict(event, subscriptionType=f"object.{change}", appId=PROJECT_APP,
               subscriptionId=event["subscriptionId"] + 1000, eventId=event["eventId"] + 10_000_000)
    if change == "associationChange":
        left, _, right = event["associationType"].partition("_TO_")
        out.pop("objectId")
        out.update(fromObjectTypeId=TYPE_IDS[left.lower()], toObjectTypeId=TYPE_IDS[right.lower()],
                   associationCategory="HUBSPOT_DEFINED", associationTypeId=279)
    else:
        out["objectTypeId"] = TYPE_IDS[prefix]
    if change == "propertyChange":
        out["isSensitive"] = False
    return out


def change(object_id: int, event_id: int, occurred: datetime, name: str, value: Any) -> dict:
    return legacy("contact.propertyChange", object_id, event_id, occurred, propertyName=name, propertyValue=value)


def journey(object_id: int, first_id: int, email: str) -> list[dict]:
    """Created, filled in, associated, deleted and restored: every contact change type but merge."""
    return [
        legacy("contact.creation", object_id, first_id, at(5), changeFlag="CREATED"),
        change(object_id, first_id + 1, at(5), "email", email),
        change(object_id, first_id + 2, at(5), "jobtitle", "Head of Operations"),
        change(object_id, first_id + 3, at(5), "numemployees", "250"),
        legacy("contact.associationChange", object_id, first_id + 4, at(4), associationType="CONTACT_TO_COMPANY",
               fromObjectId=object_id, toObjectId=9100, associationRemoved=False, isPrimaryAssociation=True),
        legacy("contact.deletion", object_id, first_id + 5, at(3)),
        legacy("contact.restore", object_id, first_id + 6, at(2)),
    ]


def count(svc: Any, model: Any, *where: Any) -> int:
    with svc.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def state(svc: Any, crm_id: str) -> tuple:
    """What leadloop knows about a contact, without its ids and email."""
    with svc.sessions() as session:
        lead = session.scalars(select(Lead).where(Lead.crm == "hubspot", Lead.crm_id == crm_id)).one()
        kinds = list(session.scalars(select(Event.kind).where(Event.lead_id == lead.id)
                                     .order_by(Event.occurred_at, Event.id)))
        score = session.scalars(select(ScoreRecord).where(ScoreRecord.lead_id == lead.id)
                                .order_by(ScoreRecord.id.desc())).first()
        fields = {k: v for k, v in lead.fields.items() if k != "email"}
        return (fields, lead.deleted_at, lead.stage, kinds, score.score if score else None,
                score.band if score else None)


def test_a_contact_through_generic_notifications_ends_as_through_legacy_ones(client, svc):
    assert post_hubspot(client, journey(8001, 100, "ada@acme-robotics.com")).status_code == 200
    response = post_hubspot(client, [generic(e) for e in journey(8002, 200, "max@acme-robotics.com")])
    assert response.get_json() == {"accepted": 7, "duplicates": 0, "ignored": 0}
    drain(svc)
    via_legacy, via_generic = state(svc, "8001"), state(svc, "8002")
    assert via_generic == via_legacy
    fields, deleted_at, _, kinds, score, _ = via_generic
    assert fields == {"job_title": "Head of Operations", "employees": 250}
    assert deleted_at is None and score is not None
    assert kinds == ["lead_created", "field_change", "field_change", "field_change", "association_change",
                     "deletion", "restore"]


def test_a_legacy_and_a_generic_delivery_of_one_change_are_stored_once(client, svc):
    batch = journey(8003, 300, "lin@acme-robotics.com")
    assert post_hubspot(client, batch).get_json() == {"accepted": 7, "duplicates": 0, "ignored": 0}
    response = post_hubspot(client, [generic(e) for e in batch])
    assert response.get_json() == {"accepted": 0, "duplicates": 7, "ignored": 0}
    assert count(svc, Event) == 7
    # ... also when both arrive in one request.
    pair = [change(8003, 400, at(1), "phone", "+49 30 1234567")]
    pair.append(generic(pair[0]))
    assert post_hubspot(client, pair).get_json() == {"accepted": 1, "duplicates": 1, "ignored": 0}
    drain(svc)
    assert count(svc, Lead) == 1


def test_both_sides_of_a_generic_association_are_one_event(client, svc):
    post_hubspot(client, journey(100, 500, "sam@acme-robotics.com")[:2])
    body = json.loads((FIXTURES / "object_associationChange_deal.json").read_text())
    assert post_hubspot(client, body).get_json() == {"accepted": 1, "duplicates": 1, "ignored": 0}
    with svc.sessions() as session:
        stored = session.scalars(select(Event).where(Event.kind == "deal_change")).one()
        assert (stored.record_id, stored.lead_id, stored.processed_at) == ("7891023", None, None)
        assert stored.properties["contact_ids"] == ["100"]


def test_a_generic_merge_moves_the_merged_contact_onto_the_new_id(client, svc):
    post_hubspot(client, journey(100, 600, "ada@acme-robotics.com")[:3])
    post_hubspot(client, journey(200, 610, "ada.l@acme-robotics.com")[:3])
    drain(svc)
    merge = generic(legacy("contact.merge", 100, 620, at(1), primaryObjectId=200, mergedObjectIds=[],
                           newObjectId=100, numberOfPropertiesMoved=3))
    assert post_hubspot(client, [merge]).get_json()["accepted"] == 1
    drain(svc)
    with svc.sessions() as session:
        survivor = session.scalars(select(Lead).where(Lead.crm_id == "100")).one()
        merged = session.scalars(select(Lead).where(Lead.crm_id == "200")).one()
        assert merged.merged_into_id == survivor.id
        assert session.scalar(select(func.count()).select_from(Event).where(Event.lead_id == merged.id)) == 0


def test_a_sensitive_generic_property_is_never_stored(client, svc):
    body = json.loads((FIXTURES / "object_propertyChange_contact_sensitive.json").read_text())
    body[0]["propertyValue"] = "X1234567"
    assert post_hubspot(client, body).get_json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    drain(svc)
    with svc.sessions() as session:
        stored = session.scalars(select(Event)).one()
        assert "X1234567" not in json.dumps([stored.fields, stored.properties, stored.raw, stored.event_key])
        assert "X1234567" not in json.dumps(session.scalars(select(Lead.fields)).one())


RECORD_OBJECTS = ["object_creation_deal.json", "object_propertyChange_deal.json", "object_deletion_deal.json",
                  "object_restore_deal.json", "object_merge_deal.json", "object_creation_call.json",
                  "object_propertyChange_call.json", "object_deletion_call.json", "object_restore_call.json",
                  "object_creation_email.json", "object_creation_meeting.json"]


@pytest.mark.parametrize("name", RECORD_OBJECTS)
def test_deal_and_engagement_events_are_stored_for_their_leads_and_create_none(client, svc, name):
    body = json.loads((FIXTURES / name).read_text())
    response = post_hubspot(client, body)
    assert response.status_code == 200
    assert response.get_json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    assert count(svc, Lead) == 0
    with svc.sessions() as session:
        stored = session.scalars(select(Event)).one()
        assert (stored.kind in ("deal_change", "rep_activity"), stored.lead_id, stored.raw) == (True, None, body[0])
        assert stored.record_id == str(body[0].get("newObjectId", body[0]["objectId"]))
        assert stored.processed_at is None  # the pipeline resolves its people to leads
    assert post_hubspot(client, body).get_json() == {"accepted": 0, "duplicates": 1, "ignored": 0}


@pytest.mark.parametrize("type_id", ["2-3456789", "0-999", "x"])
def test_unknown_object_type_ids_are_a_200_never_a_5xx(client, svc, type_id):
    body = json.loads((FIXTURES / "object_creation_deal.json").read_text())  # with another type id
    body[0]["objectTypeId"] = type_id
    assert post_hubspot(client, body).get_json() == {"accepted": 1, "duplicates": 0, "ignored": 1}
    assert count(svc, Lead) == 0

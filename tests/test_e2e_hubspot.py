"""HubSpot end to end: signed HTTP requests in, the real worker (``drain``), the database out.

Everything goes through ``/webhooks/hubspot`` and ``/webhooks/hubspot/workflow`` exactly as
HubSpot calls them (v3 signatures over ``PUBLIC_BASE_URL``), then through the queued jobs.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.hubspot.notifications import parse_notification
from connectors.hubspot.webhook import hubspot_signature_v1, hubspot_signature_v2, hubspot_signature_v3
from integration.cli.main import main as leadloop
from integration.store.leads import lead_timeline
from integration.store.models import Event, Lead, OutboxWrite, ScoreRecord
from integration.web import create_app
from tests.conftest import drain, post_events, running_app, web_event

FIXTURES = Path(__file__).parent / "fixtures" / "hubspot"
URL = "https://leads.example.com/webhooks/hubspot"
WORKFLOW_URL = "https://leads.example.com/webhooks/hubspot/workflow"
SECRET, OLD_SECRET = "hs-client-secret-new", "hs-client-secret-old"
PORTAL, APP_ID = 62515, 54321
SUBSCRIPTIONS = {
    "contact.creation": 21, "contact.propertyChange": 22, "contact.deletion": 23, "contact.restore": 24,
    "contact.privacyDeletion": 25, "contact.merge": 26, "contact.associationChange": 27,
}


# --- helpers ------------------------------------------------------------------------------------

def at(days_ago: float) -> datetime:
    return (datetime.now(UTC) - timedelta(days=days_ago)).replace(microsecond=0)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def hs_event(subscription_type: str, object_id: int, event_id: int, occurred: datetime, **extra: Any) -> dict:
    """One Webhooks API notification, shaped like HubSpot's documented payloads."""
    return {"eventId": event_id, "subscriptionId": SUBSCRIPTIONS.get(subscription_type, 99), "portalId": PORTAL,
            "appId": APP_ID, "occurredAt": ms(occurred), "subscriptionType": subscription_type,
            "attemptNumber": 0, "objectId": object_id, "changeSource": "CRM_UI", "sourceId": "userId:76023669",
            **extra}


def key_of(notification: dict) -> str:
    """The idempotency key leadloop stores a notification under."""
    return parse_notification(0, notification).event_key


def change(object_id: int, event_id: int, occurred: datetime, name: str, value: Any) -> dict:
    return hs_event("contact.propertyChange", object_id, event_id, occurred, propertyName=name, propertyValue=value)


def v3_headers(body: bytes, secret: str = SECRET, uri: str = URL, timestamp: int | None = None) -> dict:
    stamp = str(int(time.time() * 1000) if timestamp is None else timestamp)
    return {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
            "X-HubSpot-Signature-v3": hubspot_signature_v3(secret, "POST", uri, body, stamp)}


def post_hubspot(client: Any, payload: Any, **signing: Any) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post("/webhooks/hubspot", data=body, headers=v3_headers(body, **signing))


def count(svc: Any, model: Any, *where: Any) -> int:
    with svc.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def lead_of(session: Any, crm_id: str) -> Lead:
    return session.scalars(select(Lead).where(Lead.crm == "hubspot", Lead.crm_id == crm_id)).one()


def new_contact(object_id: int, first_event_id: int, occurred: datetime, email: str, title: str) -> list[dict]:
    return [
        hs_event("contact.creation", object_id, first_event_id, occurred, changeFlag="CREATED"),
        change(object_id, first_event_id + 1, occurred, "email", email),
        change(object_id, first_event_id + 2, occurred, "jobtitle", title),
        change(object_id, first_event_id + 3, occurred, "company", "Acme Robotics"),
    ]


# --- delivery, redelivery, signatures -----------------------------------------------------------

def test_signed_creation_and_property_changes_are_stored_scored_and_redeliveries_absorbed(client, svc):
    batch = new_contact(5001, 100, at(2), "ada@acme-robotics.com", "Head of Operations")
    response = post_hubspot(client, batch)
    assert response.status_code == 200
    assert response.get_json() == {"accepted": 4, "duplicates": 0, "ignored": 0}
    assert count(svc, Event, Event.source == "hubspot") == 4
    assert len(svc.queue) == 1  # one rescore job for the one lead
    drain(svc)
    with svc.sessions() as session:
        lead = lead_of(session, "5001")
        assert lead.email == "ada@acme-robotics.com"
        assert lead.fields == {"email": "ada@acme-robotics.com", "job_title": "Head of Operations",
                               "company": "Acme Robotics"}
        assert session.scalar(select(func.count()).select_from(ScoreRecord)) == 1
        kinds = sorted(session.scalars(select(Event.kind).where(Event.lead_id == lead.id)))
        assert kinds == ["field_change", "field_change", "field_change", "lead_created"]
        assert session.scalar(select(func.count()).select_from(Event).where(Event.processed_at.is_(None))) == 0

    again = [dict(event, attemptNumber=event["attemptNumber"] + 3) for event in batch]
    response = post_hubspot(client, again)
    assert response.status_code == 200
    assert response.get_json() == {"accepted": 0, "duplicates": 4, "ignored": 0}
    assert count(svc, Event) == 4
    assert len(svc.queue) == 0
    drain(svc)
    assert count(svc, ScoreRecord) == 1


def test_numeric_properties_are_stored_as_numbers_and_ranges_as_sent(client, svc):
    when = at(1)
    batch = [hs_event("contact.creation", 5005, 150, when),
             change(5005, 151, when, "numemployees", "250"), change(5005, 152, when, "annualrevenue", "2500000.50"),
             hs_event("contact.creation", 5006, 153, when), change(5006, 154, when, "numemployees", "25-50")]
    assert post_hubspot(client, batch).status_code == 200
    drain(svc)
    with svc.sessions() as session:
        assert lead_of(session, "5005").fields == {"employees": 250, "annual_revenue": 2500000.5}
        assert lead_of(session, "5006").fields == {"employees": "25-50"}  # HubSpot's dropdown range: kept


def _tampered(client: Any, body: bytes) -> Any:
    headers = v3_headers(body)
    return client.post("/webhooks/hubspot", data=body.replace(b"5002", b"5003"), headers=headers)


def _stale(client: Any, body: bytes) -> Any:
    return client.post("/webhooks/hubspot", data=body,
                       headers=v3_headers(body, timestamp=int((time.time() - 301) * 1000)))


def _wrong_host(client: Any, body: bytes) -> Any:
    return client.post("/webhooks/hubspot", data=body,
                       headers=v3_headers(body, uri="https://evil.example.net/webhooks/hubspot"))


def _unknown_secret(client: Any, body: bytes) -> Any:
    return client.post("/webhooks/hubspot", data=body, headers=v3_headers(body, secret="hs-client-secret-retired"))


def _unsigned(client: Any, body: bytes) -> Any:
    return client.post("/webhooks/hubspot", data=body, headers={"Content-Type": "application/json"})


def _v1_wrong_secret(client: Any, body: bytes) -> Any:
    return client.post("/webhooks/hubspot", data=body, headers={
        "X-HubSpot-Signature": hubspot_signature_v1("not-our-secret", body), "X-HubSpot-Signature-Version": "v1"})


@pytest.mark.parametrize(("send", "reason"), [
    (_tampered, "HubSpot signature does not match"),
    (_stale, "X-HubSpot-Request-Timestamp is more than 5 minutes old"),
    (_wrong_host, "HubSpot signature does not match"),
    (_unknown_secret, "HubSpot signature does not match"),
    (_unsigned, "missing X-HubSpot-Signature-v3 or X-HubSpot-Signature header"),
    (_v1_wrong_secret, "HubSpot signature does not match"),
])
def test_bad_signatures_are_refused_with_401_and_nothing_is_stored(client, svc, send, reason):
    body = json.dumps(new_contact(5002, 200, at(1), "grace@acme-robotics.com", "CTO")).encode()
    response = send(client, body)
    assert response.status_code == 401
    assert response.get_json() == {"error": reason}
    assert count(svc, Event) == 0 and count(svc, Lead) == 0
    assert len(svc.queue) == 0


def test_legacy_v1_signature_is_accepted(client, svc):
    body = (FIXTURES / "contact_creation_v1.raw").read_bytes()
    response = client.post("/webhooks/hubspot", data=body, headers={
        "Content-Type": "application/json", "X-HubSpot-Signature-Version": "v1",
        "X-HubSpot-Signature": hubspot_signature_v1(SECRET, body)})
    assert response.status_code == 200
    assert response.get_json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    with svc.sessions() as session:
        assert lead_of(session, "123").crm == "hubspot"


def test_the_previous_secret_still_verifies_during_rotation(client, svc):
    body = (FIXTURES / "contact_creation.raw").read_bytes()
    response = client.post("/webhooks/hubspot", data=body, headers=v3_headers(body, secret=OLD_SECRET))
    assert response.status_code == 200
    assert response.get_json()["accepted"] == 1
    with svc.sessions() as session:
        assert lead_of(session, "138017612137").crm_id == "138017612137"


def test_the_store_being_down_answers_503_so_hubspot_retries(config):
    app = create_app({**config, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    try:
        body = (FIXTURES / "contact_creation.raw").read_bytes()
        response = app.test_client().post("/webhooks/hubspot", data=body, headers=v3_headers(body))
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "30"
        assert response.get_json() == {"error": "store unavailable, retry later"}
    finally:
        app.extensions["leadloop"].engine.dispose()
        app.extensions["leadloop"].redis.close()


# --- payload validation -------------------------------------------------------------------------

def test_more_than_100_events_is_a_400(client, svc):
    events = [hs_event("contact.creation", 7000 + i, 7000 + i, at(1)) for i in range(101)]
    response = post_hubspot(client, events)
    assert response.status_code == 400
    assert response.get_json() == {"error": "too many events: 101 (HubSpot sends at most 100)"}
    assert count(svc, Event) == 0


def test_exactly_100_events_are_accepted(client, svc):
    events = [hs_event("contact.creation", 7000 + i, 7000 + i, at(1)) for i in range(100)]
    response = post_hubspot(client, events)
    assert response.status_code == 200
    assert response.get_json()["accepted"] == 100
    assert count(svc, Lead) == 100


@pytest.mark.parametrize(("body", "reason"), [
    (b'[{"eventId": 1, "subscriptionType": "contact.creation",', "body is not valid JSON: "),
    (b"\xff\xfe[]", "body is not valid JSON: "),
    (b'{"eventId": 1}', "expected a JSON array of HubSpot events"),
    (b'[{"eventId": 1, "subscriptionType": "contact.creation", "objectId": "x"}]', "[0].objectId: must be"),
])
def test_malformed_payloads_are_a_400_with_the_reason(client, svc, body, reason):
    response = post_hubspot(client, body)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(reason)
    assert count(svc, Event) == 0


# --- every subscription type --------------------------------------------------------------------

def test_deletion_restore_and_association_change(client, svc):
    created, deleted = at(3), at(2)
    batch = [*new_contact(6001, 300, created, "lin@acme-robotics.com", "CTO"),
             hs_event("contact.deletion", 6001, 304, deleted)]
    assert post_hubspot(client, batch).status_code == 200
    drain(svc)
    with svc.sessions() as session:
        lead = lead_of(session, "6001")
        assert lead.deleted_at == deleted
        assert lead.scored_at is None  # a deleted contact is not scored
    assert count(svc, ScoreRecord) == 0
    assert count(svc, OutboxWrite) == 0

    restored = at(1)
    assert post_hubspot(client, [hs_event("contact.restore", 6001, 305, restored)]).status_code == 200
    drain(svc)
    with svc.sessions() as session:
        lead = lead_of(session, "6001")
        assert lead.deleted_at is None
        assert lead.scored_at is not None
    assert count(svc, ScoreRecord) == 1

    association = hs_event("contact.associationChange", 6001, 306, at(0.5), associationType="CONTACT_TO_COMPANY",
                           fromObjectId=6001, toObjectId=9100, associationRemoved=False, isPrimaryAssociation=True)
    response = post_hubspot(client, [association])
    assert response.get_json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    drain(svc)
    with svc.sessions() as session:
        lead = lead_of(session, "6001")
        stored = session.scalars(select(Event).where(Event.kind == "association_change")).one()
        assert stored.lead_id == lead.id
        assert stored.raw == association
        assert stored.processed_at is not None
        kinds = [kind for kind in session.scalars(select(Event.kind).where(Event.lead_id == lead.id)
                                                  .order_by(Event.occurred_at, Event.id))]
        assert kinds[-3:] == ["deletion", "restore", "association_change"]


@pytest.mark.parametrize("event", [
    hs_event("company.creation", 900, 401, at(1), changeFlag="CREATED"),
    hs_event("ticket.propertyChange", 901, 402, at(1), propertyName="subject", propertyValue="Help"),
    hs_event("object.creation", 902, 403, at(1), objectTypeId="0-5"),
    hs_event("contact.someFutureType", 903, 404, at(1)),
], ids=["company.creation", "ticket.propertyChange", "object.creation", "contact.someFutureType"])
def test_unknown_subscription_types_are_stored_ignored_and_create_no_lead(client, svc, event):
    response = post_hubspot(client, [event])
    assert response.status_code == 200
    assert response.get_json() == {"accepted": 1, "duplicates": 0, "ignored": 1}
    assert count(svc, Lead) == 0
    assert len(svc.queue) == 0
    with svc.sessions() as session:
        stored = session.scalars(select(Event)).one()
        assert (stored.kind, stored.lead_id, stored.raw) == ("ignored", None, event)
        assert stored.processed_at is not None
    assert post_hubspot(client, [event]).get_json() == {"accepted": 0, "duplicates": 1, "ignored": 0}


# --- merge --------------------------------------------------------------------------------------

def test_merge_moves_the_merged_contacts_history_onto_the_survivor(client, svc, config, monkeypatch, capsys):
    post_hubspot(client, new_contact(100, 500, at(5), "ada@acme-robotics.com", "Head of Operations"))
    post_hubspot(client, new_contact(200, 510, at(4), "ada.l@acme-robotics.com", "Operations Manager"))
    post_events(client, [
        web_event("w-100", "page_view", email="ada@acme-robotics.com", crm="hubspot", crm_id="100",
                  occurred_at=at(3).isoformat(), properties={"url": "https://acme.example/blog/robots"}),
        web_event("w-200", "content_download", email="ada.l@acme-robotics.com", crm="hubspot", crm_id="200",
                  occurred_at=at(3).isoformat(), properties={"asset": "coverage-map"}),
    ])
    drain(svc)
    with svc.sessions() as session:
        survivor, merged = lead_of(session, "100"), lead_of(session, "200")
        merged_events = set(session.scalars(select(Event.event_key).where(Event.lead_id == merged.id)))
        merged_scores = set(session.scalars(select(ScoreRecord.id).where(ScoreRecord.lead_id == merged.id)))
        assert len(merged_events) == 5 and len(merged_scores) == 1  # 4 contact events + the download

    merge = hs_event("contact.merge", 100, 520, at(1), primaryObjectId=100, mergedObjectIds=[200],
                     newObjectId=100, numberOfPropertiesMoved=3)
    assert post_hubspot(client, [merge]).get_json()["accepted"] == 1
    drain(svc)
    with svc.sessions() as session:
        survivor, merged = lead_of(session, "100"), lead_of(session, "200")
        assert merged.merged_into_id == survivor.id
        assert merged.email is None and survivor.email == "ada@acme-robotics.com"
        assert survivor.fields["job_title"] == "Head of Operations"  # the survivor's own value wins
        assert session.scalar(select(func.count()).select_from(Event).where(Event.lead_id == merged.id)) == 0
        survivor_events = set(session.scalars(select(Event.event_key).where(Event.lead_id == survivor.id)))
        assert merged_events <= survivor_events
        survivor_scores = set(session.scalars(select(ScoreRecord.id).where(ScoreRecord.lead_id == survivor.id)))
        assert merged_scores <= survivor_scores
        assert len(survivor_scores) == 3  # its own, the merged one's, and the one after the merge
        latest = session.scalars(select(ScoreRecord).where(ScoreRecord.lead_id == survivor.id)
                                 .order_by(ScoreRecord.id.desc())).first()
        assert any(reason["rule"] == "download-hot" for reason in latest.result["reasons"])
        timeline_keys = {detail.get("key") for _, what, detail in lead_timeline(session, survivor.id)
                         if what == "event"}
        assert merged_events <= timeline_keys

    # The `leadloop lead show` timeline of the survivor lists the merged contact's activity.
    for name, value in config.items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    assert leadloop(["lead", "show", "hubspot:100"]) == 0
    out = capsys.readouterr().out
    assert "web/content_download coverage-map" in out
    assert "hubspot/field_change  job_title=Operations Manager" in out
    assert out.count(" event ") == 11  # 4 + 4 contact events, the page view, the download, the merge

    # A late change for the merged id lands on the survivor.
    late_change = change(200, 530, at(0.5), "phone", "+49 30 1234567")
    post_hubspot(client, [late_change])
    drain(svc)
    with svc.sessions() as session:
        survivor = lead_of(session, "100")
        late = session.scalars(select(Event).where(Event.event_key == key_of(late_change))).one()
        assert late.lead_id == survivor.id
        assert survivor.fields["phone"] == "+49 30 1234567"


def test_a_change_of_the_merged_contact_arriving_with_the_merge_is_applied(client, svc):
    post_hubspot(client, new_contact(300, 600, at(5), "max@acme-robotics.com", "CTO"))
    post_hubspot(client, new_contact(400, 610, at(5), "max.m@acme-robotics.com", "CTO"))
    drain(svc)
    merge = hs_event("contact.merge", 300, 620, at(1), primaryObjectId=300, mergedObjectIds=[400],
                     newObjectId=300, numberOfPropertiesMoved=1)
    # The merged contact's last change and the merge come in one batch.
    assert post_hubspot(client, [change(400, 621, at(2), "phone", "+49 89 7654321"), merge]).status_code == 200
    drain(svc)
    with svc.sessions() as session:
        survivor = lead_of(session, "300")
        assert session.scalar(select(func.count()).select_from(Event).where(Event.processed_at.is_(None))) == 0
        assert survivor.fields.get("phone") == "+49 89 7654321"


# --- privacy deletion ---------------------------------------------------------------------------

@pytest.fixture
def held_flush_app(config):
    """An app whose CRM flush waits an hour, so scored writes stay pending in the outbox."""
    with running_app(config, LEADLOOP_FLUSH_DELAY="3600") as app:
        yield app


def run_queued(svc: Any) -> None:
    """Run the queued jobs only (not the scheduled ones: the delayed flush stays waiting)."""
    from rq import SimpleWorker

    SimpleWorker([svc.queue], connection=svc.redis).work(burst=True, with_scheduler=False, logging_level="WARNING")


ERASED_EMAIL = "sdfkjh4422@acme-robotics.com"  # a made-up local part: it shows up in a reason
ERASED_CREATED = at(6)  # one fixed time: a redelivery must carry the same occurredAt


def erase_a_scored_contact(client: Any, svc: Any) -> tuple[list, datetime, int]:
    """Contact 800 with fields, a form and a pending CRM write, then its privacy deletion.

    Returns the (kind, occurred_at) of its events before, the erasure time and the score count.
    """
    post_hubspot(client, new_contact(800, 700, ERASED_CREATED, ERASED_EMAIL, "Werkstudent Logistik"))
    post_events(client, [web_event("p-1", "form_submit", email=ERASED_EMAIL, crm="hubspot", crm_id="800",
                                   occurred_at=at(5).isoformat(),
                                   properties={"form": "newsletter", "fields": {"phone": "+49 171 5550100"}})])
    run_queued(svc)
    with svc.sessions() as session:
        lead = lead_of(session, "800")
        assert lead.email == ERASED_EMAIL
        before = [(e.kind, e.occurred_at) for e in session.scalars(
            select(Event).where(Event.lead_id == lead.id).order_by(Event.id))]
        assert session.scalar(select(func.count()).select_from(OutboxWrite)
                              .where(OutboxWrite.status == "pending")) == 1
        scores = session.scalar(select(func.count()).select_from(ScoreRecord))
    erased_at = at(1)
    batch = [hs_event("contact.privacyDeletion", 800, 710, erased_at),
             hs_event("contact.deletion", 800, 711, erased_at)]
    assert post_hubspot(client, batch).get_json()["accepted"] == 2
    drain(svc)
    return before, erased_at, scores


def test_privacy_deletion_erases_the_person_and_late_changes_do_not_bring_them_back(held_flush_app):
    client, svc = held_flush_app.test_client(), held_flush_app.extensions["leadloop"]
    before, erased_at, scores = erase_a_scored_contact(client, svc)
    with svc.sessions() as session:
        lead = lead_of(session, "800")
        assert lead.erased_at == erased_at
        assert (lead.email, lead.fields, lead.field_times) == (None, {}, {})
        events = list(session.scalars(select(Event).where(Event.lead_id == lead.id).order_by(Event.id)))
        assert [(e.kind, e.occurred_at) for e in events[:len(before)]] == before  # counts and times remain
        assert [e.kind for e in events[len(before):]] == ["privacy_deletion", "deletion"]
        assert all((e.fields, e.properties, e.raw) == ({}, {}, None) for e in events)
        writes = list(session.scalars(select(OutboxWrite)))
        assert [w.status for w in writes] == ["superseded"]  # dropped, never flushed
        assert all(w.payload == {} for w in writes)
        assert session.scalar(select(func.count()).select_from(ScoreRecord)) == scores
        assert all(r.summary == "" for r in session.scalars(select(ScoreRecord)))

    # A redelivery of the email change seen before is absorbed by its key (kept after erasure) ...
    redelivery = dict(change(800, 701, ERASED_CREATED, "email", ERASED_EMAIL), attemptNumber=4)
    # ... and a change made before the erasure but delivered only now is stored without its data.
    late = dict(change(800, 705, ERASED_CREATED + timedelta(minutes=5), "email", ERASED_EMAIL), attemptNumber=3)
    assert post_hubspot(client, [redelivery, late]).get_json() == {"accepted": 1, "duplicates": 1, "ignored": 0}
    drain(svc)
    with svc.sessions() as session:
        lead = lead_of(session, "800")
        assert (lead.email, lead.fields, lead.erased_at) == (None, {}, erased_at)
        stored = session.scalars(select(Event).where(Event.event_key == key_of(late))).one()
        assert (stored.lead_id, stored.fields, stored.properties, stored.raw) == (lead.id, {}, {}, None)
        assert session.scalar(select(func.count()).select_from(Lead)) == 1
        everything = [(e.fields, e.properties, e.raw) for e in session.scalars(select(Event))]
        assert ERASED_EMAIL not in json.dumps(everything)
        assert session.scalar(select(func.count()).select_from(ScoreRecord)) == scores
        assert session.scalar(select(func.count()).select_from(OutboxWrite)
                              .where(OutboxWrite.status != "superseded")) == 0


def test_privacy_deletion_leaves_no_personal_data_in_the_score_history(held_flush_app):
    client, svc = held_flush_app.test_client(), held_flush_app.extensions["leadloop"]
    erase_a_scored_contact(client, svc)
    with svc.sessions() as session:
        for record in session.scalars(select(ScoreRecord)):
            kept = json.dumps(record.result)
            # The reasons name the made-up address and the student job title, the summary repeats them.
            assert "sdfkjh4422" not in kept
            assert "Werkstudent" not in kept


# --- workflow webhooks --------------------------------------------------------------------------

@pytest.fixture
def workflow_app(config):
    with running_app(config, HUBSPOT_WORKFLOW_API_KEYS="wf-key-old,wf-key-new") as app:
        yield app


def test_workflow_webhook_with_a_v2_signature_stores_the_activity(client, svc):
    body = (FIXTURES / "workflow_activity.json").read_bytes()
    response = client.post("/webhooks/hubspot/workflow", data=body, headers={
        "Content-Type": "application/json", "X-HubSpot-Signature-Version": "v2",
        "X-HubSpot-Signature": hubspot_signature_v2(SECRET, "POST", WORKFLOW_URL, body)})
    assert response.status_code == 200
    assert response.get_json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    drain(svc)
    with svc.sessions() as session:
        event = session.scalars(select(Event)).one()
        assert (event.source, event.kind) == ("hubspot", "content_download")
        assert event.event_key == "workflow:" + hashlib.sha256(body).hexdigest()
        assert event.properties == {"asset": "coverage-map", "url": "https://example.com/coverage-map.pdf"}
        lead = lead_of(session, "138017612137")
        assert event.lead_id == lead.id and lead.email == "jane.doe@example.com"
        record = session.scalars(select(ScoreRecord).where(ScoreRecord.lead_id == lead.id)).one()
        assert any(reason["rule"] == "download-hot" for reason in record.result["reasons"])


def test_workflow_v2_signature_over_another_url_is_refused(client, svc):
    body = (FIXTURES / "workflow_activity.json").read_bytes()
    response = client.post("/webhooks/hubspot/workflow", data=body, headers={
        "X-HubSpot-Signature-Version": "v2",
        "X-HubSpot-Signature": hubspot_signature_v2(SECRET, "POST", URL, body)})
    assert response.status_code == 401
    assert count(svc, Event) == 0


def test_workflow_webhook_with_the_api_key_header_stores_the_contact(workflow_app):
    client, svc = workflow_app.test_client(), workflow_app.extensions["leadloop"]
    body = (FIXTURES / "workflow_contact.json").read_bytes()
    response = client.post("/webhooks/hubspot/workflow", data=body,
                           headers={"Content-Type": "application/json", "X-Leadloop-Api-Key": "wf-key-old"})
    assert response.status_code == 200
    assert response.get_json()["accepted"] == 1
    activity = (FIXTURES / "workflow_activity.json").read_bytes()
    response = client.post("/webhooks/hubspot/workflow", data=activity,
                           headers={"Content-Type": "application/json", "X-Leadloop-Api-Key": "wf-key-new"})
    assert response.status_code == 200
    drain(svc)
    with svc.sessions() as session:
        lead = lead_of(session, "138017612137")
        assert lead.fields["job_title"] == "CTO" and lead.fields["company"] == "Example Corp"
        assert lead.fields["custom_fit"] == "yes"
        kinds = sorted(session.scalars(select(Event.kind).where(Event.lead_id == lead.id)))
        assert kinds == ["content_download", "record_snapshot"]
    refused = client.post("/webhooks/hubspot/workflow", data=activity, headers={"X-Leadloop-Api-Key": "wf-key-x"})
    assert refused.status_code == 401
    assert refused.get_json() == {"error": "API key does not match"}


# --- hydration: a creation webhook carries only an id --------------------------------------------

def test_created_contacts_are_read_back_in_batches_of_100_before_scoring(config):
    """With a token (even in shadow mode) the rescore job batch-reads the fields the webhook lacks."""
    import responses as responses_lib

    app = create_app({**config, "HUBSPOT_ACCESS_TOKEN": "pat-na1-reader"})
    svc, client = app.extensions["leadloop"], app.test_client()
    created = [hs_event("contact.creation", 7000 + n, 80_000 + n, at(1), changeFlag="CREATED") for n in range(250)]
    for start in range(0, 250, 100):
        assert post_hubspot(client, created[start:start + 100]).status_code == 200

    def contacts(request):
        body = json.loads(request.body)
        results = [{"id": item["id"], "archived": False, "createdAt": "2026-11-01T10:00:00Z",
                    "updatedAt": "2026-11-01T10:00:00Z",
                    "properties": {"hs_object_id": item["id"], "email": f"buyer{item['id']}@acme-robotics.com",
                                   "jobtitle": "Head of Logistics", "numemployees": "250", "country": "DE"}}
                   for item in body["inputs"]]
        return 200, {}, json.dumps({"status": "COMPLETE", "results": results,
                                    "startedAt": "2026-11-23T10:00:00Z", "completedAt": "2026-11-23T10:00:01Z"})

    with responses_lib.RequestsMock() as api:
        api.add_callback("POST", "https://api.hubapi.com/crm/objects/2026-03/contacts/batch/read", callback=contacts,
                         content_type="application/json")
        drain(svc)
        reads = [json.loads(call.request.body) for call in api.calls]
    assert sorted(len(read["inputs"]) for read in reads) == [50, 100, 100]
    assert {"email", "jobtitle", "numemployees", "country"} <= set(reads[0]["properties"])
    with svc.sessions() as session:
        lead = lead_of(session, "7001")
        assert lead.email == "buyer7001@acme-robotics.com"
        assert lead.fields["job_title"] == "Head of Logistics" and lead.fields["employees"] == 250
        # Scored on the fetched fields: decision-maker 15 + size 10 + country 5 - no phone 10.
        assert lead.fit_points == 20
        reasons = [r["text"] for r in session.scalars(select(ScoreRecord.result).where(
            ScoreRecord.lead_id == lead.id)).one()["reasons"]]
        assert "+15 senior decision-maker" in reasons
    svc.engine.dispose()

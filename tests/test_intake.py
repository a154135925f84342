"""POST /webhooks/events: authentication first, then validation, then durable storage."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import create_engine, event, func, select

from integration.store.models import Event, Lead
from tests.conftest import EVENTS_SECRET, EVENTS_SECRET_OLD, post_events, web_event


def count(svc, model) -> int:
    with svc.sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_accepts_signed_events_and_reports_counts(client, svc):
    response = post_events(client, [web_event("e1"), web_event("e2", "content_download",
                                                                properties={"asset": "pricing"})])
    assert response.status_code == 200
    assert response.get_json() == {"accepted": 2, "duplicates": 0, "ignored": 0}
    assert count(svc, Event) == 2
    assert count(svc, Lead) == 1


def test_previous_secret_still_accepted_during_rotation(client, svc):
    assert post_events(client, [web_event("e1")], secret=EVENTS_SECRET_OLD).status_code == 200


@pytest.mark.parametrize("headers, reason", [
    ({}, "missing X-Leadloop-Signature header"),
    ({"X-Leadloop-Signature": "v1=abc"}, "signature header has no valid timestamp (t=)"),
    ({"X-Leadloop-Signature": "t=notanumber,v1=abc"}, "signature header has no valid timestamp (t=)"),
    ({"X-Leadloop-Signature": "t={now}"}, "signature header has no v1 signature"),
    ({"X-Leadloop-Signature": "t={now},v1=deadbeef"}, "signature does not match"),
])
def test_bad_signatures_get_401_with_reason(client, svc, headers, reason):
    now = str(int(time.time()))
    headers = {k: v.replace("{now}", now) for k, v in headers.items()}
    response = client.post("/webhooks/events", data=json.dumps([web_event("e1")]), headers=headers)
    assert response.status_code == 401
    assert response.get_json() == {"error": reason}
    assert count(svc, Event) == 0


@pytest.mark.parametrize("skew", [-301, 301, -10_000])
def test_stale_or_future_timestamp_is_refused(client, svc, skew):
    response = post_events(client, [web_event("e1")], timestamp=int(time.time()) + skew)
    assert response.status_code == 401
    assert response.get_json()["error"] == "timestamp outside the 300 s tolerance"


def test_signature_covers_the_body(client, svc):
    signed = json.dumps([web_event("e1")]).encode()
    from integration.web.intake import sign

    tampered = signed.replace(b"e1", b"e2")
    response = client.post("/webhooks/events", data=tampered,
                           headers={"X-Leadloop-Signature": sign(signed, EVENTS_SECRET)})
    assert response.status_code == 401
    assert count(svc, Event) == 0


def test_signature_is_checked_before_parsing(client, svc):
    # Garbage with a bad signature is a 401, not a 400: nothing is parsed before authentication.
    response = client.post("/webhooks/events", data=b"{not json", headers={"X-Leadloop-Signature": "t=1,v1=00"})
    assert response.status_code == 401


@pytest.mark.parametrize("body, error", [
    (b"{not json", "body is not valid JSON"),
    (b'{"id": "e1"}', "body must be a JSON array of events"),
    (b"\xff\xfe", "body is not valid JSON"),
])
def test_unparseable_bodies_get_400(client, svc, body, error):
    response = post_events(client, [], body=body)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(error)


def test_every_field_error_is_reported_by_path(client, svc):
    events = [
        web_event("ok-1"),
        {"id": 5, "type": "page_view", "occurred_at": "2026-11-20T10:00:00", "email": "not-an-email"},
        {"type": "teleport", "occurred_at": "yesterday", "crm": "pipedrive"},
    ]
    response = post_events(client, events)
    assert response.status_code == 400
    error = response.get_json()["error"]
    for expected in ("[1].id: Not a valid string.", "[1].occurred_at: must be ISO-8601 with an offset",
                     "[1].email: Not a valid email address.", "[2].id: Missing data for required field.",
                     "[2].occurred_at: Not a valid datetime.", "[2].crm: Must be one of: hubspot, salesforce."):
        assert expected in error, error
    assert count(svc, Event) == 0  # nothing of a bad batch is stored


def test_unknown_event_type_is_400(client, svc):
    response = post_events(client, [web_event("e1", "teleport")])
    assert response.status_code == 400
    assert response.get_json()["error"] == "[0].type: unknown event type 'teleport'"


def test_event_needs_an_identity(client, svc):
    response = post_events(client, [{"id": "e1", "type": "page_view", "occurred_at": "2026-11-20T10:00:00Z"}])
    assert response.status_code == 400
    assert "an event needs an email or crm + crm_id" in response.get_json()["error"]


def test_too_many_events_is_400(client, svc):
    events = [web_event(f"e{i}") for i in range(1001)]
    response = post_events(client, events)
    assert response.status_code == 400
    assert response.get_json()["error"] == "at most 1000 events per request (got 1001)"


def test_oversize_body_is_413_before_anything_else(client, svc):
    body = b"[" + b" " * (5 * 1024 * 1024 + 10) + b"]"
    response = client.post("/webhooks/events", data=body, headers={"X-Leadloop-Signature": "t=1,v1=00"})
    assert response.status_code == 413
    assert "larger than" in response.get_json()["error"]


def test_duplicate_deliveries_are_absorbed(client, svc):
    batch = [web_event("e1"), web_event("e2", "email_open")]
    assert post_events(client, batch).get_json() == {"accepted": 2, "duplicates": 0, "ignored": 0}
    assert post_events(client, batch).get_json() == {"accepted": 0, "duplicates": 2, "ignored": 0}
    # within one batch too, and mixed with new ones
    mixed = [web_event("e2", "email_open"), web_event("e3"), web_event("e3")]
    assert post_events(client, mixed).get_json() == {"accepted": 1, "duplicates": 2, "ignored": 0}
    assert count(svc, Event) == 3


def test_acknowledged_events_are_committed(client, svc, database_url):
    assert post_events(client, [web_event("e1"), web_event("e2")]).status_code == 200
    # A separate engine (another process, in effect) sees them: the 200 came after the commit.
    other = create_engine(database_url)
    with other.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Event)) == 2
    other.dispose()


def test_no_2xx_when_the_commit_fails(client, svc):
    def fail_commit(session):
        raise __import__("sqlalchemy").exc.OperationalError("COMMIT", {}, Exception("disk I/O error"))

    event.listen(svc.sessions, "before_commit", fail_commit)
    try:
        response = post_events(client, [web_event("e1")])
    finally:
        event.remove(svc.sessions, "before_commit", fail_commit)
    assert response.status_code == 503
    assert response.get_json() == {"error": "store unavailable, retry later"}
    assert response.headers["Retry-After"] == "30"
    assert count(svc, Event) == 0
    # The sender's retry then succeeds.
    assert post_events(client, [web_event("e1")]).get_json()["accepted"] == 1


def test_store_down_answers_503_not_500(config, tmp_path):
    from integration.web import create_app

    app = create_app({**config, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    response = post_events(app.test_client(), [web_event("e1")])
    assert response.status_code == 503
    assert app.test_client().get("/readyz").status_code == 503


def test_web_activity_attaches_to_the_crm_lead_with_that_email(client, svc):
    post_events(client, [web_event("e1", email="bo@globex.example", crm="hubspot", crm_id="501")])
    post_events(client, [web_event("e2", email="BO@globex.example")])
    with svc.sessions() as session:
        leads = session.scalars(select(Lead)).all()
        assert [(lead.crm, lead.crm_id, lead.email) for lead in leads] == [("hubspot", "501", "bo@globex.example")]


def test_crm_record_claims_the_web_lead_first_seen_by_email(client, svc):
    post_events(client, [web_event("e1", email="cy@initech.example")])
    post_events(client, [web_event("e2", email="cy@initech.example", crm="salesforce", crm_id="00Q000000000001")])
    with svc.sessions() as session:
        leads = session.scalars(select(Lead)).all()
        # Salesforce ids are kept in their 18-character form, whichever form the sender used.
        assert [(lead.crm, lead.crm_id) for lead in leads] == [("salesforce", "00Q000000000001EAA")]
        assert session.scalar(select(func.count()).select_from(Event).where(Event.lead_id == leads[0].id)) == 2


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/webhooks/events").status_code == 405
    response = client.get("/nope")
    assert response.status_code == 404 and "error" in response.get_json()


def test_15_and_18_character_salesforce_ids_are_one_lead(client, svc):
    post_events(client, [web_event("e1", crm="salesforce", crm_id="00Q1N00000bS2eO")])
    post_events(client, [web_event("e2", crm="salesforce", crm_id="00Q1N00000bS2eOUAS")])
    assert count(svc, Lead) == 1

"""Business-time order inside a batch: a lead's events take effect in ``occurred_at`` order, with
the score re-evaluated as time passes between them, so a batch delivered late (an outage, a
backlog, a replay) gives the same stages and transition times as delivering it event by event.

Through the signed endpoints, the worker and the (faked) HubSpot API, on the services' movable
clock: the same week of history is delivered live (the clock at each event's time, drained after
each) for one contact and in one late batch for another, and their transitions compared.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
import responses
from sqlalchemy import select

from integration.store.models import OutboxWrite
from tests.conftest import drain, post_events, post_hubspot, web_event
from tests.outcomes_support import (
    API,
    Clock,
    fake_hubspot,
    hs_association,
    hs_object,
    lead_of,
    rules_file,
    transitions,
    world,
)
from tests.test_outcomes_hubspot import START, deal_properties

OWNER = "41"
PROFILE = {"first_name": "Ada", "last_name": "Meyer", "company": "Acme Logistics", "job_title": "Head of Operations",
           "phone": "+49 30 1234567", "country": "DE", "employees": 250, "industry": "Logistics"}
_ids = itertools.count(880_000)


class TickingClock(Clock):
    """The movable clock, a millisecond on at each reading: two jobs never run at one instant
    (a frozen clock would give two CRM updates of one lead the same idempotency key)."""

    def __call__(self) -> datetime:
        self.value += timedelta(milliseconds=1)
        return self.value


@pytest.fixture
def clock():
    return TickingClock(START)


@pytest.fixture
def app(config, tmp_path, clock):
    with world(config, rules_file(tmp_path, [OWNER]), clock, HUBSPOT_ACCESS_TOKEN="pat-na1-test") as pair:
        yield pair


def hubspot_status(contact: int, value: str, occurred: datetime) -> dict:
    """A contact's lead status changed in HubSpot (a ``contact.propertyChange`` notification)."""
    return {"eventId": next(_ids), "subscriptionId": 25, "portalId": 62515, "appId": 54321,
            "occurredAt": int(occurred.timestamp() * 1000), "subscriptionType": "contact.propertyChange",
            "attemptNumber": 0, "objectId": contact, "propertyName": "hs_lead_status", "propertyValue": value,
            "changeSource": "CRM_UI", "sourceId": "userId:1"}


def web(contact: int, kind: str, occurred: datetime, **properties) -> dict:
    return web_event(f"{kind}-{contact}-{next(_ids)}", kind, email=f"ada{contact}@acme-logistics.example",
                     crm="hubspot", crm_id=str(contact), occurred_at=occurred.isoformat(), properties=properties)


def week(contact: int, deal: int, start: datetime) -> list[tuple[datetime, str, list[dict]]]:
    """A week of one lead's history, oldest first: (business time, endpoint, what is posted)."""
    visit, trial = start, start + timedelta(days=1)
    accepted, qualified, won = trial + timedelta(minutes=30), start + timedelta(days=3), start + timedelta(days=6)
    return [
        (visit, "events", [web(contact, "page_view", visit, url="https://leadloop.example/pricing")]),
        (trial, "events", [web(contact, "form_submit", trial, form="trial", fields=PROFILE),
                           web(contact, "trial_signup", trial)]),
        (accepted, "hubspot", [hubspot_status(contact, "IN_PROGRESS", accepted)]),
        (qualified, "hubspot", [hubspot_status(contact, "OPEN_DEAL", qualified)]),
        (won, "hubspot", [hs_object("creation", "deal", deal, won), *hs_association("deal", deal, contact, won)]),
    ]


def deliver(client, endpoint: str, payload: list[dict]) -> None:
    if endpoint == "events":
        response = post_events(client, payload)
    else:
        response = post_hubspot(client, payload)
    assert response.status_code == 200, response.get_data(as_text=True)


def moves(svc, contact: int) -> list[tuple[str, str, str, datetime]]:
    return [(t.from_stage, t.to_stage, t.cause, t.at) for t in transitions(svc, str(contact))]


def tasks(svc, contact: int) -> list[OutboxWrite]:
    with svc.sessions() as session:
        return list(session.scalars(select(OutboxWrite).where(OutboxWrite.crm_id == str(contact),
                                                              OutboxWrite.kind == "task")))


def test_a_week_delivered_in_one_late_batch_moves_the_lead_as_live_delivery_did(app, clock):
    client, svc = app
    live, batch = 100, 200
    with fake_hubspot() as hubspot:
        for deal, contact in ((7001, live), (7002, batch)):
            hubspot.deal(deal, [contact], **deal_properties("closedwon", closed=True, won=True))
        for moment, endpoint, payload in week(live, 7001, START):
            clock.value = moment
            deliver(client, endpoint, payload)
            drain(svc)
        history = week(batch, 7002, START)
        clock.value = history[-1][0] + timedelta(hours=1)
        for _moment, endpoint, payload in history:
            deliver(client, endpoint, payload)
        drain(svc)

    visit, trial, accepted, qualified, won = (moment for moment, _, _ in history)
    assert moves(svc, live) == [
        ("new", "nurture", "score", visit), ("nurture", "mql", "score", trial),
        ("mql", "accepted", "disposition", accepted), ("accepted", "sql", "disposition", qualified),
        ("sql", "won", "deal", won)]
    assert moves(svc, batch) == moves(svc, live)
    live_lead, batch_lead = lead_of(svc, str(live)), lead_of(svc, str(batch))
    assert (batch_lead.stage, batch_lead.stage_changed_at) == (live_lead.stage, live_lead.stage_changed_at) == (
        "won", won)
    assert len(tasks(svc, live)) == 1  # live, the rep got the MQL's call task
    assert tasks(svc, batch) == []  # late, sales had already taken the lead on: no task to write


def test_a_demo_request_then_an_acceptance_two_days_later_in_one_batch_passes_through_mql(app, clock):
    client, svc = app
    requested = START
    accepted = requested + timedelta(days=2)
    clock.value = accepted + timedelta(hours=3)
    deliver(client, "events", [web(300, "form_submit", requested, form="demo-request", fields=PROFILE)])
    deliver(client, "hubspot", [hubspot_status(300, "IN_PROGRESS", accepted)])
    drain(svc)
    assert moves(svc, 300) == [("new", "mql", "score", requested), ("mql", "accepted", "disposition", accepted)]
    lead = lead_of(svc, "300")
    assert (lead.stage, lead.last_handoff_at, lead.sla_due_at) == ("accepted", requested, None)
    assert tasks(svc, 300) == []


def test_a_late_mql_is_handed_off_at_its_business_time_with_an_sla_counted_from_delivery(app, clock):
    client, svc = app
    signed_up = START
    clock.value = signed_up + timedelta(days=3)  # delivered three days late (an outage)
    deliver(client, "events", [web(400, "form_submit", signed_up, form="trial", fields=PROFILE),
                               web(400, "trial_signup", signed_up)])
    drain(svc)
    assert moves(svc, 400) == [("new", "mql", "score", signed_up)]
    lead = lead_of(svc, "400")
    assert (lead.stage, lead.owner_id, lead.last_handoff_at) == ("mql", OWNER, signed_up)
    # The call task was due an hour after the sign-up, long past: the rep gets it now, and an hour.
    assert lead.sla_due_at is not None and lead.sla_due_at > clock.value
    [task] = tasks(svc, 400)
    assert datetime.fromisoformat(task.payload["task"]["due_at"]) == lead.sla_due_at
    drain(svc)  # no escalation runs for the time the rep never had
    assert [t for t in moves(svc, 400) if t[2] == "sla"] == []


def test_each_transition_is_at_its_causing_event_and_a_status_meaning_nothing_moves_nothing(app, clock):
    client, svc = app
    viewed = START
    echoed, rejected = viewed + timedelta(hours=5), viewed + timedelta(days=1)
    clock.value = rejected + timedelta(days=2)
    deliver(client, "events", [web(500, "form_submit", viewed, form="trial", fields=PROFILE),
                               web(500, "trial_signup", viewed)])
    deliver(client, "hubspot", [hubspot_status(500, "NEW", echoed), hubspot_status(500, "BAD_TIMING", rejected)])
    drain(svc)
    assert moves(svc, 500) == [("new", "mql", "score", viewed), ("mql", "recycled", "disposition", rejected)]
    lead = lead_of(svc, "500")
    assert (lead.recycled_at, lead.cooldown_until) == (rejected, rejected + timedelta(days=30))
    assert tasks(svc, 500) == []


def test_a_record_created_without_fields_moves_at_its_creation_time_not_when_it_was_processed(app, clock):
    # HubSpot's creation notification carries no properties: the lead's first decision still
    # takes the creation's business time, and the later activity's MQL its own, though both
    # arrive days late in separate jobs.
    client, svc = app
    created, trial = START, START + timedelta(days=2)
    clock.value = START + timedelta(days=10)
    with fake_hubspot() as hubspot:
        # The contact's fields as HubSpot has them when leadloop reads them (none that score).
        hubspot.mock.add(responses.POST, f"{API}/crm/objects/2026-03/contacts/batch/read", json={
            "status": "COMPLETE", "results": [{"id": "600", "properties": {"hs_object_id": "600"},
                                               "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
                                               "archived": False}],
            "startedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:00:01Z"})
        deliver(client, "hubspot", [hs_object("creation", "contact", 600, created)])
        drain(svc)
        deliver(client, "events", [web(600, "form_submit", trial, form="trial", fields=PROFILE),
                                   web(600, "trial_signup", trial)])
        drain(svc)
    assert moves(svc, 600) == [("new", "nurture", "score", created), ("nurture", "mql", "score", trial)]

"""Whole lead journeys through the HTTP endpoints and the worker (the lifecycle loop).

The services' clock (``create_app(config, clock=...)``) is moved so business hours, weekends, holidays,
SLA due times and cooldowns are exact. CRM feedback arrives as signed HubSpot webhooks.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from integration.pipeline.jobs import sweep_slas
from integration.store.models import Lead, OutboxWrite, Transition
from integration.web import create_app
from tests.conftest import drain, post_events, post_hubspot, web_event

SHIPPED = Path(__file__).parents[1] / "rules" / "leadloop.yaml"
GOOD_FIELDS = {"first_name": "Ada", "last_name": "Lovelace", "company": "Acme Logistics", "job_title": "VP Operations",
               "phone": "+49 30 1234567", "country": "DE", "employees": 250, "industry": "Logistics"}
_ids = itertools.count(1)


class Clock:
    def __init__(self, start: datetime):
        self.value = start

    def __call__(self) -> datetime:
        return self.value

    def advance(self, **delta: float) -> None:
        self.value += timedelta(**delta)


@pytest.fixture
def rules_file(tmp_path):
    rules = yaml.safe_load(SHIPPED.read_text())
    rules["handoff"]["teams"]["dach"]["members"] = [
        {"id": "rep-anna", "weight": 2, "timezone": "Europe/Berlin", "country": "DE"},
        {"id": "rep-ben", "weight": 1, "timezone": "Europe/Berlin", "country": "DE"},
        {"id": "rep-cem", "weight": 1, "timezone": "Europe/Berlin", "country": "DE"},
    ]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return str(path)


@pytest.fixture
def now():
    # Thursday 24 December 2026, 16:30 in Berlin: Christmas Day (Fri) and a weekend follow.
    return Clock(datetime(2026, 12, 24, 15, 30, tzinfo=UTC))


@pytest.fixture
def world(config, rules_file, now):
    app = create_app({**config, "LEADLOOP_RULES": rules_file}, clock=now)
    yield app.test_client(), app.extensions["leadloop"]
    app.extensions["leadloop"].engine.dispose()


def at(now: Clock, **delta: float) -> str:
    return (now.value - timedelta(**delta)).isoformat()


def hubspot_status(client, contact: str, value: str, occurred: datetime, prop: str = "hs_lead_status",
                   event_id: int | None = None):
    event = {"eventId": event_id or next(_ids), "subscriptionId": 25, "portalId": 62515, "appId": 54321,
             "occurredAt": int(occurred.timestamp() * 1000), "subscriptionType": "contact.propertyChange",
             "attemptNumber": 0, "objectId": int(contact), "propertyName": prop, "propertyValue": value,
             "changeSource": "CRM_UI", "sourceId": "userId:1"}
    return post_hubspot(client, [event])


def profile_and(client, now, contact: str, email: str, kind: str, fields: dict | None = None, **props):
    fields = fields or GOOD_FIELDS
    events = [web_event(f"form-{contact}-{next(_ids)}", "form_submit", email=email, crm="hubspot", crm_id=contact,
                        occurred_at=at(now, hours=2), properties={"form": "profile", "fields": fields}),
              web_event(f"{kind}-{contact}-{next(_ids)}", kind, email=email, crm="hubspot", crm_id=contact,
                        occurred_at=at(now, minutes=5), properties=props)]
    response = post_events(client, events)
    assert response.status_code == 200, response.get_json()
    return events


def lead_of(svc, contact: str) -> Lead:
    with svc.sessions() as session:
        return session.scalars(select(Lead).where(Lead.crm_id == contact)).one()


def stages(svc, contact: str) -> list[tuple[str, str, str]]:
    with svc.sessions() as session:
        lead = session.scalars(select(Lead).where(Lead.crm_id == contact)).one()
        return [(t.from_stage, t.to_stage, t.cause) for t in session.scalars(
            select(Transition).where(Transition.lead_id == lead.id).order_by(Transition.id))]


def writes(svc, contact: str, kind: str) -> list[OutboxWrite]:
    with svc.sessions() as session:
        return list(session.scalars(select(OutboxWrite).where(OutboxWrite.crm_id == contact, OutboxWrite.kind == kind)
                                    .order_by(OutboxWrite.id)))


def test_cold_download_goes_to_nurture(world, now):
    client, svc = world
    post_events(client, [web_event("cold-1", "content_download", email="reader@acme-logistics.example",
                                   crm="hubspot", crm_id="100", occurred_at=at(now, days=3),
                                   properties={"asset": "newsletter"})])
    drain(svc)
    lead = lead_of(svc, "100")
    assert (lead.stage, lead.band, lead.mql) == ("nurture", "cold", False)
    assert stages(svc, "100") == [("new", "nurture", "score")]
    assert writes(svc, "100", "task") == []
    update = writes(svc, "100", "update")[-1].payload
    assert update["crm_fields"] == {"hs_lead_status": "OPEN"} and update["fields"]["stage"] == "nurture"


def test_trial_signup_hot_mql_round_robin_task_across_holiday_then_accepted_and_won(world, now):
    client, svc = world
    batch = profile_and(client, now, "200", "ada@acme-logistics.example", "trial_signup")
    post_events(client, batch)  # a duplicate delivery of the whole batch
    drain(svc)
    lead = lead_of(svc, "200")
    assert (lead.stage, lead.band, lead.mql, lead.owner_id, lead.team) == ("mql", "hot", True, "rep-anna", "dach")
    # The profile form (two hours ago) nurtured it, the sign-up (five minutes ago) made it an MQL.
    assert stages(svc, "200") == [("new", "nurture", "score"), ("nurture", "mql", "score")]
    [task] = writes(svc, "200", "task")
    # The sign-up at 16:25 Thursday + 1 working hour: 35 min left that day, Friday is Christmas,
    # then the weekend.
    assert task.payload["task"]["due_at"] == "2026-12-28T09:25:00+01:00"
    assert (task.payload["task"]["priority"], task.payload["task"]["type"]) == ("high", "call")
    assert task.payload["task"]["owner_id"] == "rep-anna"
    update = writes(svc, "200", "update")[-1].payload
    assert update["owner_id"] == "rep-anna"
    assert update["crm_fields"] == {"lifecyclestage": "marketingqualifiedlead", "hs_lead_status": "NEW"}
    scheduled = svc.queue.scheduled_job_registry.get_job_ids()
    assert any(job_id.startswith(f"sla-{lead.id}-") for job_id in scheduled)

    now.advance(hours=1)
    for _ in range(2):  # duplicate webhook deliveries
        assert hubspot_status(client, "200", "IN_PROGRESS", now.value, event_id=9001).status_code == 200
    drain(svc)
    now.advance(days=10)
    assert hubspot_status(client, "200", "customer", now.value, prop="lifecyclestage").status_code == 200
    drain(svc)
    # A late, older status change arrives after the deal was won: it never moves the lead back.
    assert hubspot_status(client, "200", "CONNECTED", now.value - timedelta(days=9)).status_code == 200
    drain(svc)
    assert stages(svc, "200") == [("new", "nurture", "score"), ("nurture", "mql", "score"),
                                  ("mql", "accepted", "disposition"), ("accepted", "won", "disposition")]
    assert len(writes(svc, "200", "task")) == 1


def test_warm_mql_sla_missed_twice_reassigned_then_recycled(world, now):
    client, svc = world
    manager = {**GOOD_FIELDS, "job_title": "Operations Manager", "industry": "Consulting"}
    profile_and(client, now, "300", "bo@acme-logistics.example", "contact_request", fields=manager)
    drain(svc)
    lead = lead_of(svc, "300")
    assert (lead.stage, lead.band, lead.owner_id) == ("mql", "warm", "rep-anna")
    first_due = lead.sla_due_at
    assert first_due == datetime(2026, 12, 28, 15, 25, tzinfo=UTC)  # one working day (8h) from the request

    def miss_sla():
        now.value = lead_of(svc, "300").sla_due_at + timedelta(seconds=1)
        drain(svc)  # RQ's scheduler enqueues the SLA check at the due time

    miss_sla()  # first miss: remind the same rep
    assert lead_of(svc, "300").owner_id == "rep-anna"
    miss_sla()  # second miss: reassign within the team
    reassigned = lead_of(svc, "300")
    assert reassigned.owner_id not in (None, "rep-anna") and reassigned.sla_misses == 2
    # Third miss, and its scheduled job is lost (say Redis restarted): the cron sweep catches it.
    svc.queue.scheduled_job_registry.remove(svc.queue.scheduled_job_registry.get_job_ids()[0])
    now.value = lead_of(svc, "300").sla_due_at + timedelta(minutes=10)
    assert sweep_slas() == {"due": 1}
    drain(svc)
    recycled = lead_of(svc, "300")
    assert (recycled.stage, recycled.recycle_reason, recycled.recycle_count) == ("recycled", "no_response", 1)
    assert [t for t in stages(svc, "300") if t[2] == "sla"] == [
        ("mql", "mql", "sla"), ("mql", "mql", "sla"), ("mql", "recycled", "sla")]
    tasks = writes(svc, "300", "task")
    assert [t.payload["task"]["owner_id"] for t in tasks] == ["rep-anna", "rep-anna", reassigned.owner_id]
    update = writes(svc, "300", "update")[-1].payload
    assert update["fields"]["recycle_reason"] == "no_response" and update["fields"]["stage"] == "recycled"


def test_rejected_not_ready_cooldown_then_fresh_engagement_makes_mql_again(world, now):
    client, svc = world
    profile_and(client, now, "400", "cy@acme-logistics.example", "trial_signup")
    drain(svc)
    now.advance(hours=2)
    hubspot_status(client, "400", "BAD_TIMING", now.value)
    drain(svc)
    lead = lead_of(svc, "400")
    assert (lead.stage, lead.recycle_reason, lead.owner_id) == ("recycled", "not_ready", "rep-anna")
    assert lead.cooldown_until == now.value + timedelta(days=30)
    # During the cooldown even a hot signal does not make it an MQL again.
    now.advance(days=5)
    post_events(client, [web_event("again-1", "trial_signup", email="cy@acme-logistics.example", crm="hubspot",
                                   crm_id="400", occurred_at=at(now, minutes=1))])
    drain(svc)
    assert lead_of(svc, "400").stage == "recycled"
    # After the cooldown, fresh engagement qualifies it again, with a second task.
    now.advance(days=26)
    post_events(client, [web_event("again-2", "contact_request", email="cy@acme-logistics.example", crm="hubspot",
                                   crm_id="400", occurred_at=at(now, minutes=1))])
    drain(svc)
    assert lead_of(svc, "400").stage == "mql"
    assert [t[1:] for t in stages(svc, "400")] == [("nurture", "score"), ("mql", "score"), ("recycled", "disposition"),
                                                   ("nurture", "cooldown_expired"), ("mql", "score")]
    assert len(writes(svc, "400", "task")) == 2


def test_bad_data_disqualifies_for_good(world, now):
    client, svc = world
    profile_and(client, now, "500", "di@acme-logistics.example", "trial_signup")
    drain(svc)
    hubspot_status(client, "500", "UNQUALIFIED", now.value + timedelta(minutes=30))
    now.advance(hours=1)
    drain(svc)
    post_events(client, [web_event("late-hot", "trial_signup", email="di@acme-logistics.example", crm="hubspot",
                                   crm_id="500", occurred_at=at(now, minutes=1))])
    drain(svc)
    lead = lead_of(svc, "500")
    assert lead.stage == "disqualified"
    assert stages(svc, "500")[-1] == ("mql", "disqualified", "disposition")
    assert writes(svc, "500", "update")[-1].payload["crm_fields"] == {"hs_lead_status": "UNQUALIFIED"}


def test_round_robin_over_many_mqls_is_fair_across_the_store(world, now):
    client, svc = world
    events = []
    for n in range(1000):
        contact, email = str(10_000 + n), f"buyer{n}@firm{n}.example"
        events.append(web_event(f"f{n}", "form_submit", email=email, crm="hubspot", crm_id=contact,
                                occurred_at=at(now, hours=1), properties={"fields": GOOD_FIELDS}))
        events.append(web_event(f"c{n}", "contact_request", email=email, crm="hubspot", crm_id=contact,
                                occurred_at=at(now, minutes=1)))
    for start in range(0, len(events), 1000):
        assert post_events(client, events[start:start + 1000]).status_code == 200
    drain(svc)
    with svc.sessions() as session:
        owners = Counter(session.scalars(select(Lead.owner_id).where(Lead.stage == "mql")))
    assert sum(owners.values()) == 1000
    for rep, share in (("rep-anna", 0.50), ("rep-ben", 0.25), ("rep-cem", 0.25)):
        assert abs(owners[rep] / 1000 - share) <= 0.02, owners


def test_owner_and_status_are_written_only_with_the_hand_off(world, now):
    """A rep who reassigns the contact in the CRM is not overruled by the next score update."""
    client, svc = world
    profile_and(client, now, "600", "ed@acme-logistics.example", "trial_signup")
    drain(svc)
    [handoff_update] = writes(svc, "600", "update")
    assert handoff_update.payload["owner_id"] == "rep-anna"
    assert handoff_update.payload["crm_fields"]["lifecyclestage"] == "marketingqualifiedlead"
    now.advance(minutes=20)
    hubspot_status(client, "600", "owner-from-crm", now.value, prop="hubspot_owner_id")
    post_events(client, [web_event("more-600", "content_download", email="ed@acme-logistics.example",
                                   crm="hubspot", crm_id="600", occurred_at=at(now, minutes=1),
                                   properties={"asset": "coverage-map"})])
    drain(svc)
    later = writes(svc, "600", "update")[1:]
    assert later, "the new activity changed the score, so an update went out"
    assert all("owner_id" not in w.payload and "crm_fields" not in w.payload for w in later)


def test_a_rescore_that_changes_nothing_visible_writes_nothing(world, now):
    client, svc = world
    profile_and(client, now, "700", "fy@acme-logistics.example", "page_view", url="https://x.example/blog/a")
    drain(svc)
    assert len(writes(svc, "700", "update")) == 1
    # A field no rule reads changes in the CRM: the lead is rescored, the rep would see the same.
    hubspot_status(client, "700", "Hamburg", now.value, prop="city")
    drain(svc)
    assert lead_of(svc, "700").fields["city"] == "Hamburg"
    assert len(writes(svc, "700", "update")) == 1

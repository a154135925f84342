"""Salesforce opportunities as outcomes and Tasks/Events as SLA action, through outbound messages:
a converted Lead's Opportunity decides its outcome, its Contact's activity lands on it, and no
message, however late, moves a lead back."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from integration.store.models import Deal, DealLead, Lead, OutboxWrite
from tests.conftest import drain, post_events, web_event
from tests.outcomes_support import (
    Clock,
    lead_events,
    lead_of,
    outbound_message,
    rules_file,
    send_salesforce,
    sf_stamp,
    transitions,
    world,
)
from tests.test_outcomes_hubspot import START

LEAD, CONTACT, OPPORTUNITY = "00Q1N00000bS2eOUAS", "0031N00001fGhIjQAK", "0061N00000Dy2mBQAR"
OWNER, OTHER_REP = "0051N000005cDeFQAU", "0051N000005cDeGQAU"
EMAIL = "jane.doe@acme-logistics.example"
PROFILE = {"Email": EMAIL, "FirstName": "Jane", "LastName": "Doe", "Company": "Acme Logistics",
           "Title": "Head of Operations", "Phone": "+49 30 1234567", "Country": "DE", "Industry": "Logistics",
           "NumberOfEmployees": "250", "OwnerId": OWNER, "Status": "Open - Not Contacted"}


@pytest.fixture
def clock():
    return Clock(START)


@pytest.fixture
def app(config, tmp_path, clock):
    with world(config, rules_file(tmp_path, [OTHER_REP]), clock) as pair:
        yield pair


def step(svc, clock, moment) -> None:
    """Run what falls due by ``moment`` (an SLA check), then go on a minute later."""
    clock.value = moment
    drain(svc)
    clock.advance(minutes=1)


def hot_mql(client, svc, clock) -> None:
    """The Lead as Salesforce sends it (owned by OWNER) and a trial sign-up: a hot MQL kept with OWNER."""
    send_salesforce(client, outbound_message("Lead", LEAD, {**PROFILE,
                                                            "LastModifiedDate": sf_stamp(START - timedelta(hours=2))}))
    post_events(client, [web_event("trial-sf", "trial_signup", email=EMAIL, crm="salesforce", crm_id=LEAD,
                                   occurred_at=(START - timedelta(minutes=5)).isoformat())])
    drain(svc)
    lead = lead_of(svc, LEAD)
    assert (lead.stage, lead.owner_id) == ("mql", OWNER)


def opportunity(stage: str, closed: bool, won: bool, modified, contact: str | None = CONTACT) -> bytes:
    return outbound_message("Opportunity", OPPORTUNITY, {
        "Amount": "12000.0", "CloseDate": sf_stamp(START + timedelta(days=16))[:10], "ContactId": contact,
        "CreatedDate": sf_stamp(START + timedelta(days=2)), "CurrencyIsoCode": "EUR",
        "IsClosed": str(closed).lower(), "IsWon": str(won).lower(), "LastModifiedDate": sf_stamp(modified),
        "Name": "Acme Logistics - 200 trucks", "OwnerId": OWNER, "StageName": stage})


def converted(modified) -> bytes:
    return outbound_message("Lead", LEAD, {**PROFILE, "Status": "Closed - Converted", "IsConverted": "true",
                                           "ConvertedContactId": CONTACT, "ConvertedOpportunityId": OPPORTUNITY,
                                           "ConvertedDate": sf_stamp(modified)[:10],
                                           "LastModifiedDate": sf_stamp(modified)})


def call(owner: str, logged, who: str = LEAD) -> bytes:
    return outbound_message("Task", "00T1N00003xYzAbUAC", {
        "ActivityDate": sf_stamp(logged)[:10], "CallType": "Outbound", "CreatedDate": sf_stamp(logged),
        "IsClosed": "true", "LastModifiedDate": sf_stamp(logged), "OwnerId": owner, "Status": "Completed",
        "Subject": "Call", "TaskSubtype": "Call", "WhoId": who})


def moves(svc) -> list[tuple[str, str, str]]:
    return [(t.from_stage, t.to_stage, t.cause) for t in transitions(svc, LEAD) if t.from_stage != t.to_stage]


def test_a_converted_lead_follows_its_opportunity_and_its_contacts_activity(app, clock):
    client, svc = app
    hot_mql(client, svc, clock)
    due = lead_of(svc, LEAD).sla_due_at
    clock.advance(minutes=20)
    send_salesforce(client, call(OWNER, START + timedelta(minutes=20)))
    step(svc, clock, due + timedelta(seconds=1))  # the SLA check: the call meets it
    assert (lead_of(svc, LEAD).stage, lead_of(svc, LEAD).sla_misses) == ("mql", 0)

    converted_at = START + timedelta(days=2)
    step(svc, clock, converted_at)
    send_salesforce(client, converted(converted_at))
    send_salesforce(client, opportunity("Qualification", False, False, converted_at))
    meeting_logged = converted_at + timedelta(hours=3)
    send_salesforce(client, outbound_message("Event", "00U1N00000pQrStUAD", {
        "ActivityDateTime": sf_stamp(converted_at + timedelta(days=2)), "CreatedDate": sf_stamp(meeting_logged),
        "LastModifiedDate": sf_stamp(meeting_logged), "OwnerId": OWNER, "Subject": "Demo", "WhatId": OPPORTUNITY,
        "WhoId": CONTACT}))
    drain(svc)
    won_at = START + timedelta(days=16, hours=7)
    step(svc, clock, won_at)
    send_salesforce(client, opportunity("Closed Won", True, True, won_at))
    drain(svc)

    assert moves(svc) == [("new", "nurture", "score"), ("nurture", "mql", "score"), ("mql", "sql", "disposition"),
                          ("sql", "won", "deal")]
    assert transitions(svc, LEAD)[-1].at == won_at
    assert transitions(svc, LEAD)[-1].detail == {"deal_id": OPPORTUNITY, "stage": "Closed Won", "amount": "12000.00",
                                                 "currency": "EUR", "outcome": "won"}
    activity = [(e.properties["activity_type"], e.properties["owner_id"])
                for e in lead_events(svc, LEAD, "rep_activity")]
    assert activity == [("call", OWNER), ("meeting", OWNER)]  # the meeting was on the Contact
    lead_id = lead_of(svc, LEAD).id
    with svc.sessions() as session:
        deal = session.scalars(select(Deal)).one()
        assert (deal.outcome, deal.amount, deal.currency, deal.stage) == ("won", Decimal("12000.00"), "EUR",
                                                                           "Closed Won")
        assert session.scalars(select(DealLead.lead_id)).all() == [lead_id]
        pointer = session.scalars(select(Lead).where(Lead.crm_id == CONTACT)).one()
        assert pointer.merged_into_id == lead_id
        tasks = session.scalars(select(OutboxWrite).where(OutboxWrite.kind == "task")).all()
        assert len(tasks) == 1  # no reminder: the call met the SLA


def test_the_opportunity_may_come_before_the_lead_says_it_was_converted(app, clock):
    client, svc = app
    hot_mql(client, svc, clock)
    converted_at = START + timedelta(minutes=30)
    clock.advance(minutes=30)
    # The opportunity's own message first: its contact is no lead yet, so it waits.
    send_salesforce(client, opportunity("Qualification", False, False, converted_at))
    drain(svc, horizon=0)
    assert lead_of(svc, LEAD).stage == "mql"
    clock.advance(minutes=1)
    send_salesforce(client, converted(converted_at))
    drain(svc)
    assert moves(svc) == [("new", "nurture", "score"), ("nurture", "mql", "score"), ("mql", "sql", "disposition")]
    [told] = lead_events(svc, LEAD, "deal_change")
    assert told.properties["outcome"] == "open"
    clock.advance(minutes=1)
    drain(svc, horizon=60)  # the waiting message is looked at again: nothing new for the lead
    assert len(lead_events(svc, LEAD, "deal_change")) == 1


def test_late_or_older_opportunity_messages_never_move_the_lead_back(app, clock):
    client, svc = app
    hot_mql(client, svc, clock)
    clock.advance(minutes=10)
    send_salesforce(client, converted(START + timedelta(minutes=10)))
    drain(svc)
    lost, won, opened = (START + timedelta(days=d) for d in (14, 16, 2))
    step(svc, clock, won + timedelta(hours=1))
    # Delivered out of order: the win, then the older loss, then the much older open stage.
    for body in (opportunity("Closed Won", True, True, won), opportunity("Closed Lost", True, False, lost),
                 opportunity("Qualification", False, False, opened)):
        send_salesforce(client, body)
        clock.advance(minutes=1)
        drain(svc)
    assert moves(svc) == [("new", "nurture", "score"), ("nurture", "mql", "score"), ("mql", "sql", "disposition"),
                          ("sql", "won", "deal")]
    with svc.sessions() as session:
        assert session.scalars(select(Deal.stage)).one() == "Closed Won"


def test_a_lost_opportunity_reopened_and_won_makes_the_lead_won(app, clock):
    client, svc = app
    hot_mql(client, svc, clock)
    clock.advance(minutes=10)
    send_salesforce(client, converted(START + timedelta(minutes=10)))
    drain(svc)
    for stage, closed, won, day in (("Closed Lost", True, False, 5), ("Negotiation/Review", False, False, 8),
                                    ("Closed Won", True, True, 12)):
        step(svc, clock, START + timedelta(days=day))
        send_salesforce(client, opportunity(stage, closed, won, START + timedelta(days=day)))
        drain(svc)
    assert moves(svc) == [("new", "nurture", "score"), ("nurture", "mql", "score"), ("mql", "sql", "disposition"),
                          ("sql", "lost", "deal"), ("lost", "won", "deal")]


def test_a_call_by_another_rep_or_a_to_do_does_not_meet_the_sla(app, clock):
    client, svc = app
    hot_mql(client, svc, clock)
    due = lead_of(svc, LEAD).sla_due_at
    clock.advance(minutes=20)
    send_salesforce(client, call(OTHER_REP, START + timedelta(minutes=20)))
    send_salesforce(client, outbound_message("Task", "00T1N00003xYzAcUAC", {
        "CreatedDate": sf_stamp(START + timedelta(minutes=25)),
        "LastModifiedDate": sf_stamp(START + timedelta(minutes=25)),
        "OwnerId": OWNER, "Status": "Not Started", "Subject": "Send the price list", "TaskSubtype": "Task",
        "WhoId": LEAD}))
    step(svc, clock, due + timedelta(seconds=1))
    assert lead_of(svc, LEAD).sla_misses == 1
    assert [e.properties["activity_type"] for e in lead_events(svc, LEAD, "rep_activity")] == ["call", "task"]


def test_lead_show_lists_the_deal_and_the_timeline_tells_the_call_and_the_deal(app, clock, config, tmp_path):
    import json

    from tests.test_cli import run

    client, svc = app
    hot_mql(client, svc, clock)
    clock.advance(minutes=20)
    send_salesforce(client, call(OWNER, START + timedelta(minutes=20)))
    send_salesforce(client, converted(START + timedelta(minutes=20)))
    drain(svc)
    won_at = START + timedelta(days=16, hours=7)
    step(svc, clock, won_at)
    send_salesforce(client, opportunity("Closed Won", True, True, won_at))
    drain(svc)
    shown = run(config, "lead", "show", f"salesforce:{LEAD}", "--json", LEADLOOP_RULES=rules_file(tmp_path, [OWNER]))
    assert shown.returncode == 0, shown.stderr
    lead = json.loads(shown.stdout)
    assert lead["deals"] == [{"id": OPPORTUNITY, "stage": "Closed Won", "amount": 12000, "currency": "EUR",
                              "created_at": (START + timedelta(days=2)).isoformat(),
                              "closed_at": (START + timedelta(days=16)).replace(hour=0).isoformat(),  # CloseDate
                              "outcome": "won"}]
    texts = [entry["text"] for entry in lead["timeline"] if entry["what"] == "event"]
    assert f"salesforce/rep_activity call 00T1N00003xYzAbUAC by {OWNER} (outbound, Completed, at " in " ".join(texts)
    assert f"salesforce/deal_change deal {OPPORTUNITY} Closed Won won 12,000.00 EUR" in texts
    assert f"sql -> won (deal) amount=12000.00, currency=EUR, deal_id={OPPORTUNITY}, outcome=won, stage=Closed Won" \
        in [entry["text"] for entry in lead["timeline"] if entry["what"] == "stage"]
    text = run(config, "lead", "show", f"salesforce:{LEAD}").stdout.decode()
    deals = text.split("deals:\n", 1)[1].splitlines()
    assert deals[0].split() == ["DEAL", "STAGE", "OUTCOME", "AMOUNT", "CREATED", "CLOSED"]
    assert OPPORTUNITY in deals[1] and "Closed Won" in deals[1] and "12,000.00 EUR" in deals[1]

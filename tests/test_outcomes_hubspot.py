"""HubSpot deals as outcomes and calls as SLA action, through the signed webhook, the worker and
the (faked) HubSpot API: an open deal makes the lead an SQL, a won one "won" with its amount, a
lost one "lost"; nothing moves a lead back, whatever order the notifications come in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from integration.store.models import Deal, DealLead, Event, OutboxWrite
from tests.conftest import drain, post_events, web_event
from tests.outcomes_support import (
    Clock,
    fake_hubspot,
    hs_association,
    hs_object,
    hs_property,
    lead_events,
    lead_of,
    rules_file,
    send_hubspot,
    transitions,
    world,
)

CONTACT, DEAL, CALL = 100, 7891023, 45012301
OWNER, OTHER_REP = "41", "42"
PROFILE = {"first_name": "Ada", "last_name": "Meyer", "company": "Acme Logistics", "job_title": "Head of Operations",
           "phone": "+49 30 1234567", "country": "DE", "employees": 250, "industry": "Logistics"}
def _a_monday_ahead() -> datetime:
    # SLA checks are RQ jobs scheduled at their due time by the real clock: the journeys happen
    # in the future, so a check is never due before the test moves its own clock there.
    day = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(days=14)
    return day + timedelta(days=(7 - day.weekday()) % 7)


#: A Monday two weeks or more ahead, 10:00 in Berlin (summer time) or 09:00 (winter).
START = _a_monday_ahead()


def iso(moment: datetime) -> str:
    """A time as HubSpot's API writes it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
def clock():
    return Clock(START)


@pytest.fixture
def app_with_reads(config, tmp_path, clock):
    with world(config, rules_file(tmp_path, [OWNER]), clock, HUBSPOT_ACCESS_TOKEN="pat-na1-test") as pair:
        yield pair


@pytest.fixture
def app_without_reads(config, tmp_path, clock):
    with world(config, rules_file(tmp_path, [OWNER]), clock) as pair:
        yield pair


def hot_mql(client, svc, clock, contact: int = CONTACT) -> None:
    """A form and a trial sign-up: a hot MQL handed to OWNER, with a call task due in an hour."""
    email = f"ada{contact}@acme-logistics.example"
    post_events(client, [
        web_event(f"form-{contact}", "form_submit", email=email, crm="hubspot", crm_id=str(contact),
                  occurred_at=(clock.value - timedelta(hours=2)).isoformat(),
                  properties={"form": "trial", "fields": PROFILE}),
        web_event(f"trial-{contact}", "trial_signup", email=email, crm="hubspot", crm_id=str(contact),
                  occurred_at=(clock.value - timedelta(minutes=5)).isoformat())])
    drain(svc)
    lead = lead_of(svc, str(contact))
    assert (lead.stage, lead.owner_id) == ("mql", OWNER)


def later(svc, clock, minutes: float = 1) -> None:
    """Drain after moving the clock on: each rescoring's write is stamped with the clock's time."""
    clock.advance(minutes=minutes)
    drain(svc)


def move_to(svc, clock, moment: datetime) -> None:
    """Move the clock to ``moment`` and run what falls due by then (an SLA check), a minute
    before the test's next step: two jobs never write for one lead at one frozen time."""
    clock.value = moment
    drain(svc)
    clock.advance(minutes=1)


def deal_properties(stage: str, closed: bool, won: bool, amount: str | None = "12000") -> dict[str, str | None]:
    return {"pipeline": "default", "dealstage": stage, "amount": amount, "deal_currency_code": "EUR",
            "createdate": iso(START + timedelta(hours=1)), "closedate": iso(START + timedelta(days=16)),
            "hs_is_closed": str(closed).lower(), "hs_is_closed_won": str(won).lower(), "dealname": "Acme, 200 trucks"}


def moves(svc, crm_id: str = str(CONTACT)) -> list[tuple[str, str, str]]:
    """The lead's stage changes (an SLA reminder keeps the stage: not one)."""
    return [(t.from_stage, t.to_stage, t.cause) for t in transitions(svc, crm_id) if t.from_stage != t.to_stage]


# --- deals, read back from HubSpot ----------------------------------------------------------------

def test_an_open_deal_makes_an_sql_and_winning_it_makes_the_lead_won_with_its_amount(app_with_reads, clock):
    client, svc = app_with_reads
    hot_mql(client, svc, clock)
    opened = START + timedelta(hours=1)
    with fake_hubspot() as hubspot:
        hubspot.deal(DEAL, [CONTACT], **deal_properties("qualifiedtobuy", closed=False, won=False))
        move_to(svc, clock, START + timedelta(hours=2))
        send_hubspot(client, [hs_object("creation", "deal", DEAL, opened),
                              *hs_association("deal", DEAL, CONTACT, opened)])
        later(svc, clock)
        assert lead_of(svc, str(CONTACT)).stage == "sql"
        won_at = START + timedelta(days=16, hours=7)
        # The stage is still called "qualifiedtobuy"-like in some portals: the flags say won.
        hubspot.deal(DEAL, [CONTACT], **deal_properties("8422713", closed=True, won=True))
        move_to(svc, clock, won_at + timedelta(minutes=5))
        send_hubspot(client, [hs_property("deal", DEAL, won_at, "dealstage", "8422713")])
        later(svc, clock)
    assert moves(svc)[-2:] == [("mql", "sql", "deal"), ("sql", "won", "deal")]
    sql, won = transitions(svc, str(CONTACT))[-2:]
    assert (sql.at, won.at) == (opened, won_at)  # the business times of the deal changes
    assert won.detail == {"deal_id": str(DEAL), "stage": "8422713", "amount": "12000.00", "currency": "EUR",
                          "outcome": "won"}
    lead_id = lead_of(svc, str(CONTACT)).id
    with svc.sessions() as session:
        deal = session.scalars(select(Deal)).one()
        assert (deal.outcome, deal.amount, deal.currency, deal.is_won) == ("won", Decimal("12000.00"), "EUR", True)
        assert session.scalars(select(DealLead.lead_id)).one() == lead_id
    update = [w for w in writes(svc) if w.kind == "update"][-1]
    assert update.payload["fields"]["stage"] == "won"  # the rep sees it in leadloop_stage


def writes(svc) -> list[OutboxWrite]:
    with svc.sessions() as session:
        return list(session.scalars(select(OutboxWrite).order_by(OutboxWrite.id)))


def test_a_lost_deal_makes_the_lead_lost_and_a_reopened_deal_won_after_all(app_with_reads, clock):
    client, svc = app_with_reads
    hot_mql(client, svc, clock)
    with fake_hubspot() as hubspot:
        for stage, closed, won, day in (("closedlost", True, False, 3), ("closedwon", True, True, 9)):
            hubspot.deal(DEAL, [CONTACT], **deal_properties(stage, closed=closed, won=won))
            move_to(svc, clock, START + timedelta(days=day))
            send_hubspot(client, [*hs_association("deal", DEAL, CONTACT, START + timedelta(hours=day)),
                                  hs_property("deal", DEAL, clock.value - timedelta(minutes=1), "dealstage", stage)])
            later(svc, clock)
    assert moves(svc) == [("new", "mql", "score"), ("mql", "lost", "deal"), ("lost", "won", "deal")]


def test_a_second_open_deal_keeps_the_lead_an_sql_when_the_first_is_lost(app_with_reads, clock):
    client, svc = app_with_reads
    hot_mql(client, svc, clock)
    with fake_hubspot() as hubspot:
        hubspot.deal(DEAL, [CONTACT], **deal_properties("qualifiedtobuy", closed=False, won=False))
        hubspot.deal(DEAL + 1, [CONTACT], **deal_properties("presentationscheduled", closed=False, won=False))
        move_to(svc, clock, START + timedelta(hours=2))
        send_hubspot(client, [hs_object("creation", "deal", DEAL, clock.value),
                              hs_object("creation", "deal", DEAL + 1, clock.value)])
        later(svc, clock)
        hubspot.deal(DEAL, [CONTACT], **deal_properties("closedlost", closed=True, won=False))
        move_to(svc, clock, START + timedelta(days=2))
        send_hubspot(client, [hs_property("deal", DEAL, clock.value, "dealstage", "closedlost")])
        later(svc, clock)
    assert lead_of(svc, str(CONTACT)).stage == "sql"
    assert moves(svc) == [("new", "mql", "score"), ("mql", "sql", "deal")]


def test_a_deal_on_a_contact_leadloop_does_not_know_creates_no_lead(app_with_reads, clock):
    client, svc = app_with_reads
    with fake_hubspot() as hubspot:
        hubspot.deal(DEAL, [555], **deal_properties("closedwon", closed=True, won=True))
        send_hubspot(client, [hs_object("creation", "deal", DEAL, clock.value)])
        later(svc, clock)
    with svc.sessions() as session:
        assert session.scalars(select(DealLead)).all() == []
        assert session.scalars(select(Event.processed_at).where(Event.kind == "deal_change")).one() is not None


# --- deals from the notifications alone (no read credentials) ---------------------------------------

def test_out_of_order_stage_changes_never_move_a_lead_back(app_without_reads, clock):
    client, svc = app_without_reads
    hot_mql(client, svc, clock)
    t = START + timedelta(hours=1)
    # HubSpot delivers the win first, then, late, the older move to an open stage.
    send_hubspot(client, [*hs_association("deal", DEAL, CONTACT, t),
                          hs_property("deal", DEAL, t + timedelta(days=5), "dealstage", "closedwon"),
                          hs_property("deal", DEAL, t + timedelta(days=5), "amount", "12000")])
    later(svc, clock)
    send_hubspot(client, [hs_property("deal", DEAL, t + timedelta(days=1), "dealstage", "qualifiedtobuy")])
    later(svc, clock)
    # The stage table of the rules file says what closedwon means when HubSpot sent no flags.
    assert moves(svc) == [("new", "mql", "score"), ("mql", "won", "deal")]
    with svc.sessions() as session:
        deal = session.scalars(select(Deal)).one()
        assert (deal.stage, deal.outcome, deal.amount) == ("closedwon", "won", Decimal("12000.00"))


def test_a_late_lost_after_won_is_ignored_and_a_won_after_lost_counts(app_without_reads, clock):
    client, svc = app_without_reads
    hot_mql(client, svc, clock)
    hot_mql(client, svc, clock, contact=200)
    t = START + timedelta(hours=1)
    won, lost = ("dealstage", "closedwon"), ("dealstage", "closedlost")
    # Lead 100: won at day 5 arrives first, lost at day 2 arrives late.
    send_hubspot(client, [*hs_association("deal", DEAL, CONTACT, t),
                          hs_property("deal", DEAL, t + timedelta(days=5), *won)])
    later(svc, clock)
    send_hubspot(client, [hs_property("deal", DEAL, t + timedelta(days=2), *lost)])
    later(svc, clock)
    # Lead 200: lost at day 2, then reopened and won at day 5, in order.
    send_hubspot(client, [*hs_association("deal", DEAL + 1, 200, t),
                          hs_property("deal", DEAL + 1, t + timedelta(days=2), *lost)])
    later(svc, clock)
    send_hubspot(client, [hs_property("deal", DEAL + 1, t + timedelta(days=5), *won)])
    later(svc, clock)
    assert moves(svc) == [("new", "mql", "score"), ("mql", "won", "deal")]
    assert moves(svc, "200") == [("new", "mql", "score"), ("mql", "lost", "deal"), ("lost", "won", "deal")]


def test_a_removed_association_unlinks_and_a_deleted_deal_no_longer_counts(app_without_reads, clock):
    client, svc = app_without_reads
    hot_mql(client, svc, clock)
    t = START + timedelta(hours=1)
    send_hubspot(client, [*hs_association("deal", DEAL, CONTACT, t), *hs_association("deal", DEAL + 1, CONTACT, t),
                          hs_property("deal", DEAL, t, "dealstage", "qualifiedtobuy")])
    later(svc, clock)
    send_hubspot(client, [*hs_association("deal", DEAL + 1, CONTACT, t + timedelta(hours=1), removed=True),
                          hs_object("deletion", "deal", DEAL, t + timedelta(hours=2))])
    later(svc, clock)
    assert lead_of(svc, str(CONTACT)).stage == "sql"  # never back
    with svc.sessions() as session:
        assert session.scalars(select(DealLead.deal_id)).all() == [session.scalars(
            select(Deal.id).where(Deal.crm_id == str(DEAL))).one()]
        assert session.scalars(select(Deal.deleted_at).where(Deal.crm_id == str(DEAL))).one() is not None
    told = lead_events(svc, str(CONTACT), "deal_change")
    assert told[-1].properties["deleted"] is True


# --- calls as SLA action ------------------------------------------------------------------------------

@pytest.mark.parametrize(("owner", "direction", "met"), [
    (OWNER, "OUTBOUND", True),
    (OTHER_REP, "OUTBOUND", False),  # someone else's call does not count for the owner
])
def test_a_call_logged_before_the_sla_is_due_meets_it(app_with_reads, clock, owner, direction, met):
    client, svc = app_with_reads
    hot_mql(client, svc, clock)
    due = lead_of(svc, str(CONTACT)).sla_due_at
    logged = START + timedelta(minutes=20)
    with fake_hubspot() as hubspot:
        hubspot.activity("calls", CALL, [CONTACT], hubspot_owner_id=owner, hs_createdate=iso(logged),
                         hs_timestamp=iso(logged - timedelta(minutes=5)), hs_call_direction=direction,
                         hs_call_status="COMPLETED")
        clock.advance(minutes=21)
        send_hubspot(client, [hs_object("creation", "call", CALL, logged),
                              *hs_association("call", CALL, CONTACT, logged)])
        later(svc, clock)
        clock.value = due + timedelta(seconds=1)
        drain(svc)  # the SLA check runs at the due time
    lead = lead_of(svc, str(CONTACT))
    [call] = lead_events(svc, str(CONTACT), "rep_activity")
    assert call.occurred_at == logged
    assert call.properties == {"activity_id": str(CALL), "activity_type": "call", "owner_id": owner,
                               "logged_at": logged.isoformat(),
                               "activity_at": (logged - timedelta(minutes=5)).isoformat(),
                               "direction": "outbound", "status": "COMPLETED"}
    tasks = [w for w in writes(svc) if w.kind == "task"]
    if met:
        assert (lead.stage, lead.sla_misses, len(tasks)) == ("mql", 0, 1)
        assert [t for t in transitions(svc, str(CONTACT)) if t.cause == "sla"] == []
    else:
        assert (lead.stage, lead.sla_misses, len(tasks)) == ("mql", 1, 2)  # reminded


def test_an_activity_on_an_unknown_contact_waits_for_it_then_counts(app_with_reads, clock):
    client, svc = app_with_reads
    logged = START - timedelta(minutes=1)
    with fake_hubspot() as hubspot:
        hubspot.activity("meetings", CALL, [CONTACT], hubspot_owner_id=OWNER, hs_createdate=iso(logged),
                         hs_meeting_outcome="SCHEDULED")
        send_hubspot(client, [hs_object("creation", "meeting", CALL, logged),
                              *hs_association("meeting", CALL, CONTACT, logged)])
        drain(svc, horizon=0)
        with svc.sessions() as session:
            creation, association = session.scalars(select(Event).where(Event.kind == "rep_activity")
                                                     .order_by(Event.id)).all()
            assert creation.processed_at is not None  # it names no one: done
            assert (association.lead_id, association.processed_at) == (None, None)  # names contact 100: waits
        hot_mql(client, svc, clock)  # the contact's own events come later
        clock.advance(minutes=1)
        drain(svc, horizon=60)  # the waiting event is looked at again
    [meeting] = lead_events(svc, str(CONTACT), "rep_activity")
    assert meeting.properties["activity_type"] == "meeting"

"""Deals as outcomes, pure: what a stage means, a lead's best outcome, the stage it moves to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_support import make_rules

from scoring.lifecycle import LeadState
from scoring.lifecycle_follow_up import RepActivity, sla_action
from scoring.lifecycle_outcomes import DealStage, deal_outcome, lead_outcome, outcome_decision

OUTCOMES = {
    "hubspot": {"pipelines": {"default": {"stages": {"closedwon": "won", "closedlost": "lost",
                                                     "duplicate": "ignore"}},
                              "renewals": {"count": False},
                              "12345": {"stages": {"67890": "won"}}}},
    "salesforce": {"pipelines": {"default": {"stages": {"Closed Won": "won", "Closed Lost": "lost"}}},
                   "other_pipelines": "ignore"},
}
RULES = make_rules(outcomes=OUTCOMES)
AT = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("crm", "deal", "outcome"), [
    # The stage's own flags decide, whatever the stage is called.
    ("hubspot", DealStage("default", "closedwon", is_closed=True, is_won=True), "won"),
    ("hubspot", DealStage("default", "closedwon", is_closed=False, is_won=False), "open"),  # relabelled stage
    ("hubspot", DealStage("default", "4711", is_closed=True, is_won=False), "lost"),
    ("hubspot", DealStage("default", "4711", is_closed=True, is_won=True), "won"),
    ("hubspot", DealStage("default", "appointmentscheduled", is_closed=False, is_won=False), "open"),
    ("salesforce", DealStage(None, "Negotiation/Review", is_closed=False, is_won=False), "open"),
    ("salesforce", DealStage(None, "Verbal yes", is_won=True), "won"),
    # Without flags the table of the deal's pipeline says; a stage it does not list is open.
    ("hubspot", DealStage("default", "closedlost"), "lost"),
    ("hubspot", DealStage("12345", "67890"), "won"),
    ("hubspot", DealStage("default", "somewhere"), "open"),
    ("hubspot", DealStage(None, None), "open"),
    ("salesforce", DealStage(None, "Closed Won"), "won"),
    # What the section excludes is no outcome, flags or not.
    ("hubspot", DealStage("default", "duplicate", is_closed=True, is_won=False), None),
    ("hubspot", DealStage("renewals", "closedwon", is_closed=True, is_won=True), None),
    ("salesforce", DealStage("012000000000AbcAAE", "Closed Won", is_closed=True, is_won=True), None),
    ("hubspot", DealStage("99999", "1", is_closed=True, is_won=True), "won"),  # other_pipelines: count
])
def test_deal_outcome(crm, deal, outcome):
    assert deal_outcome(crm, deal, RULES) == outcome


def test_without_an_outcomes_section_every_deal_counts_by_its_flags():
    rules = make_rules()
    assert deal_outcome("hubspot", DealStage("x", "y", is_closed=True, is_won=False), rules) == "lost"
    assert deal_outcome("hubspot", DealStage("x", "closedwon"), rules) == "open"  # no flags, no table


@pytest.mark.parametrize(("outcomes", "best"), [
    ([], None), ([None], None), (["lost"], "lost"), (["lost", "open"], "open"), (["open", "won", "lost"], "won"),
])
def test_a_lead_takes_the_best_of_its_deals(outcomes, best):
    assert lead_outcome(outcomes) == best


@pytest.mark.parametrize(("stage", "outcome", "to"), [
    ("mql", "open", "sql"), ("accepted", "open", "sql"), ("nurture", "open", "sql"), ("recycled", "won", "won"),
    ("sql", "won", "won"), ("sql", "lost", "lost"), ("lost", "won", "won"), ("disqualified", "won", "won"),
    ("lost", "open", None), ("won", "lost", None), ("won", "open", None), ("won", "won", None),
    ("sql", "open", None), ("disqualified", "open", None),
])
def test_outcomes_move_a_lead_forward_only(stage, outcome, to):
    lead = LeadState(stage=stage, crm="hubspot", stage_changed_at=AT - timedelta(days=1))
    decision = outcome_decision(lead, outcome, RULES, AT, {"deal_id": "7891023", "amount": "12000"})
    if to is None:
        assert (decision.stage, decision.transitions, decision.state) == (stage, (), lead)
        assert decision.notes == (f"deal {outcome} ignored: the lead is already {stage}",)
        return
    (transition,) = decision.transitions
    assert (transition.from_stage, transition.to_stage, transition.cause, transition.at) == (stage, to, "deal", AT)
    assert transition.detail == {"deal_id": "7891023", "amount": "12000", "outcome": outcome}
    assert (decision.state.stage, decision.state.stage_changed_at) == (to, AT)


def test_a_late_deal_change_is_recorded_at_its_time_but_the_stage_time_stays():
    lead = LeadState(stage="mql", stage_changed_at=AT)
    decision = outcome_decision(lead, "open", RULES, AT - timedelta(hours=3))
    assert decision.transitions[0].at == AT - timedelta(hours=3)
    assert decision.state.stage_changed_at == AT


def test_the_crm_fields_of_the_new_stage_come_along():
    rules = make_rules(outcomes=OUTCOMES, crm_stages={"hubspot": {"sql": {"hs_lead_status": "OPEN_DEAL"}}})
    decision = outcome_decision(LeadState(stage="mql", crm="hubspot"), "open", rules, AT)
    assert decision.crm_fields == {"hs_lead_status": "OPEN_DEAL"}


def test_outcome_decision_needs_an_aware_time():
    with pytest.raises(ValueError, match="aware"):
        outcome_decision(LeadState(stage="mql"), "won", RULES, datetime(2026, 5, 4))


# --- rep activity as SLA action -----------------------------------------------------------------

HANDED_OFF = LeadState(stage="mql", owner_id="rep-anna", last_handoff_at=AT, handoff_playbook="call_now",
                       handoff_band="hot")


def activity(kind="call", owner="rep-anna", minutes=30, direction=None):
    return RepActivity(kind, owner, AT + timedelta(minutes=minutes), direction)


@pytest.mark.parametrize(("activities", "met"), [
    ([activity()], True),
    ([activity("meeting")], True),
    ([activity("email", direction="outbound")], True),
    ([activity("email", direction="inbound")], False),  # the lead wrote; the rep did not act
    ([activity(owner="rep-ben")], False),  # someone else's call
    ([activity(minutes=-5)], False),  # before the hand-off
    ([activity("task")], False),  # not among the default actions
    ([], False),
])
def test_a_rep_activity_meets_the_sla(activities, met):
    assert (sla_action(HANDED_OFF, activities, make_rules()) is not None) == met


def test_the_policy_says_which_activities_count():
    rules = make_rules(sla={"default": {"escalation": ["remind"], "max_misses": 2, "actions": ["task"]}})
    assert sla_action(HANDED_OFF, [activity("call"), activity("task", minutes=50)], rules) == \
        activity("task", minutes=50)


def test_the_first_activity_that_counts_is_returned():
    later, earlier = activity(minutes=90), activity("meeting", minutes=10)
    assert sla_action(HANDED_OFF, [later, earlier], make_rules()) == earlier


def test_no_owner_or_no_hand_off_no_sla_action():
    for lead in (LeadState(stage="mql", last_handoff_at=AT), LeadState(stage="mql", owner_id="rep-anna")):
        assert sla_action(lead, [activity()], make_rules()) is None

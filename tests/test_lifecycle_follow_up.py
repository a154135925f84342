"""The hand-off task (due in business time) and the SLA escalation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from lifecycle_support import DAY, berlin, make_result, make_rules

from scoring.lifecycle import LeadState
from scoring.lifecycle_follow_up import on_sla_due, owner_calendar, plan_task
from scoring.routing import Handoff

RULES = make_rules()
LEAD_FIELDS = {"first_name": "Jana", "last_name": "Roth", "email": "jana@acme.de", "company": "Acme"}


def test_call_now_task_is_due_in_one_working_hour() -> None:
    task = plan_task("call_now", "Europe/Berlin", "DE", berlin(2026, 3, 6, 16, 30), make_result("hot"),
                     "Registered for the trial (2026-03-06 16:20)", RULES, lead_fields=LEAD_FIELDS)
    assert task is not None
    assert task.due_at.isoformat() == "2026-03-09T09:30:00+01:00"
    assert (task.priority, task.type, task.playbook) == ("high", "call", "call_now")
    assert task.subject == "Call Jana Roth now (90)"
    assert task.body == (
        "Hot lead, score 90\n\nWhy:\n"
        "- +40 registered for the trial (today)\n"
        "- +25 asked to be contacted (today)\n"
        "- +15 company has 1,200 employees\n\n"
        "Latest activity: Registered for the trial (2026-03-06 16:20)\n\n"
        "Score 90 (hot, grade A), rules v7"
    )


def test_individual_follow_up_is_due_in_one_working_day() -> None:
    task = plan_task("individual_follow_up", None, None, berlin(2026, 3, 6, 16, 0), make_result("warm"),
                     None, RULES, lead_fields={"email": "jana@acme.de"})
    assert task is not None
    assert task.due_at.isoformat() == "2026-03-09T16:00:00+01:00"  # Friday 16:00 + 8 working hours
    assert (task.priority, task.type) == ("normal", "email")
    assert task.subject == "Follow up with jana@acme.de (warm)"
    assert "Latest activity" not in task.body


@pytest.mark.parametrize("playbook", ["nurture_only", "automated_follow_up"])
def test_playbooks_without_a_task(playbook: str) -> None:
    start = berlin(2026, 3, 6, 16, 0)
    assert plan_task(playbook, None, None, start, make_result("cool"), None, RULES) is None


def test_due_time_follows_the_owners_calendar() -> None:
    # erin works in New York; 3 July 2026 is the observed Independence Day.
    tz, country = owner_calendar("erin", RULES)
    assert (tz, country) == ("America/New_York", "US")
    start = berlin(2026, 7, 2, 22, 30)  # 16:30 in New York
    task = plan_task("call_now", tz, country, start, make_result("hot"), None, RULES)
    assert task is not None and task.due_at.isoformat() == "2026-07-06T09:30:00-04:00"


def test_owner_calendar_fallbacks() -> None:
    assert owner_calendar("someone-else", RULES) == ("Europe/Berlin", "DE")
    assert owner_calendar("erin", RULES, owner_tz="Europe/London", owner_country="GB") == \
        ("Europe/London", "GB")
    assert owner_calendar(None, RULES) == ("Europe/Berlin", "DE")


def test_subject_is_cut_to_255_characters() -> None:
    task = plan_task("call_now", None, None, berlin(2026, 3, 9, 10), make_result("hot"), None, RULES,
                     lead_fields={"first_name": "J" * 300})
    assert task is not None and len(task.subject) == 255


NOW = berlin(2026, 3, 10, 10, 0)


def mql_lead(**kwargs: Any) -> LeadState:
    values: dict[str, Any] = {"stage": "mql", "crm": "hubspot", "owner_id": "anna", "team": "dach",
                              "fields": {"country": "DE"}, "handoff_playbook": "individual_follow_up",
                              "handoff_band": "warm", "last_handoff_at": NOW - DAY}
    values.update(kwargs)
    return LeadState(**values)


@pytest.mark.parametrize(("lead", "shows_action", "action", "misses"), [
    (mql_lead(stage="accepted"), False, "none", 0),
    (mql_lead(stage="recycled"), False, "none", 0),
    (mql_lead(), True, "met", 0),
    (mql_lead(sla_misses=1), True, "met", 1),
    (mql_lead(), False, "remind", 1),
    (mql_lead(sla_misses=1), False, "reassign", 2),
    (mql_lead(sla_misses=2), False, "recycle", 3),
    # hot: [reassign], max 2 -> first miss reassigns, second recycles.
    (mql_lead(handoff_playbook="call_now", handoff_band="hot"), False, "reassign", 1),
    (mql_lead(handoff_playbook="call_now", handoff_band="hot", sla_misses=1), False, "recycle", 2),
    # no playbook or band entry -> default: [remind], max 2.
    (mql_lead(handoff_playbook="automated_follow_up", handoff_band="cool"), False, "remind", 1),
    (mql_lead(handoff_playbook="automated_follow_up", handoff_band="cool", sla_misses=1), False,
     "recycle", 2),
])
def test_sla_steps(lead: LeadState, shows_action: bool, action: str, misses: int) -> None:
    decision = on_sla_due(lead, shows_action, RULES, NOW)
    assert (decision.action, decision.sla_misses) == (action, misses)
    # A recycle starts the count afresh for the next hand-off.
    assert decision.state.sla_misses == (0 if action == "recycle" else misses)


def test_sla_remind_plans_a_new_task_for_the_same_rep() -> None:
    decision = on_sla_due(mql_lead(), False, RULES, NOW)
    assert (decision.playbook, decision.handoff, decision.transitions) == ("individual_follow_up", None, ())
    assert decision.state.owner_id == "anna"


def test_sla_reassign_skips_the_rep_who_missed_it() -> None:
    decision = on_sla_due(mql_lead(sla_misses=1), False, RULES, NOW)
    assert decision.handoff == Handoff(route="sla_reassign", team="dach", exclude=("anna",))
    assert decision.state.last_handoff_at == NOW
    assert decision.transitions == ()
    no_team = on_sla_due(mql_lead(sla_misses=1, team=None, fields={"country": "US", "employees": 5000}),
                         False, RULES, NOW)
    assert no_team.handoff == Handoff(route="sla_reassign", team="enterprise", exclude=("anna",))


def test_sla_recycle_sends_the_lead_back_without_its_owner() -> None:
    decision = on_sla_due(mql_lead(sla_misses=2), False, RULES, NOW)
    assert [(t.from_stage, t.to_stage, t.cause) for t in decision.transitions] == [("mql", "recycled", "sla")]
    assert decision.transitions[0].detail == {"sla_misses": 3, "reason": "no_response", "recycle_count": 1}
    assert decision.recycle is not None
    assert (decision.recycle.reason, decision.recycle.cooldown_until) == ("no_response", NOW + 14 * DAY)
    assert decision.state.owner_id is None
    assert (decision.state.sla_misses, decision.state.recycle_count) == (0, 1)
    assert decision.crm_fields == {"hs_lead_status": "BAD_TIMING"}


def test_sla_recycle_past_the_maximum_disqualifies() -> None:
    decision = on_sla_due(mql_lead(sla_misses=2, recycle_count=2), False, RULES, NOW)
    assert (decision.action, decision.state.stage, decision.disqualified) == ("recycle", "disqualified", True)


def test_sla_is_deterministic() -> None:
    lead = mql_lead(sla_misses=1)
    assert on_sla_due(lead, False, RULES, NOW) == on_sla_due(lead, False, RULES, NOW)
    later = NOW + timedelta(hours=1)
    assert on_sla_due(lead, False, RULES, later).state.last_handoff_at == later

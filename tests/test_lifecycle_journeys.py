"""Whole journeys through the loop as sequences of decide() calls, done the way the job does them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from lifecycle_support import DAY, berlin, make_result, make_rules

from scoring.lifecycle import Decision, LeadState, decide, disposition_for
from scoring.lifecycle_follow_up import on_sla_due, owner_calendar, plan_task
from scoring.routing import assign_owner

RULES = make_rules()
HOUR = timedelta(hours=1)


class Job:
    """What the queue job does around the pure functions: store state, rotate, plan tasks."""

    def __init__(self, lead: LeadState) -> None:
        self.lead = lead
        self.rotation: dict[str, dict[str, float]] = {}
        self.history: list[tuple[str, str, str]] = []
        self.tasks: list[Any] = []

    def record(self, decision: Any) -> None:
        self.lead = decision.state
        self.history += [(t.from_stage, t.to_stage, t.cause) for t in decision.transitions]

    def assign(self, decision: Any, now: datetime, latest_activity: str | None = None) -> str | None:
        handoff = decision.handoff
        owner, self.rotation[handoff.team or ""] = assign_owner(handoff, RULES.handoff,
                                                                self.rotation.get(handoff.team or "", {}))
        tz, country = owner_calendar(owner, RULES)
        self.lead = replace(self.lead, owner_id=owner, owner_tz=tz, owner_country=country)
        task = plan_task(decision.playbook, tz, country, now, self.last_result, latest_activity, RULES,
                         lead_fields=self.lead.fields)
        self.tasks.append(task)
        return owner

    def scored(self, result: Any, now: datetime, activity: str | None = None) -> Decision:
        self.last_result = result
        if activity:
            self.lead = replace(self.lead, last_engagement_at=now)
        decision = decide(self.lead, result, None, RULES, now)
        self.record(decision)
        if decision.handoff:
            self.assign(decision, now, activity)
        return decision

    def crm_changed(self, crm_field: str, value: str, now: datetime) -> Decision:
        disposition = disposition_for(self.lead.crm or "", crm_field, value, RULES)
        decision = decide(self.lead, None, disposition, RULES, now)
        self.record(decision)
        return decision


def dach_lead(**kwargs: Any) -> LeadState:
    fields = {"country": "DE", "first_name": "Jana", "last_name": "Roth"}
    return LeadState(crm="hubspot", fields=fields, **kwargs)


def test_cold_download_stays_in_nurture() -> None:
    job = Job(dach_lead())
    first = job.scored(make_result("cold"), berlin(2026, 3, 2, 10), activity="Downloaded the guide")
    assert first.crm_fields == {"hs_lead_status": "OPEN"}
    job.scored(make_result("cool"), berlin(2026, 3, 9, 10), activity="Opened the newsletter")
    assert job.lead.stage == "nurture"
    assert job.history == [("new", "nurture", "score")]
    assert job.tasks == [] and job.lead.owner_id is None


def test_hot_trial_signup_is_handed_off_accepted_and_won() -> None:
    # Thursday before Easter, 16:30: Good Friday, the weekend and Easter Monday are not working time.
    signup = berlin(2026, 4, 2, 16, 30)
    jobs = [Job(dach_lead()) for _ in range(4)]
    rotation: dict[str, dict[str, float]] = {}
    owners = []
    for job in jobs:  # four leads through the same DACH rotation
        job.rotation = rotation
        decision = job.scored(make_result("hot"), signup, activity="Registered for the trial")
        assert decision.handoff is not None and decision.handoff.team == "dach"
        owners.append(job.lead.owner_id)
    assert owners == ["anna", "ben", "carla", "anna"]

    job = jobs[0]
    task = job.tasks[0]
    assert task.due_at.isoformat() == "2026-04-07T09:30:00+02:00"
    assert (task.type, task.priority, task.subject) == ("call", "high", "Call Jana Roth now (90)")
    assert "Latest activity: Registered for the trial" in task.body

    # Each rep's own holidays: Good Friday is no holiday in Austria (ben), but is in Zurich (carla).
    assert jobs[1].tasks[0].due_at.isoformat() == "2026-04-03T09:30:00+02:00"
    assert jobs[2].tasks[0].due_at.isoformat() == "2026-04-07T09:30:00+02:00"

    job.crm_changed("hs_lead_status", "IN_PROGRESS", berlin(2026, 4, 7, 9, 10))
    assert on_sla_due(job.lead, False, RULES, berlin(2026, 4, 7, 9, 30)).action == "none"
    job.scored(make_result("cold"), berlin(2026, 4, 8, 10))  # a falling score changes nothing now
    job.crm_changed("lifecyclestage", "opportunity", berlin(2026, 4, 20, 11))
    job.crm_changed("lifecyclestage", "customer", berlin(2026, 5, 4, 15))
    job.crm_changed("hs_lead_status", "CONNECTED", berlin(2026, 5, 5, 8))  # late, older event
    assert job.lead.stage == "won"
    assert job.history == [("new", "mql", "score"), ("mql", "accepted", "disposition"),
                           ("accepted", "sql", "disposition"), ("sql", "won", "disposition")]
    assert job.lead.owner_id == "anna"


def test_warm_lead_misses_the_sla_is_reassigned_then_recycled() -> None:
    job = Job(dach_lead())
    handoff_at = berlin(2026, 3, 2, 11)  # Monday
    job.scored(make_result("warm"), handoff_at, activity="Asked for a demo")
    assert (job.lead.stage, job.lead.owner_id) == ("mql", "anna")
    assert job.tasks[0].due_at == berlin(2026, 3, 3, 11)  # one working day

    first = on_sla_due(job.lead, False, RULES, berlin(2026, 3, 3, 11))
    assert first.action == "remind"
    job.lead = first.state
    job.tasks.append(plan_task(first.playbook, job.lead.owner_tz, job.lead.owner_country,
                               berlin(2026, 3, 3, 11), job.last_result, None, RULES))
    assert job.tasks[-1].due_at == berlin(2026, 3, 4, 11)

    second = on_sla_due(job.lead, False, RULES, berlin(2026, 3, 4, 11))
    assert second.action == "reassign"
    job.record(second)
    assert job.assign(second, berlin(2026, 3, 4, 11)) == "ben"

    third = on_sla_due(job.lead, False, RULES, berlin(2026, 3, 5, 11))
    assert third.action == "recycle"
    job.record(third)
    assert job.history == [("new", "mql", "score"), ("mql", "recycled", "sla")]
    assert (job.lead.stage, job.lead.owner_id, job.lead.recycle_reason) == ("recycled", None, "no_response")
    assert third.recycle is not None and third.recycle.score_penalty == 10
    assert third.crm_fields == {"hs_lead_status": "BAD_TIMING"}


def test_not_ready_cools_down_then_needs_fresh_engagement() -> None:
    job = Job(dach_lead())
    job.scored(make_result("hot"), berlin(2026, 3, 2, 10), activity="Registered for the trial")
    rejected_at = berlin(2026, 3, 3, 14)
    decision = job.crm_changed("hs_lead_status", "BAD_TIMING", rejected_at)
    assert decision.recycle is not None and decision.recycle.cooldown_until == rejected_at + 30 * DAY
    assert job.lead.engagement_reset_at == rejected_at

    # Within the cooldown a hot score does not make an MQL, even with new activity.
    blocked = job.scored(make_result("hot"), rejected_at + 10 * DAY, activity="Visited pricing")
    assert blocked.transitions == () and job.lead.stage == "recycled"
    assert blocked.notes[0].startswith("not an MQL yet: in cooldown until")

    # After the cooldown, a lead whose last engagement predates the recycle stays in nurture.
    quiet = replace(job.lead, last_engagement_at=rejected_at - HOUR)
    still_quiet = decide(quiet, make_result("hot"), None, RULES, rejected_at + 31 * DAY)
    assert [t.to_stage for t in still_quiet.transitions] == ["nurture"]
    assert still_quiet.handoff is None

    # Engagement after the cooldown start (the pricing visit, or this call request) counts.
    again = job.scored(make_result("hot"), rejected_at + 32 * DAY, activity="Asked for a call")
    assert [(t.from_stage, t.to_stage, t.cause) for t in again.transitions] == [
        ("recycled", "nurture", "cooldown_expired"), ("nurture", "mql", "score")]
    assert job.lead.recycle_count == 1 and job.lead.stage == "mql"
    assert job.lead.owner_id == "anna"  # kept: the file keeps existing owners


def test_bad_data_is_disqualified_for_good() -> None:
    job = Job(dach_lead())
    job.scored(make_result("hot"), berlin(2026, 3, 2, 10), activity="Filled the contact form")
    decision = job.crm_changed("hs_lead_status", "UNQUALIFIED", berlin(2026, 3, 2, 15))
    assert (decision.disqualified, decision.disqualify_reason) == (True, "bad_data")
    job.scored(make_result("hot"), berlin(2026, 3, 9, 10), activity="Filled the contact form again")
    job.crm_changed("hs_lead_status", "IN_PROGRESS", berlin(2026, 3, 10, 10))
    assert job.lead.stage == "disqualified"
    assert job.history == [("new", "mql", "score"), ("mql", "disqualified", "disposition")]


def test_too_many_recycles_disqualify() -> None:
    job = Job(dach_lead())
    now = berlin(2026, 1, 5, 10)
    for _ in range(3):
        job.scored(make_result("hot"), now, activity="Came back")
        job.crm_changed("hs_lead_status", "BAD_TIMING", now + HOUR)
        now += 31 * DAY
    assert job.lead.stage == "disqualified"
    assert job.history[-1] == ("mql", "disqualified", "disposition")
    assert job.lead.recycle_count == 2  # max_recycles: 2 -> the third rejection disqualifies

"""After a hand-off: the rep's task (due in business time) and the SLA escalation when nobody acts.

Pure. ``plan_task`` needs the owner, so the caller runs it after ``scoring.routing.assign_owner``.
``on_sla_due`` runs when a hand-off's task falls due (the caller schedules it at the task's due
time and checks the CRM for a call, email or status change first; ``sla_action`` says whether a
rep activity logged in the CRM counts).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from scoring.business_time import add_business_time
from scoring.lifecycle import Decision, LeadState, RecycleInfo, StageTransition, recycle_lead
from scoring.lifecycle_rules import LifecycleRules
from scoring.routing import Handoff, route_lead

if TYPE_CHECKING:
    from scoring import ScoreResult

#: How many of the result's reasons (strongest first) the task body lists.
TASK_REASONS = 3
#: Salesforce's Task.Subject holds 255 characters; HubSpot's hs_task_subject more.
SUBJECT_MAX = 255


@dataclass(frozen=True)
class TaskPlan:
    """A follow-up task for the owner; maps one to one onto ``connectors.base.TaskSpec``."""

    subject: str
    body: str
    #: Aware, in the owner's timezone.
    due_at: datetime
    #: ``high`` / ``normal`` / ``low``.
    priority: str
    #: ``call`` / ``email`` / ``todo``.
    type: str
    playbook: str


@dataclass(frozen=True)
class SlaDecision:
    """What to do when a hand-off's SLA falls due; the caller records it."""

    #: ``none`` (no longer with sales' inbox), ``met`` (the CRM shows action), ``remind``,
    #: ``reassign`` or ``recycle``.
    action: str
    state: LeadState
    sla_misses: int
    transitions: tuple[StageTransition, ...] = ()
    #: For ``reassign``: route again, skipping the current owner (``assign_owner``).
    handoff: Handoff | None = None
    #: For ``remind`` / ``reassign``: plan the new task with this playbook (``plan_task``).
    playbook: str | None = None
    recycle: RecycleInfo | None = None
    crm_fields: Mapping[str, str] = field(default_factory=dict)
    disqualified: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RepActivity:
    """A call, email, meeting or task logged in the CRM on the lead (vendor-neutral)."""

    #: ``call``, ``email``, ``meeting`` or ``task``.
    type: str
    #: The CRM user who owns it (the rep who logged it), if known.
    owner_id: str | None
    #: When it was logged in the CRM (aware).
    logged_at: datetime
    #: ``inbound`` for what the lead sent (an email reply), ``outbound``, or None if unknown.
    direction: str | None = None


def sla_action(lead: LeadState, activities: Iterable[RepActivity], rules: LifecycleRules) -> RepActivity | None:
    """Return the first rep activity that meets the lead's hand-off SLA, or None.

    It counts when its type is among the ``actions`` of the hand-off's SLA policy (playbook, else
    band, else ``default``), it was logged by the lead's owner at or after the last hand-off (a
    reassignment is a new hand-off), and it is not inbound (the lead writing is not the rep acting).
    """
    if lead.owner_id is None or lead.last_handoff_at is None:
        return None
    actions = rules.sla_for(lead.handoff_playbook, lead.handoff_band).actions
    found = [activity for activity in activities
             if activity.type in actions and activity.owner_id == lead.owner_id
             and activity.logged_at >= lead.last_handoff_at and activity.direction != "inbound"]
    return min(found, key=lambda activity: activity.logged_at, default=None)


def owner_calendar(owner_id: str | None, rules: LifecycleRules, *, owner_tz: str | None = None,
                   owner_country: str | None = None) -> tuple[str, str | None]:
    """Return the owner's ``(timezone, holiday country)``: as given, else their team entry,
    else the ``working_hours`` defaults."""
    member = rules.handoff.member(owner_id)
    tz = owner_tz or (member.timezone if member else None) or rules.working_hours.timezone
    country = owner_country or (member.country if member else None) or rules.working_hours.country
    return tz, country


def plan_task(playbook: str, owner_tz: str | None, owner_country: str | None, start: datetime,
              result: ScoreResult, latest_activity: str | None, rules: LifecycleRules, *,
              lead_fields: Mapping[str, Any] | None = None) -> TaskPlan | None:
    """Return the task a playbook asks for, due ``playbook.due`` working time after ``start``.

    None when the playbook creates no task. ``owner_tz``/``owner_country`` default to the
    ``working_hours`` section's. The body lists the top reasons and the latest activity (a line
    the caller writes, e.g. ``Registered for the trial (2026-04-02 16:20)``). Raises ``KeyError``
    for an unknown playbook and ``ValueError`` for a naive ``start``.
    """
    settings = rules.playbooks[playbook]
    if not settings.task:
        return None
    hours = rules.working_hours
    due_at = add_business_time(start, settings.due, tz=owner_tz or hours.timezone,
                               country=owner_country or hours.country,
                               hours=(hours.opens, hours.closes), workdays=hours.workdays)
    values = _subject_values(result, playbook, lead_fields or {})
    subject = settings.subject.format_map(values)[:SUBJECT_MAX]
    return TaskPlan(subject, _task_body(result, latest_activity), due_at, settings.priority, settings.type,
                    playbook)


def _subject_values(result: ScoreResult, playbook: str, lead_fields: Mapping[str, Any]) -> dict[str, str]:
    def text(name: str) -> str:
        value = lead_fields.get(name)
        return str(value).strip() if value is not None else ""

    name = " ".join(part for part in (text("first_name"), text("last_name")) if part)
    return {"name": name or text("email") or "new lead", "company": text("company"), "email": text("email"),
            "score": f"{result.score:g}", "band": result.band, "grade": result.grade, "playbook": playbook,
            "summary": result.summary}


def _task_body(result: ScoreResult, latest_activity: str | None) -> str:
    lines = [result.summary, "", "Why:"]
    lines += [f"- {reason.text}" for reason in result.reasons[:TASK_REASONS]]  # texts carry their points
    if latest_activity:
        lines += ["", f"Latest activity: {latest_activity}"]
    lines += ["", f"Score {result.score:g} ({result.band}, grade {result.grade}),"
                  f" rules {result.rules_version}"]
    return "\n".join(lines)


def on_sla_due(lead: LeadState, crm_shows_action: bool, rules: LifecycleRules, now: datetime) -> SlaDecision:
    """Return the next SLA step for a handed-off lead whose task fell due at ``now``.

    Nothing to do unless the lead is still an MQL (sales accepted or it moved on) or when the CRM
    shows action. Otherwise the miss is counted and the SLA policy of the hand-off's playbook
    (else band, else ``default``) gives the step: the n-th miss takes the n-th escalation step
    (the last one repeats), and the ``max_misses``-th miss always recycles with reason
    ``no_response`` (dropping the owner, so the next hand-off routes anew).
    """
    if lead.stage != "mql":
        return SlaDecision("none", lead, lead.sla_misses, notes=(f"no SLA: the lead is {lead.stage}",))
    if crm_shows_action:
        return SlaDecision("met", lead, lead.sla_misses)
    misses = lead.sla_misses + 1
    policy = rules.sla_for(lead.handoff_playbook, lead.handoff_band)
    step = policy.escalation[min(misses, len(policy.escalation)) - 1]
    if misses >= policy.max_misses:
        step = "recycle"
    if step == "recycle":
        return _from_recycle(recycle_lead(lead, "no_response", cause="sla", rules=rules, now=now,
                                          detail={"sla_misses": misses}, clear_owner=True), misses)
    state = replace(lead, sla_misses=misses)
    if step == "remind":
        return SlaDecision("remind", state, misses, playbook=lead.handoff_playbook)
    exclude = (lead.owner_id,) if lead.owner_id else ()
    if lead.team:
        handoff = Handoff(route="sla_reassign", team=lead.team, exclude=exclude)
    else:
        handoff = replace(route_lead(lead.fields, rules.handoff), route="sla_reassign", exclude=exclude)
    return SlaDecision("reassign", replace(state, last_handoff_at=now), misses, handoff=handoff,
                       playbook=lead.handoff_playbook)


def _from_recycle(decision: Decision, misses: int) -> SlaDecision:
    return SlaDecision("recycle", decision.state, misses, transitions=decision.transitions,
                       recycle=decision.recycle, crm_fields=decision.crm_fields,
                       disqualified=decision.disqualified, notes=decision.notes)

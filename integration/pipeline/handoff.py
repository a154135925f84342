"""A hand-off, applied: the owner (round-robin state row-locked), the rep's task, the SLA check,
and for a web-only lead the creation of its CRM record (the rules' ``handoff.create_in``).

Runs inside the caller's per-lead transaction (``integration.pipeline.processing``), so a crash
applies all or nothing. The decisions themselves are pure (``scoring.lifecycle``,
``scoring.routing``, ``scoring.lifecycle_follow_up``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.pipeline.outbox import CrmChanges, latest_create, queue_create, queue_task
from integration.services import Services
from integration.store.models import Event, Lead, RotationState
from scoring import ScoreResult
from scoring.lifecycle import crm_fields_for
from scoring.lifecycle_follow_up import owner_calendar, plan_task
from scoring.lifecycle_rules import LifecycleRules
from scoring.routing import Handoff, assign_owner

log = logging.getLogger(__name__)

#: The RQ job that checks a hand-off's SLA at its due time (``integration.pipeline.jobs``).
SLA_CHECK_JOB = "integration.pipeline.jobs.sla_check"


def hand_off(session: Session, svc: Services, lead: Lead, handoff: Handoff, playbook: str, result: ScoreResult,
             latest_activity: str | None, now: datetime, changes: CrmChanges, at: datetime | None = None) -> None:
    """Assign the owner, queue the task, schedule the SLA check.

    ``at`` is the hand-off's business time (the event that made the lead an MQL; default ``now``):
    the hand-off is recorded then, and the task's due time (the SLA) counts from then, unless that
    due time has already passed when the hand-off is made (a batch delivered late): the task
    reaches the rep only now, so its SLA counts from now and no escalation fires for time the rep
    never had (docs/operations.md).
    """
    at = at or now
    rules = svc.rules.lifecycle
    owner = _assign(session, rules, handoff)
    if owner and not handoff.keeps_owner:
        changes.owner_id = owner  # written to the CRM with this transition only
    lead.owner_id = owner or lead.owner_id
    lead.team = handoff.team or lead.team
    lead.last_handoff_at, lead.handoff_playbook, lead.handoff_band = at, playbook, result.band
    lead.handoff_status = (lead.fields or {}).get("lead_status")
    tz, country = owner_calendar(lead.owner_id, rules)
    lead_fields = {**(lead.fields or {}), "email": lead.email}
    plan = plan_task(playbook, tz, country, at, result, latest_activity, rules, lead_fields=lead_fields)
    if plan is not None and at < now and plan.due_at <= now:
        plan = plan_task(playbook, tz, country, now, result, latest_activity, rules, lead_fields=lead_fields)
    record_crm = lead.crm or record_being_created(session, svc, lead, result, now, changes)
    if plan is None:
        lead.sla_due_at = None
        return
    lead.sla_due_at = plan.due_at
    if record_crm:
        queue_task(session, lead, {"subject": plan.subject, "body": plan.body, "due_at": plan.due_at.isoformat(),
                                   "priority": plan.priority, "type": plan.type, "owner_id": lead.owner_id,
                                   "playbook": plan.playbook}, now, crm=record_crm)
        changes.task_queued = True
    schedule_sla_check(svc, lead.id, plan.due_at)


def record_being_created(session: Session, svc: Services, lead: Lead, result: ScoreResult, now: datetime,
                         changes: CrmChanges) -> str | None:
    """The CRM where this web-only lead's record is being created, queueing the create at its
    first hand-off (``handoff.create_in``); None when it gets no record (no ``create_in``, no
    email, or a create the CRM refused: ``leadloop dead-letters --retry`` tries that again)."""
    crm = svc.rules.lifecycle.handoff.create_in
    if crm is None or not lead.email:
        return None
    earlier = latest_create(session, lead.id)
    if earlier is not None and earlier.crm == crm and earlier.status == "failed":
        return None
    # A create recorded in shadow mode made nothing: once writes are live, the next hand-off makes it.
    underway = earlier is not None and earlier.crm == crm and (
        earlier.status == "pending" or (earlier.status == "shadow" and not svc.live_writes))
    if not underway:
        stage_fields = crm_fields_for(crm, lead.stage, svc.rules.lifecycle)
        queue_create(session, lead, crm, result, now, CrmChanges(crm_fields=stage_fields, owner_id=lead.owner_id))
    changes.record_crm = crm
    return crm


def _assign(session: Session, rules: LifecycleRules, handoff: Handoff) -> str | None:
    if not handoff.team:
        owner, _ = assign_owner(handoff, rules.handoff, {})
        return owner
    stmt = select(RotationState).where(RotationState.team == handoff.team)
    if session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).first()
    if row is None:
        row = RotationState(team=handoff.team, state={}, picks=0)
        session.add(row)
        session.flush()  # a concurrent first pick hits the primary key and the job retries
    owner, state = assign_owner(handoff, rules.handoff, dict(row.state or {}))
    row.state, row.picks = state, (row.picks or 0) + 1
    return owner


def schedule_sla_check(svc: Services, lead_id: int, due_at: datetime) -> None:
    """RQ runs the check at the due time; the cron sweep catches any job Redis lost."""
    try:
        svc.queue.enqueue_at(due_at, SLA_CHECK_JOB, lead_id, due_at.isoformat(),
                             job_id=f"sla-{lead_id}-{int(due_at.timestamp())}", result_ttl=86400,
                             description=f"SLA check lead {lead_id}")
    except Exception:  # noqa: BLE001 - Redis down: the cron sweep will find the due SLA
        log.warning("could not schedule the SLA check of lead %s; the cron sweep will", lead_id)


def latest_activity_line(session: Session, lead: Lead) -> str | None:
    """One line for the task body: the lead's most recent activity."""
    row = session.execute(select(Event.kind, Event.occurred_at, Event.properties)
                          .where(Event.lead_id == lead.id, Event.source == "web")
                          .order_by(Event.occurred_at.desc()).limit(1)).first()
    if row is None:
        return None
    kind, at, props = row
    what = (props or {}).get("asset") or (props or {}).get("url") or ""
    return f"{kind.replace('_', ' ')} {what} ({at:%Y-%m-%d %H:%M} UTC)".replace("  ", " ")

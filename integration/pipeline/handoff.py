"""A hand-off, applied: the owner (round-robin state row-locked), the rep's task, the SLA check.

Runs inside the caller's per-lead transaction (``integration.pipeline.processing``), so a crash
applies all or nothing. The decisions themselves are pure (``scoring.lifecycle``,
``scoring.routing``, ``scoring.lifecycle_follow_up``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.pipeline.outbox import CrmChanges, queue_task
from integration.services import Services
from integration.store.models import Event, Lead, RotationState
from scoring import ScoreResult
from scoring.lifecycle_follow_up import owner_calendar, plan_task
from scoring.lifecycle_rules import LifecycleRules
from scoring.routing import Handoff, assign_owner

log = logging.getLogger(__name__)

#: The RQ job that checks a hand-off's SLA at its due time (``integration.pipeline.jobs``).
SLA_CHECK_JOB = "integration.pipeline.jobs.sla_check"


def hand_off(session: Session, svc: Services, lead: Lead, handoff: Handoff, playbook: str, result: ScoreResult,
             latest_activity: str | None, now: datetime, changes: CrmChanges) -> None:
    """Assign the owner, queue the task, schedule the SLA check."""
    rules = svc.rules.lifecycle
    owner = _assign(session, rules, handoff)
    if owner and not handoff.keeps_owner:
        changes.owner_id = owner  # written to the CRM with this transition only
    lead.owner_id = owner or lead.owner_id
    lead.team = handoff.team or lead.team
    lead.last_handoff_at, lead.handoff_playbook, lead.handoff_band = now, playbook, result.band
    lead.handoff_status = (lead.fields or {}).get("lead_status")
    tz, country = owner_calendar(lead.owner_id, rules)
    plan = plan_task(playbook, tz, country, now, result, latest_activity, rules,
                     lead_fields={**(lead.fields or {}), "email": lead.email})
    if plan is None:
        lead.sla_due_at = None
        return
    lead.sla_due_at = plan.due_at
    if lead.crm:
        queue_task(session, lead, {"subject": plan.subject, "body": plan.body, "due_at": plan.due_at.isoformat(),
                                   "priority": plan.priority, "type": plan.type, "owner_id": lead.owner_id,
                                   "playbook": plan.playbook}, now)
        changes.task_queued = True
    schedule_sla_check(svc, lead.id, plan.due_at)


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

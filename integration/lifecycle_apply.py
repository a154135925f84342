"""Applying the pure lifecycle decisions (``scoring.lifecycle``) to stored leads.

The decisions are pure; this module loads a lead's state, records each transition with the
rules version, routes hand-offs with the rotation state row-locked in the database, queues the
rep's task and the CRM status fields in the outbox, and schedules the SLA check with RQ.
Everything happens inside the caller's per-lead transaction, so a crash applies all or nothing.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.base import CrmError
from integration import clock
from integration.models import Event, Lead, OutboxWrite, RotationState, Transition
from scoring import ScoreResult
from scoring.lifecycle import Decision, LeadState, decide, disposition_for
from scoring.lifecycle_follow_up import on_sla_due, owner_calendar, plan_task
from scoring.routing import Handoff, assign_owner

log = logging.getLogger(__name__)

#: Canonical fields that carry sales feedback (HubSpot hs_lead_status / lifecyclestage,
#: Salesforce Status); changes to them are translated through the rules' ``feedback`` section.
STATUS_FIELDS = ("lead_status", "lifecycle_stage")
#: The cron safety net for SLA checks whose scheduled job was lost.
SLA_SWEEP_SECONDS = 300

STATE_COLUMNS = ("stage", "owner_id", "team", "recycle_count", "recycle_reason", "recycled_at", "cooldown_until",
                 "engagement_reset_at", "score_penalty", "last_engagement_at", "sla_misses", "last_handoff_at",
                 "handoff_playbook", "handoff_band", "stage_changed_at")


def lead_state(lead: Lead) -> LeadState:
    """The lead's place in the loop, as the pure lifecycle sees it."""
    fields = dict(lead.fields or {})
    values = {name: getattr(lead, name) for name in STATE_COLUMNS}
    values["owner_id"] = values["owner_id"] or fields.get("owner_id") or None
    values["score_penalty"] = int(values["score_penalty"] or 0)
    return LeadState(crm=lead.crm, fields={**fields, "email": lead.email}, **values)


def store_state(lead: Lead, state: LeadState) -> None:
    for name in STATE_COLUMNS:
        setattr(lead, name, getattr(state, name))


def new_changes() -> dict[str, Any]:
    """What this transaction's lifecycle decisions write into the CRM's own fields."""
    return {"crm_fields": {}, "owner_id": None, "task_queued": False}


def record(session: Session, svc: Any, lead: Lead, decision: Decision, rules_version: str | None,
           changes: dict[str, Any]) -> None:
    for transition in decision.transitions:
        session.add(Transition(lead_id=lead.id, from_stage=transition.from_stage, to_stage=transition.to_stage,
                               cause=transition.cause, detail=_jsonable(transition.detail),
                               rules_version=rules_version, at=transition.at))
    store_state(lead, decision.state)
    changes["crm_fields"].update(decision.crm_fields)
    if decision.recycle is not None:
        lead.nurture_track = decision.recycle.nurture_track
    for note in decision.notes:
        log.debug("lead %s: %s", lead.id, note)


def _jsonable(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _jsonable(v) for k, v in detail.items()}
    if isinstance(detail, (list, tuple)):
        return [_jsonable(v) for v in detail]
    if isinstance(detail, datetime):
        return detail.isoformat()
    return detail


def apply_feedback(session: Session, svc: Any, lead: Lead, status_changes: list[tuple[str, Any, datetime]],
                   now: datetime, changes: dict[str, Any]) -> None:
    """Turn CRM status changes (sales dispositions) into stage moves, oldest first."""
    rules = svc.rules.lifecycle
    for name, value, occurred_at in status_changes:
        disposition = disposition_for(lead.crm or "", name, str(value), rules, occurred_at=occurred_at)
        if disposition is None:
            continue
        decision = decide(lead_state(lead), None, disposition, rules, now)
        record(session, svc, lead, decision, svc.rules.version, changes)


def after_score(session: Session, svc: Any, lead: Lead, result: ScoreResult, now: datetime,
                changes: dict[str, Any]) -> None:
    """Apply the score: nurture, hand-off (owner + task + SLA), disqualification."""
    rules = svc.rules.lifecycle
    decision = decide(lead_state(lead), result, None, rules, now)
    record(session, svc, lead, decision, result.rules_version, changes)
    if decision.handoff is not None:
        hand_off(session, svc, lead, decision.handoff, decision.playbook or result.playbook, result,
                 latest_activity_line(session, lead), now, changes)


def hand_off(session: Session, svc: Any, lead: Lead, handoff: Handoff, playbook: str, result: ScoreResult,
             latest_activity: str | None, now: datetime, changes: dict[str, Any]) -> None:
    """Assign the owner (round-robin state row-locked), queue the task, schedule the SLA check."""
    rules = svc.rules.lifecycle
    owner = _assign(session, rules, handoff)
    if owner and not handoff.keeps_owner:
        changes["owner_id"] = owner  # written to the CRM with this transition only
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
        seq = session.scalar(select(func.count()).select_from(OutboxWrite)
                             .where(OutboxWrite.lead_id == lead.id, OutboxWrite.kind == "task")) or 0
        session.add(OutboxWrite(
            lead_id=lead.id, crm=lead.crm, crm_id=lead.crm_id, kind="task",
            idempotency_key=f"task:{lead.crm}:{lead.crm_id}:{seq + 1}", status="pending", created_at=now,
            payload={"task": {"subject": plan.subject, "body": plan.body, "due_at": plan.due_at.isoformat(),
                              "priority": plan.priority, "type": plan.type, "owner_id": lead.owner_id,
                              "playbook": plan.playbook}},
        ))
        changes["task_queued"] = True
    _schedule_sla(svc, lead.id, plan.due_at)


def _assign(session: Session, rules: Any, handoff: Handoff) -> str | None:
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


def _schedule_sla(svc: Any, lead_id: int, due_at: datetime) -> None:
    """RQ runs the check at the due time; the cron sweep catches any job Redis lost."""
    try:
        svc.queue.enqueue_at(due_at, "integration.lifecycle_apply.sla_check", lead_id, due_at.isoformat(),
                             job_id=f"sla-{lead_id}-{int(due_at.timestamp())}", result_ttl=86400,
                             description=f"SLA check lead {lead_id}")
    except Exception:  # noqa: BLE001 - Redis down: the cron sweep will find the due SLA
        log.warning("could not schedule the SLA check of lead %s; the cron sweep will", lead_id)


def crm_shows_action(session: Session, svc: Any, lead: Lead) -> bool:
    """Did sales act since the hand-off? The lead status changed in the CRM, or (live mode) the
    rep completed the hand-off's task. If the CRM cannot say, the status alone decides."""
    if (lead.fields or {}).get("lead_status") != lead.handoff_status:
        return True
    task_id = session.scalars(select(OutboxWrite.external_id).where(
        OutboxWrite.lead_id == lead.id, OutboxWrite.kind == "task", OutboxWrite.status == "sent",
        OutboxWrite.external_id.is_not(None)).order_by(OutboxWrite.id.desc()).limit(1)).first()
    if not (svc.live_writes and lead.crm and task_id):
        return False
    try:
        return not svc.crm_client(lead.crm).task_is_open(task_id)
    except CrmError as exc:
        log.warning("lead %s: could not read task %s (%s); judging the SLA by status", lead.id, task_id, exc)
        return False


def sla_check(lead_id: int, due_iso: str) -> dict[str, Any]:
    """RQ job at a hand-off's due time: if sales did not act, escalate (remind, reassign, recycle)."""
    from integration import apply, services
    from integration.queue import request_flush

    svc = services.current()
    now = clock.now()
    with svc.sessions.begin() as session:
        lead = apply.lock_lead(session, lead_id)
        if lead is None or lead.sla_due_at is None or lead.sla_due_at.isoformat() != \
                datetime.fromisoformat(due_iso).astimezone(lead.sla_due_at.tzinfo).isoformat():
            return {"action": "stale"}
        if now < lead.sla_due_at:
            return {"action": "not yet due"}
        rules = svc.rules.lifecycle
        decision = on_sla_due(lead_state(lead), crm_shows_action(session, svc, lead), rules, now)
        for transition in decision.transitions:
            session.add(Transition(lead_id=lead.id, from_stage=transition.from_stage,
                                   to_stage=transition.to_stage, cause=transition.cause,
                                   detail=_jsonable(transition.detail), rules_version=svc.rules.version,
                                   at=transition.at))
        if decision.action in ("remind", "reassign"):
            session.add(Transition(lead_id=lead.id, from_stage=lead.stage, to_stage=lead.stage, cause="sla",
                                   detail={"action": decision.action, "sla_misses": decision.sla_misses},
                                   rules_version=svc.rules.version, at=now))
        store_state(lead, decision.state)
        lead.sla_due_at = None
        changes = new_changes()
        changes["crm_fields"].update(decision.crm_fields)
        if decision.recycle is not None:
            lead.nurture_track = decision.recycle.nurture_track
        if decision.action in ("remind", "reassign") and decision.playbook:
            result = _latest_result(session, svc, lead)
            handoff = decision.handoff or Handoff(route="keep_existing_owner", owner_id=lead.owner_id)
            if result is not None:
                hand_off(session, svc, lead, handoff, decision.playbook, result, None, now, changes)
        queued = lead.crm is not None and _requeue_update(session, svc, lead, now, changes)
    if queued:
        request_flush(svc.queue, lead.crm, delay=svc.config["LEADLOOP_FLUSH_DELAY"])
    return {"action": decision.action, "sla_misses": decision.sla_misses}


def _latest_result(session: Session, svc: Any, lead: Lead) -> ScoreResult | None:
    """The lead's current result (recomputed: scoring is pure and cheap), or None if erased."""
    from integration.apply import score_now

    if lead.erased_at is not None or lead.merged_into_id is not None:
        return None
    return score_now(session, svc, lead, clock.now())


def _requeue_update(session: Session, svc: Any, lead: Lead, now: datetime, changes: dict[str, Any]) -> bool:
    from integration.apply import queue_update

    result = _latest_result(session, svc, lead)
    queued = result is not None and queue_update(session, svc, lead, result, now, changes)
    return queued or changes["task_queued"]


def sweep_slas() -> dict[str, int]:
    """Cron: run the SLA checks that are overdue (their scheduled job was lost)."""
    from integration import services

    svc = services.current()
    cutoff = clock.now() - timedelta(seconds=SLA_SWEEP_SECONDS)
    with svc.sessions() as session:
        due = session.execute(select(Lead.id, Lead.sla_due_at).where(
            Lead.stage == "mql", Lead.sla_due_at.is_not(None), Lead.sla_due_at < cutoff)).all()
    for lead_id, due_at in due:
        svc.queue.enqueue("integration.lifecycle_apply.sla_check", lead_id, due_at.isoformat())
    return {"due": len(due)}


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


CRON_JOBS = ((sweep_slas, SLA_SWEEP_SECONDS),)
_ = replace

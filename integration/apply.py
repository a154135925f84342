"""Applying a lead's pending events: fields, merges, erasure, scoring, outbox writes.

Runs inside one transaction per lead, holding the lead's row lock (``FOR UPDATE`` on
PostgreSQL; SQLite transactions are ``BEGIN IMMEDIATE``), so two workers never process the
same lead at once and a killed worker's transaction rolls back whole: its events stay
unprocessed and the retried job applies them exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connectors.base import CrmError
from integration import clock
from integration.models import Event, Lead, OutboxWrite, ScoreRecord, Transition
from scoring import LeadProfile, ScoreResult, Signal, score_lead

log = logging.getLogger(__name__)

#: Event kinds whose ``fields`` update the lead record.
FIELD_KINDS = frozenset({"lead_created", "field_change", "record_snapshot", "form_submit"})
#: CRM record events: they matter only through the fields they change.
CRM_RECORD_KINDS = frozenset({"lead_created", "field_change", "record_snapshot", "association_change",
                              "ignored", "deletion", "privacy_deletion"})
#: How many reasons the CRM's reasons field shows.
REASONS_IN_CRM = 8


@dataclass
class LeadOutcome:
    scored: bool = False
    crm_writes: set[str] = field(default_factory=set)


def lock_lead(session: Session, lead_id: int) -> Lead | None:
    stmt = select(Lead).where(Lead.id == lead_id)
    if session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def apply_fields(lead: Lead, values: dict[str, Any], at: datetime) -> bool:
    """Set each field unless a newer value is already stored; return whether anything changed."""
    changed = False
    fields, times = dict(lead.fields or {}), dict(lead.field_times or {})
    stamp = at.isoformat()
    for name, value in values.items():
        if name in times and times[name] > stamp:
            continue  # an older state arriving late never overwrites a newer one
        times[name] = stamp
        if fields.get(name) != value:
            fields[name] = value
            changed = True
    if "email" in values and values["email"] and times.get("email") == stamp:
        lead.email = str(values["email"]).lower()
    lead.fields, lead.field_times = fields, times
    return changed


def merge_into(session: Session, survivor: Lead, merged: Lead) -> None:
    """Move ``merged``'s history onto ``survivor``; fill survivor's missing fields from it."""
    if merged.id == survivor.id or merged.merged_into_id == survivor.id:
        return
    for model in (Event, ScoreRecord, Transition, OutboxWrite):
        session.execute(update(model).where(model.lead_id == merged.id).values(lead_id=survivor.id))
    session.execute(update(OutboxWrite).where(OutboxWrite.lead_id == survivor.id,
                                              OutboxWrite.crm_id == merged.crm_id,
                                              OutboxWrite.status == "pending").values(status="superseded"))
    fields, times = dict(survivor.fields or {}), dict(survivor.field_times or {})
    for name, value in (merged.fields or {}).items():
        fields.setdefault(name, value)
        times.setdefault(name, (merged.field_times or {}).get(name, ""))
    survivor.fields, survivor.field_times = fields, times
    survivor.email = survivor.email or merged.email
    merged.merged_into_id = survivor.id
    merged.email = None  # free the address for the survivor
    session.flush()


def erase_personal_data(session: Session, lead: Lead, at: datetime) -> None:
    """Privacy deletion: forget who the person is, keep anonymous counts (kinds, times, scores)."""
    lead.email, lead.fields, lead.field_times, lead.erased_at = None, {}, {}, at
    session.execute(update(Event).where(Event.lead_id == lead.id)
                    .values(fields={}, properties={}, raw=None))
    session.execute(update(OutboxWrite).where(OutboxWrite.lead_id == lead.id,
                                              OutboxWrite.status == "pending").values(status="superseded"))
    session.execute(update(OutboxWrite).where(OutboxWrite.lead_id == lead.id).values(payload={}))
    # Reason texts can quote the person's data (a title, a company): keep only the numbers.
    session.execute(update(ScoreRecord).where(ScoreRecord.lead_id == lead.id)
                    .values(summary="", result={"erased": True}))


def _apply_event(session: Session, lead: Lead, event: Event) -> bool:
    """Apply one event to the lead; return whether it can change the lead's score or stage."""
    changed = event.kind not in CRM_RECORD_KINDS  # activity always counts
    if event.kind in FIELD_KINDS and event.fields:
        changed = apply_fields(lead, event.fields, event.occurred_at) or changed
    if event.kind == "merge":
        for crm_id in event.properties.get("merged_ids", []):
            other = session.scalars(select(Lead).where(Lead.crm == lead.crm, Lead.crm_id == str(crm_id))).first()
            if other is not None:
                merge_into(session, lead, other)
    elif event.kind == "privacy_deletion":
        erase_personal_data(session, lead, event.occurred_at)
    elif event.kind == "deletion":
        lead.deleted_at = event.occurred_at
    elif event.kind == "restore":
        lead.deleted_at = None
    return changed or event.kind in ("merge", "restore")


def signals_of(session: Session, lead: Lead, activity_kinds: Iterable[str]) -> list[Signal]:
    """Return the lead's activity as scoring signals, oldest first.

    Signals before the lead's engagement reset (a recycle policy) no longer count.
    """
    stmt = (select(Event.kind, Event.occurred_at, Event.properties, Event.event_key)
            .where(Event.lead_id == lead.id, Event.kind.in_(list(activity_kinds)))
            .order_by(Event.occurred_at, Event.id))
    if lead.engagement_reset_at is not None:
        stmt = stmt.where(Event.occurred_at >= lead.engagement_reset_at)
    return [Signal(kind=kind, occurred_at=at, properties=props or {}, key=key)
            for kind, at, props, key in session.execute(stmt)]


def score_now(session: Session, svc: Any, lead: Lead, now: datetime) -> ScoreResult:
    """Score the lead on its stored fields and activity as of ``now``."""
    rules = svc.rules
    profile = LeadProfile(fields={**(lead.fields or {}), "email": lead.email})
    penalty = float(lead.score_penalty or 0)
    return score_lead(profile, signals_of(session, lead, rules.activity_kinds), rules, now, penalty=penalty,
                      penalty_reason=f"recycled by sales ({lead.recycle_reason})" if penalty else "")


def _apply_pending(session: Session, svc: Any, lead: Lead, pending: list[Event],
                   status_changes: list[tuple[str, Any, datetime]], now: datetime) -> bool:
    """Apply events in order, noting CRM status changes (sales feedback); return whether any
    can change the score."""
    from integration.lifecycle_apply import STATUS_FIELDS

    changed = False
    for event in pending:
        before = {name: (lead.fields or {}).get(name) for name in STATUS_FIELDS}
        changed |= _apply_event(session, lead, event)
        for name, old in before.items():
            new = (lead.fields or {}).get(name)
            if new != old and new not in (None, ""):
                status_changes.append((name, new, event.occurred_at))
        if event.kind in svc.rules.activity_kinds and (
                lead.last_engagement_at is None or event.occurred_at > lead.last_engagement_at):
            lead.last_engagement_at = event.occurred_at
        event.processed_at = now
    return changed


def process_lead(session: Session, svc: Any, lead_id: int, now: datetime) -> LeadOutcome:
    """Apply and score one lead's pending events inside the caller's transaction."""
    from integration import lifecycle_apply

    outcome = LeadOutcome()
    lead = lock_lead(session, lead_id)
    if lead is None:
        return outcome
    changed = False
    status_changes: list[tuple[str, Any, datetime]] = []
    seen = 0
    # A merge moves the merged lead's still-unprocessed events onto this lead: drain again.
    for _ in range(5):
        pending = list(session.scalars(
            select(Event).where(Event.lead_id == lead_id, Event.processed_at.is_(None))
            .order_by(Event.occurred_at, Event.id)
        ))
        if not pending:
            break
        seen += len(pending)
        changed |= _apply_pending(session, svc, lead, pending, status_changes, now)
    if not seen:
        return outcome
    if lead.merged_into_id is not None or lead.erased_at is not None or lead.deleted_at is not None:
        return outcome
    if not changed and lead.scored_at is not None:
        # Only CRM echoes that changed nothing (e.g. our own write-back coming back as an
        # outbound message): rescoring would write the same values and trigger the echo again.
        return outcome
    changes = lifecycle_apply.new_changes()
    lifecycle_apply.apply_feedback(session, svc, lead, status_changes, now, changes)
    result = score_now(session, svc, lead, now)
    record_score(session, lead, result, now, seen)
    outcome.scored = True
    lifecycle_apply.after_score(session, svc, lead, result, now, changes)
    if lead.crm and (queue_update(session, svc, lead, result, now, changes) or changes["task_queued"]):
        outcome.crm_writes.add(lead.crm)
    return outcome


def record_score(session: Session, lead: Lead, result: ScoreResult, now: datetime, seen: int) -> None:
    data = result.to_dict()
    session.add(ScoreRecord(
        lead_id=lead.id, computed_at=now, as_of=result.as_of, rules_version=result.rules_version,
        score=result.score, fit_points=result.fit_points, engagement_points=result.engagement_points,
        band=result.band, grade=result.grade, mql=result.mql, disqualified=result.disqualified,
        summary=result.summary, result=data, events_seen=seen,
    ))
    lead.score, lead.fit_points, lead.engagement_points = result.score, result.fit_points, result.engagement_points
    lead.band, lead.grade, lead.mql = result.band, result.grade, result.mql
    lead.disqualified = result.disqualified
    lead.rules_version, lead.scored_at, lead.updated_at = result.rules_version, now, now


def reasons_text(result: ScoreResult, limit: int = REASONS_IN_CRM) -> str:
    """The reasons a rep sees in the CRM: strongest first, one per line."""
    return "\n".join(reason.text for reason in result.reasons[:limit])


def update_payload(svc: Any, lead: Lead, result: ScoreResult,
                   changes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The leadloop fields to write onto the CRM record, plus what a stage change decided.

    ``changes`` (from the lifecycle, only on the transition that decided them) may hold
    ``crm_fields`` (the CRM's own status fields) and ``owner_id``. Outside a transition they are
    left out: a rep's manual owner or status change in the CRM is never overwritten.
    """
    fields = {
        "score": round(result.score), "fit_points": round(result.fit_points),
        "engagement_points": round(result.engagement_points), "band": result.band, "grade": result.grade,
        "mql": result.mql, "reasons": reasons_text(result), "stage": lead.stage,
        "rules_version": result.rules_version, "recycle_reason": lead.recycle_reason or "",
        "recycle_count": lead.recycle_count or 0, "nurture_track": lead.nurture_track or "",
    }
    payload: dict[str, Any] = {"fields": fields}
    if changes and changes.get("crm_fields"):
        payload["crm_fields"] = dict(changes["crm_fields"])
    if changes and changes.get("owner_id"):
        payload["owner_id"] = changes["owner_id"]
    return payload


def _already_covered(last: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when ``last`` already writes everything ``new`` would (``scored_at`` aside)."""
    last_fields = {k: v for k, v in last.get("fields", {}).items() if k != "scored_at"}
    if last_fields != new["fields"]:
        return False
    last_crm = last.get("crm_fields", {})
    return (all(last_crm.get(k) == v for k, v in new.get("crm_fields", {}).items())
            and new.get("owner_id") in (None, last.get("owner_id")))


def queue_update(session: Session, svc: Any, lead: Lead, result: ScoreResult, now: datetime,
                 changes: Mapping[str, Any] | None = None) -> bool:
    """Queue the CRM update if what the rep would see changed; return whether one was queued.

    A newer update supersedes a pending older one and takes over its status fields and owner,
    so a burst of rescorings sends one write that still carries the hand-off.
    """
    payload = update_payload(svc, lead, result, changes)
    last = session.scalars(
        select(OutboxWrite).where(OutboxWrite.lead_id == lead.id, OutboxWrite.kind == "update",
                                  OutboxWrite.crm_id == lead.crm_id, OutboxWrite.status != "superseded")
        .order_by(OutboxWrite.id.desc()).limit(1)
    ).first()
    if last is not None and _already_covered(last.payload, payload):
        return False
    if last is not None and last.status == "pending":
        carried = {**last.payload.get("crm_fields", {}), **payload.get("crm_fields", {})}
        if carried:
            payload["crm_fields"] = carried
        if "owner_id" not in payload and last.payload.get("owner_id"):
            payload["owner_id"] = last.payload["owner_id"]
        last.status = "superseded"
    payload["fields"]["scored_at"] = now.isoformat()
    session.add(OutboxWrite(
        lead_id=lead.id, crm=lead.crm, crm_id=lead.crm_id, kind="update",
        idempotency_key=f"update:{lead.crm}:{lead.crm_id}:{now.timestamp():.6f}:{lead.id}",
        payload=payload, status="pending", created_at=now,
    ))
    return True


def hydrate_from_crm(svc: Any, lead_ids: list[int]) -> None:
    """Fetch fields the webhooks do not carry (a HubSpot creation event is only an id).

    Leads of a CRM we hold no credentials for are scored on the fields we have. A CRM outage
    raises ``CrmError`` after logging: the job is retried by RQ, the events stay stored.
    """
    with svc.sessions() as session:
        rows = session.execute(
            select(Lead.id, Lead.crm, Lead.crm_id).join(Event, Event.lead_id == Lead.id)
            .where(Lead.id.in_(lead_ids), Event.processed_at.is_(None), Event.kind == "lead_created",
                   Event.source == Lead.crm)
            .group_by(Lead.id, Lead.crm, Lead.crm_id)
        ).all()
    by_crm: dict[str, dict[str, int]] = {}
    for lead_id, crm, crm_id in rows:
        by_crm.setdefault(crm, {})[crm_id] = lead_id
    for crm, ids in by_crm.items():
        if not _can_read(svc, crm):
            continue
        try:
            found = svc.crm_client(crm).fetch_fields(list(ids))
        except CrmError:
            log.warning("could not read %d %s record(s); retrying the job", len(ids), crm)
            raise
        fetched_at = clock.now()
        with svc.sessions.begin() as session:
            for crm_id, values in found.items():
                lead = lock_lead(session, ids[crm_id])
                if lead is not None:
                    apply_fields(lead, values, fetched_at)


def _can_read(svc: Any, crm: str) -> bool:
    keys = {"hubspot": ("HUBSPOT_ACCESS_TOKEN",),
            "salesforce": ("SALESFORCE_CLIENT_ID",)}
    return all(svc.config.get(key) for key in keys.get(crm, ("_never_",)))


def record_task_id(row: OutboxWrite, external_id: str) -> None:
    """Keep the created task's CRM id on the outbox row (and so on the lead's timeline)."""
    row.external_id = external_id

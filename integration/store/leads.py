"""Finding a lead by reference, and everything that happened to it (the timeline)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.store.models import Event, Lead, OutboxWrite, ScoreRecord, Transition


def find_lead(session: Session, ref: str) -> Lead | None:
    """Return the lead named ``crm:id``, ``email:address``, a bare email or a numeric id."""
    kind, _, value = ref.partition(":")
    if not value:
        if ref.isdigit():
            return session.get(Lead, int(ref))
        kind, value = "email", ref
    if kind == "email":
        return session.scalars(
            select(Lead).where(Lead.email == value.lower(), Lead.merged_into_id.is_(None)).order_by(Lead.id)
        ).first()
    if kind == "id" and value.isdigit():
        return session.get(Lead, int(value))
    return session.scalars(select(Lead).where(Lead.crm == kind, Lead.crm_id == value)).first()


def lead_timeline(session: Session, lead_id: int) -> list[tuple[datetime, str, dict[str, Any]]]:
    """Return everything that happened to a lead, oldest first: events, scores, stage changes,
    CRM writes, as ``(when, what, details)``."""
    rows: list[tuple[datetime, str, dict[str, Any]]] = []
    for e in session.scalars(select(Event).where(Event.lead_id == lead_id)):
        rows.append((e.occurred_at, "event", {"source": e.source, "kind": e.kind, "key": e.event_key,
                                              "fields": e.fields, "properties": e.properties,
                                              "processed": e.processed_at is not None}))
    for s in session.scalars(select(ScoreRecord).where(ScoreRecord.lead_id == lead_id)):
        rows.append((s.computed_at, "score", {"score": s.score, "band": s.band, "grade": s.grade,
                                              "mql": s.mql, "rules_version": s.rules_version,
                                              "summary": s.summary, "cause": (s.result or {}).get("cause")}))
    for t in session.scalars(select(Transition).where(Transition.lead_id == lead_id)):
        rows.append((t.at, "stage", {"from": t.from_stage, "to": t.to_stage, "cause": t.cause,
                                     "detail": t.detail, "rules_version": t.rules_version}))
    for w in session.scalars(select(OutboxWrite).where(OutboxWrite.lead_id == lead_id)):
        rows.append((w.created_at, "crm-write", {"kind": w.kind, "status": w.status, "crm": w.crm,
                                                 "crm_id": w.crm_id, "payload": w.payload,
                                                 "error": w.last_error}))
    rows.sort(key=lambda row: _aware(row[0]))
    return rows


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)

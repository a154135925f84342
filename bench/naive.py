"""The naive pipeline the benchmark compares against: one RQ job per event.

Each job applies its one event, rescores the lead, records the score and writes that lead's
CRM update on its own (one "call" per event). This is what the coalescing queue avoids.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from integration import services
from integration.pipeline import outbox, processing
from integration.store.models import Event, OutboxWrite
from scoring import LeadProfile, score_lead


def process_event(event_id: int) -> None:
    svc = services.current()
    now = datetime.now(UTC)
    with svc.sessions.begin() as session:
        event = session.get(Event, event_id)
        lead = processing.lock_lead(session, event.lead_id)
        if event.kind in processing.FIELD_KINDS and event.fields:
            processing.apply_fields(lead, event.fields, event.occurred_at)
        event.processed_at = now
        profile = LeadProfile(fields={**(lead.fields or {}), "email": lead.email})
        result = score_lead(profile, processing.signals_of(session, lead, svc.rules.activity_kinds), svc.rules, now)
        processing.record_score(session, lead, result, now, 1)
        if lead.crm:
            payload = outbox.update_payload(lead, result)
            session.add(OutboxWrite(lead_id=lead.id, crm=lead.crm, crm_id=lead.crm_id, kind="update",
                                    idempotency_key=f"naive:{event_id}", payload=payload, status="shadow",
                                    batch_id=uuid.uuid4().hex[:12], created_at=now, sent_at=now))


def pending_event_ids(session) -> list[int]:
    return list(session.scalars(select(Event.id).where(Event.processed_at.is_(None)).order_by(Event.id)))

"""Storing events durably, resolving the lead each belongs to, finding events still unprocessed.

``store_events`` is the whole durability guarantee: the receiver answers 2xx only after the
transaction it runs in has committed. Redeliveries are absorbed by the (source, event_key)
unique constraint; a concurrent duplicate surfaces as an IntegrityError and the caller retries
the transaction, which then sees the stored copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, or_, select, tuple_
from sqlalchemy.orm import Session

from connectors.events import LeadEvent
from integration.store.models import Event, Lead


@dataclass(frozen=True, slots=True)
class StoreResult:
    accepted: int
    duplicates: int
    ignored: int
    #: The leads with new events to process.
    lead_ids: frozenset[int]
    #: The CRMs with new record events (a deal, a rep activity) to resolve to their leads.
    record_crms: frozenset[str] = frozenset()


def _identity(event: LeadEvent) -> tuple[str, str, str] | tuple[str, str]:
    if event.crm and event.crm_id:
        return ("crm", event.crm, event.crm_id)
    return ("email", event.email or "")


def resolve_leads(session: Session, events: Sequence[LeadEvent]) -> dict[tuple, Lead]:
    """Return the lead of every event identity, creating leads that do not exist yet.

    A CRM record first seen by email (a web-only lead) is claimed by the CRM record, and
    web activity by email attaches to the CRM lead with that address when there is one.
    """
    crm_keys = {(e.crm, e.crm_id) for e in events if e.crm and e.crm_id}
    emails = {e.email for e in events if e.email}
    found: dict[tuple, Lead] = {}
    if crm_keys:
        for lead in session.scalars(select(Lead).where(tuple_(Lead.crm, Lead.crm_id).in_(crm_keys))):
            found[("crm", lead.crm, lead.crm_id)] = lead
    by_email: dict[str, list[Lead]] = {}
    if emails:
        rows = session.scalars(select(Lead).where(Lead.email.in_(emails)).order_by(Lead.id))
        for lead in rows:
            by_email.setdefault(lead.email, []).append(lead)

    def follow(lead: Lead) -> Lead:
        seen = 0
        while lead.merged_into_id is not None and seen < 10:
            lead = session.get(Lead, lead.merged_into_id)
            seen += 1
        return lead

    for event in events:
        key = _identity(event)
        if key in found:
            continue
        candidates = [lead for lead in by_email.get(event.email or "", []) if lead.merged_into_id is None]
        if key[0] == "crm":
            web_only = next((lead for lead in candidates if lead.crm is None), None)
            if web_only is not None:
                web_only.crm, web_only.crm_id = event.crm, event.crm_id
                found[key] = web_only
                continue
            lead = Lead(crm=event.crm, crm_id=event.crm_id, email=event.email, fields={}, field_times={})
        else:
            crm_lead = next((lead for lead in reversed(candidates) if lead.crm is not None), None)
            if crm_lead is not None or candidates:
                found[key] = crm_lead or candidates[0]
                continue
            lead = Lead(email=event.email, fields={}, field_times={})
        session.add(lead)
        found[key] = lead
        if event.email:
            by_email.setdefault(event.email, []).append(lead)
    session.flush()
    return {key: follow(lead) for key, lead in found.items()}


def store_events(session: Session, events: Sequence[LeadEvent], received_at: datetime) -> StoreResult:
    """Insert the events not stored before; return counts and the leads touched.

    Does not commit: the caller commits, then acknowledges. Raises IntegrityError when a
    concurrent request stored the same event first (retry the transaction).
    """
    unique: dict[tuple[str, str], LeadEvent] = {}
    for event in events:
        unique.setdefault((event.source, event.event_key), event)
    in_batch_duplicates = len(events) - len(unique)
    existing: set[tuple[str, str]] = set()
    keys = list(unique)
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        existing.update((source, key) for source, key in session.execute(
            select(Event.source, Event.event_key).where(tuple_(Event.source, Event.event_key).in_(chunk))
        ))
    fresh = [event for key, event in unique.items() if key not in existing]
    if not fresh:
        return StoreResult(0, len(events), 0, frozenset())
    # Ignored events (a company change) are kept for audit but create no lead; record events (a
    # deal, a rep activity) wait, unprocessed and without a lead, until the pipeline resolves the
    # people they concern (``integration.pipeline.records``).
    leads = resolve_leads(session, [event for event in fresh if _about_a_lead(event)])
    rows = []
    for event in fresh:
        lead = leads.get(_identity(event)) if _about_a_lead(event) else None
        erased = lead is not None and lead.erased_at is not None
        waiting = event.record_id is not None
        rows.append({
            "source": event.source, "event_key": event.event_key, "lead_id": lead.id if lead else None,
            "record_id": event.record_id, "kind": event.kind, "occurred_at": event.occurred_at,
            "received_at": received_at,
            # A late redelivery for a person we erased must not bring their data back.
            "fields": {} if erased else event.fields,
            "properties": {} if erased else event.properties,
            "raw": None if erased else event.raw,
            "processed_at": received_at if (lead is None and not waiting) or erased else None,
        })
    session.execute(insert(Event), rows)
    return StoreResult(
        accepted=len(fresh),
        duplicates=in_batch_duplicates + len(existing),
        ignored=sum(1 for row in rows if row["lead_id"] is None and row["record_id"] is None),
        lead_ids=frozenset(row["lead_id"] for row in rows if row["lead_id"] and row["processed_at"] is None),
        record_crms=frozenset(event.source for event in fresh if event.record_id is not None),
    )


def _about_a_lead(event: LeadEvent) -> bool:
    return event.kind != "ignored" and event.record_id is None


def pending_lead_ids(session: Session, older_than: datetime, now: datetime, limit: int = 5000) -> list[int]:
    """Return leads with events received before ``older_than`` and still unprocessed, leaving
    out quarantined leads and failing leads whose next retry is still to come."""
    return list(session.scalars(
        select(Event.lead_id).join(Lead, Lead.id == Event.lead_id)
        .where(Event.processed_at.is_(None), Event.received_at < older_than, Lead.quarantined_at.is_(None),
               or_(Lead.retry_at.is_(None), Lead.retry_at <= now))
        .group_by(Event.lead_id).limit(limit)
    ))


def pending_record_crms(session: Session, older_than: datetime) -> list[str]:
    """Return the CRMs with record events (deals, rep activity) received before ``older_than``
    and still waiting for their leads."""
    return list(session.scalars(
        select(Event.source).where(Event.record_id.is_not(None), Event.lead_id.is_(None),
                                   Event.processed_at.is_(None), Event.received_at < older_than)
        .group_by(Event.source)))

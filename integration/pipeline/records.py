"""Record events to leads: a deal's or rep activity's changes, the people they concern, and the
``deal_change`` / ``rep_activity`` event each of those leads gets.

A record event (``connectors.events.RECORD_KINDS``) is stored without a lead. The ``resolve_records``
job (one pending per CRM, ``integration.pipeline.queue.request_records``) takes a CRM's waiting
record events, oldest first, and per deal or activity:

1. reads it back when the CRM's webhooks only name it (HubSpot: ``connectors.base.RecordReader``;
   Salesforce messages carry the whole record), outside any transaction;
2. applies the changes: the deal's newest state (``integration.store.deals``), its outcome by the
   rules (``scoring.lifecycle_outcomes.deal_outcome``), merges, deletions, its people;
3. tells each of its leads: a lead's ``deal_change`` event carries the deal's state at the business
   time of the change; a rep activity is told once per lead, at the time it was logged;
4. marks the record events processed. An event naming a person leadloop does not know yet (the
   person's own webhook may come later) waits for ``PEOPLE_WAIT`` and is then given up.

The leads told are rescored by the caller; their own transaction applies the outcome
(``integration.pipeline.processing``). Outcomes and activity never create leads.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.services import Services
from integration.store.deals import (
    apply_deal_state,
    deal_lead_ids,
    deal_row,
    leads_by_crm_id,
    link_lead,
    merge_deal_into,
    tell_lead,
    unlink_lead,
)
from integration.store.models import Event
from scoring.lifecycle_outcomes import DealStage, deal_outcome

log = logging.getLogger(__name__)

#: Record events taken per run (the job runs again while more wait).
BATCH = 500
#: How long an event naming an unknown person waits for that person's lead.
PEOPLE_WAIT = timedelta(hours=1)
#: What a lead's ``rep_activity`` event keeps of the activity.
ACTIVITY_SUMMARY = ("activity_type", "owner_id", "logged_at", "activity_at", "direction", "status")


@dataclass
class Resolved:
    """What one run did: the leads told (to rescore), events done, events still waiting."""

    lead_ids: set[int] = field(default_factory=set)
    processed: int = 0
    waiting: int = 0


def pending_records(session: Session, crm: str, limit: int = BATCH) -> list[Event]:
    """The CRM's record events not resolved yet, oldest first."""
    return list(session.scalars(
        select(Event).where(Event.source == crm, Event.record_id.is_not(None), Event.lead_id.is_(None),
                            Event.processed_at.is_(None))
        .order_by(Event.occurred_at, Event.id).limit(limit)))


def resolve_batch(svc: Services, crm: str) -> Resolved:
    """Resolve one batch of ``crm``'s record events; return what was done.

    Raises ``CrmError`` when the CRM read fails (the events stay waiting; the queue retries).
    """
    now = svc.now()
    with svc.sessions() as session:
        events = pending_records(session, crm)
    if not events:
        return Resolved()
    deals = _by_record(e for e in events if e.kind == "deal_change")
    activities = _by_record(e for e in events if e.kind == "rep_activity")
    reader = svc.record_reader(crm)
    read_deals = reader.read_deals(list(deals)) if reader and deals else {}
    activity_types = {record: next((e.properties.get("activity_type") for e in group
                                    if e.properties.get("activity_type")), "") for record, group in activities.items()}
    read_activities = reader.read_rep_activities(activity_types) if reader and activities else {}
    done = Resolved()
    with svc.sessions.begin() as session:
        ids = [event.id for event in events]
        # Another run may have taken some meanwhile: work only on what is still waiting.
        fresh = {event.id: event for event in session.scalars(
            select(Event).where(Event.id.in_(ids), Event.processed_at.is_(None)))}
        for record_id, group in deals.items():
            mine = [fresh[e.id] for e in group if e.id in fresh]
            if mine:
                _resolve_deal(session, svc, crm, record_id, mine, read_deals.get(record_id), reader is not None,
                              now, done)
        for record_id, group in activities.items():
            mine = [fresh[e.id] for e in group if e.id in fresh]
            if mine:
                _resolve_activity(session, crm, record_id, mine, read_activities.get(record_id), now, done)
    return done


def _by_record(events: Any) -> dict[str, list[Event]]:
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        grouped[event.record_id].append(event)
    return dict(grouped)


# --- deals -----------------------------------------------------------------------------------

def _resolve_deal(session: Session, svc: Services, crm: str, record_id: str, events: list[Event],
                  read: dict[str, Any] | None, was_read: bool, now: datetime, done: Resolved) -> None:
    deal = deal_row(session, crm, record_id, now)
    named: list[str] = []
    for event in events:
        properties = event.properties or {}
        change = properties.get("change")
        if change == "deletion":
            deal.deleted_at = max(deal.deleted_at or event.occurred_at, event.occurred_at)
        elif change == "restore" and (deal.deleted_at is None or deal.deleted_at <= event.occurred_at):
            deal.deleted_at = None
        elif change == "merge":
            for merged_id in properties.get("merged_ids", []):
                merge_deal_into(session, deal, deal_row(session, crm, str(merged_id), now), event.occurred_at)
        if not was_read:  # the read below is the state now; without one the events tell it
            apply_deal_state(deal, properties, event.occurred_at)
        named += properties.get("contact_ids", [])
        for lead_id in leads_by_crm_id(session, crm, properties.get("removed_contact_ids", [])).values():
            unlink_lead(session, deal, lead_id)
    latest = events[-1]
    if read is not None:
        apply_deal_state(deal, read, max(now, latest.occurred_at))
    deal.outcome = deal_outcome(crm, DealStage(deal.pipeline, deal.stage, deal.is_closed, deal.is_won),
                                svc.rules.lifecycle)
    deal.updated_at = now
    people = leads_by_crm_id(session, crm, list(dict.fromkeys([*named, *((read or {}).get("contact_ids") or [])])))
    for lead_id in people.values():
        link_lead(session, deal, lead_id, latest.occurred_at)
    for lead_id in deal_lead_ids(session, deal):
        if tell_lead(session, deal, lead_id, latest.occurred_at, str(latest.id), now):
            done.lead_ids.add(lead_id)
    _settle(events, set(named) - set(people), now, done)


# --- rep activity ----------------------------------------------------------------------------

def _resolve_activity(session: Session, crm: str, record_id: str, events: list[Event], read: dict[str, Any] | None,
                      now: datetime, done: Resolved) -> None:
    state: dict[str, Any] = {}
    named: list[str] = []
    for event in events:
        state.update({key: value for key, value in (event.properties or {}).items() if value is not None})
        named += (event.properties or {}).get("contact_ids", [])
    state.update({key: value for key, value in (read or {}).items() if value is not None})
    people = leads_by_crm_id(session, crm, list(dict.fromkeys([*named, *((read or {}).get("contact_ids") or [])])))
    deleted = (events[-1].properties or {}).get("change") == "deletion"
    if not deleted and state.get("activity_type"):
        logged = _time(state.get("logged_at")) or min(event.occurred_at for event in events)
        summary = {"activity_id": record_id, **{key: state.get(key) for key in ACTIVITY_SUMMARY}}
        for lead_id in dict.fromkeys(people.values()):
            if _tell_activity(session, crm, record_id, lead_id, logged, summary, now):
                done.lead_ids.add(lead_id)
    _settle(events, set(named) - set(people), now, done)


def _tell_activity(session: Session, crm: str, record_id: str, lead_id: int, logged: datetime,
                   summary: dict[str, Any], now: datetime) -> bool:
    key = f"activity/{record_id}/lead/{lead_id}"
    if session.scalars(select(Event.id).where(Event.source == crm, Event.event_key == key)).first():
        return False
    session.add(Event(source=crm, event_key=key, lead_id=lead_id, record_id=record_id, kind="rep_activity",
                      occurred_at=logged, received_at=now, fields={}, properties=summary, raw=None))
    return True


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


# --- settling --------------------------------------------------------------------------------

def _settle(events: list[Event], unknown_people: set[str], now: datetime, done: Resolved) -> None:
    """Mark the events processed, except those naming a person not known yet, who wait a while."""
    for event in events:
        waits = unknown_people & set((event.properties or {}).get("contact_ids", []))
        if waits and now - event.received_at < PEOPLE_WAIT:
            done.waiting += 1
            continue
        if waits:
            log.info("record %s: no lead for %d of its people; given up", event.record_id, len(waits))
        event.processed_at = now
        done.processed += 1

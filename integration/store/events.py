"""Storing events durably, resolving the lead each belongs to, finding events still unprocessed.

``store_events`` is the whole durability guarantee: the receiver answers 2xx only after the
transaction it runs in has committed. Redeliveries are absorbed by the (source, event_key)
unique constraint (``ON CONFLICT DO NOTHING``: a concurrent duplicate waits for the first
copy's transaction and is then absorbed too); two concurrent requests creating the same lead
surface as an IntegrityError and the caller retries the transaction, which then sees the lead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, and_, any_, bindparam, column, func, or_, select, tuple_, union
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
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


@dataclass(frozen=True, slots=True)
class LeadRef:
    """What intake needs of a stored lead."""

    COLUMNS = (Lead.id, Lead.crm, Lead.crm_id, Lead.email, Lead.merged_into_id, Lead.erased_at)

    id: int
    crm: str | None
    crm_id: str | None
    email: str | None
    merged_into_id: int | None
    erased_at: datetime | None


def _known_leads_statements() -> dict[str, Select[Any]]:
    """The leads with these CRM records or addresses, by dialect; built once (intake runs it per
    request). PostgreSQL takes the keys as three arrays (three parameters, whatever the number of
    events: the driver prepares a statement with thousands of parameters slowly); SQLite, as lists."""
    keys = func.unnest(bindparam("crms", type_=ARRAY(String)), bindparam("crm_ids", type_=ARRAY(String))) \
        .table_valued("crm", "crm_id").render_derived()
    by_record = select(Lead.id).join(keys, and_(Lead.crm == keys.c.crm, Lead.crm_id == keys.c.crm_id))
    by_email = select(Lead.id).where(Lead.email == any_(bindparam("emails", type_=ARRAY(String))))
    return {
        "postgresql": select(*LeadRef.COLUMNS).where(Lead.id.in_(union(by_record, by_email))).order_by(Lead.id),
        "sqlite": select(*LeadRef.COLUMNS)
        .where(or_(tuple_(Lead.crm, Lead.crm_id).in_(bindparam("crm_keys", expanding=True)),
                   Lead.email.in_(bindparam("emails", expanding=True))))
        .order_by(Lead.id),
    }


_KNOWN_LEADS = _known_leads_statements()


def _known_leads(session: Session, events: Sequence[LeadEvent]) -> dict[tuple, LeadRef]:
    """Return the lead of every event identity whose lead exists and needs no change, in one query.

    Reads only: identities that would create a lead or have a CRM record claim a web-only lead
    are left out (``resolve_leads`` does that, for fresh events only, once they are stored).
    """
    crm_keys = {(e.crm, e.crm_id) for e in events if e.crm and e.crm_id}
    emails = {e.email for e in events if e.email}
    if not crm_keys and not emails:
        return {}
    if session.bind.dialect.name == "postgresql":
        ordered = sorted(crm_keys)
        params: dict[str, Any] = {"crms": [crm for crm, _ in ordered], "crm_ids": [crm_id for _, crm_id in ordered],
                                  "emails": sorted(emails)}
    else:
        params = {"crm_keys": sorted(crm_keys), "emails": sorted(emails)}
    rows = session.execute(_KNOWN_LEADS[session.bind.dialect.name], params).all()
    by_crm, by_email = {}, {}
    for row in rows:
        ref = LeadRef(*row)
        if ref.crm is not None and (ref.crm, ref.crm_id) in crm_keys:
            by_crm[(ref.crm, ref.crm_id)] = ref
        if ref.email in emails:
            by_email.setdefault(ref.email, []).append(ref)
    found: dict[tuple, LeadRef] = {}
    for event in events:
        key = _identity(event)
        if key in found:
            continue
        if key[0] == "crm":
            if (event.crm, event.crm_id) in by_crm:
                found[key] = by_crm[(event.crm, event.crm_id)]
            continue
        candidates = [ref for ref in by_email.get(event.email or "", []) if ref.merged_into_id is None]
        if candidates:
            found[key] = next((ref for ref in reversed(candidates) if ref.crm is not None), candidates[0])
    merged = {ref.merged_into_id for ref in found.values() if ref.merged_into_id is not None}
    if merged:  # a merged-away lead's identity: its survivor (rare; as resolve_leads follows)
        survivors = {ref.id: ref for ref in (LeadRef(*row) for row in session.execute(
            select(*LeadRef.COLUMNS).where(Lead.id.in_(merged))))}
        found = {key: survivors.get(ref.merged_into_id, ref) if ref.merged_into_id else ref
                 for key, ref in found.items()}
        if any(ref.merged_into_id is not None for ref in found.values()):  # merged twice: the long way
            found = {key: ref for key, ref in found.items() if ref.merged_into_id is None}
    return found


def store_events(session: Session, events: Sequence[LeadEvent], received_at: datetime, *,
                 known_only: bool = False) -> StoreResult | None:
    """Insert the events not stored before; return counts and the leads touched.

    Few round trips, as intake runs once per webhook: one query finds the known leads, one
    ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` stores what is new and says which events
    were (a redelivery, also a concurrent one, is absorbed by the unique constraint). Only
    events of people not known yet cost one more query, to create (or claim) their lead only
    when the event is new. Does not commit: the caller commits, then acknowledges. Raises
    IntegrityError when a concurrent request created the same lead first (retry the transaction).

    ``known_only``: store nothing and return None when an event's lead is not known yet, so a
    session in which each statement commits on its own stores all or nothing (its one write is
    the INSERT); the caller then stores them in a transaction.
    """
    unique: dict[tuple[str, str], LeadEvent] = {}
    for event in events:
        unique.setdefault((event.source, event.event_key), event)
    # Ignored events (a company change) are kept for audit but create no lead; record events (a
    # deal, a rep activity) wait, unprocessed and without a lead, until the pipeline resolves the
    # people they concern (``integration.pipeline.records``).
    about = [event for event in unique.values() if _about_a_lead(event)]
    leads: dict[tuple, LeadRef | Lead] = dict(_known_leads(session, about))
    newcomers = [event for event in about if _identity(event) not in leads]
    if newcomers and known_only:
        return None
    if newcomers:  # create (or claim) the lead of a new person only for an event never stored
        stored = _stored_keys(session, [(event.source, event.event_key) for event in newcomers])
        leads.update(resolve_leads(session, [e for e in newcomers if (e.source, e.event_key) not in stored]))
    rows = []
    for event in unique.values():
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
    fresh_keys: set[tuple[str, str]] = set()
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        fresh_keys.update((source, key) for source, key in connection.execute(
            _INSERT_NEW_PG, {"rows": [_json_row(row) for row in rows]}))
    else:
        for start in range(0, len(rows), 500):
            fresh_keys.update((source, key) for source, key in connection.execute(_INSERT_NEW_SQLITE,
                                                                                  rows[start:start + 500]))
    fresh = [row for row in rows if (row["source"], row["event_key"]) in fresh_keys]
    return StoreResult(
        accepted=len(fresh),
        duplicates=len(events) - len(fresh),
        ignored=sum(1 for row in fresh if row["lead_id"] is None and row["record_id"] is None),
        lead_ids=frozenset(row["lead_id"] for row in fresh if row["lead_id"] and row["processed_at"] is None),
        record_crms=frozenset(row["source"] for row in fresh if row["record_id"] is not None),
    )


def _stored_keys(session: Session, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (source, event_key) pairs among ``keys`` already stored."""
    found: set[tuple[str, str]] = set()
    for start in range(0, len(keys), 500):
        found.update((source, key) for source, key in session.execute(
            select(Event.source, Event.event_key)
            .where(tuple_(Event.source, Event.event_key).in_(keys[start:start + 500]))))
    return found


#: The columns intake fills.
_EVENT_COLUMNS = ("source", "event_key", "lead_id", "record_id", "kind", "occurred_at", "received_at", "fields",
                  "properties", "raw", "processed_at")


def _insert_new_pg() -> Any:
    """``INSERT INTO events ... SELECT ... FROM jsonb_to_recordset(:rows) ON CONFLICT (source, event_key)
    DO NOTHING RETURNING source, event_key``: what is new is stored, a redelivery is absorbed, the
    answer says which were new; the rows travel as one JSON parameter (see ``_known_leads_statements``)."""
    table = Event.__table__
    rows = func.jsonb_to_recordset(bindparam("rows", type_=JSONB)) \
        .table_valued(*(column(name, table.c[name].type) for name in _EVENT_COLUMNS)).render_derived(with_types=True)
    return (postgresql.insert(table).from_select(_EVENT_COLUMNS, select(*(rows.c[name] for name in _EVENT_COLUMNS)))
            .on_conflict_do_nothing(index_elements=["source", "event_key"])
            .returning(table.c.source, table.c.event_key))


_INSERT_NEW_PG = _insert_new_pg()
#: The same on SQLite, one row per parameter set.
_INSERT_NEW_SQLITE = (sqlite.insert(Event.__table__).on_conflict_do_nothing(index_elements=["source", "event_key"])
                      .returning(Event.__table__.c.source, Event.__table__.c.event_key))


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    """An event row as JSON: times as ISO-8601 with their offset."""
    return {name: value.isoformat() if isinstance(value, datetime) else value for name, value in row.items()}


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

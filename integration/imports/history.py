"""Imported history into the store, in bulk: leads, their activity, stage transitions, one quiet score.

What a CSV row or a CRM record becomes is what a live lead leaves behind: a ``leads`` row (unique on
``(crm, crm_id)``), a processed ``lead_created`` event with its fields at their business time,
``import`` transitions at the times the lead entered each stage, its activity as processed
events, and one score under the live rules. Everything is stored already processed and nothing
is queued: imported history never triggers a CRM write or a hand-off.

Idempotent by construction: leads and events are inserted with ``ON CONFLICT DO NOTHING`` on
their unique keys, and a lead's transitions are written only with the lead itself, so importing
the same rows again changes nothing. A lead already in the store keeps its record.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from integration.pipeline.processing import ScoringInputs, score_now
from integration.services import Services
from integration.store.models import Deal, DealLead, Event, Lead, ScoreRecord, Transition
from scoring import LeadProfile, Signal
from scoring.lifecycle import TERMINAL_STAGES
from scoring.lifecycle_outcomes import DealStage, deal_outcome
from scoring.lifecycle_rules import LifecycleRules

#: The transitions' cause, and the score records' (``leadloop lead show`` tells them apart).
CAUSE = "import"
#: Rows per IN (...) list when looking leads up by id.
LOOKUP_CHUNK = 1000
#: Rows per statement of an INSERT ... RETURNING (see ``insert_ignoring_duplicates``).
RETURNING_PAGE_ROWS = 50


@dataclass(frozen=True, slots=True)
class ImportedLead:
    """One lead of an import, as leadloop sees it (a CSV row, a CRM record with its history)."""

    crm_id: str
    email: str | None
    created_at: datetime | None
    #: Field values under leadloop's names (canonical or custom).
    fields: dict[str, Any]
    #: Stage -> when the lead entered it, oldest first.
    stages: list[tuple[str, datetime]]
    #: ``won``, ``lost`` or None.
    outcome: str | None
    #: When the outcome was decided, if the source says (else the latest stage time or created_at).
    outcome_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ImportedActivity:
    """One activity of an imported lead (a page view, a download ...)."""

    crm_id: str
    kind: str
    occurred_at: datetime
    properties: dict[str, Any]
    #: The source's own id for it, if it has one (else the key is derived from its content).
    activity_id: str | None = None


@dataclass
class Stored:
    """What one batch added: counts, and the new leads as ``score_quietly`` takes them."""

    leads: int = 0
    events: int = 0
    transitions: int = 0
    new_leads: list[NewLead] = field(default_factory=list)
    #: The new leads' ids by their CRM id.
    created: dict[str, int] = field(default_factory=dict)


class NewLead(NamedTuple):
    """A lead to score: its id and what its profile is made of."""

    id: int
    email: str | None
    fields: dict[str, Any]


def insert_ignoring_duplicates(session: Session, model: Any, rows: Sequence[dict[str, Any]],
                               unique: Sequence[str], returning: Sequence[str] = ()) -> list[Any]:
    """Insert ``rows``, skipping those whose ``unique`` columns exist; return the ``returning`` columns
    of the rows inserted (nothing when none are asked for)."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert if dialect == "sqlite" else None
    if make is None:
        raise NotImplementedError(f"bulk import on {dialect}")
    table = model.__table__
    stmt = make(table).on_conflict_do_nothing(index_elements=list(unique))
    if not returning:
        # The driver's executemany (psycopg pipelines it): the fastest way in.
        session.connection().execute(stmt, list(rows))
        return []
    # RETURNING tells what was new without looking the keys up first: a lookup by a list of keys
    # can fall back to a sequential scan while the table grows faster than its statistics. Pages of
    # 50 rows: psycopg parses each statement's text in Python, and a 1,000-row one costs more
    # than twenty short ones (measured: bench/import_csv.py).
    stmt = stmt.returning(*(table.c[name] for name in returning)).execution_options(
        insertmanyvalues_page_size=RETURNING_PAGE_ROWS)
    return list(session.connection().execute(stmt, list(rows)))


def stage_path(lead: ImportedLead, fallback: datetime) -> list[tuple[str, str, datetime]]:
    """The lead's stage moves ``(from, to, at)``: each stage at its time, then the outcome (unless a
    terminal stage came first) at ``outcome_at``, the latest stage time, ``created_at`` or ``fallback``."""
    moves, stage = [], "new"
    for target, at in lead.stages:
        if target != stage and stage not in TERMINAL_STAGES:
            moves.append((stage, target, at))
            stage = target
    if lead.outcome and stage not in TERMINAL_STAGES:
        at = lead.outcome_at or (lead.stages[-1][1] if lead.stages else lead.created_at or fallback)
        moves.append((stage, lead.outcome, at))
    return moves


def store_leads(session: Session, crm: str, source: str, leads: Sequence[ImportedLead], now: datetime) -> Stored:
    """Insert the leads not in the store yet, each with its ``lead_created`` event and its transitions.

    Leads already stored under ``(crm, crm_id)`` are left as they are. Does not commit.
    """
    unique: dict[str, ImportedLead] = {}
    for lead in leads:
        unique.setdefault(lead.crm_id, lead)
    rows, paths = [], {}
    for lead in unique.values():
        created = lead.created_at or now
        moves = paths[lead.crm_id] = stage_path(lead, created)
        stamp = created.isoformat()
        rows.append({
            "crm": crm, "crm_id": lead.crm_id, "email": lead.email, "fields": lead.fields,
            "field_times": {name: stamp for name in lead.fields},
            "stage": moves[-1][1] if moves else "new", "stage_changed_at": moves[-1][2] if moves else None,
            "created_at": created, "updated_at": now,
        })
    # Leads already stored are left as they are: only those created here get their history.
    created_ids = dict((crm_id, lead_id) for lead_id, crm_id in insert_ignoring_duplicates(
        session, Lead, rows, ("crm", "crm_id"), ("id", "crm_id")))
    events, transitions = [], []
    for crm_id, lead_id in created_ids.items():
        lead = unique[crm_id]
        events.append({
            "source": source, "event_key": f"import:{crm_id}:created", "lead_id": lead_id, "kind": "lead_created",
            "record_id": None, "occurred_at": lead.created_at or now, "received_at": now,
            "fields": {**lead.fields, **({"email": lead.email} if lead.email else {})},
            "properties": {"imported": True}, "raw": None, "processed_at": now,
        })
        transitions.extend({"lead_id": lead_id, "from_stage": before, "to_stage": after, "cause": CAUSE,
                            "detail": {"source": source}, "rules_version": None, "at": at}
                           for before, after, at in paths[crm_id])
    insert_ignoring_duplicates(session, Event, events, ("source", "event_key"))
    if transitions:
        session.connection().execute(insert(Transition.__table__), transitions)
    return Stored(leads=len(created_ids), events=len(events), transitions=len(transitions),
                  new_leads=[NewLead(lead_id, unique[crm_id].email, unique[crm_id].fields)
                             for crm_id, lead_id in created_ids.items()], created=created_ids)


def store_deals(session: Session, crm: str, deals_by_lead: dict[str, list[dict[str, Any]]], leads: dict[str, int],
                rules: LifecycleRules, now: datetime) -> int:
    """Store the deals (``deal_change`` properties with an ``id``) of the ``leads`` (CRM id -> lead id)
    not stored yet, linked to those leads, each with its outcome by the rules' ``outcomes``; return
    how many deals were new. Deals already stored keep their state. Does not commit."""
    leads = {crm_id: lead_id for crm_id, lead_id in leads.items() if deals_by_lead.get(crm_id)}
    rows: dict[str, dict[str, Any]] = {}
    for deal in (deal for crm_id in leads for deal in deals_by_lead[crm_id]):
        rows.setdefault(str(deal["id"]), {
            "crm": crm, "crm_id": str(deal["id"]), "pipeline": deal.get("pipeline"), "stage": deal.get("stage"),
            "is_closed": deal.get("is_closed"), "is_won": deal.get("is_won"),
            "amount": Decimal(deal["amount"]) if deal.get("amount") else None, "currency": deal.get("currency"),
            "created_at": _moment(deal.get("created_at")), "closed_at": _moment(deal.get("closed_at")),
            "outcome": deal_outcome(crm, DealStage(deal.get("pipeline"), deal.get("stage"), deal.get("is_closed"),
                                                   deal.get("is_won")), rules),
            "field_times": {}, "updated_at": now,
        })
    new = insert_ignoring_duplicates(session, Deal, list(rows.values()), ("crm", "crm_id"), ("id", "crm_id"))
    ids = {crm_id: deal_id for deal_id, crm_id in new}
    known = [crm_id for crm_id in rows if crm_id not in ids]  # stored before: linked to these new leads too
    ids.update({crm_id: deal_id for deal_id, crm_id in session.execute(
        select(Deal.id, Deal.crm_id).where(Deal.crm == crm, Deal.crm_id.in_(known)))} if known else {})
    links = [{"deal_id": ids[str(deal["id"])], "lead_id": lead_id,
              "linked_at": _moment(deal.get("created_at")) or now}
             for crm_id, lead_id in leads.items() for deal in deals_by_lead[crm_id] if str(deal["id"]) in ids]
    insert_ignoring_duplicates(session, DealLead, links, ("deal_id", "lead_id"))
    return len(new)


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def refresh_statistics(session: Session) -> None:
    """After a bulk load, have PostgreSQL re-read the statistics of the tables an import fills (as its
    manual advises), so lookups by key use the indexes. Commits. Nothing to do on SQLite.
    https://www.postgresql.org/docs/current/populate.html#POPULATE-ANALYZE"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE leads, events, transitions"))
    session.commit()


def activity_key(activity: ImportedActivity) -> str:
    """The activity's event key: its own id, or a digest of what it is (the same row keeps its key)."""
    if activity.activity_id:
        return f"import:{activity.crm_id}:{activity.activity_id}"[:200]
    content = json.dumps([activity.kind, activity.occurred_at.isoformat(), activity.properties], sort_keys=True,
                         default=str)
    return f"import:{activity.crm_id}:{activity.kind}:{hashlib.sha256(content.encode()).hexdigest()[:24]}"[:200]


def lead_ids(session: Session, crm: str, crm_ids: Iterable[str]) -> dict[str, int]:
    """The stored leads' ids by their CRM id (leads merged into another one map to the survivor)."""
    wanted, found = sorted(set(crm_ids)), {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start:start + LOOKUP_CHUNK]
        for lead_id, crm_id, merged_into in session.execute(
                select(Lead.id, Lead.crm_id, Lead.merged_into_id).where(Lead.crm == crm, Lead.crm_id.in_(chunk))):
            found[crm_id] = merged_into or lead_id
    return found


def store_activities(session: Session, source: str, activities: Sequence[tuple[ImportedActivity, int]],
                     now: datetime) -> int:
    """Insert the activities (each with its lead's id) as processed events; return how many were new.

    Does not commit.
    """
    keyed: dict[str, tuple[ImportedActivity, int]] = {}
    for activity, lead_id in activities:
        keyed.setdefault(activity_key(activity), (activity, lead_id))
    rows = [{"source": source, "event_key": key, "lead_id": lead_id, "kind": activity.kind,
             "record_id": None, "occurred_at": activity.occurred_at, "received_at": now, "fields": {},
             "properties": activity.properties, "raw": None, "processed_at": now}
            for key, (activity, lead_id) in keyed.items()]
    return len(insert_ignoring_duplicates(session, Event, rows, ("source", "event_key"), ("id",)))


def score_quietly(session: Session, svc: Services, leads: Sequence[Any], now: datetime, *,
                  with_activity: bool = True) -> int:
    """Score each lead (rows of ``unscored_leads``) once under the live rules as of ``now`` and record
    it; return how many.

    Only the score: no lifecycle decision, no hand-off, no CRM write (the lead's stage is its
    imported one). Each lead's last engagement is its newest imported activity (``with_activity``
    False: the import brought none, so none is looked up). The score record and
    the lead's columns are those ``processing.record_score`` writes (cause ``import``), written in
    bulk: one executemany per batch, not one ORM object per lead. Does not commit.
    """
    if not leads:
        return 0
    kinds = svc.rules.activity_kinds
    signals: dict[int, list[Signal]] = defaultdict(list)
    ids = [lead.id for lead in leads]
    # The range keeps the planner on the lead index however stale the table's statistics are.
    query = (select(Event.lead_id, Event.kind, Event.occurred_at, Event.properties, Event.event_key)
             .where(Event.lead_id.between(min(ids), max(ids)), Event.lead_id.in_(ids), Event.kind.in_(list(kinds)))
             .order_by(Event.occurred_at, Event.id))
    for lead_id, kind, at, properties, key in session.execute(query) if with_activity else ():
        signals[lead_id].append(Signal(kind=kind, occurred_at=at, properties=properties or {}, key=key))
    records, updates = [], []
    for lead in leads:
        # Built like ``processing.scoring_inputs``, for a whole batch in one query: an imported
        # lead has no recycle penalty and no engagement reset.
        own = signals.get(lead.id, [])
        inputs = ScoringInputs(LeadProfile(fields={**(lead.fields or {}), "email": lead.email}), own, 0.0, "")
        result = score_now(session, svc, lead, now, inputs)
        records.append({
            "lead_id": lead.id, "computed_at": now, "as_of": result.as_of, "rules_version": result.rules_version,
            "score": result.score, "fit_points": result.fit_points, "engagement_points": result.engagement_points,
            "band": result.band, "grade": result.grade, "mql": result.mql, "disqualified": result.disqualified,
            "summary": result.summary, "result": {**result.to_dict(), "cause": CAUSE}, "events_seen": len(own),
        })
        updates.append({
            "b_id": lead.id, "score": result.score, "fit_points": result.fit_points,
            "engagement_points": result.engagement_points, "band": result.band, "grade": result.grade,
            "mql": result.mql, "disqualified": result.disqualified, "rules_version": result.rules_version,
            "scored_at": now, "updated_at": now, "last_engagement_at": own[-1].occurred_at if own else None,
        })
    connection = session.connection()
    connection.execute(insert(ScoreRecord.__table__), records)
    table = Lead.__table__
    connection.execute(update(table).where(table.c.id == bindparam("b_id")), updates)
    return len(leads)


def _unscored(crm: str, after_id: int) -> Any:
    return (Lead.crm == crm, Lead.scored_at.is_(None), Lead.id > after_id, Lead.merged_into_id.is_(None),
            Lead.erased_at.is_(None), Lead.deleted_at.is_(None))


def unscored_leads(session: Session, crm: str, after_id: int, limit: int) -> list[Any]:
    """The next ``limit`` live leads of ``crm`` never scored, by id after ``after_id`` (id, email, fields)."""
    return list(session.execute(select(Lead.id, Lead.email, Lead.fields).where(*_unscored(crm, after_id))
                                .order_by(Lead.id).limit(limit)))


def count_unscored(session: Session, crm: str, after_id: int) -> int:
    """How many live leads of ``crm`` after ``after_id`` were never scored."""
    return session.scalar(select(func.count()).select_from(Lead).where(*_unscored(crm, after_id))) or 0

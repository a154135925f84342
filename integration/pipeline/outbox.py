"""The CRM writes: what goes into the outbox, and sending it to the CRM in batches.

Writes are rows (``OutboxWrite``) added inside a lead's transaction, so a crash queues all or
nothing; ``send_batch`` turns one CRM call's worth of rows into ``RecordCreate``/``RecordUpdate``/
``TaskSpec`` objects for the connector (or, in shadow mode, records them as sent to no one).

Three kinds, sent in this order: ``create`` (the CRM record of a web-only lead, at its hand-off),
``update`` (leadloop's fields, owner, status) and ``task``. A task queued before its lead's record
exists waits (``AWAITING_RECORD``) until the create's answer gives it the record id. Each row's
idempotency key goes to the CRM with the write, which uses it to make a retried create find the
record or task it made before (``connectors.base.RecordCreate``, ``TaskSpec``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from connectors.base import LEADLOOP_FIELDS, CrmClient, RecordCreate, RecordUpdate, TaskSpec, WriteOutcome
from integration.store.models import Lead, OutboxWrite
from scoring import ScoreResult

#: How many reasons the CRM's reasons field shows.
REASONS_IN_CRM = 8
#: The ``crm_id`` of a write waiting for the record leadloop is creating for a web-only lead; the
#: create's answer fills in the record id (``integration.pipeline.record_links``).
AWAITING_RECORD = ""
#: The order a flush sends the kinds in: a record must exist before its fields and its task.
KINDS_IN_ORDER = ("create", "update", "task")


@dataclass
class CrmChanges:
    """What this transaction's stage changes write into the CRM's own fields.

    Filled by the lifecycle decisions of one lead's transaction and carried by its update only:
    outside a transition a rep's manual owner or status change in the CRM is never overwritten.
    """

    #: CRM fields by their CRM name (the rules file's ``crm_stages``), e.g. ``{"Status": "Working"}``.
    crm_fields: dict[str, Any] = field(default_factory=dict)
    #: The owner a hand-off assigned (None: leave the CRM's owner alone).
    owner_id: str | None = None
    #: Whether a task for the rep was queued in this transaction.
    task_queued: bool = False
    #: The CRM where this web-only lead's record is being created (queued now or before): the
    #: transaction's writes go there although the lead has no CRM record yet.
    record_crm: str | None = None


def reasons_text(result: ScoreResult, limit: int = REASONS_IN_CRM) -> str:
    """The reasons a rep sees in the CRM: strongest first, one per line."""
    return "\n".join(reason.text for reason in result.reasons[:limit])


def update_payload(lead: Lead, result: ScoreResult, changes: CrmChanges | None = None) -> dict[str, Any]:
    """The leadloop fields to write onto the CRM record, plus what a stage change decided."""
    fields = {
        "score": round(result.score), "fit_points": round(result.fit_points),
        "engagement_points": round(result.engagement_points), "band": result.band, "grade": result.grade,
        "mql": result.mql, "reasons": reasons_text(result), "stage": lead.stage,
        "rules_version": result.rules_version, "recycle_reason": lead.recycle_reason or "",
        "recycle_count": lead.recycle_count or 0, "nurture_track": lead.nurture_track or "",
    }
    payload: dict[str, Any] = {"fields": fields}
    if changes is not None and changes.crm_fields:
        payload["crm_fields"] = dict(changes.crm_fields)
    if changes is not None and changes.owner_id:
        payload["owner_id"] = changes.owner_id
    return payload


#: Fields that say when and under which rules a verdict was made, not what it is: a rescore that
#: changes only these (a rules roll-out, a time-driven rescore with the same outcome) writes nothing.
BOOKKEEPING_FIELDS = frozenset({"scored_at", "rules_version"})


def _already_covered(last: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when ``last`` already writes everything ``new`` would (bookkeeping fields aside)."""
    last_fields = {k: v for k, v in last.get("fields", {}).items() if k not in BOOKKEEPING_FIELDS}
    new_fields = {k: v for k, v in new["fields"].items() if k not in BOOKKEEPING_FIELDS}
    if last_fields != new_fields:
        return False
    last_crm = last.get("crm_fields", {})
    return (all(last_crm.get(k) == v for k, v in new.get("crm_fields", {}).items())
            and new.get("owner_id") in (None, last.get("owner_id")))


#: ``queue_update``'s ``last`` when the caller has not read the lead's latest update.
NOT_READ: Any = object()


def latest_update(session: Session, lead: Lead) -> OutboxWrite | None:
    """The lead's latest update to its CRM record that was not superseded (pending or sent)."""
    return session.scalars(
        select(OutboxWrite).where(OutboxWrite.lead_id == lead.id, OutboxWrite.kind == "update",
                                  OutboxWrite.crm_id == lead.crm_id, OutboxWrite.status != "superseded")
        .order_by(OutboxWrite.id.desc()).limit(1)
    ).first()


def latest_updates(session: Session, lead_ids: list[int]) -> dict[tuple[int, str], OutboxWrite]:
    """``latest_update`` of many leads in one statement, by (lead id, CRM record id)."""
    ranked = (select(OutboxWrite.id, func.row_number().over(
        partition_by=(OutboxWrite.lead_id, OutboxWrite.crm_id), order_by=OutboxWrite.id.desc()).label("rank"))
        .where(OutboxWrite.lead_id.in_(lead_ids), OutboxWrite.kind == "update",
               OutboxWrite.status != "superseded").subquery())
    rows = session.scalars(select(OutboxWrite).join(ranked, ranked.c.id == OutboxWrite.id).where(ranked.c.rank == 1))
    return {(row.lead_id, row.crm_id): row for row in rows if row.crm_id is not None}


def _supersede(session: Session, write: OutboxWrite) -> bool:
    """Mark a pending write superseded, unless the flush sent it since it was read (the read may be
    a batch's, made before this lead's turn): then the newer update carries nothing of it, or
    it would write again a status sales may have changed in the CRM since."""
    marked = session.execute(update(OutboxWrite).where(OutboxWrite.id == write.id, OutboxWrite.status == "pending")
                             .values(status="superseded").execution_options(synchronize_session=False))
    if marked.rowcount == 1:
        set_committed_value(write, "status", "superseded")
        return True
    session.refresh(write)
    return False


def queue_update(session: Session, lead: Lead, result: ScoreResult, now: datetime,
                 changes: CrmChanges | None = None, last: OutboxWrite | None = NOT_READ) -> bool:
    """Queue the CRM update if what the rep would see changed; return whether one was queued.

    A newer update supersedes a pending older one and takes over its status fields and owner,
    so a burst of rescorings sends one write that still carries the hand-off. ``last``: the
    lead's ``latest_update`` when the caller read it already (``latest_updates``).
    """
    payload = update_payload(lead, result, changes)
    if last is NOT_READ:
        last = latest_update(session, lead)
    if last is not None and _already_covered(last.payload, payload):
        return False
    if last is not None and last.status == "pending" and _supersede(session, last):
        carried = {**last.payload.get("crm_fields", {}), **payload.get("crm_fields", {})}
        if carried:
            payload["crm_fields"] = carried
        if "owner_id" not in payload and last.payload.get("owner_id"):
            payload["owner_id"] = last.payload["owner_id"]
    payload["fields"]["scored_at"] = now.isoformat()
    session.add(OutboxWrite(
        lead_id=lead.id, crm=lead.crm, crm_id=lead.crm_id, kind="update",
        idempotency_key=f"update:{lead.crm}:{lead.crm_id}:{now.timestamp():.6f}:{lead.id}",
        payload=payload, status="pending", created_at=now,
    ))
    return True


def write_key(kind: str, crm: str, record: str, *parts: object) -> str:
    """An idempotency key that is unique beyond this database: the CRM keeps it on the record or
    task it creates, so a key reused after a database reset must never match an old one."""
    return ":".join([kind, crm, record, *map(str, parts), uuid.uuid4().hex[:16]])


def queue_task(session: Session, lead: Lead, task: dict[str, Any], now: datetime, crm: str | None = None) -> None:
    """Queue the rep's follow-up task for the lead's CRM record (numbered per lead); ``crm`` names
    the CRM of a web-only lead's record still being created (the task then waits for it)."""
    crm = lead.crm or crm
    if crm is None:
        raise ValueError(f"lead {lead.id} has no CRM record to put a task on")
    crm_id = lead.crm_id if lead.crm else AWAITING_RECORD
    seq = session.scalar(select(func.count()).select_from(OutboxWrite)
                         .where(OutboxWrite.lead_id == lead.id, OutboxWrite.kind == "task")) or 0
    session.add(OutboxWrite(
        lead_id=lead.id, crm=crm, crm_id=crm_id, kind="task",
        idempotency_key=write_key("task", crm, crm_id or f"lead{lead.id}", seq + 1), status="pending",
        created_at=now, payload={"task": task},
    ))


def queue_create(session: Session, lead: Lead, crm: str, result: ScoreResult, now: datetime,
                 changes: CrmChanges) -> None:
    """Queue the creation of a web-only lead's CRM record, carrying leadloop's fields, the
    hand-off's owner and the stage's CRM fields, so one call makes the record complete."""
    payload = update_payload(lead, result, changes)
    payload["fields"]["scored_at"] = now.isoformat()
    payload["record"] = {"email": lead.email, "lead_fields": dict(lead.fields or {})}
    session.add(OutboxWrite(
        lead_id=lead.id, crm=crm, crm_id=AWAITING_RECORD, kind="create",
        idempotency_key=write_key("create", crm, f"lead{lead.id}"), status="pending", created_at=now,
        payload=payload,
    ))


def latest_create(session: Session, lead_id: int) -> OutboxWrite | None:
    """The newest record create queued for the lead, if any."""
    return session.scalars(select(OutboxWrite).where(OutboxWrite.lead_id == lead_id, OutboxWrite.kind == "create")
                           .order_by(OutboxWrite.id.desc()).limit(1)).first()


def latest_sent_task_id(session: Session, lead_id: int) -> str | None:
    """The CRM id of the newest task we created for the lead, if any."""
    return session.scalars(select(OutboxWrite.external_id).where(
        OutboxWrite.lead_id == lead_id, OutboxWrite.kind == "task", OutboxWrite.status == "sent",
        OutboxWrite.external_id.is_not(None)).order_by(OutboxWrite.id.desc()).limit(1)).first()


# --- sending ---------------------------------------------------------------------------------

def lock_pending(session: Session, crm: str, kind: str, after_id: int, limit: int,
                 awaiting_too: bool = False) -> list[OutboxWrite]:
    """The next pending rows of one kind for ``crm`` after ``after_id``, row-locked (PostgreSQL
    skips rows another flush holds). Rows waiting for their record come only with
    ``awaiting_too`` (shadow mode, where no record is ever made and nothing is sent)."""
    stmt = (select(OutboxWrite).where(OutboxWrite.crm == crm, OutboxWrite.kind == kind,
                                      OutboxWrite.status == "pending", OutboxWrite.id > after_id)
            .order_by(OutboxWrite.id).limit(limit))
    if kind != "create" and not awaiting_too:
        stmt = stmt.where(OutboxWrite.crm_id != AWAITING_RECORD)
    if session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def send_batch(client: CrmClient | None, rows: list[OutboxWrite], now: datetime,
               totals: defaultdict[str, int]) -> None:
    """Send one CRM call's worth of rows (one batch of updates, or one task); shadow mode
    (``client`` None) records them as sent to no one. Raises the connector's ``CrmError``."""
    batch_id = uuid.uuid4().hex[:12]
    if client is None:
        for row in rows:
            row.status, row.batch_id, row.sent_at = "shadow", batch_id, now
        totals["shadow"] += len(rows)
        totals[{"create": "creates", "update": "batches"}.get(rows[0].kind, "tasks")] += 1
        return
    if rows[0].kind == "create":
        totals["creates"] += 1
        outcomes = {o.key: o for o in client.create_records([_record_create(row) for row in rows])}
        for row in rows:
            _settle(row, outcomes.get(row.idempotency_key), batch_id, now, totals)
    elif rows[0].kind == "update":
        totals["batches"] += 1
        outcomes = {o.key: o for o in client.update_records([_record_update(row) for row in rows])}
        for row in rows:
            _settle(row, outcomes.get(row.idempotency_key), batch_id, now, totals)
    else:
        totals["tasks"] += 1
        for row in rows:
            _settle(row, client.create_task(_task_spec(row)), batch_id, now, totals)


def _settle(row: OutboxWrite, outcome: WriteOutcome | None, batch_id: str, now: datetime,
            totals: defaultdict[str, int]) -> None:
    row.attempts += 1
    row.batch_id = batch_id
    if outcome is None:
        row.last_error = "no outcome returned by the connector"
        totals["retry"] += 1
    elif outcome.ok:
        # A created task or record keeps its CRM id (the SLA check asks the CRM whether a task is
        # done; a created record is linked to its lead, ``integration.pipeline.record_links``).
        row.status, row.sent_at, row.external_id, row.last_error = "sent", now, outcome.external_id, None
        totals["sent"] += 1
    elif outcome.retryable and row.attempts < 10:
        row.last_error = outcome.error
        totals["retry"] += 1
    else:
        row.status, row.last_error = "failed", outcome.error
        totals["failed"] += 1


def _typed_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The outbox keeps JSON; give the connector real datetimes so it formats them its CRM's way."""
    return {key: datetime.fromisoformat(value) if LEADLOOP_FIELDS.get(key, ("", ""))[1] == "datetime"
            and isinstance(value, str) else value for key, value in fields.items()}


def _record_update(row: OutboxWrite) -> RecordUpdate:
    payload = row.payload
    return RecordUpdate(key=row.idempotency_key, crm_id=row.crm_id, fields=_typed_fields(payload.get("fields", {})),
                        owner_id=payload.get("owner_id"), crm_fields=payload.get("crm_fields", {}))


def _record_create(row: OutboxWrite) -> RecordCreate:
    payload = row.payload
    record = payload.get("record") or {}
    return RecordCreate(key=row.idempotency_key, email=record.get("email") or "",
                        lead_fields=record.get("lead_fields") or {}, fields=_typed_fields(payload.get("fields", {})),
                        owner_id=payload.get("owner_id"), crm_fields=payload.get("crm_fields", {}))


def _task_spec(row: OutboxWrite) -> TaskSpec:
    task = row.payload["task"]
    return TaskSpec(key=row.idempotency_key, crm_id=row.crm_id, subject=task["subject"], body=task["body"],
                    due_at=datetime.fromisoformat(task["due_at"]), priority=task["priority"],
                    type=task["type"], owner_id=task.get("owner_id"))

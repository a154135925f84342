"""A web-only lead's new CRM record, linked to the lead once the CRM has created it.

When the CRM answers a create, the record id becomes the lead's (``crm``, ``crm_id``): later
webhooks for that record find this lead, and the writes that waited for the record (the
hand-off's task) get its id and go out in the same flush.

If leadloop already holds a lead for that record id (the CRM's creation webhook came in before
the create's answer was committed, or HubSpot matched the email to a contact leadloop knew only
by its id), that lead is merged into the web-only one with ``merge_into``: the lead that was just
handed off keeps its stage, owner, SLA and task, and receives the other lead's events, scores,
transitions and the fields it lacks; the other lead's pending writes are superseded, and the
record id moves over to the survivor, so no two leads hold it (``uq_leads_crm_record``).

The status the create wrote (``crm_stages``) becomes the lead's status and its status at hand-off:
the record's creation coming back from the CRM then changes nothing, and the SLA is met only
when sales moves the status on.

A create the CRM refused for good fails the writes that waited for it, naming the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from integration.pipeline.outbox import AWAITING_RECORD
from integration.pipeline.processing import apply_fields, lock_lead, merge_into
from integration.store.models import Lead, OutboxWrite

log = logging.getLogger(__name__)


def link_created_records(session: Session, rows: Iterable[OutboxWrite], normalise_id: Callable[[str], str],
                         status_fields: Mapping[str, str], now: datetime) -> set[int]:
    """Link the records of the settled ``create`` rows to their leads; return the ids of leads
    that took over another lead's events (to rescore). Runs in the flush's transaction.

    ``normalise_id`` and ``status_fields`` (CRM field -> canonical) are the connector's.
    """
    rescore: set[int] = set()
    for row in rows:
        if row.kind != "create":
            continue
        if row.status == "sent" and row.external_id:
            row.crm_id = normalise_id(row.external_id)
            lead = _live_lead(session, row.lead_id)
            if lead is None:
                continue
            if _link(session, lead, row.crm, row.crm_id):
                rescore.add(lead.id)
            if (lead.crm, lead.crm_id) == (row.crm, row.crm_id):
                _note_written_status(lead, row.payload.get("crm_fields") or {}, status_fields, now)
            _release_waiting(session, lead, row)
        elif row.status == "failed":
            session.execute(update(OutboxWrite).where(
                OutboxWrite.lead_id == row.lead_id, OutboxWrite.crm == row.crm,
                OutboxWrite.crm_id == AWAITING_RECORD, OutboxWrite.kind != "create",
                OutboxWrite.status == "pending",
            ).values(status="failed", last_error=f"no {row.crm} record: the create failed ({row.last_error})"))
    return rescore


def _live_lead(session: Session, lead_id: int) -> Lead | None:
    """The lead, row-locked (a concurrent rescore of it finishes first), following merges."""
    lead = lock_lead(session, lead_id)
    for _ in range(10):
        if lead is None or lead.merged_into_id is None:
            return lead
        lead = lock_lead(session, lead.merged_into_id)
    return lead


def _link(session: Session, lead: Lead, crm: str, record_id: str) -> bool:
    """Give ``lead`` the record; return whether another lead holding it was merged into it."""
    if lead.crm is not None:
        if (lead.crm, lead.crm_id) != (crm, record_id):
            # It got a record another way meanwhile (a webhook with its email): that one stays.
            log.warning("lead %s: created %s record %s, but the lead is already %s", lead.id, crm, record_id,
                        lead.ref)
        return False
    holder = session.scalars(select(Lead).where(Lead.crm == crm, Lead.crm_id == record_id)).first()
    merged = holder is not None and holder.id != lead.id
    if merged:
        merge_into(session, lead, holder)
        holder.crm, holder.crm_id = None, None  # the record id moves to the survivor
        session.flush()
    lead.crm, lead.crm_id = crm, record_id
    session.flush()
    return merged


def _note_written_status(lead: Lead, crm_fields: Mapping[str, Any], status_fields: Mapping[str, str],
                         now: datetime) -> None:
    """The new record holds the status the create wrote: note it as the lead's, and as its status
    at hand-off, so the record's creation coming back from the CRM is not sales acting on it."""
    written = {status_fields[name]: value for name, value in crm_fields.items() if name in status_fields}
    if not written:
        return
    apply_fields(lead, written, now)
    if "lead_status" in written:
        lead.handoff_status = str(written["lead_status"])


def _release_waiting(session: Session, lead: Lead, row: OutboxWrite) -> None:
    """Give the writes that waited for the record its id (or fail them if the lead has another)."""
    waiting = (OutboxWrite.lead_id == lead.id, OutboxWrite.crm == row.crm, OutboxWrite.crm_id == AWAITING_RECORD,
               OutboxWrite.kind != "create", OutboxWrite.status == "pending")
    if lead.crm == row.crm:
        session.execute(update(OutboxWrite).where(*waiting).values(crm_id=lead.crm_id))
    else:
        session.execute(update(OutboxWrite).where(*waiting).values(
            status="failed", last_error=f"the lead is {lead.ref}, not the created {row.crm} record"))

"""Deals and their leads: a deal's newest state, which leads it belongs to, and the ``deal_change``
event that tells each lead (its timeline entry and the input of its lifecycle).

A deal's state is kept like a lead's fields: each value with the business time it was true at
(``Deal.field_times``), so a change arriving late never overwrites a newer one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from integration.store.models import Deal, DealLead, Event, Lead

#: The deal's state a ``deal_change`` may carry -> how the column holds it.
STATE_FIELDS = ("pipeline", "stage", "is_closed", "is_won", "amount", "currency", "created_at", "closed_at")
#: What a lead's ``deal_change`` event says of its deal (and ``lead show`` lists).
SUMMARY_FIELDS = ("pipeline", "stage", "amount", "currency", "created_at", "closed_at", "outcome")


def deal_row(session: Session, crm: str, crm_id: str, now: datetime) -> Deal:
    """Return the deal, creating it (state unknown) when it is new."""
    deal = session.scalars(select(Deal).where(Deal.crm == crm, Deal.crm_id == crm_id)).first()
    if deal is None:
        deal = Deal(crm=crm, crm_id=crm_id, field_times={}, updated_at=now)
        session.add(deal)
        session.flush()
    return deal


def apply_deal_state(deal: Deal, values: Mapping[str, Any], at: datetime) -> bool:
    """Set each state field ``values`` names unless a newer value is stored; return whether any changed.

    ``values`` are ``deal_change`` properties (text amounts and ISO times as the connectors send them).
    """
    times = dict(deal.field_times or {})
    stamp = at.astimezone(UTC).isoformat()
    changed = False
    for name in STATE_FIELDS:
        if name not in values or (name in times and times[name] > stamp):
            continue
        times[name] = stamp
        value = _column_value(name, values[name])
        if getattr(deal, name) != value:
            setattr(deal, name, value)
            changed = True
    deal.field_times = times
    return changed


def _column_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "amount":
        try:
            return Decimal(str(value)).quantize(Decimal("0.01"))
        except InvalidOperation:
            return None
    if name in ("created_at", "closed_at"):
        moment = datetime.fromisoformat(str(value))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return value


def link_lead(session: Session, deal: Deal, lead_id: int, at: datetime) -> bool:
    """Make ``lead_id`` one of the deal's leads; return whether the link is new."""
    if session.get(DealLead, (deal.id, lead_id)) is not None:
        return False
    session.add(DealLead(deal_id=deal.id, lead_id=lead_id, linked_at=at))
    session.flush()
    return True


def unlink_lead(session: Session, deal: Deal, lead_id: int) -> None:
    session.execute(delete(DealLead).where(DealLead.deal_id == deal.id, DealLead.lead_id == lead_id))


def deal_lead_ids(session: Session, deal: Deal) -> list[int]:
    """The deal's leads, oldest link first."""
    return list(session.scalars(select(DealLead.lead_id).where(DealLead.deal_id == deal.id)
                                .order_by(DealLead.linked_at, DealLead.lead_id)))


def lead_deals(session: Session, lead_id: int) -> list[Deal]:
    """The lead's deals (not deleted, not merged away), oldest first."""
    return list(session.scalars(
        select(Deal).join(DealLead, DealLead.deal_id == Deal.id)
        .where(DealLead.lead_id == lead_id, Deal.deleted_at.is_(None), Deal.merged_into_id.is_(None))
        .order_by(Deal.created_at, Deal.id)))


def merge_deal_into(session: Session, survivor: Deal, merged: Deal, at: datetime) -> None:
    """The CRM merged ``merged`` into ``survivor``: its leads move over, it no longer counts."""
    if merged.id == survivor.id:
        return
    for lead_id in deal_lead_ids(session, merged):
        link_lead(session, survivor, lead_id, at)
    session.execute(delete(DealLead).where(DealLead.deal_id == merged.id))
    merged.merged_into_id, merged.deleted_at = survivor.id, merged.deleted_at or at


def move_deal_links(session: Session, survivor_id: int, merged_id: int) -> None:
    """Two leads merged: the merged lead's deals become the survivor's."""
    survivor_deals = set(session.scalars(select(DealLead.deal_id).where(DealLead.lead_id == survivor_id)))
    session.execute(delete(DealLead).where(DealLead.lead_id == merged_id, DealLead.deal_id.in_(survivor_deals)))
    session.execute(update(DealLead).where(DealLead.lead_id == merged_id).values(lead_id=survivor_id))


def deal_summary(deal: Deal) -> dict[str, Any]:
    """What a lead's ``deal_change`` event (and ``lead show``) says of a deal, JSON-able."""
    closed = deal.outcome in ("won", "lost") or bool(deal.is_closed)
    summary = {"deal_id": deal.crm_id, "pipeline": deal.pipeline, "stage": deal.stage,
               "amount": None if deal.amount is None else format(deal.amount, "f"), "currency": deal.currency,
               "created_at": deal.created_at.isoformat() if deal.created_at else None,
               # An open deal's close date is only the expected one.
               "closed_at": deal.closed_at.isoformat() if deal.closed_at and closed else None,
               "outcome": deal.outcome}
    if deal.deleted_at is not None:
        summary["deleted"] = True
    return summary


def tell_lead(session: Session, deal: Deal, lead_id: int, at: datetime, cause: str, received_at: datetime) -> bool:
    """Store a ``deal_change`` event for the lead saying what the deal is now, unless its last one
    already said so; return whether one was stored (the lead then needs processing).

    ``at`` is the business time of the deal change; ``cause`` names it uniquely (the key of the
    event that changed the deal), so the same change never tells a lead twice.
    """
    summary = deal_summary(deal)
    last = session.scalars(select(Event.properties).where(
        Event.lead_id == lead_id, Event.kind == "deal_change", Event.record_id == deal.crm_id,
        Event.source == deal.crm).order_by(Event.occurred_at.desc(), Event.id.desc()).limit(1)).first()
    if last is not None and {key: last.get(key) for key in summary} == summary:
        return False
    key = f"deal/{deal.crm_id}/lead/{lead_id}/{cause}"
    if session.scalars(select(Event.id).where(Event.source == deal.crm, Event.event_key == key)).first():
        return False
    session.add(Event(source=deal.crm, event_key=key[:200], lead_id=lead_id, record_id=deal.crm_id,
                      kind="deal_change", occurred_at=at, received_at=received_at, fields={},
                      properties=summary, raw=None))
    session.flush()
    return True


def leads_by_crm_id(session: Session, crm: str, crm_ids: list[str]) -> dict[str, int]:
    """Return ``{crm id: lead id}`` for the records leadloop knows, following merges."""
    found: dict[str, int] = {}
    if not crm_ids:
        return found
    for lead in session.scalars(select(Lead).where(Lead.crm == crm, Lead.crm_id.in_(crm_ids))):
        current, hops = lead, 0
        while current.merged_into_id is not None and hops < 10:
            current, hops = session.get(Lead, current.merged_into_id), hops + 1
        if current.erased_at is None and current.deleted_at is None:
            found[lead.crm_id] = current.id
    return found

"""A lead's side of its deals: the outcome a ``deal_change`` event gives it, and a Salesforce Lead's
conversion (its Contact and Opportunity become its own).

Runs inside the lead's transaction (``integration.pipeline.processing``); the stage move itself
is pure (``scoring.lifecycle_outcomes.outcome_decision``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.store.deals import deal_row, lead_deals, link_lead, tell_lead
from integration.store.models import Event, Lead
from scoring.lifecycle_outcomes import lead_outcome

#: What a transition caused by a deal records of it.
OUTCOME_DETAIL = ("deal_id", "stage", "amount", "currency")


def lead_deal_outcome(session: Session, lead: Lead, event: Event) -> tuple[str, dict[str, Any]] | None:
    """Return the lead's outcome after a ``deal_change`` event, and the deal that gives it, or None.

    The event's deal counts as the event says (a deleted deal does not); the lead's other deals
    as they are now. The best outcome wins (``scoring.lifecycle_outcomes.lead_outcome``).
    """
    this = event.properties or {}
    outcomes = {this.get("deal_id"): None if this.get("deleted") else this.get("outcome")}
    others: dict[str, dict[str, Any]] = {}
    for deal in lead_deals(session, lead.id):
        if deal.crm_id != this.get("deal_id"):
            outcomes[deal.crm_id] = deal.outcome
            others[deal.crm_id] = {"deal_id": deal.crm_id, "stage": deal.stage,
                                   "amount": None if deal.amount is None else format(deal.amount, "f"),
                                   "currency": deal.currency}
    best = lead_outcome(outcomes.values())
    if best is None:
        return None
    giver = next(deal_id for deal_id, outcome in outcomes.items() if outcome == best)
    detail = {key: this.get(key) for key in OUTCOME_DETAIL} if giver == this.get("deal_id") else others[giver]
    return best, detail


def convert_lead(session: Session, lead: Lead, event: Event, now: datetime) -> Lead | None:
    """Apply a Salesforce Lead's conversion: its Opportunity becomes its deal, and its Contact its
    record for whatever comes later (a Task on the Contact, the Opportunity's ``ContactId``).

    Returns a lead leadloop already has for the Contact, for the caller to merge into ``lead``;
    else records the Contact id as a pointer to ``lead`` and returns None.
    """
    properties = event.properties or {}
    opportunity = properties.get("converted_opportunity_id")
    if opportunity and lead.crm:
        deal = deal_row(session, lead.crm, opportunity, now)
        link_lead(session, deal, lead.id, event.occurred_at)
        if deal.field_times:  # the opportunity's own message came first: tell the lead now
            tell_lead(session, deal, lead.id, event.occurred_at, f"conversion-{event.id}", now)
    contact = properties.get("converted_contact_id")
    if not contact or not lead.crm or contact == lead.crm_id:
        return None
    other = session.scalars(select(Lead).where(Lead.crm == lead.crm, Lead.crm_id == contact)).first()
    if other is None:
        # A pointer, like a merged record: events for the Contact land on this lead.
        session.add(Lead(crm=lead.crm, crm_id=contact, fields={}, field_times={}, merged_into_id=lead.id,
                         created_at=now, updated_at=now))
        session.flush()
        return None
    return other if other.id != lead.id and other.merged_into_id != lead.id else None

"""Rep activity as SLA action: the calls, emails and meetings logged in the CRM on a lead, as the
pure SLA check sees them (``scoring.lifecycle_follow_up.sla_action``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.store.models import Event, Lead
from scoring.lifecycle import LeadState
from scoring.lifecycle_follow_up import RepActivity, sla_action
from scoring.lifecycle_rules import LifecycleRules


def logged_activities(session: Session, lead: Lead, since: datetime | None = None) -> list[RepActivity]:
    """The lead's rep activities (``rep_activity`` events), logged at or after ``since``."""
    stmt = select(Event.occurred_at, Event.properties).where(Event.lead_id == lead.id, Event.kind == "rep_activity")
    if since is not None:
        stmt = stmt.where(Event.occurred_at >= since)
    return [RepActivity(str((properties or {}).get("activity_type") or ""), (properties or {}).get("owner_id"),
                        logged_at, (properties or {}).get("direction"))
            for logged_at, properties in session.execute(stmt.order_by(Event.occurred_at, Event.id))]


def rep_acted(session: Session, lead: Lead, state: LeadState, rules: LifecycleRules) -> RepActivity | None:
    """Return the activity by which the lead's owner met the hand-off's SLA, or None."""
    return sla_action(state, logged_activities(session, lead, state.last_handoff_at), rules)

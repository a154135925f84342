"""Applying lifecycle decisions (hand-off, tasks, SLA, recycle) to a scored lead."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.models import Event, Lead, OutboxWrite


def after_score(session: Session, svc: Any, lead: Lead, result: Any, pending: list[Event], now: datetime) -> None:
    """Move the lead through its stages after a scoring."""
    if lead.stage == "new":
        lead.stage = "mql" if result.mql else "nurture"


def crm_extras(lead: Lead) -> dict[str, Any]:
    """Owner and mapped CRM status fields to include in the lead's update."""
    return {}


def has_pending_tasks(session: Session, lead: Lead) -> bool:
    return session.scalars(select(OutboxWrite.id).where(
        OutboxWrite.lead_id == lead.id, OutboxWrite.kind == "task", OutboxWrite.status == "pending")).first() is not None

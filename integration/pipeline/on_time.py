"""On-time rescoring: a lead whose verdict changes with time alone is rescored when it does.

Each scoring stores when the lead's visible verdict next changes with no new event
(``Lead.next_review_at``: decay crossing a band or the MQL line, the written score moving by the
rules' ``rescore.score_step``, an override or a lifespan ending, a recycle cooldown ending;
``processing.plan_review``). The cron entry ``rescore_on_time`` picks the leads that are due, in
batches (PostgreSQL ``FOR UPDATE SKIP LOCKED``, so several workers share them), and rescores each
as of now in its own transaction: cost follows the leads that are due, never a pass over all of
them. The CRM gets the new verdict through the outbox, batched like any write; a verdict that did
not change writes nothing; the timeline shows "rescored on time (...)".
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from integration.pipeline.failures import each_lead_apart
from integration.pipeline.processing import rescore_lead
from integration.services import Services
from integration.store.models import Lead

log = logging.getLogger(__name__)

#: Leads one run rescores at most (the next run takes the rest).
BATCH = 1000


def due_query(now: datetime, limit: int = BATCH, *, lock: bool = False) -> Select[tuple[int, str | None]]:
    """The query of the leads whose next review is due, earliest first (an index range scan of
    ``next_review_at``: it reads the due leads only); ``lock``: row-locked, skipping rows another
    worker holds (PostgreSQL)."""
    stmt = (select(Lead.id, Lead.next_review_reason)
            .where(Lead.next_review_at.is_not(None), Lead.next_review_at <= now, Lead.quarantined_at.is_(None))
            .order_by(Lead.next_review_at).limit(limit))
    return stmt.with_for_update(skip_locked=True, of=Lead) if lock else stmt


def due_for_review(session: Session, now: datetime, limit: int = BATCH) -> list[tuple[int, str | None]]:
    """The leads whose next review is due, earliest first, row-locked (skipping rows another
    worker holds) on PostgreSQL."""
    stmt = due_query(now, limit, lock=session.bind.dialect.name == "postgresql")
    return [(lead_id, reason) for lead_id, reason in session.execute(stmt)]


def rescore_on_time(svc: Services, now: datetime) -> dict[str, int]:
    """Rescore the due leads as of ``now``; return how many were due, rescored and failed."""
    with svc.sessions() as session:
        due = due_for_review(session, now)
    causes = {lead_id: f"rescored on time ({reason or 'due'})" for lead_id, reason in due}
    rescored, failed = each_lead_apart(svc, list(causes), now, lambda session, lead_id: rescore_lead(
        session, svc, lead_id, now, cause=causes[lead_id]))
    if due:
        log.info("on-time rescoring: %d lead(s) due, %d rescored, %d failed", len(due), rescored, failed)
    return {"due": len(due), "rescored": rescored, "failed": failed}

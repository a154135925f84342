"""RQ jobs: plain importable functions with JSON-able arguments.

``rescore_leads`` drains every unprocessed event of its leads in ``occurred_at`` order, scores,
records, and queues CRM writes in the outbox; ``flush_outbox`` sends the outbox in batches per
CRM; ``sweep`` (cron) re-requests work that a lost job left behind. Retries are declared where
the jobs are enqueued (``integration.queue``); a job that fails raises, it never returns False.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import LEADLOOP_FIELDS, CrmRateLimited, RecordUpdate, TaskSpec
from integration import apply, clock, services
from integration.models import OutboxWrite
from integration.queue import (
    clear_rescore_marks,
    flush_key,
    release_stale_marks,
    request_flush,
    request_rescore,
)
from integration.store import pending_lead_ids

log = logging.getLogger(__name__)


def rescore_leads(lead_ids: list[int]) -> dict[str, Any]:
    """Process the pending events of ``lead_ids``; return counts. Raises on storage errors."""
    svc = services.current()
    clear_rescore_marks(svc.redis, lead_ids)
    now = clock.now()
    apply.hydrate_from_crm(svc, lead_ids)
    scored = 0
    crms: set[str] = set()
    for lead_id in sorted(lead_ids):
        with svc.sessions.begin() as session:
            outcome = apply.process_lead(session, svc, lead_id, now)
        if outcome.scored:
            scored += 1
        crms.update(outcome.crm_writes)
    for crm in sorted(crms):
        request_flush(svc.queue, crm, delay=svc.config["LEADLOOP_FLUSH_DELAY"])
    return {"leads": len(lead_ids), "scored": scored}


def _lock_pending(session: Session, crm: str, kind: str, after_id: int, limit: int) -> list[OutboxWrite]:
    stmt = (select(OutboxWrite).where(OutboxWrite.crm == crm, OutboxWrite.kind == kind,
                                      OutboxWrite.status == "pending", OutboxWrite.id > after_id)
            .order_by(OutboxWrite.id).limit(limit))
    if session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def flush_outbox(crm: str) -> dict[str, Any]:
    """Send ``crm``'s pending writes in batches (or, in shadow mode, record them as sent-to-none).

    One CRM call's worth of rows per transaction, so row locks (SQLite: the write lock) are
    never held across more than one HTTP call. Each row is tried once per run (an id cursor):
    a retryable per-record error waits for the next flush. Returns counts. Raises ``CrmError``
    on an outage so RQ retries with backoff; on a rate limit, schedules itself after the wait
    the CRM asked for.
    """
    from connectors import registry

    svc = services.current()
    svc.redis.delete(flush_key(crm))
    totals: dict[str, int] = defaultdict(int)
    # Shadow mode needs no credentials: it batches exactly as live mode would, and records.
    client = svc.crm_client(crm) if svc.live_writes else None
    for kind, limit in (("update", registry()[crm].max_update_batch), ("task", 1)):
        cursor = 0
        while True:
            with svc.sessions.begin() as session:
                rows = _lock_pending(session, crm, kind, cursor, limit)
                if not rows:
                    break
                cursor = rows[-1].id
                try:
                    _send(svc, client, rows, totals)
                except CrmRateLimited as limited:
                    log.warning("%s rate limited; flushing again in %.0fs", crm, limited.retry_after)
                    svc.queue.enqueue_in(timedelta(seconds=limited.retry_after), "integration.jobs.flush_outbox",
                                         crm, description=f"flush {crm} outbox after rate limit")
                    totals["rate_limited"] += 1
                    return dict(totals)
    return dict(totals)


def _send(svc: services.Services, client: Any, rows: list[OutboxWrite], totals: dict[str, int]) -> None:
    """Send one CRM call's worth of rows (one batch of updates, or one task)."""
    now = clock.now()
    batch_id = uuid.uuid4().hex[:12]
    if client is None:
        for row in rows:
            row.status, row.batch_id, row.sent_at = "shadow", batch_id, now
        totals["shadow"] += len(rows)
        totals["batches" if rows[0].kind == "update" else "tasks"] += 1
        return
    if rows[0].kind == "update":
        totals["batches"] += 1
        outcomes = {o.key: o for o in client.update_records([_record_update(row) for row in rows])}
        for row in rows:
            _settle(row, outcomes.get(row.idempotency_key), batch_id, now, totals)
    else:
        totals["tasks"] += 1
        for row in rows:
            _settle(row, client.create_task(_task_spec(row)), batch_id, now, totals)


def _settle(row: OutboxWrite, outcome: Any, batch_id: str, now: datetime, totals: dict[str, int]) -> None:
    row.attempts += 1
    row.batch_id = batch_id
    if outcome is None:
        row.last_error = "no outcome returned by the connector"
        totals["retry"] += 1
    elif outcome.ok:
        row.status, row.sent_at, row.external_id, row.last_error = "sent", now, outcome.external_id, None
        totals["sent"] += 1
        if row.kind == "task" and outcome.external_id:
            apply.record_task_id(row, outcome.external_id)
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


def _task_spec(row: OutboxWrite) -> TaskSpec:
    task = row.payload["task"]
    return TaskSpec(key=row.idempotency_key, crm_id=row.crm_id, subject=task["subject"], body=task["body"],
                    due_at=datetime.fromisoformat(task["due_at"]), priority=task["priority"],
                    type=task["type"], owner_id=task.get("owner_id"))


def sweep() -> dict[str, int]:
    """Cron safety net: release marks of lost jobs, re-request stale events and pending writes."""
    svc = services.current()
    marks = [key.decode() for key in svc.redis.scan_iter("leadloop:*-pending:*", count=1000)]
    released = release_stale_marks(svc.queue, marks)
    cutoff = clock.now() - timedelta(seconds=60)
    with svc.sessions() as session:
        stale = pending_lead_ids(session, cutoff)
        crms = list(session.scalars(select(OutboxWrite.crm).where(OutboxWrite.status == "pending")
                                    .group_by(OutboxWrite.crm)))
    request_rescore(svc.queue, stale)
    for crm in crms:
        request_flush(svc.queue, crm)
    return {"released": released, "leads": len(stale), "crms": len(crms)}



"""Rules roll-out: when the live rules file changes, every lead is scored again under it.

Each lead records the version of the rules that scored it (``Lead.rules_version``). A scored lead
whose version is not the live one is *due*; the roll-out job rescores due leads in batches of
``BATCH``, each lead in its own transaction, as of now and with no new event
(``processing.rescore_lead``). That makes it resumable by construction: a killed worker leaves
the rest due and a lead is never rescored twice for one roll-out. Only changed verdicts reach the
CRM (an update that would not change what the rep sees is not queued), batched like any write
and within the CRM's limits by the flush job; a hand-off a roll-out causes follows the same rules
as any other.

The sweeper (cron: at its start and then every ``LEADLOOP_SWEEP_SECONDS``) starts a roll-out
when leads are due, so restarting the processes with a new rules file starts one, and it resumes
one that a lost job left unfinished. ``leadloop rescore --all`` marks every lead due.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rq import Retry
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from integration.pipeline.failures import each_lead_apart
from integration.pipeline.processing import rescore_lead
from integration.services import Services
from integration.store.models import Lead

log = logging.getLogger(__name__)

#: Leads per batch (one query for the batch, one transaction per lead).
BATCH = 500
#: Batches one job runs before it hands over to a new job (so a roll-out never holds a worker
#: for long, and other jobs interleave).
BATCHES_PER_JOB = 20
#: Holds the id of the roll-out job queued or running, so one runs at a time. Named like the
#: queue's pending marks: the sweeper releases it when its job is gone (lost, failed, abandoned).
LOCK_KEY = "leadloop:rollout-pending:rules"
LOCK_SECONDS = 3600
ROLLOUT_JOB = "integration.pipeline.jobs.rollout_rules"
#: A database hiccup is retried at once, then after 30 s and 2 minutes.
ROLLOUT_RETRY = Retry(max=3, interval=[0, 30, 120])


@dataclass(frozen=True)
class RolloutProgress:
    version: str
    scored: int
    due: int

    @property
    def done(self) -> bool:
        return self.due == 0


def _due(version: str) -> Any:
    return (Lead.scored_at.is_not(None), Lead.merged_into_id.is_(None), Lead.erased_at.is_(None),
            Lead.deleted_at.is_(None), Lead.quarantined_at.is_(None),
            or_(Lead.rules_version.is_(None), Lead.rules_version != version))


def due_lead_ids(session: Session, version: str, after_id: int = 0, limit: int | None = None) -> list[int]:
    """The next due leads after ``after_id``, in id order (``BATCH`` of them unless ``limit``)."""
    return list(session.scalars(select(Lead.id).where(*_due(version), Lead.id > after_id)
                                .order_by(Lead.id).limit(limit or BATCH)))


def progress(session: Session, version: str) -> RolloutProgress:
    """How far the roll-out of ``version`` is: scored leads, and those still due."""
    scored = session.scalar(select(func.count()).select_from(Lead).where(
        Lead.scored_at.is_not(None), Lead.merged_into_id.is_(None), Lead.erased_at.is_(None))) or 0
    due = session.scalar(select(func.count()).select_from(Lead).where(*_due(version))) or 0
    return RolloutProgress(version, scored, due)


def mark_all_due(session: Session) -> int:
    """``leadloop rescore --all``: every scored lead is due again; return how many."""
    return session.execute(update(Lead).where(Lead.scored_at.is_not(None)).values(rules_version=None)).rowcount


def request_rollout(svc: Services) -> bool:
    """Enqueue a roll-out job if leads are due and none is queued or running; return whether one
    was enqueued."""
    with svc.sessions() as session:
        if not due_lead_ids(session, svc.rules.version, limit=1):
            return False
    job_id = f"rollout-{uuid.uuid4().hex}"
    if not svc.redis.set(LOCK_KEY, job_id, nx=True, ex=LOCK_SECONDS):
        return False
    svc.queue.enqueue(ROLLOUT_JOB, job_id=job_id, retry=ROLLOUT_RETRY, result_ttl=300, failure_ttl=7 * 86400,
                      description=f"roll out rules {svc.rules.version}")
    return True


def release(svc: Services, job_id: str) -> None:
    """The roll-out job ``job_id`` is done: let the next one be queued."""
    if svc.redis.get(LOCK_KEY) == job_id.encode():
        svc.redis.delete(LOCK_KEY)


def run_rollout(svc: Services, now: datetime) -> dict[str, int]:
    """Rescore up to ``BATCHES_PER_JOB`` batches of due leads; return counts. The caller (the
    job) holds the lock and hands over to a new job while leads remain due."""
    version = svc.rules.version
    rescored = failed = 0
    cursor = 0
    for _ in range(BATCHES_PER_JOB):
        with svc.sessions() as session:
            batch = due_lead_ids(session, version, cursor)
        if not batch:
            break
        scored, lost = each_lead_apart(svc, batch, now,
                                       lambda session, lead_id: rescore_lead(session, svc, lead_id, now))
        rescored, failed, cursor = rescored + scored, failed + lost, batch[-1]
    log.info("rules %s roll-out: %d lead(s) rescored, %d failed", version, rescored, failed)
    return {"rescored": rescored, "failed": failed}

"""A lead whose processing fails (a poison lead) never blocks the others.

``rescore_leads`` processes up to ``LEADS_PER_COMMIT`` leads in one transaction (one commit, so
one durable write, for the batch instead of one per lead), all at once first; when a lead fails
for a reason of its own (its data, not an outage), that transaction rolls back and the batch runs
again with each lead in a savepoint of its own. The failing lead's savepoint rolls back, the
failure is recorded on the lead (``Lead.failures``, ``last_error``) in the same transaction,
the lead is tried again after a backoff, and after ``MAX_ATTEMPTS`` it is quarantined: left
alone, listed by ``leadloop dead-letters``, until ``leadloop dead-letters --retry`` releases it.
The other leads of the job complete either way.

An outage (the database or Redis unreachable, a CRM down) is not the lead's fault: it raises,
the batch's transaction rolls back whole (its events stay unprocessed), and RQ retries the
whole job with its own backoff, which applies them exactly once.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from connectors.base import CrmError
from integration.pipeline.queue import request_flush
from integration.services import Services
from integration.store.models import Lead

log = logging.getLogger(__name__)

#: Attempts before a failing lead is quarantined (the first try included).
MAX_ATTEMPTS = 5
#: Wait before the 2nd, 3rd, ... attempt.
RETRY_DELAYS = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(minutes=30))
#: Failures that are not the lead's fault: the job raises and RQ retries it whole. (An
#: IntegrityError is a concurrent writer that won a race: the retried job sees its row.)
OUTAGES = (OperationalError, InterfaceError, IntegrityError, RedisError, CrmError)
#: Leads processed in one transaction (each in a savepoint of its own).
LEADS_PER_COMMIT = 100
#: The RQ job that retries one lead (``integration.pipeline.jobs``).
RESCORE_JOB = "integration.pipeline.jobs.rescore_leads"


def describe(exc: BaseException) -> str:
    """The exception's type and the innermost frame of leadloop's code that raised it.

    Never the message: a message can quote the lead's data (``invalid literal ... 'ada@...'``).
    """
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename)
        if any(part in ("integration", "connectors", "scoring") for part in path.parts[-3:-1]):
            where = f" in {'/'.join(path.parts[-2:])}:{frame.lineno} ({frame.name})"
            break
    return f"{type(exc).__name__}{where}"


def record_failure(session: Session, svc: Services, lead_id: int, exc: BaseException, now: datetime) -> None:
    """Note a failed attempt on the lead, in the caller's transaction; schedule its retry or
    quarantine it."""
    error = describe(exc)
    lead = session.get(Lead, lead_id)
    if lead is None:
        return
    lead.failures = (lead.failures or 0) + 1
    lead.last_error = error
    if lead.failures >= MAX_ATTEMPTS:
        lead.quarantined_at, lead.retry_at = now, None
    else:
        lead.retry_at = now + RETRY_DELAYS[min(lead.failures, len(RETRY_DELAYS)) - 1]
    session.flush()
    if lead.quarantined_at is not None:
        log.error("lead %s quarantined after %d failed attempts: %s", lead_id, MAX_ATTEMPTS, error)
        return
    log.warning("lead %s failed (%s); trying again at %s", lead_id, error, lead.retry_at)
    try:
        svc.queue.enqueue_at(lead.retry_at, RESCORE_JOB, [lead_id], description=f"retry lead {lead_id}")
    except RedisError:
        log.warning("could not schedule the retry of lead %s; the sweeper will", lead_id)


class LeadWork(Protocol):
    """One lead's transaction: ``work(session, lead_id)`` returns what it did."""

    def __call__(self, session: Session, lead_id: int) -> Any: ...


def each_lead_apart(svc: Services, lead_ids: Iterable[int], now: datetime, work: LeadWork,
                    prepare: Callable[[Session, list[int]], None] | None = None) -> tuple[int, int]:
    """Run ``work`` for each lead, ``LEADS_PER_COMMIT`` leads to a transaction, a failing lead
    apart from the others, then request a flush for each CRM that got writes; return (leads
    scored, leads failed).

    A batch of several leads runs first as one transaction with no savepoints (``_all_at_once``),
    so its writes are flushed together at the commit (an ``INSERT`` of all its score rows, not one
    per lead); a batch of one goes straight to its savepoint. If a lead fails there for a reason
    of its own, that transaction rolls back whole and the batch runs again with each lead in a
    savepoint of its own (``_each_in_a_savepoint``): the failing lead's rolls back only, and is
    recorded (``record_failure``), and the others go on. An outage raises either way (the whole
    batch rolls back).

    ``prepare(session, lead_ids)`` runs first in each transaction, for the leads it will process
    (reading what their ``work`` needs at once: ``processing.Prefetched``); if it fails for a
    reason of its own, each lead's ``work`` reads for itself. The outcome ``work`` returns has
    ``scored`` and ``crm_writes`` (``processing.LeadOutcome``).
    """
    scored = failed = 0
    crms: set[str] = set()
    ids = list(lead_ids)
    for start in range(0, len(ids), LEADS_PER_COMMIT):
        batch = ids[start:start + LEADS_PER_COMMIT]
        # A batch of one lead goes straight to its savepoint: a failure never runs it twice.
        outcomes = _all_at_once(svc, batch, work, prepare) if len(batch) > 1 else None
        if outcomes is None:
            outcomes = _each_in_a_savepoint(svc, batch, now, work, prepare)
        for outcome in outcomes:
            if outcome is None:
                failed += 1
                continue
            scored += outcome.scored
            crms.update(outcome.crm_writes)
    for crm in sorted(crms):
        request_flush(svc.queue, crm, delay=svc.config["LEADLOOP_FLUSH_DELAY"])
    return scored, failed


def _all_at_once(svc: Services, batch: list[int], work: LeadWork,
                 prepare: Callable[[Session, list[int]], None] | None) -> list[Any] | None:
    """The batch in one transaction, committed; None (rolled back) if a lead failed on its own."""
    try:
        with svc.sessions.begin() as session:
            if prepare is not None:
                prepare(session, batch)
            return [work(session, lead_id) for lead_id in batch]
    except OUTAGES:
        raise
    except Exception as exc:  # noqa: BLE001 - a poison lead: the batch again, each lead apart
        log.info("a lead of a batch of %d failed (%s); processing them one by one", len(batch), describe(exc))
        return None


def _each_in_a_savepoint(svc: Services, batch: list[int], now: datetime, work: LeadWork,
                         prepare: Callable[[Session, list[int]], None] | None) -> list[Any]:
    """The batch in one transaction, each lead in a savepoint; a failed lead's outcome is None."""
    outcomes: list[Any] = []
    with svc.sessions.begin() as session:
        if prepare is not None:
            try:
                with session.begin_nested():
                    prepare(session, batch)
            except OUTAGES:
                raise
            except Exception as exc:  # noqa: BLE001 - then each lead's work reads for itself
                log.warning("could not read %d leads at once (%s); reading them one by one", len(batch), describe(exc))
        for lead_id in batch:
            try:
                with session.begin_nested():
                    outcomes.append(work(session, lead_id))
            except OUTAGES:
                raise
            except Exception as exc:  # noqa: BLE001 - a poison lead: recorded, retried, never blocks the others
                record_failure(session, svc, lead_id, exc, now)
                outcomes.append(None)
    return outcomes


def clear_failures(lead: Lead) -> None:
    """A successful run: the lead is healthy again."""
    if lead.failures or lead.last_error or lead.retry_at:
        lead.failures, lead.last_error, lead.retry_at = 0, None, None


def failing_leads(session: Session) -> list[Lead]:
    """Leads with failed attempts (quarantined first), for ``leadloop dead-letters``."""
    return list(session.scalars(select(Lead).where(Lead.failures > 0)
                                .order_by(Lead.quarantined_at.is_(None), Lead.id)))


def release(session: Session, lead_ids: list[int] | None = None) -> list[int]:
    """Release quarantined (and failing) leads for another round of attempts; return their ids."""
    stmt = select(Lead).where(Lead.failures > 0)
    if lead_ids is not None:
        stmt = stmt.where(Lead.id.in_(lead_ids))
    released = []
    for lead in session.scalars(stmt):
        lead.failures, lead.retry_at, lead.quarantined_at = 0, None, None
        released.append(lead.id)
    return released

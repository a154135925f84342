"""Every RQ job and every cron entry: plain importable functions with JSON-able arguments.

- ``rescore_leads``  drains every unprocessed event of its leads in ``occurred_at`` order,
  one transaction per lead (``integration.pipeline.processing``); a lead that fails is
  recorded and retried on its own (``integration.pipeline.failures``);
- ``flush_outbox``   sends a CRM's pending writes in batches (``integration.pipeline.outbox``) and
  links the records it created to their leads (``integration.pipeline.record_links``);
- ``resolve_records`` resolves a CRM's deal and rep-activity events to their leads
  (``integration.pipeline.records``), then rescores the leads they told;
- ``sla_check``      runs at a hand-off's due time and escalates if sales did not act;
- ``rollout_rules``  rescores leads scored under older rules (``integration.pipeline.rollout``);
- ``rescore_on_time`` (cron) rescores leads whose verdict changes with time alone
  (``integration.pipeline.on_time``);
- ``sweep`` and ``sweep_slas`` (cron, ``cron_jobs``) re-request work a lost job left behind;
- ``request_digest`` (cron, when a digest channel is configured) queues the weekly digest.

Retries are declared where the jobs are enqueued (``integration.pipeline.queue``); a job that
fails raises, it never returns False.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from rq import get_current_job
from rq.registry import StartedJobRegistry
from sqlalchemy import select

from connectors.base import CrmRateLimited
from integration import services
from integration.pipeline import on_time, rollout
from integration.pipeline.failures import each_lead_apart
from integration.pipeline.hydrate import hydrate_from_crm
from integration.pipeline.observed import observed_job
from integration.pipeline.outbox import KINDS_IN_ORDER, lock_pending, send_batch
from integration.pipeline.processing import Prefetched, check_sla, process_lead
from integration.pipeline.queue import (
    clear_rescore_marks,
    flush_key,
    records_key,
    release_stale_marks,
    request_flush,
    request_records,
    request_rescore,
    take_wanted,
)
from integration.pipeline.record_links import link_created_records
from integration.pipeline.records import BATCH, resolve_batch
from integration.store import summaries
from integration.store.events import pending_lead_ids, pending_record_crms
from integration.store.models import Lead, OutboxWrite

log = logging.getLogger(__name__)

#: The cron safety net for SLA checks whose scheduled job was lost.
SLA_SWEEP_SECONDS = 300


@observed_job
def rescore_leads(lead_ids: list[int]) -> dict[str, Any]:
    """Process the pending events of ``lead_ids``; return counts. Raises on storage errors."""
    svc = services.current()
    clear_rescore_marks(svc.redis, lead_ids)
    return _rescore(svc, lead_ids)


@observed_job
def rescore_wanted() -> dict[str, Any]:
    """Process the pending events of the next wanted leads (``queue.take_wanted``); return counts.
    Raises on storage errors. The leads taken are kept in the job's meta, so RQ's retry of this
    job (after an outage, or after its worker was killed) processes the same leads."""
    svc = services.current()
    job = get_current_job()
    lead_ids = job.meta.get("leads") if job is not None else None
    if lead_ids is None:
        lead_ids = take_wanted(svc.queue)
        if job is not None:
            job.meta["leads"] = lead_ids
            job.save_meta()
        clear_rescore_marks(svc.redis, lead_ids)
    return _rescore(svc, lead_ids)


def _rescore(svc: services.Services, lead_ids: list[int]) -> dict[str, Any]:
    now = svc.now()
    hydrate_from_crm(svc, lead_ids)
    prefetched = Prefetched()  # each transaction's leads, read at its start
    scored, _failed = each_lead_apart(
        svc, sorted(lead_ids), now, lambda session, lead_id: process_lead(session, svc, lead_id, now, prefetched),
        prepare=lambda session, ids: prefetched.load(session, svc, ids))
    return {"leads": len(lead_ids), "scored": scored}


@observed_job
def flush_outbox(crm: str) -> dict[str, Any]:
    """Send ``crm``'s pending writes in batches (or, in shadow mode, record them as sent-to-none).

    One CRM call's worth of rows per transaction, so row locks (SQLite: the write lock) are
    never held across more than one HTTP call. Each row is tried once per run (an id cursor):
    a retryable per-record error waits for the next flush. Returns counts. Raises ``CrmError``
    on an outage so RQ retries with backoff; on a rate limit, schedules itself after the wait
    the CRM asked for.
    """
    svc = services.current()
    svc.redis.delete(flush_key(crm))
    totals: defaultdict[str, int] = defaultdict(int)
    # Shadow mode needs no credentials: it batches exactly as live mode would, and records.
    client = svc.crm_client(crm) if svc.live_writes else None
    connector = svc.connector(crm)
    limits = {"create": connector.max_create_batch, "update": connector.max_update_batch, "task": 1}
    rescore: set[int] = set()  # leads that took over another lead's events when linked to a record
    try:
        for kind in KINDS_IN_ORDER:
            cursor = 0
            while True:
                with svc.sessions.begin() as session:
                    rows = lock_pending(session, crm, kind, cursor, limits[kind], awaiting_too=client is None)
                    if not rows:
                        break
                    cursor = rows[-1].id
                    try:
                        send_batch(client, rows, svc.now(), totals)
                    except CrmRateLimited as limited:
                        log.warning("%s rate limited; flushing again in %.0fs", crm, limited.retry_after)
                        svc.queue.enqueue_in(timedelta(seconds=limited.retry_after), flush_outbox,
                                             crm, description=f"flush {crm} outbox after rate limit")
                        totals["rate_limited"] += 1
                        return dict(totals)
                    if kind == "create":
                        rescore |= link_created_records(session, rows, connector.normalise_id,
                                                        connector.status_fields, svc.now())
    finally:
        if rescore:  # what the moved events change is scored on the survivor
            request_rescore(svc.queue, sorted(rescore))
    return dict(totals)


#: How soon record events waiting for their people are looked at again.
RECORDS_WAIT_SECONDS = 30


@observed_job
def resolve_records(crm: str) -> dict[str, Any]:
    """Resolve ``crm``'s waiting deal and rep-activity events to their leads and rescore those.

    Returns counts. Raises ``CrmError`` when the CRM read fails (RQ retries; the events wait).
    Events naming people not known yet are looked at again in ``RECORDS_WAIT_SECONDS``.
    """
    svc = services.current()
    svc.redis.delete(records_key(crm))
    totals: defaultdict[str, int] = defaultdict(int)
    leads: set[int] = set()
    while True:
        done = resolve_batch(svc, crm)
        leads |= done.lead_ids
        totals["processed"] += done.processed
        totals["waiting"] = done.waiting
        if done.processed + done.waiting < BATCH or not done.processed:
            break
    request_rescore(svc.queue, leads)
    if totals["waiting"]:
        request_records(svc.queue, crm, delay=RECORDS_WAIT_SECONDS)
    return {**totals, "leads": len(leads)}


@observed_job
def sla_check(lead_id: int, due_iso: str) -> dict[str, Any]:
    """At a hand-off's due time: if sales did not act, escalate (remind, reassign, recycle)."""
    svc = services.current()
    with svc.sessions.begin() as session:
        report = check_sla(session, svc, lead_id, datetime.fromisoformat(due_iso), svc.now())
    crm = report.pop("crm", None)
    if crm:
        request_flush(svc.queue, crm, delay=svc.config["LEADLOOP_FLUSH_DELAY"])
    return report


@observed_job
def rollout_rules() -> dict[str, Any]:
    """Rescore leads scored under other rules than the live ones (``integration.pipeline.rollout``);
    hands over to a new job while leads remain due."""
    svc = services.current()
    counts = rollout.run_rollout(svc, svc.now())  # raises on an outage: RQ retries, the lock stays
    job = get_current_job()
    if job is not None:
        rollout.release(svc, job.id)
    if counts["rescored"] or counts["failed"]:
        rollout.request_rollout(svc)  # the next batches, in a fresh job
    return counts


@observed_job
def rescore_on_time() -> dict[str, int]:
    """Cron: rescore the leads whose verdict changes with time alone now (``integration.pipeline.on_time``)."""
    svc = services.current()
    return on_time.rescore_on_time(svc, svc.now())


@observed_job
def sweep() -> dict[str, int]:
    """Cron safety net: recover abandoned jobs, release marks of lost jobs, re-request stale
    events and pending writes."""
    svc = services.current()
    # RQ's own abandoned-job handling: a job whose worker died (its heartbeat lapsed) is
    # retried, or failed when out of retries; either way its pending mark is then released.
    StartedJobRegistry(queue=svc.queue).cleanup()
    marks = [key.decode() for key in svc.redis.scan_iter("leadloop:*-pending:*", count=1000)]
    released = release_stale_marks(svc.queue, marks)
    now = svc.now()
    with svc.sessions() as session:
        stale = pending_lead_ids(session, now - timedelta(seconds=svc.config["LEADLOOP_SWEEP_SECONDS"]), now)
        crms = list(session.scalars(select(OutboxWrite.crm).where(OutboxWrite.status == "pending")
                                    .group_by(OutboxWrite.crm)))
        record_crms = pending_record_crms(session, now - timedelta(seconds=svc.config["LEADLOOP_SWEEP_SECONDS"]))
    request_rescore(svc.queue, stale)
    for crm in crms:
        request_flush(svc.queue, crm)
    for crm in record_crms:
        request_records(svc.queue, crm)
    rollout.request_rollout(svc)  # resumes a roll-out a lost job left unfinished
    return {"released": released, "leads": len(stale), "crms": len(crms)}


@observed_job
def sweep_slas() -> dict[str, int]:
    """Cron: run the SLA checks that are overdue (their scheduled job was lost)."""
    svc = services.current()
    cutoff = svc.now() - timedelta(seconds=SLA_SWEEP_SECONDS)
    with svc.sessions() as session:
        due = session.execute(select(Lead.id, Lead.sla_due_at).where(
            Lead.stage == "mql", Lead.sla_due_at.is_not(None), Lead.sla_due_at < cutoff)).all()
    for lead_id, due_at in due:
        svc.queue.enqueue(sla_check, lead_id, due_at.isoformat())
    return {"due": len(due)}


#: How often the cron folds the new events and transitions into the report summaries: a report
#: refreshes them first too, so this only keeps that refresh down to a minute's rows.
SUMMARIES_REFRESH_SECONDS = 60


@observed_job
def refresh_summaries() -> dict[str, int]:
    """Cron: fold the events and transitions added since the last refresh into the report
    summaries (``integration.store.summaries``)."""
    with services.current().sessions() as session:
        return summaries.refresh(session)


#: The weekly digest's job, named (``integration.reports`` is a room above this one).
DIGEST_JOB = "integration.reports.digest.send_weekly_digest"
#: How often the cron asks for the weekly digest; it goes out once per week and channel, at the
#: first ask after the week ended (Monday 00:00 UTC).
DIGEST_ASK_SECONDS = 3600
#: The digest computes eight reports (two weeks): minutes on a store of millions of events.
DIGEST_TIMEOUT_SECONDS = 1800


def request_digest() -> dict[str, int]:
    """Cron: queue the weekly digest's job (it sends each week once: see ``DIGEST_JOB``)."""
    services.current().queue.enqueue(DIGEST_JOB, description="weekly digest", result_ttl=86400,
                                     job_timeout=DIGEST_TIMEOUT_SECONDS)
    return {"requested": 1}


def cron_jobs(config: Mapping[str, Any]) -> list[tuple[Callable[[], dict[str, int]], int]]:
    """The cron table (``leadloop cron``): job, interval in seconds. The sweeper runs every
    ``LEADLOOP_SWEEP_SECONDS`` and re-requests work older than that; the weekly digest is asked
    for hourly when a channel (SMTP or Slack) is configured."""
    jobs = [(sweep, config["LEADLOOP_SWEEP_SECONDS"]), (sweep_slas, SLA_SWEEP_SECONDS),
            (rescore_on_time, config["LEADLOOP_SWEEP_SECONDS"]), (refresh_summaries, SUMMARIES_REFRESH_SECONDS)]
    if config.get("LEADLOOP_SMTP_URL") or config.get("LEADLOOP_SLACK_WEBHOOK_URL"):
        jobs.append((request_digest, DIGEST_ASK_SECONDS))
    return jobs

"""Coalescing on top of RQ: one pending rescore per lead, one pending flush and one pending
resolution of record events (deals, rep activity) per CRM.

RQ runs ~40-150 jobs/s here, so we never enqueue a job per event. After events commit,
``request_rescore`` marks each lead pending with ``SET NX`` (value: the job id) and enqueues one
job for the leads it newly marked; leads already pending are covered by the job that marked them.
The job clears its marks *before* it reads the events, so an event committed while it runs
either is read by it or marks the lead again and gets a new job: nothing falls between.

RQ's own ``unique=True`` is not enough for this: it treats a *running* job as a duplicate, so an
event arriving mid-run would be left waiting for the next one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job

RESCORE_BATCH = 100
PENDING_TTL = 3600
#: Declared retries (RQ schedules them): a DB hiccup or a CRM outage is retried with backoff,
#: then the job lands in RQ's failed-job registry (our dead letters) and the sweeper picks the
#: stored work up again.
#: The first retry is at once: a job abandoned by a killed worker must not wait for RQ's
#: scheduler, whose lock the dead worker may still hold for a minute.
RESCORE_RETRY = Retry(max=5, interval=[0, 30, 120, 600, 1800])
FLUSH_RETRY = Retry(max=8, interval=[10, 30, 60, 300, 900, 1800, 3600, 3600])


def rescore_key(lead_id: int) -> str:
    return f"leadloop:rescore-pending:{lead_id}"


def flush_key(crm: str) -> str:
    return f"leadloop:flush-pending:{crm}"


def records_key(crm: str) -> str:
    return f"leadloop:records-pending:{crm}"


def request_rescore(queue: Queue, lead_ids: Iterable[int]) -> list[str]:
    """Enqueue rescoring for the leads that have no job pending; return the new job ids."""
    redis: Redis = queue.connection
    ids = sorted(set(lead_ids))
    job_ids: list[str] = []
    for start in range(0, len(ids), RESCORE_BATCH):
        chunk = ids[start:start + RESCORE_BATCH]
        job_id = f"rescore-{uuid.uuid4().hex}"
        pipe = redis.pipeline(transaction=False)
        for lead_id in chunk:
            pipe.set(rescore_key(lead_id), job_id, nx=True, ex=PENDING_TTL)
        marked = [lead_id for lead_id, ok in zip(chunk, pipe.execute(), strict=True) if ok]
        if marked:
            queue.enqueue("integration.pipeline.jobs.rescore_leads", marked, job_id=job_id,
                          retry=RESCORE_RETRY, result_ttl=300, failure_ttl=7 * 86400,
                          description=f"rescore {len(marked)} lead(s)")
            job_ids.append(job_id)
    return job_ids


def clear_rescore_marks(redis: Redis, lead_ids: Iterable[int]) -> None:
    """Called by the rescore job before it reads events (see the module docstring)."""
    keys = [rescore_key(lead_id) for lead_id in lead_ids]
    if keys:
        redis.delete(*keys)


def request_flush(queue: Queue, crm: str, delay: float = 0) -> str | None:
    """Enqueue an outbox flush for ``crm`` unless one is pending; return its job id.

    A small ``delay`` gathers the writes of a burst into one batched CRM call.
    """
    return _request_once(queue, flush_key(crm), f"flush-{crm}", "integration.pipeline.jobs.flush_outbox", crm,
                         retry=FLUSH_RETRY, delay=delay, description=f"flush {crm} outbox")


def request_records(queue: Queue, crm: str, delay: float = 0) -> str | None:
    """Enqueue the resolution of ``crm``'s record events (deals, rep activity) unless one is
    pending; return its job id. Retried like a rescore: a CRM read that fails is read again."""
    return _request_once(queue, records_key(crm), f"records-{crm}", "integration.pipeline.jobs.resolve_records",
                         crm, retry=RESCORE_RETRY, delay=delay, description=f"resolve {crm} deals and rep activity")


def _request_once(queue: Queue, mark: str, prefix: str, job: str, crm: str, *, retry: Retry, delay: float,
                  description: str) -> str | None:
    """Enqueue ``job(crm)`` unless the pending ``mark`` says one is queued; return its job id."""
    job_id = f"{prefix}-{uuid.uuid4().hex}"
    if not queue.connection.set(mark, job_id, nx=True, ex=PENDING_TTL):
        return None
    kwargs = dict(job_id=job_id, retry=retry, result_ttl=300, failure_ttl=7 * 86400, description=description)
    if delay > 0:
        queue.enqueue_in(timedelta(seconds=delay), job, crm, **kwargs)
    else:
        queue.enqueue(job, crm, **kwargs)
    return job_id


def release_stale_marks(queue: Queue, keys: Iterable[str]) -> int:
    """Delete pending marks whose job no longer exists (lost with Redis, or expired); return count.

    Used by the sweeper so a lost job cannot block a lead or a CRM until the mark expires.
    """
    redis: Redis = queue.connection
    released = 0
    for key in keys:
        job_id = redis.get(key)
        if job_id is None:
            continue
        try:
            job = Job.fetch(job_id.decode(), connection=redis)
            alive = job.get_status() not in ("finished", "failed", "canceled", "stopped")
        except NoSuchJobError:
            alive = False
        if not alive:
            redis.delete(key)
            released += 1
    return released

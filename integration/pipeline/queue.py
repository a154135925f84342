"""Coalescing on top of RQ: one pending rescore per lead, one pending flush and one pending
resolution of record events (deals, rep activity) per CRM.

RQ runs ~40-150 jobs/s here, so we never enqueue a job per event, nor per request. After events
commit, ``request_rescore`` marks each lead pending with ``SET NX`` and appends the leads it newly
marked to one shared list (``WANTED_KEY``); leads already pending are covered. A rescore job
(``jobs.rescore_wanted``) is enqueued only when none is waiting (``DRAIN_KEY``, ``SET NX``): it
lets the next one be requested, takes up to ``RESCORE_BATCH`` leads off the list, requests another
job if leads remain (so a second worker takes the next batch while it works), and clears their
marks *before* it reads their events, so an event committed while it runs either is read by it or
marks the lead again and gets it taken again: nothing falls between. Single-event requests for
many leads thus cost one job per batch of leads, not one per request.

The job keeps the leads it took in its meta: RQ's retry of it (after an outage, or once a killed
worker's heartbeat lapsed) processes the same leads. Were it lost, their events stay unprocessed
in the store and the sweeper requests them again.

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
#: How often RQ's scheduler moves due jobs to the queue (its resolution for delayed jobs).
SCHEDULER_SECONDS = 1.0
#: The leads waiting to be rescored (a list), and the mark of the job that will take the next ones.
WANTED_KEY = "leadloop:rescore-wanted"
DRAIN_KEY = "leadloop:rescore-pending:drain"
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


def request_rescore(queue: Queue, lead_ids: Iterable[int]) -> list[int]:
    """Request rescoring for the leads that are not pending already; return those leads."""
    redis: Redis = queue.connection
    ids = sorted(set(lead_ids))
    if not ids:
        return []
    job_id = f"rescore-{uuid.uuid4().hex}"
    pipe = redis.pipeline(transaction=False)
    for lead_id in ids:
        pipe.set(rescore_key(lead_id), job_id, nx=True, ex=PENDING_TTL)
    marked = [lead_id for lead_id, ok in zip(ids, pipe.execute(), strict=True) if ok]
    if not marked:
        return []
    # The leads go on the list before the job mark is tried: if a job holds the mark, it has not
    # taken its leads yet, and will take these too (or request a job for them).
    pipe = redis.pipeline(transaction=False)
    pipe.rpush(WANTED_KEY, *marked)
    pipe.set(DRAIN_KEY, job_id, nx=True, ex=PENDING_TTL)
    if pipe.execute()[1]:
        _enqueue_drain(queue, job_id)
    return marked


def take_wanted(queue: Queue) -> list[int]:
    """For the rescore job: let the next job be requested, take up to ``RESCORE_BATCH`` wanted leads
    off the list and, if some remain, request a job for them; return the leads taken."""
    redis: Redis = queue.connection
    pipe = redis.pipeline(transaction=False)
    pipe.delete(DRAIN_KEY)
    pipe.lpop(WANTED_KEY, RESCORE_BATCH)
    pipe.llen(WANTED_KEY)
    _deleted, taken, left = pipe.execute()
    if left:
        job_id = f"rescore-{uuid.uuid4().hex}"
        if redis.set(DRAIN_KEY, job_id, nx=True, ex=PENDING_TTL):
            _enqueue_drain(queue, job_id)
    return [int(lead_id) for lead_id in taken or []]


def _enqueue_drain(queue: Queue, job_id: str) -> None:
    queue.enqueue("integration.pipeline.jobs.rescore_wanted", job_id=job_id, retry=RESCORE_RETRY, result_ttl=300,
                  failure_ttl=7 * 86400, description="rescore wanted leads")


def clear_rescore_marks(redis: Redis, lead_ids: Iterable[int]) -> None:
    """Called by the rescore job before it reads events (see the module docstring)."""
    keys = [rescore_key(lead_id) for lead_id in lead_ids]
    if keys:
        redis.delete(*keys)


def request_flush(queue: Queue, crm: str, delay: float = 0) -> str | None:
    """Enqueue an outbox flush for ``crm`` unless one is pending; return its job id.

    A small ``delay`` gathers the writes of a burst into one batched CRM call. RQ's scheduler
    looks for due jobs once a second, so a delay below ``SCHEDULER_SECONDS`` is not scheduled: the
    flush goes to the front of the queue, after the job running now (whose writes it gathers).
    """
    return _request_once(queue, flush_key(crm), f"flush-{crm}", "integration.pipeline.jobs.flush_outbox", crm,
                         retry=FLUSH_RETRY, delay=delay if delay >= SCHEDULER_SECONDS else 0,
                         at_front=0 < delay < SCHEDULER_SECONDS, description=f"flush {crm} outbox")


def request_records(queue: Queue, crm: str, delay: float = 0) -> str | None:
    """Enqueue the resolution of ``crm``'s record events (deals, rep activity) unless one is
    pending; return its job id. Retried like a rescore: a CRM read that fails is read again."""
    return _request_once(queue, records_key(crm), f"records-{crm}", "integration.pipeline.jobs.resolve_records",
                         crm, retry=RESCORE_RETRY, delay=delay, description=f"resolve {crm} deals and rep activity")


def _request_once(queue: Queue, mark: str, prefix: str, job: str, crm: str, *, retry: Retry, delay: float,
                  description: str, at_front: bool = False) -> str | None:
    """Enqueue ``job(crm)`` unless the pending ``mark`` says one is queued; return its job id."""
    job_id = f"{prefix}-{uuid.uuid4().hex}"
    if not queue.connection.set(mark, job_id, nx=True, ex=PENDING_TTL):
        return None
    kwargs = dict(job_id=job_id, retry=retry, result_ttl=300, failure_ttl=7 * 86400, description=description)
    if delay > 0:
        queue.enqueue_in(timedelta(seconds=delay), job, crm, **kwargs)
    else:
        queue.enqueue(job, crm, at_front=at_front, **kwargs)
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

"""The pipeline's long-running processes: the RQ worker and the cron scheduler.

The worker runs jobs in its own process (``InProcessWorker``, RQ's ``SimpleWorker``): no fork per
job, so a job reuses the process's database and Redis connections, loaded rules and compiled
scoring instead of paying for a work horse and new connections each time (a rescore job is
often a few milliseconds of work). ``leadloop worker --fork`` runs RQ's forking ``Worker``
instead (``LeadloopWorker``), for jobs that must not share a process.

Both outlive their dependencies: when Redis goes away they log one line, wait (1, 2, 4 ... up to
30 seconds) and connect again, instead of exiting; a job that meets an unreachable database
fails and RQ retries it.

Recovery after a worker is killed (``kill -9``, a lost machine) is quick by design:

- the worker renews a job's heartbeat every ``HEARTBEAT_SECONDS``; a job whose heartbeat is
  older than that plus ``HEARTBEAT_GRACE_SECONDS`` is abandoned (RQ's default grace is 60 s);
- the sweeper (cron, every minute) runs RQ's own abandoned-job handling, which retries such a
  job (or fails it, and the sweeper then re-requests its leads from the store);
- a worker runs RQ's maintenance (including taking over the scheduler lock of a dead worker,
  whose lock expires after 61 s) every ``MAINTENANCE_SECONDS`` instead of every 10 minutes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker, Worker
from rq.job import Job
from rq.worker import BaseWorker, WorkerStatus

from integration.logs import configure_logging
from integration.pipeline.jobs import cron_jobs
from integration.services import Services

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
HEARTBEAT_GRACE_SECONDS = 15
MAINTENANCE_SECONDS = 30
#: Longest wait between two attempts to reach Redis again.
MAX_BACKOFF_SECONDS = 30.0
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionRefusedError)


class LeadloopWorker(Worker):
    """RQ's forking worker with a short heartbeat grace, so an abandoned job is noticed in
    ``HEARTBEAT_SECONDS + HEARTBEAT_GRACE_SECONDS`` rather than a minute and more."""

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return super().get_heartbeat_ttl(job, working_time) - 60 + HEARTBEAT_GRACE_SECONDS


class InProcessWorker(SimpleWorker):
    """RQ's ``SimpleWorker`` (each job runs in this process) that renews the running job's
    heartbeat every ``HEARTBEAT_SECONDS`` from a thread, as the forking worker does from its
    parent, so a killed worker's job is noticed after the same short grace."""

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.job_monitoring_interval):
                try:
                    self.maintain_heartbeats(job, execution)
                except REDIS_DOWN:  # the job itself will meet the outage; the next beat may pass
                    log.warning("worker: could not renew the heartbeat of job %s", job.id)

        heart = threading.Thread(target=beat, name=f"heartbeat {job.id}", daemon=True)
        heart.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            done.set()
            heart.join()
        self.set_state(WorkerStatus.IDLE)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return BaseWorker.get_heartbeat_ttl(self, job, working_time) - 60 + HEARTBEAT_GRACE_SECONDS


def run_worker(svc: Services, *, burst: bool = False, fork: bool = False,
               sleep: Callable[[float], None] = time.sleep) -> None:
    """Work the queue until stopped (or, with ``burst``, until it is empty), reconnecting to
    Redis with backoff. Jobs run in this process (``InProcessWorker``); ``fork`` runs each in a
    forked work horse (``LeadloopWorker``)."""

    configure_logging(svc.config["LOG_LEVEL"], svc.config["LOG_FORMAT"])

    def work() -> None:
        worker_class: type[BaseWorker] = LeadloopWorker if fork else InProcessWorker
        worker = worker_class([svc.queue], connection=svc.redis, job_monitoring_interval=HEARTBEAT_SECONDS,
                              maintenance_interval=MAINTENANCE_SECONDS)
        worker.work(with_scheduler=True, burst=burst, logging_level=svc.config["LOG_LEVEL"])

    keep_connected("worker", work, sleep, once=burst)


def run_cron(svc: Services, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Enqueue the periodic jobs (``cron_jobs``) until stopped, reconnecting to Redis with backoff."""
    from rq.cron import CronScheduler

    configure_logging(svc.config["LOG_LEVEL"], svc.config["LOG_FORMAT"])

    def schedule() -> None:
        scheduler = CronScheduler(connection=svc.redis, logging_level=svc.config["LOG_LEVEL"])
        for func, interval in cron_jobs(svc.config):
            scheduler.register(func, queue_name=svc.queue.name, interval=interval)
        scheduler.start()

    keep_connected("cron", schedule, sleep)


def keep_connected(name: str, run: Callable[[], None], sleep: Callable[[float], None], *, once: bool = False) -> None:
    """Call ``run`` again after each Redis outage, waiting longer each time (reset by a run
    that lasted a minute); return when ``run`` returns."""
    delay = 1.0
    while True:
        started = time.monotonic()
        try:
            run()
            return
        except REDIS_DOWN as exc:
            if once:
                raise
            if time.monotonic() - started > 60:
                delay = 1.0
            log.warning("%s: Redis unreachable (%s); connecting again in %.0f s", name, type(exc).__name__, delay)
            sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)

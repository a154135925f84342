"""``observed_job``: what every RQ job records about itself (its queue wait, run time, outcome).

A decorator rather than a worker class, so it holds whichever worker runs the job (the forking
``leadloop worker``, ``--simple``, the tests' ``SimpleWorker``). It also sends everything the job
recorded (scoring times, CRM calls) to Redis before the job ends: RQ's work horse exits right
after the job returns.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from rq import get_current_job

from integration import services

P = ParamSpec("P")
R = TypeVar("R")


def observed_job(func: Callable[P, R]) -> Callable[P, R]:
    """Wrap the job ``func``: record ``leadloop_job_wait_seconds`` (when run by RQ),
    ``leadloop_job_duration_seconds`` and ``leadloop_jobs``, then flush the process's metrics.
    Returns what ``func`` returns and raises what it raises."""
    name = func.__name__

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        telemetry = services.current().telemetry
        job = get_current_job()
        if job is not None and job.enqueued_at is not None:
            started = job.started_at or datetime.now(UTC)
            wait = (started - job.enqueued_at).total_seconds()
            telemetry.observe("leadloop_job_wait_seconds", max(wait, 0.0), job=name)
        start, outcome = time.perf_counter(), "failed"
        try:
            result = func(*args, **kwargs)
            outcome = "ok"
            return result
        finally:
            telemetry.observe("leadloop_job_duration_seconds", time.perf_counter() - start, job=name)
            telemetry.count("leadloop_jobs", job=name, outcome=outcome)
            telemetry.flush()

    return run

"""The metrics leadloop's processes record, added up in Redis so ``/metrics`` sees all of them.

A deployment runs several processes that do the work being measured: two or more gunicorn
workers, and RQ workers whose every job runs in a forked work horse that exits after it.
Counters kept in process memory would be split across them and lost with each work horse;
prometheus-client's multiprocess mode keeps one file per process id, which under RQ's forking
worker is one file per job, and needs a folder that web and worker share. Every process already
shares Redis, so each one buffers what it observes in memory and adds it to Redis hashes at the
end of a request or job, in one pipelined round trip (``Telemetry.flush``). ``/metrics``
reads the hashes back (``Telemetry.families``) and renders them with prometheus-client.

Recording never fails the work it measures: when Redis does not answer, the buffered numbers
are dropped and recording pauses for ``PAUSE_SECONDS``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from redis import Redis
from redis.exceptions import RedisError

from connectors.base import (
    CrmClient,
    CrmRateLimited,
    RecordCreate,
    RecordReader,
    RecordUpdate,
    TaskSpec,
    WriteOutcome,
)

log = logging.getLogger(__name__)

KEY_PREFIX = "leadloop:metrics:"
#: How long recording stops after Redis failed to answer.
PAUSE_SECONDS = 30.0
#: Socket timeouts of the recording connection: a hung Redis costs a request at most this.
REDIS_TIMEOUT = 1.0

WAIT_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
SCORING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


@dataclass(frozen=True)
class Recorded:
    """A metric the processes record (as opposed to one read from the store at scrape time)."""

    #: The exposed name; counters are exposed with a ``_total`` suffix.
    name: str
    kind: str  # "counter" | "histogram"
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


#: Every recorded metric. Redis keeps a histogram's counts by bucket position: changing the
#: buckets of one means giving it a new name (or deleting its ``leadloop:metrics:`` key).
RECORDED: dict[str, Recorded] = {metric.name: metric for metric in (
    Recorded("leadloop_http_requests", "counter",
             "HTTP requests answered, by Flask endpoint name (never the path) and status.", ("endpoint", "status")),
    Recorded("leadloop_webhook_events", "counter",
             "Events of stored webhook requests: accepted (stored for a lead), ignored (stored, a kind we "
             "ignore), duplicate (absorbed).", ("endpoint", "outcome")),
    Recorded("leadloop_webhook_refusals", "counter",
             "Webhook requests refused, by status: 401 signature, 400 payload, 413 size, 503 store.",
             ("endpoint", "status")),
    Recorded("leadloop_job_wait_seconds", "histogram",
             "Time a job waited in the queue, from enqueued (a delayed job: from due) to started.", ("job",),
             WAIT_BUCKETS),
    Recorded("leadloop_job_duration_seconds", "histogram", "Time a job ran.", ("job",), DURATION_BUCKETS),
    Recorded("leadloop_jobs", "counter",
             "Jobs run, by outcome (ok, failed; RQ retries a failed job, then keeps it as a dead letter).",
             ("job", "outcome")),
    Recorded("leadloop_scoring_seconds", "histogram",
             "Time to score one lead: reading its activity and running the rules.", (), SCORING_BUCKETS),
    Recorded("leadloop_crm_calls", "counter",
             "CRM client calls by CRM and method; one update_records call carries up to the connector's "
             "batch size of records.", ("crm", "method")),
    Recorded("leadloop_crm_rate_limited", "counter",
             "CRM client calls that ended in a rate limit (the CRM's, or leadloop's own limiter keeping under it).",
             ("crm", "method")),
)}


class Telemetry:
    """Buffers counts and observations in memory; ``flush`` adds them to Redis.

    Thread-safe. ``redis`` None records nothing (a process without Redis).
    """

    def __init__(self, redis: Redis | None):
        self.redis = redis
        self._pending: dict[tuple[str, str], float] = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._paused_until = 0.0

    @classmethod
    def for_url(cls, url: str) -> Telemetry:
        """Record into the Redis at ``url``, over a connection with short timeouts of its own."""
        return cls(Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT))

    def count(self, name: str, amount: float = 1, **labels: str) -> None:
        """Add ``amount`` to the counter ``name`` (a ``RECORDED`` name) with these label values."""
        metric = RECORDED[name]
        self._add(name, _field(metric, labels), amount)

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Record one observation of the histogram ``name``."""
        metric = RECORDED[name]
        key = _field(metric, labels)
        bucket = next((i for i, bound in enumerate(metric.buckets) if value <= bound), len(metric.buckets))
        self._add(name, f"b{bucket}:{key}", 1)
        self._add(name, f"sum:{key}", value)

    @contextmanager
    def timed(self, name: str, **labels: str) -> Iterator[None]:
        """Observe the time the ``with`` block takes in the histogram ``name`` (also when it raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(name, time.perf_counter() - start, **labels)

    def _add(self, name: str, field: str, amount: float) -> None:
        with self._lock:
            self._forget_if_forked()
            self._pending[(name, field)] = self._pending.get((name, field), 0) + amount

    def _forget_if_forked(self) -> None:
        # A forked process (RQ's work horse) inherits its parent's buffer: the parent sends that.
        if os.getpid() != self._pid:
            self._pending, self._pid = {}, os.getpid()

    def flush(self) -> None:
        """Add what was recorded since the last flush to Redis. Never raises: on a Redis error the
        numbers are dropped and recording pauses for ``PAUSE_SECONDS``."""
        with self._lock:
            self._forget_if_forked()
            pending, self._pending = self._pending, {}
        if not pending or self.redis is None or time.monotonic() < self._paused_until:
            return
        pipe = self.redis.pipeline(transaction=False)
        for (name, field), amount in pending.items():
            if field.startswith("sum:"):
                pipe.hincrbyfloat(KEY_PREFIX + name, field, amount)
            else:
                pipe.hincrby(KEY_PREFIX + name, field, int(amount))
        try:
            pipe.execute()
        except RedisError as exc:
            self._paused_until = time.monotonic() + PAUSE_SECONDS
            log.warning("metrics: Redis did not answer (%s); recording pauses for %.0f s",
                        type(exc).__name__, PAUSE_SECONDS)

    def families(self) -> list[Metric]:
        """The recorded metrics as prometheus-client families, read from Redis (raises RedisError)."""
        if self.redis is None:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for name in RECORDED:
            pipe.hgetall(KEY_PREFIX + name)
        stored = pipe.execute()
        return [_family(metric, {k.decode(): float(v) for k, v in values.items()})
                for metric, values in zip(RECORDED.values(), stored, strict=True)]

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()


def _field(metric: Recorded, labels: Mapping[str, str]) -> str:
    if set(labels) != set(metric.labels):
        raise ValueError(f"{metric.name} takes the labels {metric.labels}, got {tuple(labels)}")
    return json.dumps([str(labels[name]) for name in metric.labels], separators=(",", ":"))


def _family(metric: Recorded, values: Mapping[str, float]) -> Metric:
    if metric.kind == "counter":
        counter = CounterMetricFamily(metric.name, metric.help, labels=metric.labels)
        for key, value in sorted(values.items()):
            counter.add_metric(json.loads(key), value)
        return counter
    histogram = HistogramMetricFamily(metric.name, metric.help, labels=metric.labels)
    bounds = [*(_bound(b) for b in metric.buckets), "+Inf"]
    for key in sorted(k[len("sum:"):] for k in values if k.startswith("sum:")):
        total, buckets = 0.0, []
        for index, bound in enumerate(bounds):
            total += values.get(f"b{index}:{key}", 0)
            buckets.append((bound, total))
        histogram.add_metric(json.loads(key), buckets, values[f"sum:{key}"])
    return histogram


def _bound(value: float) -> str:
    return repr(float(value))


# --- counting CRM client calls ------------------------------------------------------------------

T = TypeVar("T")


class CountedCrmClient:
    """A ``CrmClient`` that counts each call, and each rate limit it ends in, by CRM and method.

    These are client calls: one ``update_records`` call carries up to the connector's batch size
    of records, and a client may make more than one HTTP request for it (a token refresh).
    """

    def __init__(self, crm: str, client: CrmClient, telemetry: Telemetry):
        self.crm, self.client, self.telemetry = crm, client, telemetry

    @property
    def max_update_batch(self) -> int:
        return self.client.max_update_batch

    def _call(self, method: str, call: Callable[[], T]) -> T:
        return counted_call(self.telemetry, self.crm, method, call)

    def fetch_fields(self, crm_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return self._call("fetch_fields", lambda: self.client.fetch_fields(crm_ids))

    def update_records(self, updates: Sequence[RecordUpdate]) -> list[WriteOutcome]:
        return self._call("update_records", lambda: self.client.update_records(updates))

    def create_records(self, creates: Sequence[RecordCreate]) -> list[WriteOutcome]:
        return self._call("create_records", lambda: self.client.create_records(creates))

    def create_task(self, task: TaskSpec) -> WriteOutcome:
        return self._call("create_task", lambda: self.client.create_task(task))

    def task_is_open(self, task_id: str) -> bool:
        return self._call("task_is_open", lambda: self.client.task_is_open(task_id))


class CountedRecordReader:
    """A ``RecordReader`` whose calls count like the client's (``leadloop_crm_calls``)."""

    def __init__(self, crm: str, reader: RecordReader, telemetry: Telemetry):
        self.crm, self.reader, self.telemetry = crm, reader, telemetry

    def read_deals(self, deal_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return counted_call(self.telemetry, self.crm, "read_deals", lambda: self.reader.read_deals(deal_ids))

    def read_rep_activities(self, activity_types: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        return counted_call(self.telemetry, self.crm, "read_rep_activities",
                            lambda: self.reader.read_rep_activities(activity_types))


def counted_call(telemetry: Telemetry, crm: str, method: str, call: Callable[[], T]) -> T:
    """Count one CRM call (and the rate limit it may end in) by CRM and method; return its result."""
    telemetry.count("leadloop_crm_calls", crm=crm, method=method)
    try:
        return call()
    except CrmRateLimited:
        telemetry.count("leadloop_crm_rate_limited", crm=crm, method=method)
        raise

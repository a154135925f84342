"""``GET /metrics`` in Prometheus' text format, and the counting of every HTTP request.

Two kinds of metrics, one page:

- recorded by the processes as things happen (requests, webhook events, jobs, scoring, CRM
  calls), added up in Redis across every web worker and job (``integration.telemetry``);
- read at scrape time from where the truth is kept: the queue from RQ's registries in Redis,
  the outbox from the database. They need no recording, so they are right whichever process
  is scraped and after any restart.

Metrics hold no personal data (labels are endpoint names, statuses, CRM and job names). Still,
``LEADLOOP_METRICS_TOKENS`` makes the page require ``Authorization: Bearer <token>``; without it,
restrict ``/metrics`` at the proxy.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from flask import Flask, Response, current_app, request
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from connectors.base import secret_list
from integration.services import Services
from integration.store.models import Lead, OutboxWrite

#: Label of a request no route matched (404, 405): its path is never a label.
UNMATCHED = "unmatched"


class LeadloopCollector:
    """Collects every leadloop metric for one scrape (a prometheus-client custom collector)."""

    def __init__(self, svc: Services):
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("leadloop_metrics_source_up",
                               "Whether a source of these metrics answered this scrape (1) or not (0); "
                               "the metrics of a source that did not answer are missing.", labels=["source"])
        try:
            found = [*self.svc.telemetry.families(), queue_jobs(self.svc)]
            up.add_metric(["redis"], 1)
        except RedisError:
            found = []
            up.add_metric(["redis"], 0)
        try:
            found += [outbox_writes(self.svc), failing_leads(self.svc), next_review_backlog(self.svc)]
            up.add_metric(["database"], 1)
        except DBAPIError:
            up.add_metric(["database"], 0)
        yield from found
        yield up


def queue_jobs(svc: Services) -> GaugeMetricFamily:
    """RQ's view of the queue: jobs waiting, scheduled for later, running, failed (dead letters)."""
    queue = svc.queue
    gauge = GaugeMetricFamily("leadloop_queue_jobs",
                              "Jobs in the RQ queue by state: queued (waiting for a worker), scheduled "
                              "(delayed flushes, retries, SLA checks), started (running), failed (dead letters).",
                              labels=["state"])
    gauge.add_metric(["queued"], queue.count)
    gauge.add_metric(["scheduled"], queue.scheduled_job_registry.count)
    gauge.add_metric(["started"], queue.started_job_registry.count)
    gauge.add_metric(["failed"], queue.failed_job_registry.count)
    return gauge


def outbox_writes(svc: Services) -> GaugeMetricFamily:
    """The outbox's CRM writes by CRM and status (pending, sent, failed, shadow, superseded)."""
    gauge = GaugeMetricFamily("leadloop_outbox_writes",
                              "CRM writes in the outbox by CRM and status: pending, sent, failed, shadow "
                              "(recorded, not sent), superseded (replaced by a newer update).",
                              labels=["crm", "status"])
    with svc.sessions() as session:
        counts = session.execute(select(OutboxWrite.crm, OutboxWrite.status, func.count())
                                 .group_by(OutboxWrite.crm, OutboxWrite.status)
                                 .order_by(OutboxWrite.crm, OutboxWrite.status)).all()
    for crm, status, count in counts:
        gauge.add_metric([crm, status], count)
    return gauge


def failing_leads(svc: Services) -> GaugeMetricFamily:
    """Leads whose processing failed: waiting for a retry, or quarantined (``leadloop dead-letters``)."""
    gauge = GaugeMetricFamily("leadloop_leads_failing",
                              "Leads whose processing failed, by state: retrying (waiting for the next attempt) "
                              "or quarantined (left alone until `leadloop dead-letters --retry`).", labels=["state"])
    with svc.sessions() as session:
        quarantined = session.scalar(select(func.count()).select_from(Lead).where(Lead.quarantined_at.is_not(None)))
        failing = session.scalar(select(func.count()).select_from(Lead).where(Lead.failures > 0))
    gauge.add_metric(["retrying"], (failing or 0) - (quarantined or 0))
    gauge.add_metric(["quarantined"], quarantined or 0)
    return gauge


def next_review_backlog(svc: Services) -> GaugeMetricFamily:
    """Leads whose verdict changes with time alone: due now (the on-time rescoring's backlog) and
    waiting (a next review ahead)."""
    gauge = GaugeMetricFamily("leadloop_next_review_leads",
                              "Leads with a next review (their verdict changes with time alone), by state: due "
                              "(the on-time rescoring's backlog) or waiting.", labels=["state"])
    now = svc.now()
    with svc.sessions() as session:
        due = session.scalar(select(func.count()).select_from(Lead).where(Lead.next_review_at <= now)) or 0
        waiting = session.scalar(select(func.count()).select_from(Lead).where(Lead.next_review_at > now)) or 0
    gauge.add_metric(["due"], due)
    gauge.add_metric(["waiting"], waiting)
    return gauge


def _authorized(svc: Services) -> bool:
    tokens = secret_list(svc.config.get("LEADLOOP_METRICS_TOKENS"))
    if not tokens:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    given_bytes = given.strip().encode()
    return scheme.lower() == "bearer" and any(hmac.compare_digest(given_bytes, token.encode()) for token in tokens)


def init_app(app: Flask) -> None:
    svc: Services = app.extensions["leadloop"]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LeadloopCollector(svc))

    @app.get("/metrics")
    def metrics() -> Response:
        if not _authorized(current_app.extensions["leadloop"]):
            return Response("a valid bearer token is required\n", status=401, mimetype="text/plain",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        # Prometheus' text format, or OpenMetrics when the scraper asks for it (Prometheus does).
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encode(registry), content_type=content_type)

    @app.after_request
    def count_request(response: Response) -> Response:
        svc.telemetry.count("leadloop_http_requests", endpoint=request.endpoint or UNMATCHED,
                            status=str(response.status_code))
        return response

    @app.teardown_request
    def send_metrics(_exc: BaseException | None) -> None:
        svc.telemetry.flush()

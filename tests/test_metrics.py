"""``/metrics``: what it counts, across processes, and what it never shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import responses
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from integration.telemetry import Telemetry
from tests.conftest import drain, post_events, post_hubspot, running_app, web_event

HS_FIXTURES = Path(__file__).parent / "fixtures" / "hubspot"
HS_UPDATE = "https://api.hubapi.com/crm/objects/2026-03/contacts/batch/update"
SF_TOKEN = "sf-path-token-0123456789abcdef"


def scrape(client: Any, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics, parsed: (sample name, sorted labels) -> value."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain; version=")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_journey_is_counted(client, svc):
    events = [web_event("m1", "content_download", email="ada@acme-robotics.com", crm="hubspot", crm_id="5101",
                        properties={"asset": "coverage-map"}),
              web_event("m2", email="ada@acme-robotics.com", crm="hubspot", crm_id="5101")]
    assert post_events(client, events).status_code == 200
    assert post_events(client, events[:1]).get_json()["duplicates"] == 1
    assert post_events(client, [web_event("m3")], secret="not-the-secret").status_code == 401
    assert client.post(f"/webhooks/salesforce/{SF_TOKEN}", data=b"<broken").status_code == 400
    assert client.get("/nowhere").status_code == 404
    assert post_hubspot(client, [{"eventId": 1, "subscriptionId": 22, "portalId": 62515, "appId": 54321,
                                  "occurredAt": 1700000000000, "subscriptionType": "contact.propertyChange",
                                  "attemptNumber": 0, "objectId": 5101, "propertyName": "jobtitle",
                                  "propertyValue": "CTO", "changeSource": "CRM_UI"}]).status_code == 200
    before_drain = scrape(client)
    assert value(before_drain, "leadloop_queue_jobs", state="queued") == 1
    drain(svc)
    samples = scrape(client)

    assert value(samples, "leadloop_http_requests_total", endpoint="webhooks.events", status="200") == 2
    assert value(samples, "leadloop_http_requests_total", endpoint="webhooks.events", status="401") == 1
    assert value(samples, "leadloop_http_requests_total", endpoint="webhooks.salesforce", status="400") == 1
    assert value(samples, "leadloop_http_requests_total", endpoint="unmatched", status="404") == 1
    assert value(samples, "leadloop_http_requests_total", endpoint="metrics", status="200") == 1  # the first scrape
    assert value(samples, "leadloop_webhook_events_total", endpoint="events", outcome="accepted") == 2
    assert value(samples, "leadloop_webhook_events_total", endpoint="events", outcome="duplicate") == 1
    assert value(samples, "leadloop_webhook_events_total", endpoint="hubspot", outcome="accepted") == 1
    assert value(samples, "leadloop_webhook_refusals_total", endpoint="events", status="401") == 1
    assert value(samples, "leadloop_webhook_refusals_total", endpoint="salesforce", status="400") == 1

    assert value(samples, "leadloop_jobs_total", job="rescore_wanted", outcome="ok") == 1
    assert value(samples, "leadloop_jobs_total", job="flush_outbox", outcome="ok") == 1
    assert value(samples, "leadloop_job_wait_seconds_count", job="rescore_wanted") == 1
    assert value(samples, "leadloop_job_duration_seconds_count", job="flush_outbox") == 1
    assert value(samples, "leadloop_job_duration_seconds_bucket", job="flush_outbox", le="+Inf") == 1
    # One job, three scorings: at each business time where something changed (the HubSpot
    # change of 2023, then the web events), then as of now.
    assert value(samples, "leadloop_scoring_seconds_count") == 3
    assert value(samples, "leadloop_scoring_seconds_sum") > 0

    assert value(samples, "leadloop_outbox_writes", crm="hubspot", status="shadow") == 1
    assert value(samples, "leadloop_queue_jobs", state="queued") == 0
    assert value(samples, "leadloop_metrics_source_up", source="redis") == 1
    assert value(samples, "leadloop_metrics_source_up", source="database") == 1
    # Shadow mode makes no CRM call.
    assert not [key for key in samples if key[0] == "leadloop_crm_calls_total"]


def test_the_salesforce_token_and_paths_never_become_labels(client):
    client.post(f"/webhooks/salesforce/{SF_TOKEN}", data=b"<broken")
    client.post("/webhooks/salesforce/a-wrong-token", data=b"<x/>")
    client.get("/webhooks/salesforce/a-wrong-token")  # 405
    page = client.get("/metrics").get_data(as_text=True)
    assert SF_TOKEN not in page and "a-wrong-token" not in page and "/webhooks" not in page


def test_crm_calls_and_rate_limits_are_counted_by_crm_and_method(config):
    with running_app(config, CRM_WRITE_MODE="live", HUBSPOT_ACCESS_TOKEN="pat-na1-test") as app:
        client, svc = app.test_client(), app.extensions["leadloop"]
        post_events(client, [web_event(f"r{i}", email=f"p{i}@firm{i}.example", crm="hubspot", crm_id=str(900 + i))
                             for i in range(3)])
        limited = json.loads((HS_FIXTURES / "rate_limit_429_ten_secondly.json").read_text())
        with responses.RequestsMock() as api:
            api.post(HS_UPDATE, status=429, json=limited, headers={"Retry-After": "3"})
            drain(svc, horizon=0)
        samples = scrape(client)
    assert value(samples, "leadloop_crm_calls_total", crm="hubspot", method="update_records") == 1
    assert value(samples, "leadloop_crm_rate_limited_total", crm="hubspot", method="update_records") == 1
    assert value(samples, "leadloop_outbox_writes", crm="hubspot", status="pending") == 3
    assert value(samples, "leadloop_queue_jobs", state="scheduled") == 1  # the flush, after HubSpot's wait


def test_two_web_workers_add_up(config):
    """gunicorn's workers are separate processes with separate services: each scrape shows the sum."""
    with running_app(config) as first, running_app(config) as second:
        post_events(first.test_client(), [web_event("w1")])
        post_events(second.test_client(), [web_event("w2", email="grace@acme-robotics.com")])
        for app in (first, second):
            samples = scrape(app.test_client())
            assert value(samples, "leadloop_webhook_events_total", endpoint="events", outcome="accepted") == 2
            assert value(samples, "leadloop_http_requests_total", endpoint="webhooks.events", status="200") == 2


def test_metrics_token_gates_the_page(config):
    with running_app(config, LEADLOOP_METRICS_TOKENS="scrape-token-new, scrape-token-old") as app:
        client = app.test_client()
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Basic scrape-token-new"}).status_code == 401
        for token in ("scrape-token-new", "scrape-token-old"):
            scrape(client, Authorization=f"Bearer {token}")


def test_without_redis_the_page_still_answers_with_what_the_database_knows(config):
    with running_app(config, REDIS_URL="redis://127.0.0.1:1/0") as app:
        client = app.test_client()
        samples = scrape(client)
        assert value(samples, "leadloop_metrics_source_up", source="redis") == 0
        assert value(samples, "leadloop_metrics_source_up", source="database") == 1
        assert ("leadloop_outbox_writes", ()) not in samples  # no rows, but the family is read
        assert client.get("/healthz").status_code == 200  # recording pauses; requests go on


def test_histograms_and_counters_round_trip_through_redis(redis_url, config):
    redis = Redis.from_url(redis_url)
    telemetry = Telemetry(redis)
    for seconds in (0.0004, 0.003, 0.003, 2.0):
        telemetry.observe("leadloop_scoring_seconds", seconds)
    telemetry.count("leadloop_crm_calls", crm="hubspot", method="fetch_fields")
    telemetry.count("leadloop_crm_calls", 2, crm="hubspot", method="fetch_fields")
    assert redis.keys("leadloop:metrics:*") == []  # nothing sent before the flush
    telemetry.flush()
    families = {family.name: family for family in telemetry.families()}
    scoring = {(s.name, s.labels.get("le")): s.value for s in families["leadloop_scoring_seconds"].samples}
    assert scoring[("leadloop_scoring_seconds_bucket", "0.0005")] == 1
    assert scoring[("leadloop_scoring_seconds_bucket", "0.005")] == 3
    assert scoring[("leadloop_scoring_seconds_bucket", "1.0")] == 3
    assert scoring[("leadloop_scoring_seconds_bucket", "+Inf")] == 4
    assert scoring[("leadloop_scoring_seconds_count", None)] == 4
    assert scoring[("leadloop_scoring_seconds_sum", None)] == pytest.approx(2.0064)
    [calls] = families["leadloop_crm_calls"].samples
    assert calls.labels == {"crm": "hubspot", "method": "fetch_fields"} and calls.value == 3
    with pytest.raises(ValueError, match="takes the labels"):
        telemetry.count("leadloop_crm_calls", crm="hubspot")
    redis.close()


def test_a_failed_job_is_counted_as_failed(client, svc, monkeypatch):
    from connectors.base import CrmError
    from integration.pipeline import jobs

    def crm_down(*_args: Any, **_kwargs: Any) -> Any:
        raise CrmError("HubSpot is down")  # an outage fails the whole job (RQ retries it)

    monkeypatch.setattr(jobs, "hydrate_from_crm", crm_down)
    post_events(client, [web_event("f1")])
    drain(svc, rounds=1)
    samples = scrape(client)
    # The job and its first retry (immediate: RESCORE_RETRY) both fail in this round; each run counts.
    assert value(samples, "leadloop_jobs_total", job="rescore_wanted", outcome="failed") == 2
    assert ("leadloop_jobs_total", (("job", "rescore_wanted"), ("outcome", "ok"))) not in samples


def test_scoring_is_timed_even_when_it_raises(client, svc, monkeypatch):
    from integration.pipeline import processing

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("boom")  # the lead's own failure: recorded on it, the job completes

    monkeypatch.setattr(processing, "score_now", broken)
    post_events(client, [web_event("f1")])
    drain(svc, rounds=1)
    samples = scrape(client)
    assert value(samples, "leadloop_scoring_seconds_count") == 1
    assert value(samples, "leadloop_jobs_total", job="rescore_wanted", outcome="ok") == 1
    assert value(samples, "leadloop_leads_failing", state="retrying") == 1


def test_openmetrics_when_the_scraper_asks_for_it(client):
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    response = client.get("/metrics", headers={"Accept": accept})
    assert response.content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert response.get_data(as_text=True).endswith("# EOF\n")
    assert client.get("/metrics").content_type == "text/plain; version=0.0.4; charset=utf-8"

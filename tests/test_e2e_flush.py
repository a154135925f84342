"""The outbox flush end to end: scored leads -> batched CRM writes over HTTP (mocked with ``responses``).

Leads come in through the signed intake, the real worker scores them (``drain``) and the flush
job sends the outbox; only the CRMs' HTTP APIs are mocked. Assertions are on the exact request
bodies and on the outbox rows.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from rq.job import Job
from sqlalchemy import func, select

from connectors.base import LEADLOOP_FIELDS
from integration.store.models import Lead, OutboxWrite
from integration.web import create_app
from tests.conftest import drain, post_events, running_app, web_event

HS_FIXTURES = Path(__file__).parent / "fixtures" / "hubspot"
SF_FIXTURES = Path(__file__).parent / "fixtures" / "salesforce"
HS_UPDATE = "https://api.hubapi.com/crm/objects/2026-03/contacts/batch/update"
SF_LOGIN = "https://login.salesforce.com/services/oauth2/token"
SF_INSTANCE = "https://acme.my.salesforce.com"
SF_COLLECTIONS = f"{SF_INSTANCE}/services/data/v62.0/composite/sobjects"
SF_TOKEN = "00Do0000000e0vQ!AQ0AQLiveAccessToken"
LIVE = {
    "CRM_WRITE_MODE": "live",
    "HUBSPOT_ACCESS_TOKEN": "pat-na1-test",
    "SALESFORCE_CLIENT_ID": "3MVG9leadloopConsumerKey",
    "SALESFORCE_CLIENT_SECRET": "leadloop-consumer-secret",
    "SALESFORCE_REFRESH_TOKEN": "5Aep861leadloopRefreshToken",
}
#: Every update writes every leadloop field (the table both setups create the CRM fields from).
LEADLOOP_KEYS = set(LEADLOOP_FIELDS)


# --- helpers ------------------------------------------------------------------------------------

@pytest.fixture
def live(config: dict[str, Any]) -> Iterator[Any]:
    """A live-mode app (writes really go out) on the test database and Redis."""
    with running_app(config, **LIVE) as app:
        yield app


def ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def sf_id(n: int) -> str:
    return f"00Q1N0000{n:06d}AAA"


def arrive(client: Any, crm: str, count: int) -> None:
    """``count`` cool leads of ``crm`` (one blog visit each: no hand-off, one update each)."""
    events = [web_event(f"{crm}-{i}", "page_view", email=f"person{i}@firm{i}.example", crm=crm,
                        crm_id=str(1000 + i) if crm == "hubspot" else sf_id(i), occurred_at=ago(1),
                        properties={"url": "https://acme.example/blog/warehouse-robots"}) for i in range(count)]
    response = post_events(client, events)
    assert response.status_code == 200, response.get_json()


def rows(svc: Any, crm: str | None = None) -> list[OutboxWrite]:
    with svc.sessions() as session:
        stmt = select(OutboxWrite).order_by(OutboxWrite.id)
        if crm:
            stmt = stmt.where(OutboxWrite.crm == crm)
        return list(session.scalars(stmt))


def statuses(svc: Any) -> dict[str, int]:
    with svc.sessions() as session:
        return dict(session.execute(select(OutboxWrite.status, func.count()).group_by(OutboxWrite.status)).all())


def leads_by_crm_id(svc: Any) -> dict[str, Lead]:
    with svc.sessions() as session:
        return {lead.crm_id: lead for lead in session.scalars(select(Lead))}


def scheduled_flushes(svc: Any) -> list[tuple[Job, datetime]]:
    registry = svc.queue.scheduled_job_registry
    jobs = [Job.fetch(job_id, connection=svc.redis) for job_id in registry.get_job_ids()]
    return [(job, registry.get_scheduled_time(job)) for job in jobs
            if job.func_name == "integration.pipeline.jobs.flush_outbox"]


def body(call: Any) -> Any:
    return json.loads(call.request.body)


def hubspot_ok(request: Any) -> tuple[int, dict, str]:
    inputs = json.loads(request.body)["inputs"]
    results = [{"id": item["id"], "properties": {}, "createdAt": "2026-01-01T00:00:00Z",
                "updatedAt": "2026-11-23T00:00:00Z", "archived": False} for item in inputs]
    return 200, {}, json.dumps({"status": "COMPLETE", "results": results})


def salesforce_ok(request: Any) -> tuple[int, dict, str]:
    records = json.loads(request.body)["records"]
    return 200, {}, json.dumps([{"id": record["id"], "success": True, "errors": []} for record in records])


def salesforce_login(rsps: Any) -> None:
    token = json.loads((SF_FIXTURES / "oauth_token_responses.json").read_text())["refresh_token_success_fields"]
    token = {k: v for k, v in token.items() if not k.startswith("_")}
    rsps.post(SF_LOGIN, json={**token, "access_token": SF_TOKEN, "instance_url": SF_INSTANCE})


# --- HubSpot ------------------------------------------------------------------------------------

def test_250_hubspot_leads_are_written_in_three_batch_updates(live):
    client, svc = live.test_client(), live.extensions["leadloop"]
    arrive(client, "hubspot", 250)
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, HS_UPDATE, callback=hubspot_ok, content_type="application/json")
        drain(svc)
        calls = list(rsps.calls)
    assert [call.request.url for call in calls] == [HS_UPDATE] * 3
    assert [len(body(call)["inputs"]) for call in calls] == [100, 100, 50]
    assert all(call.request.headers["Authorization"] == "Bearer pat-na1-test" for call in calls)

    written = rows(svc)
    by_key = {row.idempotency_key: row for row in written}
    leads = leads_by_crm_id(svc)
    sent_inputs = [item for call in calls for item in body(call)["inputs"]]
    assert sorted(item["id"] for item in sent_inputs) == sorted(str(1000 + i) for i in range(250))
    for item in sent_inputs:
        assert set(item) == {"id", "objectWriteTraceId", "properties"}
        row, lead = by_key[item["objectWriteTraceId"]], leads[item["id"]]
        assert row.crm_id == item["id"] and row.kind == "update"
        props = item["properties"]
        assert all(isinstance(value, str) for value in props.values())
        assert {name for name in props if name.startswith("leadloop_")} == {f"leadloop_{k}" for k in LEADLOOP_KEYS}
        # Beside our own properties only the stage's mapped HubSpot status (rules: crm_stages).
        assert set(props) - {f"leadloop_{k}" for k in LEADLOOP_KEYS} == {"hs_lead_status"}
        assert props["hs_lead_status"] == "OPEN" and props["leadloop_stage"] == lead.stage == "nurture"
        assert props["leadloop_score"] == str(round(lead.score))
        assert props["leadloop_band"] == lead.band and props["leadloop_grade"] == lead.grade
        assert props["leadloop_mql"] == "false"
        assert props["leadloop_rules_version"] == svc.rules.version
        assert props["leadloop_recycle_count"] == "0" and props["leadloop_recycle_reason"] == ""
        # HubSpot datetime: ISO-8601 UTC with milliseconds and Z.
        assert props["leadloop_scored_at"] == lead.scored_at.strftime("%Y-%m-%dT%H:%M:%S.") + \
            f"{lead.scored_at.microsecond // 1000:03d}Z"
        assert props["leadloop_reasons"] and "\n" in props["leadloop_reasons"]
    assert statuses(svc) == {"sent": 250}
    assert len({row.batch_id for row in written}) == 3
    assert all(row.sent_at is not None and row.attempts == 1 for row in written)


def test_a_207_marks_the_failed_row_failed_and_the_others_sent(live):
    client, svc = live.test_client(), live.extensions["leadloop"]
    arrive(client, "hubspot", 5)
    sample = json.loads((HS_FIXTURES / "batch_207_multistatus.json").read_text())
    refused: list[str] = []

    def multistatus(request: Any) -> tuple[int, dict, str]:
        inputs = json.loads(request.body)["inputs"]
        refused.append(inputs[1]["objectWriteTraceId"])
        error = {**sample["errors"][0], "context": {"objectWriteTraceId": [refused[0]]}}
        results = [{"id": item["id"], "properties": {}} for item in inputs if item["objectWriteTraceId"] != refused[0]]
        return 207, {}, json.dumps({**sample, "results": results, "numErrors": 1, "errors": [error]})

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, HS_UPDATE, callback=multistatus, content_type="application/json")
        drain(svc)
        assert len(rsps.calls) == 1
    assert statuses(svc) == {"sent": 4, "failed": 1}
    failed = next(row for row in rows(svc) if row.status == "failed")
    assert failed.idempotency_key == refused[0]
    assert failed.last_error == f"VALIDATION_ERROR: {sample['errors'][0]['message']}"
    assert failed.sent_at is None and failed.attempts == 1


def test_a_429_keeps_the_rows_pending_and_reschedules_the_flush(live):
    client, svc = live.test_client(), live.extensions["leadloop"]
    arrive(client, "hubspot", 5)
    limited = json.loads((HS_FIXTURES / "rate_limit_429_ten_secondly.json").read_text())
    with responses.RequestsMock() as rsps:
        rsps.post(HS_UPDATE, status=429, json=limited, headers={"Retry-After": "3"})
        before = time.time()
        drain(svc, horizon=0)  # run what is due now; the rescheduled flush is not due yet
        after = time.time()
        assert len(rsps.calls) == 1
    assert statuses(svc) == {"pending": 5}
    assert all(row.attempts == 0 and row.batch_id is None for row in rows(svc))
    [(job, when)] = scheduled_flushes(svc)
    assert job.args == ("hubspot",)
    assert before + 2 <= when.timestamp() <= time.time() + 3.5  # RQ keeps whole seconds

    # Wait out HubSpot's 3 s, which the client shares with every worker through Redis (RQ's whole
    # seconds may make the job due a little earlier; it would then just reschedule itself).
    time.sleep(max(0.0, after + 3.1 - time.time()))
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, HS_UPDATE, callback=hubspot_ok, content_type="application/json")
        drain(svc)
        assert len(rsps.calls) == 1
        assert len(body(rsps.calls[0])["inputs"]) == 5
    assert statuses(svc) == {"sent": 5}
    assert scheduled_flushes(svc) == []


def test_a_401_fails_the_flush_job_into_rqs_retries_and_keeps_the_rows_pending(live):
    client, svc = live.test_client(), live.extensions["leadloop"]
    arrive(client, "hubspot", 3)
    refusal = {"status": "error", "message": "Authentication credentials not found.",
               "category": "INVALID_AUTHENTICATION", "correlationId": "5b2ba2a3-0f4a-4b5e-9a1d-7a0e5c3a1b2c"}
    with responses.RequestsMock() as rsps:
        rsps.post(HS_UPDATE, status=401, json=refusal)
        drain(svc, horizon=0)
        assert len(rsps.calls) == 1
        [(job, _)] = scheduled_flushes(svc)  # RQ's declared retry, with backoff
        assert job.retries_left == 7
        assert svc.queue.failed_job_registry.count == 0
        assert statuses(svc) == {"pending": 3}
        drain(svc, horizon=4 * 3600)  # let every retry come due: the job ends among the failed
        assert len(rsps.calls) == 9
    failed = svc.queue.failed_job_registry.get_job_ids()
    assert len(failed) == 1
    job = Job.fetch(failed[0], connection=svc.redis)
    assert job.func_name == "integration.pipeline.jobs.flush_outbox"
    assert "CrmAuthError" in (job.latest_result().exc_string or "")
    assert statuses(svc) == {"pending": 3}
    assert all(row.attempts == 0 for row in rows(svc))


# --- Salesforce ---------------------------------------------------------------------------------

def test_450_salesforce_leads_are_written_in_three_collection_updates(live):
    client, svc = live.test_client(), live.extensions["leadloop"]
    arrive(client, "salesforce", 450)
    with responses.RequestsMock() as rsps:
        salesforce_login(rsps)
        rsps.add_callback(responses.PATCH, SF_COLLECTIONS, callback=salesforce_ok, content_type="application/json")
        drain(svc)
        calls = list(rsps.calls)
    assert [call.request.method for call in calls] == ["POST", "PATCH", "PATCH", "PATCH"]
    login = parse_qs(calls[0].request.body)
    assert login == {"grant_type": ["refresh_token"], "refresh_token": [LIVE["SALESFORCE_REFRESH_TOKEN"]],
                     "client_id": [LIVE["SALESFORCE_CLIENT_ID"]], "client_secret": [LIVE["SALESFORCE_CLIENT_SECRET"]]}
    patches = calls[1:]
    assert all(call.request.headers["Authorization"] == f"Bearer {SF_TOKEN}" for call in patches)
    assert [len(body(call)["records"]) for call in patches] == [200, 200, 50]
    assert all(body(call)["allOrNone"] is False and set(body(call)) == {"allOrNone", "records"} for call in patches)
    leads = leads_by_crm_id(svc)
    records = [record for call in patches for record in body(call)["records"]]
    assert sorted(record["id"] for record in records) == sorted(sf_id(i) for i in range(450))
    for record in records:
        lead = leads[record["id"]]
        assert record["attributes"] == {"type": "Lead"}
        assert record["Leadloop_Score__c"] == round(lead.score)
        assert record["Leadloop_Band__c"] == lead.band and record["Leadloop_Grade__c"] == lead.grade
        assert record["Leadloop_MQL__c"] is False and record["Leadloop_Stage__c"] == "nurture"
        assert record["Status"] == "Open - Not Contacted"
        # Salesforce dateTime: ISO-8601 UTC to the second with Z.
        assert record["Leadloop_Scored_At__c"] == lead.scored_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert set(record) - {"attributes", "id", "Status"} == {
            "Leadloop_Score__c", "Leadloop_Fit_Points__c", "Leadloop_Engagement_Points__c", "Leadloop_Band__c",
            "Leadloop_Grade__c", "Leadloop_MQL__c", "Leadloop_Reasons__c", "Leadloop_Stage__c",
            "Leadloop_Rules_Version__c", "Leadloop_Scored_At__c", "Leadloop_Recycle_Reason__c",
            "Leadloop_Recycle_Count__c", "Leadloop_Nurture_Track__c"}
    assert statuses(svc) == {"sent": 450}
    assert len({row.batch_id for row in rows(svc)}) == 3


def test_salesforce_per_record_errors_are_recorded(live):
    client, svc = live.test_client(), live.extensions["leadloop"]
    arrive(client, "salesforce", 4)
    answered: list[str] = []

    def partial(request: Any) -> tuple[int, dict, str]:
        records = json.loads(request.body)["records"]
        answered.extend(record["id"] for record in records)
        results = [{"id": record["id"], "success": True, "errors": []} for record in records]
        results[1] = {"success": False, "errors": [{"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                                                    "message": "Company is required", "fields": ["Company"]}]}
        results[2] = {"id": records[2]["id"], "success": False, "errors": [
            {"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access to this record",
             "fields": []}]}
        return 200, {}, json.dumps(results)

    with responses.RequestsMock() as rsps:
        salesforce_login(rsps)
        rsps.add_callback(responses.PATCH, SF_COLLECTIONS, callback=partial, content_type="application/json")
        drain(svc)
    by_id = {row.crm_id: row for row in rows(svc)}
    final, transient = by_id[answered[1]], by_id[answered[2]]
    assert (final.status, final.last_error) == (
        "failed", "FIELD_CUSTOM_VALIDATION_EXCEPTION: Company is required (Company)")
    # A locked row is worth another try: it stays pending with the reason.
    assert (transient.status, transient.attempts) == ("pending", 1)
    assert transient.last_error == "UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record"
    assert statuses(svc) == {"sent": 2, "failed": 1, "pending": 1}


def test_salesforce_request_limit_keeps_rows_pending_and_reschedules(live):
    client, svc = live.test_client(), live.extensions["leadloop"]
    arrive(client, "salesforce", 3)
    limit = json.loads((SF_FIXTURES / "rest_errors.json").read_text())["403_REQUEST_LIMIT_EXCEEDED"]
    with responses.RequestsMock() as rsps:
        salesforce_login(rsps)
        rsps.patch(SF_COLLECTIONS, status=403, json=limit)
        before = time.time()
        drain(svc, horizon=0)
        assert [call.request.method for call in rsps.calls] == ["POST", "PATCH"]
    assert statuses(svc) == {"pending": 3}
    [(job, when)] = scheduled_flushes(svc)
    assert job.args == ("salesforce",)
    assert when.timestamp() >= before + 15 * 60 - 2  # Salesforce's daily limit: try again in 15 minutes

    with responses.RequestsMock() as rsps:  # the cached token is reused: no second login
        rsps.add_callback(responses.PATCH, SF_COLLECTIONS, callback=salesforce_ok, content_type="application/json")
        drain(svc, horizon=16 * 60)
        assert len(rsps.calls) == 1
    assert statuses(svc) == {"sent": 3}


# --- shadow mode --------------------------------------------------------------------------------

def test_shadow_mode_makes_no_http_call_and_records_the_batches(client, svc):
    hot = "ops.lead@acme-robotics.com"
    events = [
        web_event("hot-form", "form_submit", email=hot, crm="hubspot", crm_id="999", occurred_at=ago(1),
                  properties={"form": "demo-request", "fields": {
                      "job_title": "Head of Operations", "company": "Acme Robotics", "industry": "Logistics",
                      "employees": 250, "country": "DE", "phone": "+49 30 1234567"}}),
        web_event("hot-download", "content_download", email=hot, crm="hubspot", crm_id="999",
                  occurred_at=ago(1), properties={"asset": "coverage-map"}),
    ]
    assert post_events(client, events).status_code == 200
    arrive(client, "hubspot", 120)
    arrive(client, "salesforce", 210)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        drain(svc)
        assert len(rsps.calls) == 0
    assert svc.queue.failed_job_registry.count == 0
    written = rows(svc)
    assert {row.status for row in written} == {"shadow"}
    assert all(row.batch_id and row.sent_at is not None and row.attempts == 0 for row in written)
    updates = {crm: {row.batch_id for row in written if row.crm == crm and row.kind == "update"}
               for crm in ("hubspot", "salesforce")}
    assert (len(updates["hubspot"]), len(updates["salesforce"])) == (2, 2)  # 121 -> 100 + 21, 210 -> 200 + 10
    assert sum(1 for row in written if row.kind == "update") == 331
    # The hot lead was handed off: its task is recorded too, and like everything else not sent.
    tasks = [row for row in written if row.kind == "task"]
    assert [(row.crm, row.crm_id) for row in tasks] == [("hubspot", "999")]


def test_a_completed_hubspot_task_meets_the_sla(config, monkeypatch):
    """Live mode: at the due time leadloop asks HubSpot whether the rep completed the task."""
    from datetime import UTC, datetime, timedelta

    from integration.pipeline.jobs import sweep_slas

    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # a Tuesday
    moment = {"now": start}
    app = create_app({**config, "CRM_WRITE_MODE": "live", "HUBSPOT_ACCESS_TOKEN": "pat-na1-test"},
                     clock=lambda: moment["now"])
    svc, client = app.extensions["leadloop"], app.test_client()
    fields = {"first_name": "Ada", "company": "Acme Logistics", "job_title": "VP Operations",
              "phone": "+49 30 1234567", "country": "DE", "employees": 250, "industry": "Logistics"}
    with responses.RequestsMock() as api:
        api.post(HS_UPDATE, json={"status": "COMPLETE", "results": []})
        api.get(re.compile(r"https://api\.hubapi\.com/crm/objects/2026-03/tasks/task%3A.*"), status=404,
                json={"status": "error", "message": "Object not found", "category": "OBJECT_NOT_FOUND"})
        api.post("https://api.hubapi.com/crm/objects/2026-03/tasks", json={"id": "9001", "properties": {}}, status=201)
        post_events(client, [
            web_event("sla-f", "form_submit", email="ada@acme-logistics.example", crm="hubspot", crm_id="51",
                      occurred_at=(start - timedelta(hours=1)).isoformat(), properties={"fields": fields}),
            web_event("sla-t", "trial_signup", email="ada@acme-logistics.example", crm="hubspot", crm_id="51",
                      occurred_at=(start - timedelta(minutes=5)).isoformat())])
        drain(svc)
        api.get("https://api.hubapi.com/crm/objects/2026-03/tasks/9001",
                json={"id": "9001", "properties": {"hs_task_status": "COMPLETED"}})
        with svc.sessions() as session:
            lead = session.scalars(select(Lead)).one()
            assert lead.stage == "mql" and lead.sla_due_at is not None
        moment["now"] = lead.sla_due_at + timedelta(minutes=10)
        assert sweep_slas() == {"due": 1}
        drain(svc)
    with svc.sessions() as session:
        lead = session.scalars(select(Lead)).one()
        assert (lead.stage, lead.sla_misses, lead.sla_due_at) == ("mql", 0, None)
    svc.engine.dispose()

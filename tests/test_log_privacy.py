"""Logs: one JSON object per line with the request or job id, and never a secret or a person's data.

``test_a_full_journey_logs_no_secret_and_no_personal_data`` runs everything a deployment does at
``LOG_LEVEL=DEBUG`` (signed intake, HubSpot webhooks, a Salesforce outbound message on its secret
path, scoring, a hand-off, hydration and an outbox flush in live mode against mocked CRM APIs,
refusals, a CRM outage, an unhandled error) and scans every log record and every line the JSON
handler wrote for the configured secrets, the access tokens and the leads' emails and names.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import pytest
import responses
import yaml

from connectors.hubspot.webhook import hubspot_signature_v3
from integration import logs
from integration.web import create_app, receiver
from tests.conftest import EVENTS_SECRET, EVENTS_SECRET_OLD, drain, post_events, post_hubspot, web_event
from tests.test_e2e_flush import hubspot_ok, salesforce_ok
from tests.test_e2e_salesforce import outbound_message
from tests.test_journeys import SHIPPED

HUBSPOT = "https://api.hubapi.com"
SF_LOGIN = "https://login.salesforce.com/services/oauth2/token"
SF_INSTANCE = "https://acme.my.salesforce.com"
SF_DATA = f"{SF_INSTANCE}/services/data/v62.0"

SECRETS = {
    "LEADLOOP_EVENTS_SECRETS": f"{EVENTS_SECRET},{EVENTS_SECRET_OLD}",
    "HUBSPOT_CLIENT_SECRETS": "hs-client-secret-new,hs-client-secret-old",
    "HUBSPOT_ACCESS_TOKEN": "pat-na1-0f1e2d3c-private-app-token",
    "HUBSPOT_WORKFLOW_API_KEYS": "wf-key-7c1d9e0b",
    "SALESFORCE_WEBHOOK_TOKENS": "sf-path-token-0123456789abcdef",
    "SALESFORCE_CLIENT_SECRET": "sf-consumer-secret-5e6f7a8b",
    "SALESFORCE_REFRESH_TOKEN": "5Aep861-sf-refresh-token-9c8d",
    "LEADLOOP_METRICS_TOKENS": "metrics-scrape-token-4b3a",
}
SF_ACCESS_TOKEN = "00Do0000000e0vQ!AQ0AQ-sf-access-token-1a2b"
#: The people of the journey: their emails and names must never be logged.
PEOPLE = [
    {"email": "zenobia.quarterfield@acme-robotics.example", "first_name": "Zenobia", "last_name": "Quarterfield",
     "crm_id": "7001"},
    {"email": "ignatius.vandersloot@northwind.example", "first_name": "Ignatius", "last_name": "Vandersloot",
     "crm_id": "00Q1N00000zZ9yXUAS"},
    {"email": "perpetua.oyelaran@hubspot-created.example", "first_name": "Perpetua", "last_name": "Oyelaran",
     "crm_id": "7002"},
    {"email": "theodric.banfield@web-only.example", "first_name": "Theodric", "last_name": "Banfield"},
    {"email": "wilhelmina.castellanos@workflow.example", "first_name": "Wilhelmina", "last_name": "Castellanos",
     "crm_id": "7003"},
]
PROFILE = {"company": "Acme Robotics", "job_title": "VP Operations", "phone": "+49 30 1234567", "country": "DE",
           "employees": 250, "industry": "Logistics"}


def forbidden() -> list[str]:
    words = [value for setting in SECRETS.values() for value in setting.split(",")] + [SF_ACCESS_TOKEN]
    for person in PEOPLE:
        words += [person["email"], person["email"].lower(), person["first_name"], person["last_name"]]
    return words


@pytest.fixture
def rules_file(tmp_path):
    rules = yaml.safe_load(SHIPPED.read_text())
    rules["handoff"]["teams"]["dach"]["members"] = [
        {"id": "rep-anna", "weight": 1, "timezone": "Europe/Berlin", "country": "DE"}]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return str(path)


def mock_crms(api: responses.RequestsMock, *, hubspot_down: bool) -> None:
    """HubSpot and Salesforce as live mode meets them; their answers carry the people's data."""
    if hubspot_down:
        api.post(f"{HUBSPOT}/crm/objects/2026-03/contacts/batch/update", status=503,
                 json={"status": "error", "message": "Service unavailable", "category": "SERVICE_UNAVAILABLE"})
    api.add_callback(responses.POST, f"{HUBSPOT}/crm/objects/2026-03/contacts/batch/update", callback=hubspot_ok,
                     content_type="application/json")
    api.post(f"{HUBSPOT}/crm/objects/2026-03/tasks", status=201, json={"id": "9001", "properties": {}})
    api.get(re.compile(rf"{re.escape(HUBSPOT)}/crm/objects/2026-03/tasks/task%3A.*"), status=404,
            json={"status": "error", "message": "Object not found", "category": "OBJECT_NOT_FOUND"})
    api.add_callback(responses.POST, f"{HUBSPOT}/crm/objects/2026-03/contacts/batch/upsert",
                     callback=hubspot_upserted, content_type="application/json")
    person = PEOPLE[2]
    api.post(f"{HUBSPOT}/crm/objects/2026-03/contacts/batch/read", json={"status": "COMPLETE", "results": [
        {"id": person["crm_id"], "properties": {"email": person["email"], "firstname": person["first_name"],
                                                "lastname": person["last_name"], "jobtitle": "VP Operations",
                                                "company": "Acme Robotics"}}]})
    api.post(SF_LOGIN, json={"access_token": SF_ACCESS_TOKEN, "instance_url": SF_INSTANCE,
                             "id": "https://login.salesforce.com/id/00Do0000000e0vQEAQ/005xx000001Sv6AAAS",
                             "token_type": "Bearer", "issued_at": "1700000000000", "signature": "x"})
    api.add_callback(responses.PATCH, f"{SF_DATA}/composite/sobjects", callback=salesforce_ok,
                     content_type="application/json")
    sf = PEOPLE[1]
    api.get(re.compile(rf"{re.escape(SF_DATA)}/query.*"), json={"done": True, "records": [
        {"Id": sf["crm_id"], "Email": sf["email"], "FirstName": sf["first_name"], "LastName": sf["last_name"]}]})
    task_by_key = re.compile(rf"{re.escape(SF_DATA)}/sobjects/Task/Leadloop_Key__c/.*")
    api.get(task_by_key, status=404,
            json=[{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
    api.patch(task_by_key, status=201,
              json={"id": "00T1N00000aBcDeUAB", "success": True, "errors": [], "created": True})


def hubspot_upserted(request: Any) -> tuple[int, dict, str]:
    """The batch upsert's answer: a new contact per input, with the person's email in it."""
    inputs = json.loads(request.body)["inputs"]
    results = [{"id": str(5550000 + n), "new": True, "objectWriteTraceId": item["objectWriteTraceId"],
                "properties": {"email": item["id"]}, "createdAt": "2026-11-30T10:00:00Z",
                "updatedAt": "2026-11-30T10:00:00Z", "archived": False} for n, item in enumerate(inputs)]
    return 200, {}, json.dumps({"status": "COMPLETE", "results": results})


def journey(client: Any, svc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    hot, sf, created, web, workflow = PEOPLE
    now = time.time()
    # Signed intake: a hot HubSpot lead (form with name and phone, then a trial) and a web-only one.
    assert post_events(client, [
        web_event("j-form", "form_submit", email=hot["email"], crm="hubspot", crm_id=hot["crm_id"],
                  occurred_at=_ago(now, hours=2), properties={"form": "demo", "fields": {
                      "first_name": hot["first_name"], "last_name": hot["last_name"], **PROFILE}}),
        web_event("j-trial", "trial_signup", email=hot["email"], crm="hubspot", crm_id=hot["crm_id"],
                  occurred_at=_ago(now, minutes=5)),
        web_event("j-web", "form_submit", email=web["email"], occurred_at=_ago(now, hours=1),
                  properties={"fields": {"first_name": web["first_name"], "last_name": web["last_name"]}}),
    ]).status_code == 200
    # A duplicate, a wrong signature, a bad payload that names its mistakes.
    assert post_events(client, [web_event("j-trial", "trial_signup", email=hot["email"])]).status_code == 200
    assert post_events(client, [web_event("j-x", email=hot["email"])], secret="whsec_wrong").status_code == 401
    assert post_events(client, [{"id": "j-bad", "type": "page_view", "email": hot["email"],
                                 "occurred_at": "yesterday"}]).status_code == 400
    # HubSpot: a contact created (hydrated from the API) and a property change carrying an email.
    stamp = int(now * 1000)
    assert post_hubspot(client, [
        {"eventId": 1, "subscriptionId": 21, "portalId": 62515, "appId": 54321, "occurredAt": stamp,
         "subscriptionType": "contact.creation", "attemptNumber": 0, "objectId": int(created["crm_id"]),
         "changeFlag": "CREATED", "changeSource": "CRM_UI"},
        {"eventId": 2, "subscriptionId": 22, "portalId": 62515, "appId": 54321, "occurredAt": stamp,
         "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": int(created["crm_id"]),
         "propertyName": "email", "propertyValue": created["email"], "changeSource": "CRM_UI"},
    ]).status_code == 200
    body = json.dumps([{"objectId": 1}]).encode()
    assert client.post("/webhooks/hubspot", data=body, headers={
        "X-HubSpot-Signature-v3": hubspot_signature_v3("hs-client-secret-wrong", "POST",
                                                       "https://leads.example.com/webhooks/hubspot", body,
                                                       str(stamp)),
        "X-HubSpot-Request-Timestamp": str(stamp)}).status_code == 401
    # A HubSpot workflow call with its API key.
    contact = {"objectId": int(workflow["crm_id"]), "properties": {
        "email": workflow["email"], "firstname": workflow["first_name"], "lastname": workflow["last_name"],
        "jobtitle": "CTO", "lastmodifieddate": _ago(now, minutes=1).replace("+00:00", "Z")}}
    assert client.post("/webhooks/hubspot/workflow", data=json.dumps(contact),
                       headers={"Content-Type": "application/json",
                                "X-Leadloop-Api-Key": "wf-key-7c1d9e0b"}).status_code == 200
    # Salesforce: an outbound message on the secret path, one on a wrong path, one that breaks.
    message = outbound_message([("04l1N00000H00001QA", sf["crm_id"], {
        "Email": sf["email"], "FirstName": sf["first_name"], "LastName": sf["last_name"], "Company": "Northwind",
        "Title": "Head of Operations", "Status": "Open - Not Contacted"})])
    token = SECRETS["SALESFORCE_WEBHOOK_TOKENS"]
    soap = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
    assert client.post(f"/webhooks/salesforce/{token}", data=message, headers=soap).status_code == 200
    assert client.post("/webhooks/salesforce/sf-path-token-guess", data=message, headers=soap).status_code == 401
    # A value of the wrong type: the 400's reason quotes it back to the sender, never to the log.
    wrong = outbound_message([("04l1N00000H00002QA", sf["crm_id"], {"NumberOfEmployees": sf["email"]})])
    refused = client.post(f"/webhooks/salesforce/{token}", data=wrong, headers=soap)
    assert refused.status_code == 400 and sf["email"].encode() in refused.data
    assert post_events(client, [web_event("j-type", hot["last_name"], email=hot["email"])]).status_code == 400
    with monkeypatch.context() as patch:
        def crash(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("storage exploded")

        patch.setattr(receiver, "store_events", crash)
        assert client.post(f"/webhooks/salesforce/{token}", data=message, headers=soap).status_code == 500
    # The scrape, with its token.
    assert client.get("/metrics", headers={"Authorization": "Bearer metrics-scrape-token-4b3a"}).status_code == 200


def _ago(now: float, **delta: float) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.fromtimestamp(now, UTC) - timedelta(**delta)).isoformat()


def test_a_full_journey_logs_no_secret_and_no_personal_data(config, rules_file, caplog, capsys, monkeypatch):
    caplog.set_level(logging.DEBUG)
    settings = {**config, **SECRETS, "LEADLOOP_RULES": rules_file, "CRM_WRITE_MODE": "live",
                "LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json",
                "SALESFORCE_CLIENT_ID": "3MVG9leadloopConsumerKey"}
    app = create_app(settings)
    client, svc = app.test_client(), app.extensions["leadloop"]
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
            mock_crms(api, hubspot_down=True)
            journey(client, svc, monkeypatch)
            drain(svc, logging_level="DEBUG")
            calls = [call.request.url for call in api.calls]
    finally:
        svc.engine.dispose()
        svc.redis.close()
        svc.telemetry.close()
        logs.configure_logging("WARNING")

    # The journey did what it says: hydration, the outage, the retried batch, the task, Salesforce.
    assert any(url.endswith("/contacts/batch/read") for url in calls)
    assert sum(url.endswith("/contacts/batch/update") for url in calls) >= 2
    assert any(url.endswith("/crm/objects/2026-03/tasks") for url in calls)
    assert any(url.endswith("/composite/sobjects") for url in calls)
    records = caplog.records
    assert any(r.name == "integration.web.app" and r.exc_info for r in records)  # the unhandled error
    assert any(r.name == "rq.worker" and "CrmError" in r.getMessage() for r in records)  # the HubSpot outage

    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line one JSON object
    assert len(entries) == len(records)
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    assert all("request_id" in e for e in entries if e["logger"].startswith("integration.web"))
    assert all("job_id" in e for e in entries if e["logger"].startswith("integration.pipeline"))
    assert any("request_id" in e and "exception" in e and e["logger"] == "integration.web.app" for e in entries)

    logged = "\n".join([caplog.text, *lines, *(repr(r.args) for r in records),
                        *(repr(getattr(r, "exc_info", None)) for r in records)])
    leaked = [word for word in forbidden() if word in logged]
    assert leaked == []


def test_request_ids_are_echoed_or_made_and_carried_by_each_line(config, capsys):
    with_json = {**config, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    app = create_app(with_json)
    client = app.test_client()
    try:
        given = client.post("/webhooks/events", data=b"[]", headers={"X-Request-Id": "lb-7f3a.2:9"})
        made = client.post("/webhooks/events", data=b"[]", headers={"X-Request-Id": "bad id; <script>"})
        missing = client.get("/healthz")
    finally:
        app.extensions["leadloop"].engine.dispose()
        logs.configure_logging("WARNING")
    assert given.headers["X-Request-Id"] == "lb-7f3a.2:9"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-Id"])
    assert re.fullmatch(r"[0-9a-f]{32}", missing.headers["X-Request-Id"])
    assert made.headers["X-Request-Id"] != missing.headers["X-Request-Id"]
    entries = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    refusals = [e for e in entries if e["logger"] == "integration.web.receiver"]
    assert [e["request_id"] for e in refusals] == ["lb-7f3a.2:9", made.headers["X-Request-Id"]]
    assert refusals[0]["level"] == "INFO" and refusals[0]["message"].startswith("webhook events refused: 401")
    assert logs.request_id.get() is None  # nothing carries over after the request


def test_a_job_logs_with_its_job_id(svc, client, capsys, monkeypatch):
    from integration.pipeline import jobs

    logs.configure_logging("INFO", "json")
    try:
        monkeypatch.setattr(jobs, "process_lead", _logging_process_lead(jobs.process_lead))
        post_events(client, [web_event("job-1")])
        [job_id] = svc.queue.job_ids
        drain(svc)
    finally:
        logs.configure_logging("WARNING")
    entries = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    mine = [e for e in entries if e["message"] == "processing a lead"]
    assert mine and all(e["job_id"] == job_id and "request_id" not in e for e in mine)


def _logging_process_lead(real: Any) -> Any:
    def process_lead(*args: Any, **kwargs: Any) -> Any:
        logging.getLogger("integration.pipeline.jobs").info("processing a lead")
        return real(*args, **kwargs)
    return process_lead


def test_text_lines_carry_the_ids_too(capsys):
    handler = logs.configure_logging("INFO", "text")
    token = logs.request_id.set("abc123")
    try:
        logging.getLogger("integration.test").info("hello")
    finally:
        logs.request_id.reset(token)
        logs.configure_logging("WARNING")
    assert handler.formatter is not None
    assert capsys.readouterr().err.rstrip().endswith(" INFO integration.test [request_id=abc123]: hello")


def test_sqlalchemy_never_logs_rows_even_at_debug():
    logs.configure_logging("DEBUG")
    try:
        assert logging.getLogger("sqlalchemy.engine.Engine").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("werkzeug").getEffectiveLevel() == logging.WARNING
    finally:
        logs.configure_logging("WARNING")

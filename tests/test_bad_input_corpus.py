"""The regression corpus of bad inputs found from outside: every one is a 4xx with a reason.

Each case once answered 500 (a crash on input), 503 (a value PostgreSQL refused, which a
sender retries forever) or 200 followed by a crash in the worker. Now each is refused at the
edge with the documented status and a reason, and nothing is stored.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.hubspot.webhook import hubspot_signature_v3
from integration.store.models import Event
from integration.web.intake import sign
from tests.conftest import EVENTS_SECRET, running_app, web_event

HS_SECRET = "hs-client-secret-new"
SF_TOKEN = "sf-path-token-0123456789abcdef"
SF_ORG = "00Do0000000e0vQEAQ"
WORKFLOW_KEY = "workflow-key-0123456789"


@pytest.fixture
def app(config):
    with running_app(config, HUBSPOT_WORKFLOW_API_KEYS=WORKFLOW_KEY) as app:
        yield app


def post_web(client: Any, body: bytes | list[dict[str, Any]], signature: str | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/webhooks/events", data=data, headers={
        "Content-Type": "application/json",
        "X-Leadloop-Signature": signature or sign(data, EVENTS_SECRET, int(time.time()))})


def post_hubspot(client: Any, body: bytes | list[dict[str, Any]], stamp: str | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = stamp or str(int(time.time() * 1000))
    signature = hubspot_signature_v3(HS_SECRET, "POST", "https://leads.example.com/webhooks/hubspot", data, stamp)
    return client.post("/webhooks/hubspot", data=data, headers={
        "Content-Type": "application/json", "X-HubSpot-Signature-v3": signature,
        "X-HubSpot-Request-Timestamp": stamp})


def post_workflow(client: Any, body: dict[str, Any]) -> Any:
    return client.post("/webhooks/hubspot/workflow", data=json.dumps(body),
                       headers={"Content-Type": "application/json", "X-Leadloop-Api-Key": WORKFLOW_KEY})


def post_flow(client: Any, events: list[dict[str, Any]]) -> Any:
    return client.post(f"/webhooks/salesforce/{SF_TOKEN}/flow",
                       data=json.dumps({"organizationId": SF_ORG, "events": events}),
                       headers={"Content-Type": "application/json"})


def post_outbound(client: Any, notification_id: str, fields: dict[str, str]) -> Any:
    values = "".join(f"<sf:{name}>{value}</sf:{name}>" for name, value in fields.items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{SF_ORG}</OrganizationId><ActionId>04k1N0000008pXOQAY</ActionId>"
        f'<Notification><Id>{notification_id}</Id>'
        '<sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"<sf:Id>00Q1N00000bS2eOUAS</sf:Id>{values}</sObject></Notification>"
        "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()
    return client.post(f"/webhooks/salesforce/{SF_TOKEN}", data=body,
                       headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})


def hs_change(**overrides: Any) -> dict[str, Any]:
    event = {"eventId": 101, "subscriptionId": 7, "portalId": 62515, "appId": 1, "occurredAt": 1763634000000,
             "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": 123,
             "propertyName": "jobtitle", "propertyValue": "CTO", "changeSource": "CRM_UI"}
    event.update(overrides)
    return event


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def raw_web(text_of_event: str) -> bytes:
    return f"[{text_of_event}]".encode()


WEB_OK = web_event("bad-1", "page_view", properties={"url": "/pricing"})


def web_with(**changes: Any) -> list[dict[str, Any]]:
    return [{**WEB_OK, **changes}]


# (name, how to send it, expected status, a phrase the reason contains)
CASES: list[tuple[str, Any, int, str]] = [
    # --- answered 500 before ---
    ("web: JSON nested 5,000 deep", lambda c: post_web(c, f"[{nested(5000)}]".encode()), 400, "nested too deeply"),
    ("web: properties nested 990 deep",
     lambda c: post_web(c, raw_web(json.dumps(WEB_OK)[:-1] + ', "properties": {"x": ' + nested(990) + "}}")),
     400, ""),
    ("hubspot: JSON nested 5,000 deep", lambda c: post_hubspot(c, nested(5000).encode()), 400, ""),
    ("web: occurred_at year 1 at +14:00", lambda c: post_web(c, web_with(occurred_at="0001-01-01T00:00:00+14:00")),
     400, "occurred_at"),
    ("web: occurred_at year 9999 at -14:00",
     lambda c: post_web(c, web_with(occurred_at="9999-12-31T23:59:59-14:00")), 400, "occurred_at"),
    ("hubspot: occurredAt 10**15", lambda c: post_hubspot(c, [hs_change(occurredAt=10**15)]), 400, ""),
    ("hubspot: occurredAt -10**15", lambda c: post_hubspot(c, [hs_change(occurredAt=-10**15)]), 400, ""),
    ("hubspot: occurredAt 2**63", lambda c: post_hubspot(c, [hs_change(occurredAt=2**63)]), 400, ""),
    ("web: lone surrogate in id", lambda c: post_web(c, raw_web(json.dumps(WEB_OK).replace('"bad-1"', '"\\ud800"'))),
     400, "surrogate"),
    ("web: lone surrogate in crm_id",
     lambda c: post_web(c, raw_web(json.dumps({**WEB_OK, "crm": "hubspot", "crm_id": "X"})
                                   .replace('"X"', '"\\udc00"'))), 400, "surrogate"),
    ("web: a 400-digit signature timestamp",
     lambda c: post_web(c, web_with(), signature="t=1" + "0" * 399 + ",v1=abc"), 401, ""),
    ("hubspot: a timestamp of 400 nines", lambda c: post_hubspot(c, [hs_change()], stamp="9" * 400), 401, ""),
    ("salesforce: LastModifiedDate in year 1",
     lambda c: post_outbound(c, "04l1N00000H00001QA", {"LastModifiedDate": "0001-01-01T00:00:00.000+14:00"}),
     400, ""),
    ("salesforce: SystemModstamp in year 9999",
     lambda c: post_outbound(c, "04l1N00000H00002QA", {"SystemModstamp": "9999-12-31T23:59:59.000-14:00"}), 400, ""),
    ("salesforce flow: occurredAt in year 1",
     lambda c: post_flow(c, [{"id": "f1", "type": "page_view", "occurredAt": "0001-01-01T00:00:00+14:00",
                              "recordId": "00Q1N00000bS2ZoUAK", "sobjectType": "Lead"}]), 400, ""),
    # --- answered 500 before: OSError (EOVERFLOW) from the platform's time conversion, not ValueError ---
    ("hubspot: occurredAt 10**20", lambda c: post_hubspot(c, [hs_change(occurredAt=10**20)]), 400, ""),
    ("hubspot: occurredAt -10**20", lambda c: post_hubspot(c, [hs_change(occurredAt=-10**20)]), 400, ""),
    ("hubspot workflow: occurredAt 10**20",
     lambda c: post_workflow(c, {"email": "jane@example.com", "occurredAt": 10**20}), 400, ""),
    ("hubspot workflow: occurredAt of 21 digits as text",
     lambda c: post_workflow(c, {"email": "jane@example.com", "occurredAt": "1" + "0" * 20}), 400, ""),
    ("hubspot workflow: updatedAt -10**20",
     lambda c: post_workflow(c, {"email": "jane@example.com", "updatedAt": -10**20}), 400, ""),
    # --- answered 503 before (values PostgreSQL refuses) ---
    ("web: NaN in properties", lambda c: post_web(c, raw_web(json.dumps(WEB_OK)[:-1] + ', "x": NaN}')
                                                  .replace(b'"properties": {', b'"properties": {"n": NaN, ')),
     400, "finite"),
    ("web: Infinity in form fields",
     lambda c: post_web(c, raw_web(json.dumps(web_event("bad-2", "form_submit", properties={"fields": {"n": 1}}))
                                   .replace(b'"n": 1'.decode(), '"n": Infinity'))), 400, "finite"),
    ("web: 1e400 in properties",
     lambda c: post_web(c, raw_web(json.dumps(web_event("bad-3", properties={"n": 1}))
                                   .replace('"n": 1', '"n": 1e400'))),
     400, "finite"),
    ("hubspot: NaN propertyValue",
     lambda c: post_hubspot(c, json.dumps([hs_change(propertyValue=1)]).replace('"propertyValue": 1',
                                                                                 '"propertyValue": NaN').encode()),
     400, ""),
    ("web: NUL byte in a property", lambda c: post_web(c, web_with(properties={"url": "/a\u0000b"})), 400, "NUL"),
    ("hubspot: objectId 10**70", lambda c: post_hubspot(c, [hs_change(objectId=10**70)]), 400, "crm_id"),
    ("salesforce: Email over 320 characters",
     lambda c: post_outbound(c, "04l1N00000H00003QA", {"Email": "a" * 320 + "@example.com"}), 400, ""),
    ("salesforce: notification Id over 200 characters",
     lambda c: post_outbound(c, "0" * 201, {"Email": "max@example.com"}), 400, ""),
    ("salesforce flow: id of 230 characters",
     lambda c: post_flow(c, [{"id": "f" * 230, "type": "page_view", "occurredAt": "2026-01-15T09:30:12.000Z",
                              "recordId": "00Q1N00000bS2ZoUAK", "sobjectType": "Lead"}]), 400, ""),
    ("hubspot workflow: leadloop_event of 50 characters",
     lambda c: post_workflow(c, {"leadloop_event": "a" * 50, "email": "jane@example.com", "hs_object_id": "1"}),
     400, "kind"),
    # --- accepted with 200 before, then crashed the worker ---
    ("web: properties.asset as a list", lambda c: post_web(c, web_with(properties={"asset": ["a", "b"]})),
     400, "properties.asset"),
    ("web: properties.url as an object", lambda c: post_web(c, web_with(properties={"url": {"a": 1}})),
     400, "properties.url"),
    ("web: form fields.owner_id over 64 characters",
     lambda c: post_web(c, [web_event("bad-4", "form_submit", properties={"fields": {"owner_id": "o" * 65}})]),
     400, "fields.owner_id"),
    ("web: form fields.email over 320 characters",
     lambda c: post_web(c, [web_event("bad-5", "form_submit",
                                      properties={"fields": {"email": "e" * 321 + "@example.com"}})]),
     400, "fields.email"),
]


@pytest.mark.parametrize("send, status, phrase", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_refused_with_a_reason_and_nothing_is_stored(client, svc, send, status, phrase):
    response = send(client)
    assert response.status_code == status, response.data[:500]
    reason = response.get_data(as_text=True)
    assert reason.strip()
    assert phrase in reason
    with svc.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 0


def test_every_mistake_of_a_batch_is_listed_in_one_answer(client, svc):
    batch = [web_event("m1", "page_view", properties={"asset": ["x"]}),
             web_event("m2", "page_view", properties={"url": "/ok\u0000"}),
             web_event("m3", "form_submit", properties={"fields": {"owner_id": "o" * 65}}),
             web_event("m4", "page_view", occurred_at="0001-01-01T00:00:00+14:00")]
    reason = post_web(client, batch).get_json()["error"]
    assert "[0].properties.asset" in reason and "[1].properties.url" in reason
    assert "[2].fields.owner_id" in reason and "[3].occurred_at" in reason and "occurred_at" in reason

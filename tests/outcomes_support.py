"""Shared material for the deal-outcome and rep-activity journeys: a movable clock, the app on it,
vendor-shaped HubSpot notifications and Salesforce outbound messages, and a fake HubSpot API
(``responses``) that answers the deal and activity reads from what a test put in it."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import responses
import yaml
from sqlalchemy import select

from integration.store.models import Event, Lead, Transition
from integration.web import create_app
from tests.conftest import post_hubspot
from tests.hubspot_openapi import assert_valid_bodies

SHIPPED = Path(__file__).parents[1] / "rules" / "leadloop.yaml"
API = "https://api.hubapi.com"
PORTAL, APP = 62515, 2090843
ORG_ID = "00Do0000000e0vQEAQ"
SF_TOKEN = "sf-path-token-0123456789abcdef"
TYPE_IDS = {"contact": "0-1", "deal": "0-3", "call": "0-48", "email": "0-49", "meeting": "0-47"}
UPPER = {"contact": "CONTACT", "deal": "DEAL", "call": "CALL", "email": "EMAIL", "meeting": "MEETING_EVENT"}
_ids = itertools.count(7_000_000)


class Clock:
    def __init__(self, start: datetime):
        self.value = start

    def __call__(self) -> datetime:
        return self.value

    def advance(self, **delta: float) -> None:
        self.value += timedelta(**delta)


def rules_file(tmp_path: Path, reps: list[str]) -> str:
    """The shipped rules with the dach team made of ``reps`` (CRM owner / user ids)."""
    rules = yaml.safe_load(SHIPPED.read_text())
    rules["handoff"]["teams"]["dach"]["members"] = [{"id": rep, "timezone": "Europe/Berlin", "country": "DE"}
                                                     for rep in reps]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return str(path)


@contextmanager
def world(config: dict[str, Any], rules: str, clock: Clock, **settings: str) -> Iterator[tuple[Any, Any]]:
    """The app on ``clock`` with ``rules``: its test client and services."""
    app = create_app({**config, "LEADLOOP_RULES": rules, **settings}, clock=clock)
    try:
        yield app.test_client(), app.extensions["leadloop"]
    finally:
        app.extensions["leadloop"].engine.dispose()


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- HubSpot ---------------------------------------------------------------------------------

def hs_object(change: str, object_type: str, object_id: int, occurred: datetime, **extra: Any) -> dict[str, Any]:
    """A generic (``object.*``) notification, as a developer-platform app receives it."""
    event = {"eventId": next(_ids), "subscriptionId": 4200000 + len(change), "portalId": PORTAL, "appId": APP,
             "occurredAt": ms(occurred), "subscriptionType": f"object.{change}", "attemptNumber": 0,
             "objectId": object_id, "objectTypeId": TYPE_IDS[object_type], "changeSource": "CRM_UI",
             "sourceId": "userId:76023669", **extra}
    if change == "creation":
        event["changeFlag"] = "CREATED"
    return event


def hs_property(object_type: str, object_id: int, occurred: datetime, name: str, value: str) -> dict[str, Any]:
    return hs_object("propertyChange", object_type, object_id, occurred, propertyName=name, propertyValue=value,
                     isSensitive=False)


def hs_association(object_type: str, object_id: int, contact_id: int, occurred: datetime,
                   removed: bool = False) -> list[dict[str, Any]]:
    """Both sides of an association between a record and a contact, as HubSpot sends it."""
    sides = []
    for (from_type, from_id), (to_type, to_id) in (((object_type, object_id), ("contact", contact_id)),
                                                   (("contact", contact_id), (object_type, object_id))):
        sides.append({"eventId": next(_ids), "subscriptionId": 4200099, "portalId": PORTAL, "appId": APP,
                      "occurredAt": ms(occurred), "subscriptionType": "object.associationChange",
                      "attemptNumber": 0, "changeSource": "CRM_UI",
                      "associationType": f"{UPPER[from_type]}_TO_{UPPER[to_type]}",
                      "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3,
                      "fromObjectId": from_id, "fromObjectTypeId": TYPE_IDS[from_type], "toObjectId": to_id,
                      "toObjectTypeId": TYPE_IDS[to_type], "associationRemoved": removed,
                      "isPrimaryAssociation": False})
    return sides


def send_hubspot(client: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = post_hubspot(client, events)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


class FakeHubSpot:
    """HubSpot's batch reads of deals, calls, emails, meetings and their contacts, from dicts."""

    OBJECTS = {"0-3": "deals", "calls": "calls", "emails": "emails", "meetings": "meetings"}

    def __init__(self, mock: responses.RequestsMock):
        self.mock = mock
        #: object name (deals, calls ...) -> id -> HubSpot properties (text, as HubSpot sends them)
        self.records: dict[str, dict[str, dict[str, str | None]]] = {name: {} for name in self.OBJECTS.values()}
        #: object name -> id -> associated contact ids
        self.contacts: dict[str, dict[str, list[int]]] = {name: {} for name in self.OBJECTS.values()}
        for path, name in self.OBJECTS.items():
            mock.add_callback(responses.POST, f"{API}/crm/objects/2026-03/{path}/batch/read",
                              callback=lambda request, name=name: self._read(name, request))
            mock.add_callback(responses.POST, f"{API}/crm/associations/2026-03/{name}/contacts/batch/read",
                              callback=lambda request, name=name: self._associations(name, request))

    def deal(self, deal_id: int, contacts: list[int], **properties: str | None) -> None:
        self.records["deals"][str(deal_id)] = {"hs_object_id": str(deal_id), **properties}
        self.contacts["deals"][str(deal_id)] = contacts

    def activity(self, object_name: str, activity_id: int, contacts: list[int], **properties: str | None) -> None:
        self.records[object_name][str(activity_id)] = {"hs_object_id": str(activity_id), **properties}
        self.contacts[object_name][str(activity_id)] = contacts

    def _read(self, name: str, request: Any) -> tuple[int, dict, str]:
        body = json.loads(request.body)
        results = [{"id": item["id"], "properties": {p: self.records[name][item["id"]].get(p)
                                                     for p in body["properties"]},
                    "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "archived": False}
                   for item in body["inputs"] if item["id"] in self.records[name]]
        return 200, {}, json.dumps({"status": "COMPLETE", "results": results,
                                    "startedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:00:01Z"})

    def _associations(self, name: str, request: Any) -> tuple[int, dict, str]:
        results = [{"from": {"id": item["id"]}, "to": [
            {"toObjectId": contact, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}]}
            for contact in self.contacts[name].get(item["id"], [])]} for item in json.loads(request.body)["inputs"]]
        return 200, {}, json.dumps({"status": "COMPLETE", "results": results})

    def check_bodies(self) -> None:
        assert_valid_bodies(self.mock.calls)


@contextmanager
def fake_hubspot() -> Iterator[FakeHubSpot]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake = FakeHubSpot(mock)
        yield fake
        fake.check_bodies()


# --- Salesforce --------------------------------------------------------------------------------

def sf_stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def outbound_message(sobject_type: str, record_id: str, fields: dict[str, str | None],
                     notification: str | None = None) -> bytes:
    """One Outbound Message for one record, shaped like the WSDL (enterprise namespace)."""
    values = "".join(f'<sf:{k} xsi:nil="true"/>' if v is None else f"<sf:{k}>{v}</sf:{k}>" for k, v in fields.items())
    nid = notification or f"04l1N00000H{next(_ids) % 100000:05d}QA"
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            '<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
            f"<OrganizationId>{ORG_ID}</OrganizationId><ActionId>04k1N0000008pXOQAY</ActionId>"
            '<SessionId xsi:nil="true"/>'
            "<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/62.0/00Do0000000e0vQ</EnterpriseUrl>"
            "<PartnerUrl>https://example.my.salesforce.com/services/Soap/u/62.0/00Do0000000e0vQ</PartnerUrl>"
            f"<Notification><Id>{nid}</Id>"
            f'<sObject xsi:type="sf:{sobject_type}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
            f"<sf:Id>{record_id}</sf:Id>{values}</sObject></Notification>"
            "</notifications></soapenv:Body></soapenv:Envelope>").encode()


def send_salesforce(client: Any, body: bytes) -> None:
    response = client.post(f"/webhooks/salesforce/{SF_TOKEN}", data=body,
                           headers={"Content-Type": "text/xml; charset=utf-8"})
    assert response.status_code == 200, response.get_data(as_text=True)


# --- what happened ---------------------------------------------------------------------------

def lead_of(svc: Any, crm_id: str) -> Lead:
    with svc.sessions() as session:
        return session.scalars(select(Lead).where(Lead.crm_id == crm_id)).one()


def transitions(svc: Any, crm_id: str) -> list[Transition]:
    with svc.sessions() as session:
        lead = session.scalars(select(Lead).where(Lead.crm_id == crm_id)).one()
        return list(session.scalars(select(Transition).where(Transition.lead_id == lead.id)
                                    .order_by(Transition.id)))


def lead_events(svc: Any, crm_id: str, kind: str) -> list[Event]:
    with svc.sessions() as session:
        lead = session.scalars(select(Lead).where(Lead.crm_id == crm_id)).one()
        return list(session.scalars(select(Event).where(Event.lead_id == lead.id, Event.kind == kind)
                                    .order_by(Event.occurred_at, Event.id)))

"""Salesforce end to end: Outbound Messages and Flow callouts over HTTP, the worker, the database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from sqlalchemy import create_engine, func, select

from integration.store.models import Event, Lead, ScoreRecord
from integration.web import create_app
from tests.conftest import drain

FIXTURES = Path(__file__).parent / "fixtures" / "salesforce"
TOKEN = "sf-path-token-0123456789abcdef"
ORG_ID = "00Do0000000e0vQEAQ"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
LEAD_ID = "00Q1N00000bS2eOUAS"


# --- helpers ------------------------------------------------------------------------------------

def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def post_soap(client: Any, body: bytes, token: str = TOKEN) -> Any:
    return client.post(f"/webhooks/salesforce/{token}", data=body,
                       headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})


def shape(element: ElementTree.Element) -> tuple:
    """What an XML element means: namespaced tag, attributes, trimmed text, children (prefixes ignored)."""
    return (element.tag, dict(element.attrib), (element.text or "").strip(), [shape(child) for child in element])


def fault(response: Any) -> tuple[str, str]:
    """Return (faultcode, faultstring) of a SOAP 1.1 Fault response."""
    assert response.headers["Content-Type"].startswith("text/xml")
    root = ElementTree.fromstring(response.data)
    node = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert node is not None, response.data
    return node.findtext("faultcode"), node.findtext("faultstring")


def count(svc: Any, model: Any, *where: Any) -> int:
    with svc.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def outbound_message(notifications: list[tuple[str, str, dict[str, str]]], org_id: str = ORG_ID) -> bytes:
    """An Outbound Message envelope as Salesforce sends it (see outbound_message_lead.xml)."""
    items = []
    for notification_id, lead_id, fields in notifications:
        values = "".join(f"<sf:{name}>{value}</sf:{name}>" for name, value in fields.items())
        items.append(f'<Notification><Id>{notification_id}</Id>'
                     f'<sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
                     f"<sf:Id>{lead_id}</sf:Id>{values}</sObject></Notification>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org_id}</OrganizationId><ActionId>04k1N0000008pXOQAY</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/62.0/00Do0000000e0vQ</EnterpriseUrl>"
        "<PartnerUrl>https://example.my.salesforce.com/services/Soap/u/62.0/00Do0000000e0vQ</PartnerUrl>"
        + "".join(items) + "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def notification_id(n: int) -> str:
    return f"04l1N00000H{n:05d}QA"


def lead_id(n: int) -> str:
    return f"00Q1N0000{n:06d}AAA"


# --- outbound messages --------------------------------------------------------------------------

def test_the_captured_message_is_acked_exactly_and_only_once_committed(client, svc, config):
    response = post_soap(client, fixture("outbound_message_lead.xml"))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    assert shape(ElementTree.fromstring(response.data)) == \
        shape(ElementTree.fromstring(fixture("outbound_message_ack.xml")))
    # The Ack went out: another connection (another process, say) already sees the rows.
    observer = create_engine(config["DATABASE_URL"])
    try:
        with observer.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(Event.__table__)) == 1
            assert connection.execute(select(Lead.__table__.c.crm, Lead.__table__.c.crm_id,
                                             Lead.__table__.c.email)).all() == \
                [("salesforce", LEAD_ID, "jane.doe@example.com")]
    finally:
        observer.dispose()
    drain(svc)
    with svc.sessions() as session:
        lead = session.scalars(select(Lead)).one()
        assert lead.fields == {"Cedula_Identidad_de_usuario__c": "0000000000", "company": "NovoPayment",
                               "email": "jane.doe@example.com", "first_name": "Jane", "last_name": "Doe",
                               "lead_status": "Abierto", "novolink__c": "REDACTED"}
        event = session.scalars(select(Event)).one()
        assert (event.source, event.kind, event.event_key) == ("salesforce", "record_snapshot", "04l1N00000HVEMpQAP")
        assert "SessionId" not in json.dumps(event.raw)
    assert count(svc, ScoreRecord) == 1


def test_a_message_with_100_notifications_is_100_events(client, svc):
    body = outbound_message([(notification_id(i), lead_id(i), {
        "Email": f"person{i}@firm{i}.example", "Company": f"Firm {i}",
        "LastModifiedDate": "2026-11-20T10:00:00.000Z"}) for i in range(100)])
    response = post_soap(client, body)
    assert response.status_code == 200
    assert response.data.startswith(b"<?xml") and b"<Ack>true</Ack>" in response.data
    assert count(svc, Event, Event.source == "salesforce") == 100
    assert count(svc, Lead) == 100
    drain(svc)
    assert count(svc, ScoreRecord) == 100
    assert count(svc, Event, Event.processed_at.is_(None)) == 0


def test_101_notifications_are_refused(client, svc):
    body = outbound_message([(notification_id(i), lead_id(i), {"Company": "X"}) for i in range(101)])
    response = post_soap(client, body)
    assert response.status_code == 400
    assert fault(response) == ("soapenv:Client", "101 notifications, more than 100")
    assert count(svc, Event) == 0


def test_a_duplicate_message_is_acked_again_without_new_rows(client, svc):
    body = fixture("outbound_message_lead_and_contact.xml")
    assert post_soap(client, body).status_code == 200
    drain(svc)
    before = (count(svc, Event), count(svc, Lead), count(svc, ScoreRecord))
    assert before == (2, 2, 2)
    again = post_soap(client, body)
    assert again.status_code == 200
    assert b"<Ack>true</Ack>" in again.data
    assert len(svc.queue) == 0
    drain(svc)
    assert (count(svc, Event), count(svc, Lead), count(svc, ScoreRecord)) == before


@pytest.mark.parametrize(("token", "body", "reason"), [
    ("sf-path-token-wrong", fixture("outbound_message_lead.xml"), "token does not match"),
    (TOKEN, fixture("outbound_message_lead.xml").replace(ORG_ID.encode(), b"00D000000000001AAA"),
     "organization id does not match"),
], ids=["wrong-token", "wrong-org"])
def test_foreign_senders_get_a_401_fault_and_nothing_is_stored(client, svc, token, body, reason):
    response = post_soap(client, body, token=token)
    assert response.status_code == 401
    assert fault(response) == ("soapenv:Client", reason)
    assert count(svc, Event) == 0 and count(svc, Lead) == 0


XXE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
""" + fixture("outbound_message_lead.xml").split(b"?>", 1)[1].replace(b"<sf:Company>NovoPayment", b"<sf:Company>&xxe;")

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
""" + fixture("outbound_message_lead.xml").split(b"?>", 1)[1].replace(b"<sf:Company>NovoPayment",
                                                                      b"<sf:Company>&lol9;")


@pytest.mark.parametrize(("body", "reason"), [
    (fixture("outbound_message_lead.xml")[:-40], "malformed XML: "),
    (b"not xml at all", "malformed XML: "),
    (b'{"organizationId": "00Do0000000e0vQEAQ"}', "malformed XML: "),
    (b"<a/>", "not a SOAP 1.1 envelope"),
    (XXE, "forbidden XML construct: DTDForbidden"),
    (BILLION_LAUGHS, "forbidden XML construct: DTDForbidden"),
], ids=["truncated", "text", "json", "not-soap", "xxe", "billion-laughs"])
def test_unreadable_or_unsafe_xml_is_a_400_fault_and_nothing_is_stored(client, svc, body, reason):
    response = post_soap(client, body)
    assert response.status_code == 400
    code, text = fault(response)
    assert code == "soapenv:Client"
    assert text.startswith(reason)
    assert b"root:" not in response.data
    assert count(svc, Event) == 0 and count(svc, Lead) == 0


def test_the_store_being_down_is_a_503_fault_so_salesforce_retries(config):
    app = create_app({**config, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    try:
        response = post_soap(app.test_client(), fixture("outbound_message_lead.xml"))
        assert response.status_code == 503
        assert fault(response) == ("soapenv:Server", "store unavailable, retry later")
        assert b"<Ack>" not in response.data
    finally:
        app.extensions["leadloop"].engine.dispose()
        app.extensions["leadloop"].redis.close()


# --- out-of-order snapshots ---------------------------------------------------------------------

NEWER = {"Email": "max@acme.example", "Company": "Acme GmbH", "Title": "Head of Logistics",
         "NumberOfEmployees": "250", "LastModifiedDate": "2026-11-20T10:00:00.000Z"}
OLDER = {"Email": "max@acme.example", "Company": "Acme", "Title": "Trainee",
         "NumberOfEmployees": "5", "LastModifiedDate": "2026-11-19T08:00:00.000Z"}
EXPECTED = {"email": "max@acme.example", "company": "Acme GmbH", "job_title": "Head of Logistics", "employees": 250}


def test_an_older_snapshot_arriving_late_does_not_overwrite_newer_values(client, svc):
    assert post_soap(client, outbound_message([(notification_id(1), LEAD_ID, NEWER)])).status_code == 200
    drain(svc)
    assert post_soap(client, outbound_message([(notification_id(2), LEAD_ID, OLDER)])).status_code == 200
    drain(svc)
    with svc.sessions() as session:
        lead = session.scalars(select(Lead)).one()
        assert lead.fields == EXPECTED
        assert set(lead.field_times.values()) == {"2026-11-20T10:00:00+00:00"}
        assert session.scalar(select(func.count()).select_from(Event)) == 2
        # The stale snapshot changed nothing, so it caused no rescoring (and no CRM write).
        assert session.scalar(select(func.count()).select_from(ScoreRecord)) == 1
        assert lead.grade in ("A", "B", "C") and "Trainee" not in json.dumps(
            session.scalars(select(ScoreRecord.result)).one())


def test_snapshots_out_of_order_in_one_message_keep_the_newest_values(client, svc):
    body = outbound_message([(notification_id(3), LEAD_ID, NEWER), (notification_id(4), LEAD_ID, OLDER)])
    assert post_soap(client, body).status_code == 200
    drain(svc)
    with svc.sessions() as session:
        assert session.scalars(select(Lead)).one().fields == EXPECTED


# --- Flow callouts ------------------------------------------------------------------------------

def test_the_flow_endpoint_stores_and_scores_its_events(client, svc):
    body = fixture("flow_callout_lead.json")
    response = client.post(f"/webhooks/salesforce/{TOKEN}/flow", data=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.get_json() == {"accepted": 2, "duplicates": 0, "ignored": 0}
    drain(svc)
    with svc.sessions() as session:
        events = {e.event_key: e for e in session.scalars(select(Event))}
        assert set(events) == {"flow:00Q1N00000bS2ZoUAK-2026-01-15T09:30:12.000Z", "flow:a0B1N000001xyzQUAQ"}
        attended = events["flow:a0B1N000001xyzQUAQ"]
        assert attended.kind == "event_attended"
        assert attended.properties["event"] == "Hannover Messe 2026"
        lead = session.scalars(select(Lead)).one()
        assert (lead.crm, lead.crm_id, lead.email) == ("salesforce", "00Q1N00000bS2ZoUAK", "max.muster@example.com")
        assert lead.fields["company"] == "Acme GmbH" and lead.fields["employees"] == 250
        assert "Leadloop_Band__c" not in lead.fields  # our own write-back echo is dropped
        assert session.scalar(select(func.count()).select_from(ScoreRecord)) == 1
    again = client.post(f"/webhooks/salesforce/{TOKEN}/flow", data=body, headers={"Content-Type": "application/json"})
    assert again.get_json() == {"accepted": 0, "duplicates": 2, "ignored": 0}


def test_the_flow_endpoint_refuses_a_foreign_org_with_a_json_401(client, svc):
    payload = json.loads(fixture("flow_callout_lead.json"))
    payload["organizationId"] = "00D000000000001AAA"
    response = client.post(f"/webhooks/salesforce/{TOKEN}/flow", data=json.dumps(payload),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert response.get_json() == {"error": "organization id does not match"}
    assert count(svc, Event) == 0

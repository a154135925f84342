"""Salesforce inbound: token + org authentication, Outbound Message and Flow callout parsing."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.base import InboundRequest, IntakeContext, IntakeResult, PayloadError, SignatureError
from connectors.events import ACTIVITY_KINDS
from connectors.salesforce import connector
from connectors.salesforce.webhook import (
    ACK_BODY,
    error_response,
    id18,
    ok_response,
    parse_flow_callout,
    parse_outbound_message,
    verify_token,
)

FIXTURES = Path(__file__).parent / "fixtures" / "salesforce"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
ORG_ID = "00Do0000000e0vQEAQ"
CONFIG = {"SALESFORCE_WEBHOOK_TOKENS": "old-token-1234, new-token-5678", "SALESFORCE_ORG_ID": ORG_ID}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def request(body: bytes, token: str = "new-token-5678") -> InboundRequest:
    return InboundRequest(method="POST", url=f"https://leadloop.example/webhooks/salesforce/{token}",
                          headers={"Content-Type": "text/xml; charset=utf-8"}, body=body,
                          path_params={"token": token})


def context(activity_kinds: frozenset[str] = ACTIVITY_KINDS, **config: object) -> IntakeContext:
    """The receiver's context: the config, the rules' activity kinds, a fixed receive time."""
    return IntakeContext({**CONFIG, **config}, activity_kinds=activity_kinds, now=NOW)


def parse(body: bytes, **config: object) -> list:
    return parse_outbound_message(request(body), context(**config))


# --- token ------------------------------------------------------------------------------------

@pytest.mark.parametrize("token", ["old-token-1234", "new-token-5678"])
def test_verify_accepts_every_rotation_token(token):
    verify_token(request(b"", token), context())


@pytest.mark.parametrize(("tokens", "token", "message"), [
    ("old-token-1234,new-token-5678", "wrong-token", "token does not match"),
    ("old-token-1234,new-token-5678", "new-token-567", "token does not match"),
    ("old-token-1234", "", "missing token"),
    ("", "anything", "no webhook token configured"),
    (" , ", "anything", "no webhook token configured"),
])
def test_verify_refuses(tokens, token, message):
    with pytest.raises(SignatureError, match=message) as err:
        verify_token(request(b"", token), IntakeContext({"SALESFORCE_WEBHOOK_TOKENS": tokens}))
    assert err.value.status == 401


# --- outbound messages ------------------------------------------------------------------------

def test_captured_lead_message():
    [event] = parse(fixture("outbound_message_lead.xml"))
    assert event.source == "salesforce" and event.crm == "salesforce"
    assert event.kind == "record_snapshot"
    assert event.event_key == "04l1N00000HVEMpQAP"
    assert event.crm_id == "00Q1N00000bS2eOUAS"
    assert event.email == "jane.doe@example.com"
    assert event.occurred_at == NOW  # no LastModifiedDate/SystemModstamp sent: receive time
    assert event.fields == {
        "Cedula_Identidad_de_usuario__c": "0000000000", "company": "NovoPayment",
        "email": "jane.doe@example.com", "first_name": "Jane", "last_name": "Doe",
        "lead_status": "Abierto", "novolink__c": "REDACTED",
    }
    assert event.properties == {"sobject_type": "Lead", "action_id": "04k1N0000008pXOQAY",
                                "organization_id": ORG_ID}
    assert event.raw["notification_id"] == "04l1N00000HVEMpQAP"
    assert event.raw["fields"]["Id"] == "00Q1N00000bS2eOUAS"


def test_lead_and_contact_message_types_and_order_stamps():
    lead, contact = parse(fixture("outbound_message_lead_and_contact.xml"))
    assert lead.occurred_at == datetime(2026, 1, 15, 9, 30, 12, tzinfo=UTC)  # LastModifiedDate wins
    assert lead.email == "max.muster@example.com"
    assert lead.fields["employees"] == 250
    assert lead.fields["annual_revenue"] == 2_500_000.0
    assert lead.fields["do_not_contact"] is False
    assert lead.fields["city"] is None  # xsi:nil
    assert lead.fields["owner_id"] == "005000000000001AAA"
    assert lead.fields["job_title"] == "Head of Operations" and lead.fields["rating"] == "Hot"
    assert lead.fields["Region__c"] == "EMEA"
    assert "LastModifiedDate" not in lead.fields and "SystemModstamp" not in lead.fields
    assert "Leadloop_Score__c" not in lead.fields and "score" not in lead.fields  # our own echo
    assert lead.raw["fields"]["Leadloop_Score__c"] == "87.0"  # but kept in raw
    assert contact.kind == "record_snapshot"
    assert contact.properties["sobject_type"] == "Contact"
    assert contact.occurred_at == datetime(2026, 1, 15, 10, 0, tzinfo=UTC)  # SystemModstamp
    assert contact.fields == {"email": "erika@example.org", "do_not_contact": True,
                              "last_name": "Mustermann", "country": "Austria"}


def test_other_sobject_is_ignored_and_session_id_never_kept():
    [event] = parse(fixture("outbound_message_account_with_session.xml"))
    assert event.kind == "ignored"
    assert event.crm_id == "0011N00001XyZabQAB"
    assert event.fields == {}
    assert event.properties["sobject_type"] == "Account"
    assert "FAKESESSION" not in repr(event)


def test_parsed_by_namespace_not_prefix():
    body = fixture("outbound_message_lead.xml").decode()
    renamed = (body.replace("soapenv:", "S:").replace("xmlns:soapenv", "xmlns:S")
               .replace("sf:", "ent:").replace("xmlns:sf", "xmlns:ent")
               .replace('<notifications xmlns="http://soap.sforce.com/2005/09/outbound">',
                        '<om:notifications xmlns:om="http://soap.sforce.com/2005/09/outbound">')
               .replace("</notifications>", "</om:notifications>"))
    outbound = "OrganizationId|ActionId|SessionId|EnterpriseUrl|PartnerUrl|Notification|Id|sObject"
    renamed = re.sub(rf"<(/?)({outbound})\b", r"<\1om:\2", renamed)
    assert parse(renamed.encode()) == parse(fixture("outbound_message_lead.xml"))


def test_wrong_namespace_is_not_read():
    body = fixture("outbound_message_lead.xml").replace(b"http://soap.sforce.com/2005/09/outbound",
                                                         b"http://example.com/fake")
    with pytest.raises(PayloadError, match="no outbound-message notifications"):
        parse(body)


def test_partner_namespace_accepted():
    body = fixture("outbound_message_lead.xml").replace(b"urn:sobject.enterprise.soap.sforce.com",
                                                         b"urn:sobject.partner.soap.sforce.com")
    [event] = parse(body)
    assert event.crm_id == "00Q1N00000bS2eOUAS" and event.fields["company"] == "NovoPayment"


@pytest.mark.parametrize(("configured", "ok"), [
    (ORG_ID, True),
    (ORG_ID[:15], True),
    (ORG_ID[:15].lower(), False),  # 15-char ids are case-sensitive
    ("00Do0000000e0vQEAX", False),
    ("00D000000000001AAA", False),
])
def test_organization_id(configured, ok):
    body = fixture("outbound_message_lead.xml")
    if ok:
        assert parse(body, SALESFORCE_ORG_ID=configured)
    else:
        with pytest.raises(SignatureError, match="organization id does not match"):
            parse(body, SALESFORCE_ORG_ID=configured)


def test_organization_id_not_configured_refuses():
    with pytest.raises(SignatureError, match="SALESFORCE_ORG_ID"):
        parse(fixture("outbound_message_lead.xml"), SALESFORCE_ORG_ID=None)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">&lol2;</soapenv:Envelope>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">&xxe;</soapenv:Envelope>"""
DTD_ONLY = b"""<?xml version="1.0"?>
<!DOCTYPE soapenv:Envelope SYSTEM "http://example.com/evil.dtd">
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"/>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, DTD_ONLY], ids=["entities", "xxe", "dtd"])
def test_unsafe_xml_refused(body):
    with pytest.raises(PayloadError, match="forbidden XML construct") as err:
        parse(body)
    assert err.value.status == 400


@pytest.mark.parametrize(("body", "message"), [
    (b"<not-xml", "malformed XML"),
    (b"<a/>", "not a SOAP 1.1 envelope"),
    (b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>',
     "no outbound-message notifications"),
])
def test_unrecognised_xml(body, message):
    with pytest.raises(PayloadError, match=message):
        parse(body)


def _without(body: bytes, start: bytes, end: bytes) -> bytes:
    """``body`` with everything from ``start`` to ``end`` (inclusive) cut out."""
    head, _, rest = body.partition(start)
    _, _, tail = rest.partition(end)
    assert head != body, start
    return head + tail


LEAD_MESSAGE = fixture("outbound_message_lead.xml")


@pytest.mark.parametrize(("body", "message"), [
    (_without(LEAD_MESSAGE, b"<OrganizationId>", b"</OrganizationId>"), "OrganizationId: missing"),
    (LEAD_MESSAGE.replace(ORG_ID.encode(), b""), "OrganizationId: missing"),
    (LEAD_MESSAGE.replace(ORG_ID.encode(), b"  "), "OrganizationId: missing"),
    (LEAD_MESSAGE.replace(ORG_ID.encode(), b"not-an-org"), "OrganizationId: not a Salesforce id"),
    (_without(LEAD_MESSAGE, b"<Notification>", b"</Notification>"), "no Notification in the outbound message"),
], ids=["no-org-element", "empty-org", "blank-org", "garbage-org", "no-notification"])
def test_malformed_messages_are_400_not_401(body, message):
    with pytest.raises(PayloadError, match=message) as err:
        parse(body)
    assert err.value.status == 400


def test_a_foreign_org_with_no_notifications_is_still_401():
    # The org check comes before the content check: a foreign sender learns nothing about our shape.
    body = _without(LEAD_MESSAGE, b"<Notification>", b"</Notification>").replace(ORG_ID.encode(),
                                                                                 b"00D000000000001AAA")
    with pytest.raises(SignatureError, match="organization id does not match") as err:
        parse(body)
    assert err.value.status == 401


def _with_notifications(count: int) -> bytes:
    body = fixture("outbound_message_lead.xml").decode()
    start, end = body.index("<Notification>"), body.index("</Notification>") + len("</Notification>")
    one = body[start:end]
    many = "".join(one.replace("04l1N00000HVEMpQAP", f"04l1N00000HV{i:04d}AP") for i in range(count))
    return (body[:start] + many + body[end:]).encode()


def test_hundred_notifications_accepted_hundred_and_one_refused():
    events = parse(_with_notifications(100))
    assert len(events) == 100 and len({e.event_key for e in events}) == 100
    with pytest.raises(PayloadError, match="101 notifications"):
        parse(_with_notifications(101))


def test_notification_without_sobject_id_is_named():
    body = fixture("outbound_message_lead.xml").replace(b"<sf:Id>00Q1N00000bS2eOUAS</sf:Id>", b"")
    with pytest.raises(PayloadError, match="Notification 04l1N00000HVEMpQAP: sObject has no Id"):
        parse(body)


@pytest.mark.parametrize(("old", "new", "message"), [
    (b"<sf:NumberOfEmployees>250<", b"<sf:NumberOfEmployees>many<", "NumberOfEmployees: invalid literal"),
    (b"<sf:HasOptedOutOfEmail>false<", b"<sf:HasOptedOutOfEmail>maybe<", "HasOptedOutOfEmail: expected"),
    (b"<sf:LastModifiedDate>2026-01-15T09:30:12.000Z<", b"<sf:LastModifiedDate>yesterday<",
     "LastModifiedDate: expected an ISO-8601"),
    (b"<sf:Id>00Q1N00000bS2ZoUAK<", b"<sf:Id>00Q' OR Id != '<", "not a Salesforce id"),
])
def test_bad_field_values_named(old, new, message):
    body = fixture("outbound_message_lead_and_contact.xml")
    assert old in body
    with pytest.raises(PayloadError, match=f"Notification 04l1N00000HVEMqQAP.*{message}"):
        parse(body.replace(old, new))


def test_ok_response_is_the_compact_ack():
    sample = fixture("outbound_message_ack.xml").decode()
    sample = re.sub(r"<!--.*?-->", "", sample, flags=re.S)
    compact = re.sub(r">\s+<", "><", sample).strip()
    body, status, headers = ok_response(IntakeResult(accepted=1, duplicates=0))
    assert body == ACK_BODY == compact.encode()
    assert status == 200
    assert headers == {"Content-Type": "text/xml; charset=utf-8"}


@pytest.mark.parametrize(("status", "code"), [(400, "soapenv:Client"), (401, "soapenv:Client"),
                                              (503, "soapenv:Server")])
def test_error_response_is_a_soap_fault(status, code):
    body, got_status, headers = error_response(status, 'bad <value> & "quotes"\x00')
    assert got_status == status and headers["Content-Type"] == "text/xml; charset=utf-8"
    text = body.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert f"<faultcode>{code}</faultcode>" in text
    assert '<faultstring>bad &lt;value&gt; &amp; "quotes"</faultstring>' in text
    import defusedxml.ElementTree as SafeET  # the fault is well-formed XML

    assert SafeET.fromstring(body).tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"


# --- Flow callouts ----------------------------------------------------------------------------

def flow(payload: object, activity_kinds: frozenset[str] = ACTIVITY_KINDS, **config: object) -> list:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_flow_callout(request(body), context(activity_kinds, **config))


def flow_payload() -> dict:
    return json.loads(fixture("flow_callout_lead.json"))


def test_flow_callout():
    snapshot, attended = flow(fixture("flow_callout_lead.json"))
    assert snapshot.kind == "record_snapshot"
    assert snapshot.event_key == "flow:00Q1N00000bS2ZoUAK-2026-01-15T09:30:12.000Z"
    assert snapshot.email == "max.muster@example.com"
    assert snapshot.fields == {"email": "Max.Muster@Example.com", "company": "Acme GmbH", "employees": 250,
                               "annual_revenue": 2_500_000.0, "do_not_contact": False,
                               "lead_status": "Working - Contacted"}
    assert snapshot.properties == {"flow": "Leadloop_Lead_Changed", "sobject_type": "Lead",
                                   "organization_id": ORG_ID}
    assert attended.kind == "event_attended"
    assert attended.occurred_at == datetime(2026, 1, 14, 16, 0, tzinfo=UTC)
    assert attended.properties["event"] == "Hannover Messe 2026"
    assert attended.raw == flow_payload()["events"][1]


@pytest.mark.parametrize(("short", "full"), [
    ("00Do0000000e0vQ", "00Do0000000e0vQEAQ"),  # the org id of the captured message
    ("00Q1N00000bS2eO", "00Q1N00000bS2eOUAS"),
    ("00Q1N00000bS2eOUAS", "00Q1N00000bS2eOUAS"),
])
def test_id18(short, full):
    assert id18(short) == full


def test_flow_15_char_record_id_is_stored_in_18_char_form():
    payload = flow_payload()
    payload["events"][0]["recordId"] = "00Q1N00000bS2Zo"
    assert flow(payload)[0].crm_id == "00Q1N00000bS2ZoUAK"


def test_flow_kinds_declared_by_the_rules_file():
    payload = flow_payload()
    payload["events"][1]["type"] = "webinar_watched"
    events = flow(payload, activity_kinds=frozenset({"event_attended", "webinar_watched"}))
    assert events[1].kind == "webinar_watched"


def test_flow_other_sobject_ignored():
    payload = flow_payload()
    payload["events"][0]["sobjectType"] = "Account"
    assert flow(payload)[0].kind == "ignored"


def test_flow_opportunity_snapshot_is_a_deal_change():
    payload = flow_payload()
    payload["events"][0].update(sobjectType="Opportunity", recordId="0061N00000Dy2mBQAR",
                                fields={"StageName": "Closed Won", "IsClosed": True, "IsWon": True, "Amount": 12000})
    event = flow(payload)[0]
    assert (event.kind, event.record_id, event.crm_id) == ("deal_change", "0061N00000Dy2mBQAR", None)
    assert event.properties["is_won"] is True and event.properties["amount"] == "12000"


@pytest.mark.parametrize(("org", "message"), [("", r"\$.organizationId: missing"),
                                              ("x", r"\$.organizationId: not a Salesforce id")])
def test_flow_blank_or_garbage_org_is_400(org, message):
    payload = json.loads(fixture("flow_callout_lead.json"))
    payload["organizationId"] = org
    with pytest.raises(PayloadError, match=message) as err:
        flow(payload)
    assert err.value.status == 400


def test_flow_wrong_org_is_401():
    payload = flow_payload()
    payload["organizationId"] = "00D000000000001AAA"
    with pytest.raises(SignatureError, match="organization id does not match"):
        flow(payload)


def _broken(path: str, value: object) -> dict:
    payload = flow_payload()
    *parents, last = path.split(".")
    target = payload
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key = int(last) if last.isdigit() else last
    if value is KeyError:
        del target[key]
    else:
        target[key] = value
    return payload


@pytest.mark.parametrize(("payload", "message"), [
    (b"{not json", "body is not JSON"),
    (b"[]", "body must be a JSON object"),
    ({"events": []}, r"\$.organizationId: missing"),
    (_broken("events", {"a": 1}), r"\$.events: missing or wrong type"),
    (_broken("events", [{}] * 201), "201 events, more than 200"),
    (_broken("events.0", "x"), r"\$.events\[0\]: must be an object"),
    (_broken("events.0.id", KeyError), r"\$.events\[0\].id: missing"),
    (_broken("events.1.id", ""), r"\$.events\[1\].id: must be 1-195"),
    (_broken("events.0.type", "Record Snapshot"), r"\$.events\[0\].type: unknown event type"),
    (_broken("events.1.type", "webinar_watched"), r"\$.events\[1\].type: unknown event type"),
    (_broken("events.0.recordId", "00Q' OR Id != '"), r"\$.events\[0\].recordId: not a Salesforce id"),
    (_broken("events.1.occurredAt", "last tuesday"), r"\$.events\[1\].occurredAt: expected an ISO"),
    (_broken("events.0.fields", ["Email"]), r"\$.events\[0\].fields: missing or wrong type"),
    (_broken("events.0.fields.Company", {"Name": "x"}), r"\$.events\[0\].fields.Company: must be a string"),
    (_broken("events.0.fields.NumberOfEmployees", "many"), r"\$.events\[0\].fields.NumberOfEmployees"),
    (_broken("events.0.fields.HasOptedOutOfEmail", 1), r"\$.events\[0\].fields.HasOptedOutOfEmail"),
])
def test_flow_payload_errors_name_the_path(payload, message):
    with pytest.raises(PayloadError, match=message) as err:
        flow(payload)
    assert err.value.status == 400


def test_connector_endpoints():
    assert connector.name == "salesforce"
    by_name = {endpoint.name: endpoint for endpoint in connector.endpoints}
    assert by_name["salesforce"].rule == "/salesforce/<token>"
    assert by_name["salesforce_flow"].rule == "/salesforce/<token>/flow"
    assert by_name["salesforce"].verify is by_name["salesforce_flow"].verify is verify_token
    assert by_name["salesforce"].ok_response is ok_response
    assert "SALESFORCE_WEBHOOK_TOKENS" in connector.settings

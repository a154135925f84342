"""Salesforce Outbound Messages over HTTP: malformed is a 400 fault, only a foreign sender a 401.

The receiver's status policy (``integration.webhooks``): bad token or org -> 401, a payload that
breaks the documented shape -> 400. Salesforce retries a fault until the message is 24 hours old,
so the difference matters only to the admin reading the outbound-message queue, who must see
"malformed" for a broken message and "unauthorised" only for a wrong URL or org.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from sqlalchemy import func, select

from integration.store.models import Event

FIXTURES = Path(__file__).parent / "fixtures" / "salesforce"
TOKEN = "sf-path-token-0123456789abcdef"
ORG_ID = b"00Do0000000e0vQEAQ"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
LEAD_MESSAGE = (FIXTURES / "outbound_message_lead.xml").read_bytes()


def _cut(body: bytes, start: bytes, end: bytes) -> bytes:
    head, _, rest = body.partition(start)
    assert head != body, start
    return head + rest.partition(end)[2]


def _fault(response: Any) -> tuple[str, str]:
    root = ElementTree.fromstring(response.data)
    node = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert node is not None, response.data
    return node.findtext("faultcode"), node.findtext("faultstring")


def _post(client: Any, body: bytes, token: str = TOKEN) -> Any:
    return client.post(f"/webhooks/salesforce/{token}", data=body,
                       headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})


def _stored(svc: Any) -> int:
    with svc.sessions() as session:
        return session.scalar(select(func.count()).select_from(Event))


@pytest.mark.parametrize(("body", "reason"), [
    (_cut(LEAD_MESSAGE, b"<OrganizationId>", b"</OrganizationId>"), "OrganizationId: missing"),
    (LEAD_MESSAGE.replace(ORG_ID, b""), "OrganizationId: missing"),
    (_cut(LEAD_MESSAGE, b"<Notification>", b"</Notification>"), "no Notification in the outbound message"),
    (_cut(LEAD_MESSAGE, b"<notifications", b"</notifications>"), "no outbound-message notifications element"),
], ids=["no-organization-id", "empty-organization-id", "no-notification", "no-notifications-element"])
def test_malformed_outbound_message_is_a_400_fault(client, svc, body, reason):
    response = _post(client, body)
    assert response.status_code == 400
    assert _fault(response) == ("soapenv:Client", reason)
    assert _stored(svc) == 0


@pytest.mark.parametrize(("token", "body", "reason"), [
    ("sf-path-token-wrong", LEAD_MESSAGE, "token does not match"),
    # A wrong token is refused before the body is read, however broken the body is.
    ("sf-path-token-wrong", _cut(LEAD_MESSAGE, b"<OrganizationId>", b"</OrganizationId>"), "token does not match"),
    (TOKEN, LEAD_MESSAGE.replace(ORG_ID, b"00D000000000001AAA"), "organization id does not match"),
], ids=["wrong-token", "wrong-token-malformed-body", "wrong-org"])
def test_only_a_wrong_token_or_org_is_a_401_fault(client, svc, token, body, reason):
    response = _post(client, body, token=token)
    assert response.status_code == 401
    assert _fault(response) == ("soapenv:Client", reason)
    assert _stored(svc) == 0

"""How ``fuzz_api.py`` makes a generated request authentic, the way each real sender does.

Signatures are computed over the bytes actually sent, in ``SigningSession.send`` (after
schemathesis serialised the case), with the same functions the receiver checks them with.
``prepare_case`` decides, per case, whether to authenticate it and puts the configured
Salesforce token and org id into the case itself, so a failure report shows what was sent.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import requests
import schemathesis
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

from connectors.hubspot.webhook import (
    DEFAULT_API_KEY_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_V3_HEADER,
    SIGNATURE_VERSION_HEADER,
    TIMESTAMP_HEADER,
    hubspot_signature_v1,
    hubspot_signature_v2,
    hubspot_signature_v3,
)
from integration.web import intake

EVENTS = "POST /webhooks/events"
HUBSPOT = "POST /webhooks/hubspot"
WORKFLOW = "POST /webhooks/hubspot/workflow"
SALESFORCE = "POST /webhooks/salesforce/{token}"
FLOW = "POST /webhooks/salesforce/{token}/flow"
#: One case in this many is sent as generated: no (or a garbage) signature, token and org id.
UNAUTHENTICATED_ONE_IN = 8


@dataclass(frozen=True)
class FuzzSecrets:
    """The fuzz server's credentials (throw-away values, set only for its run)."""

    events_secret: str = "whsec_fuzz_0123456789"
    hubspot_secret: str = "hs-fuzz-client-secret"
    workflow_key: str = "workflow-fuzz-key-0123456789"
    salesforce_token: str = "sf-fuzz-token-0123456789abcdef"
    #: The org id of the document's examples, so they are accepted.
    salesforce_org: str = "00Do0000000e0vQEAQ"
    public_base_url: str = "https://leads.example.com"

    def server_environment(self) -> dict[str, str]:
        return {"LEADLOOP_EVENTS_SECRETS": self.events_secret, "HUBSPOT_CLIENT_SECRETS": self.hubspot_secret,
                "HUBSPOT_WORKFLOW_API_KEYS": self.workflow_key, "SALESFORCE_WEBHOOK_TOKENS": self.salesforce_token,
                "SALESFORCE_ORG_ID": self.salesforce_org, "PUBLIC_BASE_URL": self.public_base_url}


SECRETS = FuzzSecrets()


@schemathesis.serializer("text/xml", "application/xml")
def raw_text(_context: Any, value: Any) -> bytes:
    """Send a text/xml string body as it is: schemathesis would otherwise wrap it as ``<data>``."""
    if isinstance(value, bytes):
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    return text.encode("utf-8", "surrogatepass")


class SigningSession(requests.Session):
    """A requests session that signs the next request(s) as ``plan`` says, over the bytes sent."""

    def __init__(self, base_url: str):
        super().__init__()
        self.base_url = base_url
        self.sign_next = False
        self.label = ""
        self.last_response: requests.Response | None = None

    def plan(self, *, sign: bool, label: str) -> None:
        self.sign_next, self.label = sign, label

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if self.sign_next:
            sign_request(request, self.label)
        response = super().send(request, **kwargs)
        self.last_response = response
        return response


def sign_request(request: requests.PreparedRequest, label: str) -> None:
    """Add the authentication the endpoint ``label`` checks, computed over ``request``'s body."""
    body = request.body or b""
    body = body.encode("utf-8") if isinstance(body, str) else body
    headers = request.headers
    if label == EVENTS:
        headers[intake.SIGNATURE_HEADER] = intake.sign(body, SECRETS.events_secret)
        return
    if label not in (HUBSPOT, WORKFLOW):
        return  # Salesforce: the token is in the path (prepare_case)
    if label == WORKFLOW and (DEFAULT_API_KEY_HEADER in headers or not (
            SIGNATURE_V3_HEADER in headers or SIGNATURE_HEADER in headers)):
        headers[DEFAULT_API_KEY_HEADER] = SECRETS.workflow_key
        return
    # HubSpot signs the public URL: PUBLIC_BASE_URL + the request URI exactly as sent.
    url = SECRETS.public_base_url + (request.path_url or "/")
    method = request.method or "POST"
    if SIGNATURE_HEADER in headers and SIGNATURE_V3_HEADER not in headers:
        version = headers.get(SIGNATURE_VERSION_HEADER, "").strip().lower()
        headers[SIGNATURE_HEADER] = (hubspot_signature_v1(SECRETS.hubspot_secret, body) if version == "v1"
                                     else hubspot_signature_v2(SECRETS.hubspot_secret, method, url, body))
        return
    stamp = str(int(time.time() * 1000))
    headers[TIMESTAMP_HEADER] = stamp
    headers[SIGNATURE_V3_HEADER] = hubspot_signature_v3(SECRETS.hubspot_secret, method, url, body, stamp)


def _mode(case: Any, location: ParameterLocation) -> GenerationMode:
    info = case.meta.components.get(location) if case.meta is not None else None
    return info.mode if info is not None else GenerationMode.POSITIVE


def prepare_case(case: Any, session: SigningSession) -> None:
    """Make ``case`` authentic unless it is the one in eight left as generated, or its headers or
    path are invalid on purpose (negative mode): signing those would make them valid."""
    label = case.operation.label
    fingerprint = zlib.crc32(repr((case.body, sorted((case.headers or {}).items()), case.path_parameters)).encode(
        "utf-8", "backslashreplace"))
    authentic = fingerprint % UNAUTHENTICATED_ONE_IN != 0
    headers_valid = _mode(case, ParameterLocation.HEADER) is GenerationMode.POSITIVE
    path_valid = _mode(case, ParameterLocation.PATH) is GenerationMode.POSITIVE
    body_valid = _mode(case, ParameterLocation.BODY) is GenerationMode.POSITIVE
    if authentic and path_valid and case.path_parameters and "token" in case.path_parameters:
        case.path_parameters["token"] = SECRETS.salesforce_token
    if authentic and body_valid and label == FLOW and isinstance(case.body, dict):
        case.body["organizationId"] = SECRETS.salesforce_org
    if authentic and body_valid and label == WORKFLOW and isinstance(case.body, dict) and fingerprint % 4:
        # The document cannot say "an id or an email" so that generation mostly has one: supply an id.
        if not isinstance(case.body.get("objectId"), int | str):
            case.body["objectId"] = fingerprint % 10**9 + 1
    if body_valid and label == SALESFORCE and isinstance(case.body, str):
        case.body = soap_variant(case.body, fingerprint if authentic else 0)
    session.plan(sign=authentic and headers_valid, label=label)


def soap_variant(text: str, fingerprint: int) -> str:
    """Return a generated string as sent, or inside a real Outbound Message envelope (as a field
    value, as the notification id, or as raw XML in the sObject), so the parser's depths are reached."""
    variant = fingerprint % 4
    if variant == 0:
        return text
    notification_id = f"04l{fingerprint:015d}"
    content = f"<sf:Company>{escape(text)}</sf:Company>"
    if variant == 2:
        notification_id = escape(text)
        content = ""
    elif variant == 3:
        content = text
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{SECRETS.salesforce_org}</OrganizationId><ActionId>04k1N0000008pXOQAY</ActionId>"
        f"<Notification><Id>{notification_id}</Id>"
        '<sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"<sf:Id>00Q1N00000bS2eOUAS</sf:Id>{content}"
        "<sf:LastModifiedDate>2026-01-15T09:30:12.000Z</sf:LastModifiedDate></sObject></Notification>"
        "</notifications></soapenv:Body></soapenv:Envelope>"
    )

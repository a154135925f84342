"""How ``fuzz_api.py`` prepares each generated case before it is sent.

- **Authentic, like the real senders**: signatures are computed over the bytes actually sent, in
  ``SigningSession.send`` (after schemathesis serialised the case), with the same functions the
  receiver checks them with; the configured Salesforce token and org id go into the case itself,
  so a failure report shows what was sent. One case in eight is left as generated.
- **A known-nasty value** in one leaf of one valid JSON body in four: numbers past every range
  (epoch overflow), NUL, a lone surrogate, 400 digits, extreme dates, nesting past the store's
  limit: the shapes of bad input that once reached a 5xx, which random generation seldom hits.
- **Deeper XML**: a generated Outbound Message string is sent as is or inside a real envelope.
"""

from __future__ import annotations

import copy
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
#: One valid JSON body in this many gets a known-nasty value in one of its leaves.
NASTY_ONE_IN = 4


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


NASTY_VALUES: tuple[Any, ...] = (
    10**20, -(10**20), 2**63, -(2**63) - 1, 10**70, 1e308, -1e-308,
    "", "\x00", "a\x00b", "\ud800", "\udfff", "9" * 400, "1" + "0" * 20, "\u00b2",
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59-14:00",
    _nested(40), {"": None}, [None],
)


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

    def __init__(self) -> None:
        super().__init__()
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
    if authentic and body_valid and isinstance(case.body, dict | list) and fingerprint % NASTY_ONE_IN == 1:
        plant_nasty_value(case.body, fingerprint)
    if authentic and body_valid and label == WORKFLOW and isinstance(case.body, dict) and fingerprint % 4:
        # The document cannot say "an id or an email" so that generation mostly has one: supply an id.
        if not isinstance(case.body.get("objectId"), int | str):
            case.body["objectId"] = fingerprint % 10**9 + 1
    if body_valid and label == SALESFORCE and isinstance(case.body, str):
        case.body = soap_variant(case.body, fingerprint if authentic else 0)
    session.plan(sign=authentic and headers_valid, label=label)


def _leaves(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) holding a scalar, depth first."""
    found: list[tuple[Any, Any]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.extend(_leaves(child) if isinstance(child, dict | list) and child else [(value, key)])
    return found


def plant_nasty_value(body: Any, fingerprint: int) -> None:
    """Replace one leaf of ``body``, chosen by ``fingerprint``, with a known-nasty value."""
    leaves = _leaves(body)
    if leaves:
        container, key = leaves[(fingerprint // NASTY_ONE_IN) % len(leaves)]
        container[key] = copy.deepcopy(NASTY_VALUES[(fingerprint // 97) % len(NASTY_VALUES)])


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

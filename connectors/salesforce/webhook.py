"""Salesforce inbound: Outbound Messages (SOAP) and record-triggered Flow HTTP callouts (JSON).

Authentication has two parts. ``verify_token`` (the Endpoint's ``verify``) compares the secret
path token with every entry of ``SALESFORCE_WEBHOOK_TOKENS`` before anything is parsed. The
organization id check needs the payload, so it runs first thing inside ``parse_*`` once the
XML/JSON is read; a foreign org raises ``SignatureError`` (401) like a bad token. Salesforce
signs nothing; the vendor's own advice is to check the org id:
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_security.htm

Only a wrong token or a foreign org is a 401. A message that lacks what every outbound message
carries (an ``OrganizationId`` that is a Salesforce id, at least one ``Notification``: the WSDL
declares it without ``minOccurs="0"``) is malformed: ``PayloadError`` (400).
https://developer.salesforce.com/docs/platform/api/guide/sforce-api-om-outboundmessaging-wsdl.html

Every Notification / Flow event becomes one ``LeadEvent``. Outbound Messages carry the record's
*latest* state (kind ``record_snapshot``), delivered at least once and possibly out of order:
``occurred_at`` is the record's ``LastModifiedDate`` so the store can refuse older snapshots.
Opportunities, Tasks and Events are record events (``connectors.salesforce.records``).
When the payload has neither ``LastModifiedDate`` nor ``SystemModstamp`` the receive time is
used (``IntakeContext.now``).
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from connectors.base import InboundRequest, IntakeContext, IntakeResult, PayloadError, SignatureError, secret_list
from connectors.events import ACTIVITY_KINDS, LeadEvent
from connectors.salesforce.records import CONVERSION_FIELDS, RECORD_SOBJECTS, conversion, record_event
from connectors.salesforce.values import SALESFORCE_ID, id18, parse_datetime, to_bool, to_float, to_int

# --- mapping tables ----------------------------------------------------------------------------

#: Salesforce field API name -> canonical leadloop field. Lead and Contact share the table
#: (Contact's address fields are ``Mailing*``). Unmapped fields keep their API name.
FIELD_MAP: dict[str, str] = {
    "Email": "email",
    "FirstName": "first_name",
    "LastName": "last_name",
    "Company": "company",
    "Title": "job_title",
    "Phone": "phone",
    "MobilePhone": "mobile_phone",
    "Country": "country",
    "State": "state",
    "City": "city",
    "MailingCountry": "country",
    "MailingState": "state",
    "MailingCity": "city",
    "Industry": "industry",
    "NumberOfEmployees": "employees",
    "AnnualRevenue": "annual_revenue",
    "Website": "website",
    "LeadSource": "lead_source",
    "Status": "lead_status",
    "OwnerId": "owner_id",
    "HasOptedOutOfEmail": "do_not_contact",
    "Rating": "rating",
}

#: sObject types that are leads to us; any other type is stored as kind ``ignored``.
LEAD_SOBJECTS = frozenset({"Lead", "Contact"})

#: Record metadata, not lead data: the ids and timestamps live in ``crm_id``/``occurred_at``/``raw``.
RECORD_METADATA = frozenset({"Id", "attributes", "LastModifiedDate", "SystemModstamp"})

#: Fields leadloop writes itself (``Leadloop_Score__c`` ...): an echo of our write-back, dropped.
OWN_FIELD = re.compile(r"^Leadloop_\w+__c$")

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NAMESPACES = ("urn:sobject.enterprise.soap.sforce.com", "urn:sobject.partner.soap.sforce.com")
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

#: Outbound Message WSDL: ``Notification`` has ``maxOccurs="100"``.
MAX_NOTIFICATIONS = 100
#: Longest Flow event id: it is stored as ``flow:<id>``, and event keys are at most 200 characters.
MAX_FLOW_ID = 195
#: Our own limit for one Flow callout body (documented in docs/salesforce.md).
MAX_FLOW_EVENTS = 200


#: Canonical fields that are not strings, and how to read them (from XML text or JSON values).
FIELD_TYPES: dict[str, Callable[[Any], Any]] = {
    "employees": to_int,
    "annual_revenue": to_float,
    "do_not_contact": to_bool,
}


def map_fields(sf_fields: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Return ``sf_fields`` under canonical names, typed, without leadloop's own fields.

    Raises ``PayloadError`` naming ``where`` and the field when a value has the wrong type.
    """
    fields: dict[str, Any] = {}
    for api_name, value in sf_fields.items():
        if api_name in RECORD_METADATA or api_name in CONVERSION_FIELDS or OWN_FIELD.match(api_name):
            continue
        name = FIELD_MAP.get(api_name, api_name)
        convert = FIELD_TYPES.get(name)
        if value is not None and convert is not None:
            try:
                value = convert(value)
            except (TypeError, ValueError) as exc:
                raise PayloadError(f"{where}.{api_name}: {exc}") from None
        fields[name] = value
    return fields


# --- authentication ----------------------------------------------------------------------------

def verify_token(request: InboundRequest, context: IntakeContext) -> None:
    """Raise ``SignatureError`` unless the path token is one of ``SALESFORCE_WEBHOOK_TOKENS``."""
    tokens = secret_list(context.config.get("SALESFORCE_WEBHOOK_TOKENS"))
    if not tokens:
        raise SignatureError("no webhook token configured")
    token = request.path_params.get("token") or ""
    if not token:
        raise SignatureError("missing token")
    # Compare against every entry (no early exit) so timing says nothing about which matched.
    matched = False
    for candidate in tokens:
        matched |= hmac.compare_digest(token.encode(), candidate.encode())
    if not matched:
        raise SignatureError("token does not match")


def check_organization(received: str | None, config: Mapping[str, Any]) -> str:
    """Return the org id if it is ours (``SALESFORCE_ORG_ID``), else raise ``SignatureError``.

    A configured 15-character id matches the first 15 characters (case-sensitive).
    """
    configured = (config.get("SALESFORCE_ORG_ID") or "").strip()
    if not configured:
        raise SignatureError("SALESFORCE_ORG_ID is not configured")
    received = (received or "").strip()
    if len(configured) == 15:
        ok = len(received) in (15, 18) and received[:15] == configured
    else:
        ok = received == configured
    if not ok:
        raise SignatureError("organization id does not match")
    return received


def _organization_id(received: str | None, where: str) -> str:
    """Return the sent org id, or raise ``PayloadError`` when it is missing or not a Salesforce id.

    A missing id is a malformed message (400), not a foreign sender (401): the 401 is kept for
    a well-formed id that is not ours (``check_organization``).
    """
    value = (received or "").strip()
    if not value:
        raise PayloadError(f"{where}: missing")
    if not SALESFORCE_ID.match(value):
        raise PayloadError(f"{where}: not a Salesforce id")
    return value


# --- Outbound Messages (SOAP) ------------------------------------------------------------------

def _email(fields: Mapping[str, Any]) -> str | None:
    email = fields.get("email")
    return (email.strip().lower() or None) if isinstance(email, str) else None


def _child(parent: Element, ns: str, name: str) -> Element | None:
    return parent.find(f"{{{ns}}}{name}")


def _text(element: Element | None) -> str | None:
    if element is None or element.get(f"{{{XSI_NS}}}nil") == "true":
        return None
    return element.text or ""


def _sobject_fields(sobject: Element) -> dict[str, str | None]:
    fields: dict[str, str | None] = {}
    for child in sobject:
        ns, _, local = child.tag[1:].partition("}") if child.tag.startswith("{") else ("", "", child.tag)
        if ns in SOBJECT_NAMESPACES:
            fields[local] = _text(child)
    return fields


def _load_soap(body: bytes) -> Element:
    try:
        return SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise PayloadError(f"forbidden XML construct: {type(exc).__name__}") from None
    except ParseError as exc:
        raise PayloadError(f"malformed XML: {exc}") from None


def parse_outbound_message(request: InboundRequest, context: IntakeContext) -> list[LeadEvent]:
    """Return one ``LeadEvent`` per ``Notification`` of an Outbound Message.

    Raises ``PayloadError`` (400) for unsafe or unexpected XML and ``SignatureError`` (401) when
    ``OrganizationId`` is not ``SALESFORCE_ORG_ID``.
    """
    root = _load_soap(request.body)
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise PayloadError("not a SOAP 1.1 envelope")
    body = _child(root, SOAP_ENV, "Body")
    notifications = _child(body, OUTBOUND_NS, "notifications") if body is not None else None
    if notifications is None:
        raise PayloadError("no outbound-message notifications element")
    received_org = _text(_child(notifications, OUTBOUND_NS, "OrganizationId"))
    org_id = check_organization(_organization_id(received_org, "OrganizationId"), context.config)
    action_id = _text(_child(notifications, OUTBOUND_NS, "ActionId"))
    items = notifications.findall(f"{{{OUTBOUND_NS}}}Notification")
    if not items:
        raise PayloadError("no Notification in the outbound message")
    if len(items) > MAX_NOTIFICATIONS:
        raise PayloadError(f"{len(items)} notifications, more than {MAX_NOTIFICATIONS}")
    received = context.now
    return [_notification_event(item, i, org_id, action_id, received) for i, item in enumerate(items)]


def _notification_event(item: Element, index: int, org_id: str, action_id: str | None,
                        received: datetime) -> LeadEvent:
    notification_id = _text(_child(item, OUTBOUND_NS, "Id"))
    where = f"Notification {notification_id or f'#{index + 1}'}"
    if not notification_id:
        raise PayloadError(f"{where}: no notification Id")
    sobject = _child(item, OUTBOUND_NS, "sObject")
    sf_fields = _sobject_fields(sobject) if sobject is not None else {}
    record_id = sf_fields.get("Id")
    if not record_id:
        raise PayloadError(f"{where}: sObject has no Id")
    if not SALESFORCE_ID.match(record_id):
        raise PayloadError(f"{where}: sObject Id is not a Salesforce id")
    # xsi:type is a QName *value* ("sf:Lead"); its prefix is not resolvable in ElementTree, and
    # only the local name matters. The partner WSDL puts the type in a <type> element instead.
    xsi_type = sobject.get(f"{{{XSI_NS}}}type", "") if sobject is not None else ""
    sobject_type = sf_fields.pop("type", None) or xsi_type.rpartition(":")[2]
    occurred_at = received
    for stamp in ("LastModifiedDate", "SystemModstamp"):
        if sf_fields.get(stamp):
            occurred_at = parse_datetime(sf_fields[stamp], f"{where}.{stamp}")
            break
    properties = {"sobject_type": sobject_type, "action_id": action_id, "organization_id": org_id}
    raw = {"notification_id": notification_id, "sobject_type": sobject_type, "fields": sf_fields}
    if sobject_type in RECORD_SOBJECTS:
        return record_event(sobject_type, sf_fields, where, source="salesforce", event_key=notification_id,
                            occurred_at=occurred_at, properties=properties, raw=raw)
    is_lead = sobject_type in LEAD_SOBJECTS
    fields = map_fields(sf_fields, where) if is_lead else {}
    if sobject_type == "Lead":
        properties.update(conversion(sf_fields, where))
    return LeadEvent(
        source="salesforce",
        kind="record_snapshot" if is_lead else "ignored",
        event_key=notification_id,
        occurred_at=occurred_at,
        crm="salesforce",
        crm_id=id18(record_id),
        email=_email(fields),
        fields=fields,
        properties=properties,
        raw=raw,
    )


#: One Ack acknowledges every Notification of the message (outbound WSDL, notificationsResponse).
ACK_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
    b"</notificationsResponse></soapenv:Body></soapenv:Envelope>"
)
XML_HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def ok_response(result: IntakeResult) -> tuple[bytes, int, dict[str, str]]:
    """Return the SOAP Ack (200). Salesforce redelivers anything not acked."""
    return ACK_BODY, 200, dict(XML_HEADERS)


def error_response(status: int, reason: str) -> tuple[bytes, int, dict[str, str]]:
    """Return a SOAP 1.1 Fault: ``soapenv:Client`` for 4xx, ``soapenv:Server`` for 5xx."""
    code = "soapenv:Client" if 400 <= status < 500 else "soapenv:Server"
    text = escape(_XML_INVALID.sub("", reason))
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>{code}</faultcode><faultstring>{text}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return body.encode("utf-8"), status, dict(XML_HEADERS)


# --- Flow HTTP callouts (JSON) -----------------------------------------------------------------

def _require(obj: Mapping[str, Any], key: str, kind: type, where: str, required: bool = True) -> Any:
    """Read ``obj[key]`` checking its JSON type; ``PayloadError`` names the path."""
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, kind):
        raise PayloadError(f"{where}.{key}: missing or wrong type")
    return value


def parse_flow_callout(request: InboundRequest, context: IntakeContext) -> list[LeadEvent]:
    """Return the events of a Flow HTTP callout body (shape in docs/salesforce.md).

    Raises ``PayloadError`` (400) naming the bad path and ``SignatureError`` (401) when
    ``organizationId`` is not ``SALESFORCE_ORG_ID``.
    """
    try:
        payload = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError("body must be a JSON object")
    org_id = check_organization(_organization_id(_require(payload, "organizationId", str, "$"),
                                                 "$.organizationId"), context.config)
    events = _require(payload, "events", list, "$")
    if len(events) > MAX_FLOW_EVENTS:
        raise PayloadError(f"$.events: {len(events)} events, more than {MAX_FLOW_EVENTS}")
    known_kinds = context.activity_kinds
    return [_flow_event(event, f"$.events[{i}]", org_id, known_kinds) for i, event in enumerate(events)]


def _flow_event(event: Any, where: str, org_id: str, known_kinds: Any) -> LeadEvent:
    if not isinstance(event, dict):
        raise PayloadError(f"{where}: must be an object")
    event_id = _require(event, "id", str, where)
    kind = _require(event, "type", str, where)
    record_id = _require(event, "recordId", str, where)
    sobject_type = _require(event, "sobjectType", str, where)
    sf_fields = _require(event, "fields", dict, where, required=False) or {}
    properties = _require(event, "properties", dict, where, required=False) or {}
    if not event_id.strip() or len(event_id) > MAX_FLOW_ID:
        raise PayloadError(f"{where}.id: must be 1-{MAX_FLOW_ID} characters")
    if kind != "record_snapshot" and kind not in (known_kinds or ACTIVITY_KINDS):
        raise PayloadError(f"{where}.type: unknown event type {kind!r}")
    if not SALESFORCE_ID.match(record_id):
        raise PayloadError(f"{where}.recordId: not a Salesforce id")
    for name, value in sf_fields.items():
        if value is not None and not isinstance(value, str | int | float | bool):
            raise PayloadError(f"{where}.fields.{name}: must be a string, number, boolean or null")
    occurred_at = parse_datetime(event.get("occurredAt"), f"{where}.occurredAt")
    if kind == "record_snapshot" and sobject_type in RECORD_SOBJECTS:
        return record_event(sobject_type, {**sf_fields, "Id": record_id}, f"{where}.fields", source="salesforce",
                            event_key=f"flow:{event_id}", occurred_at=occurred_at, raw=event,
                            properties={**properties, "sobject_type": sobject_type, "organization_id": org_id})
    is_lead = sobject_type in LEAD_SOBJECTS
    fields = map_fields(sf_fields, f"{where}.fields") if is_lead else {}
    if sobject_type == "Lead" and kind == "record_snapshot":
        properties = {**properties, **conversion(sf_fields, f"{where}.fields")}
    return LeadEvent(
        source="salesforce",
        kind=kind if is_lead else "ignored",
        # Prefixed so a Flow's ids can never collide with Outbound Message notification ids.
        event_key=f"flow:{event_id}",
        occurred_at=occurred_at,
        crm="salesforce",
        crm_id=id18(record_id),
        email=_email(fields),
        fields=fields,
        properties={**properties, "sobject_type": sobject_type, "organization_id": org_id},
        raw=event,
    )

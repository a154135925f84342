"""``GET /openapi.json``: the OpenAPI 3 description of leadloop's own HTTP endpoints.

Generated with apispec's ``MarshmallowPlugin`` from the marshmallow schemas: the generic
intake's ``EventSchema`` and the descriptive schemas of ``integration.web.openapi_schemas``.
The document describes *this* instance: the webhook paths come from the receiver's endpoint
table (a connector's endpoint without a description here still gets a generic entry), the event
types are the built-in kinds plus those the rules file declares, ``crm`` the registered
connectors. It holds no secret (no token or key; the examples are the documentation's samples), so
reading it needs no authentication.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, current_app, jsonify

from connectors import registry
from connectors.base import Endpoint
from connectors.hubspot.webhook import DEFAULT_API_KEY_HEADER
from connectors.salesforce.webhook import ACK_BODY
from integration.services import Services
from integration.web import intake, openapi_schemas, receiver
from integration.web.openapi_schemas import HUBSPOT_BATCH, STORABLE_YEAR_PATTERN

OPENAPI_VERSION = "3.0.3"
#: The Prometheus text exposition format, what ``GET /metrics`` answers.
PROMETHEUS_TEXT = "text/plain; version=0.0.4"
SOAP_EXAMPLE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
    '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
    "<OrganizationId>00Do0000000e0vQEAQ</OrganizationId><ActionId>04k1N0000008pXOQAY</ActionId>"
    "<Notification><Id>04l1N00000H0d8xQAB</Id>"
    '<sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
    "<sf:Id>00Q1N00000bS2eOUAS</sf:Id><sf:Email>max@example.com</sf:Email>"
    "<sf:LastModifiedDate>2026-01-15T09:30:12.000Z</sf:LastModifiedDate></sObject></Notification>"
    "</notifications></soapenv:Body></soapenv:Envelope>"
)
SOAP_FAULT_EXAMPLE = (
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/'
    'envelope/"><soapenv:Body><soapenv:Fault><faultcode>soapenv:Client</faultcode>'
    "<faultstring>token does not match</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
)
_RULE_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _security_schemes(api_key_header: str) -> dict[str, dict[str, Any]]:
    return {
        "leadloopSignature": {
            "type": "apiKey", "in": "header", "name": intake.SIGNATURE_HEADER,
            "description": "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\">` with a secret of "
                           "`LEADLOOP_EVENTS_SECRETS` (several v1 allowed); t within 300 s of our clock."},
        "hubspotSignatureV3": {
            "type": "apiKey", "in": "header", "name": "X-HubSpot-Signature-v3",
            "description": "base64 HMAC-SHA256, keyed with the app's client secret (`HUBSPOT_CLIENT_SECRETS`), of "
                           "method + `PUBLIC_BASE_URL` + path + raw body + `X-HubSpot-Request-Timestamp` "
                           "(epoch ms, within 5 minutes)."},
        "hubspotSignatureLegacy": {
            "type": "apiKey", "in": "header", "name": "X-HubSpot-Signature",
            "description": "only without a v3 header: hex SHA-256 of client secret + body (v1; the Webhooks API) "
                           "or + method + URL + body (v2; workflows), as `X-HubSpot-Signature-Version` says."},
        "hubspotWorkflowApiKey": {
            "type": "apiKey", "in": "header", "name": api_key_header,
            "description": "a key of `HUBSPOT_WORKFLOW_API_KEYS`, for workflow webhooks."},
    }


def _json(schema: Any, example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _answer(description: str, schema: Any = "Error", **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": _json(schema), **extra}


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "required": True,
                               "schema": {"type": "integer", "minimum": 0}}}
#: The status policy of every JSON webhook endpoint (``integration.web.receiver``).
JSON_ANSWERS: dict[str, dict[str, Any]] = {
    "Stored": _answer("stored and committed, and only then", "IntakeResult"),
    "Invalid": _answer("not the documented shape: every mistake found, by position; nothing stored"),
    "Unauthenticated": _answer("missing, malformed, stale or wrong signature (or token); checked over the "
                               "raw bytes before anything is parsed"),
    "TooLarge": _answer("body larger than the endpoint takes"),
    "Unavailable": _answer("the store is unreachable: retry later", headers=RETRY_AFTER),
}
NO_ENDPOINT = _answer("the path names no endpoint (an empty token, or one with a `/`)")


def _soap(description: str, example: str | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"type": "string"}}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {"text/xml": media}}


def _hubspot_headers(versions: list[str]) -> list[dict[str, Any]]:
    """The header parameters that go with HubSpot's signatures (the signatures are security schemes)."""
    return [{"in": "header", "name": "X-HubSpot-Request-Timestamp", "required": False,
             "description": "epoch milliseconds; required with `X-HubSpot-Signature-v3`",
             "schema": {"type": "string", "pattern": r"^[0-9]{1,15}$"}},
            {"in": "header", "name": "X-HubSpot-Signature-Version", "required": False,
             "description": f"{' or '.join(f'`{v}`' for v in versions)}, with `X-HubSpot-Signature`",
             "schema": {"type": "string", "enum": versions}}]


def _token_parameter() -> dict[str, Any]:
    return {"in": "path", "name": "token", "required": True,
            "description": "the secret path token: one of `SALESFORCE_WEBHOOK_TOKENS` (else 401). Salesforce "
                           "signs nothing, so this token, and the org id inside the body, authenticate the "
                           "request",
            "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                       "pattern": r"^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$"}}


def _json_webhook(summary: str, description: str, body: Any, security: list[dict[str, list[str]]],
                  example: Any = None, parameters: list[dict[str, Any]] | None = None,
                  not_found: bool = False) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": "Stored", "400": "Invalid", "401": "Unauthenticated", "413": "TooLarge",
                                 "503": "Unavailable"}
    if not_found:
        responses["404"] = NO_ENDPOINT
    return {"summary": summary, "description": description, "security": security,
            "parameters": parameters or [],
            "requestBody": {"required": True, "content": _json(body, example)}, "responses": responses}


def _events_operation(endpoint: Endpoint) -> dict[str, Any]:
    example = [{"id": "evt_7f3a", "type": "content_download", "occurred_at": "2026-11-20T10:04:00+01:00",
                "email": "ada@acme-logistics.com", "crm": "hubspot", "crm_id": "5101",
                "properties": {"asset": "coverage-map", "url": "https://example.com/coverage"}}]
    return _json_webhook(
        "Your website's and product's activity",
        f"A JSON array of at most {intake.MAX_EVENTS} events, signed like Stripe's webhooks; body at most "
        f"{endpoint.max_body} bytes. A batch is stored whole or not at all.",
        {"type": "array", "maxItems": intake.MAX_EVENTS, "items": "Event"}, [{"leadloopSignature": []}], example)


def _hubspot_operation(endpoint: Endpoint) -> dict[str, Any]:
    example = [{"eventId": 3029365700, "subscriptionId": 686628, "portalId": 891472211, "appId": 7906213,
                "occurredAt": 1715203105000, "subscriptionType": "contact.propertyChange", "attemptNumber": 0,
                "objectId": 847297356, "propertyName": "jobtitle", "propertyValue": "Head of Operations",
                "changeSource": "CRM_UI"}]
    return _json_webhook(
        "HubSpot Webhooks API (app subscriptions)",
        "A batch of notifications, signed with the app's client secret (v3; older requests v1); body at most "
        f"{endpoint.max_body} bytes.",
        HUBSPOT_BATCH, [{"hubspotSignatureV3": []}, {"hubspotSignatureLegacy": []}], example,
        _hubspot_headers(["v1", "v2"]))


def _workflow_operation(endpoint: Endpoint) -> dict[str, Any]:
    example = {"objectId": 138017612137, "properties": {"email": "jane.doe@example.com", "jobtitle": "CTO",
                                                        "lastmodifieddate": "2025-07-15T21:12:00.733Z"}}
    return _json_webhook(
        "HubSpot workflow \"Send a webhook\" action",
        "One JSON object: the enrolled contact, or an activity. Authenticated by the API-key header or a "
        f"v2/v3 signature; body at most {endpoint.max_body} bytes.",
        "HubSpotWorkflowBody",
        [{"hubspotWorkflowApiKey": []}, {"hubspotSignatureV3": []}, {"hubspotSignatureLegacy": []}], example,
        _hubspot_headers(["v2"]))


def _salesforce_operation(endpoint: Endpoint) -> dict[str, Any]:
    faults = "SOAP 1.1 Fault (`soapenv:Client`)"
    return {
        "summary": "Salesforce Outbound Message (SOAP)",
        "description": "A SOAP 1.1 envelope of up to 100 notifications; its `OrganizationId` must be "
                       "`SALESFORCE_ORG_ID` (else 401). Answered with a SOAP Ack when stored, a SOAP Fault "
                       "otherwise. XML is parsed without DTDs, entities or external references.",
        "parameters": [_token_parameter()], "security": [],
        "requestBody": {"required": True, "content": {"text/xml": {"schema": {"type": "string"},
                                                                   "example": SOAP_EXAMPLE}}},
        "responses": {
            "200": _soap("stored: the Ack (of every notification of the message)", ACK_BODY.decode()),
            "400": _soap(f"unreadable XML, a forbidden construct, too many notifications, no record id: {faults}"),
            "401": _soap(f"wrong token or foreign org: {faults}", SOAP_FAULT_EXAMPLE),
            "404": NO_ENDPOINT,
            "413": _soap(f"body larger than {endpoint.max_body} bytes: {faults}"),
            "503": _soap("the store is unreachable: SOAP Fault (`soapenv:Server`); Salesforce retries"),
        },
    }


def _flow_operation(endpoint: Endpoint) -> dict[str, Any]:
    example = {"organizationId": "00Do0000000e0vQEAQ", "events": [{
        "id": "00Q1N00000bS2ZoUAK-2026-01-15T09:30:12.000Z", "type": "record_snapshot",
        "occurredAt": "2026-01-15T09:30:12.000Z", "recordId": "00Q1N00000bS2ZoUAK", "sobjectType": "Lead",
        "fields": {"Email": "max@example.com", "NumberOfEmployees": 250}}]}
    return _json_webhook(
        "Salesforce Flow HTTP callout (JSON)",
        "Record snapshots and activities from a Flow; `organizationId` must be `SALESFORCE_ORG_ID` (else 401); "
        f"body at most {endpoint.max_body} bytes.",
        "SalesforceFlowCallout", [], example, [_token_parameter()], not_found=True)


def _generic_operation(endpoint: Endpoint) -> dict[str, Any]:
    """A connector's endpoint described nowhere else: the receiver's status policy; its bodies are
    the receiver's JSON unless the endpoint answers in its own format."""
    own_format = endpoint.ok_response is not None or endpoint.error_response is not None
    responses: dict[str, Any] = {
        code: {"description": JSON_ANSWERS[name]["description"]} if own_format else name
        for code, name in (("200", "Stored"), ("400", "Invalid"), ("401", "Unauthenticated"), ("413", "TooLarge"),
                           ("503", "Unavailable"))}
    names = _RULE_VARIABLE.findall(endpoint.rule)
    if names:
        responses["404"] = NO_ENDPOINT
    return {"summary": f"The {endpoint.name} webhook",
            "description": f"A connector's endpoint; its payload is the CRM's. Body at most {endpoint.max_body} bytes.",
            "parameters": [{"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
                           for name in names],
            "requestBody": {"required": True, "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": responses}


#: Endpoint name (``connectors.base.Endpoint.name``) -> its operation.
WEBHOOK_OPERATIONS: dict[str, Callable[[Endpoint], dict[str, Any]]] = {
    "events": _events_operation,
    "hubspot": _hubspot_operation,
    "hubspot_workflow": _workflow_operation,
    "salesforce": _salesforce_operation,
    "salesforce_flow": _flow_operation,
}

SERVICE_OPERATIONS: dict[str, dict[str, Any]] = {
    "/healthz": {"get": {"summary": "The process answers", "security": [], "responses": {
        "200": {"description": "alive", "content": _json("Health")}}}},
    "/readyz": {"get": {"summary": "The service can do its job: database, Redis and rules", "security": [],
                        "responses": {
                            "200": {"description": "ready", "content": _json("Readiness")},
                            "503": {"description": "not ready: the failing part says why",
                                    "content": _json("Readiness")}}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {
        "200": {"description": "the Prometheus text exposition format",
                "content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}}}}}},
    "/openapi.json": {"get": {"summary": "This document", "description": "Needs no authentication: it holds no "
                                                                         "secret.", "security": [], "responses": {
        "200": {"description": "OpenAPI 3 document", "content": _json({"type": "object"})}}}},
}


def openapi_path(endpoint: Endpoint) -> str:
    """Return the OpenAPI path of a receiver endpoint: ``/salesforce/<token>`` -> ``/webhooks/salesforce/{token}``."""
    return "/webhooks" + _RULE_VARIABLE.sub(r"{\1}", endpoint.rule)


def _package_version() -> str:
    try:
        return version("leadloop")
    except PackageNotFoundError:
        return "0"


def openapi_document(svc: Services) -> dict[str, Any]:
    """Return the OpenAPI document (a JSON-able dict) for the app running on ``svc``."""
    spec = APISpec(
        title="leadloop", version=_package_version(), openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={"description": "Lead scoring and hand-off between marketing and sales: the webhooks leadloop "
                             "receives and its health endpoints. Every webhook answers 2xx only after its "
                             f"events are committed. Rules version {svc.rules.version}. Reading this document "
                             "needs no authentication."},
        servers=[{"url": svc.config["PUBLIC_BASE_URL"]}] if svc.config.get("PUBLIC_BASE_URL") else [],
    )
    header = svc.config.get("HUBSPOT_WORKFLOW_API_KEY_HEADER") or DEFAULT_API_KEY_HEADER
    for name, scheme in _security_schemes(header).items():
        spec.components.security_scheme(name, scheme)
    spec.components.schema("Event", schema=intake.EventSchema)
    for name in ("IntakeResult", "Error", "Health", "Readiness", "HubSpotPropertyChange", "HubSpotMerge",
                 "HubSpotOtherEvent", "HubSpotWorkflowBody", "SalesforceFlowCallout"):
        spec.components.schema(name, schema=getattr(openapi_schemas, f"{name}Schema"))
    for name, answer in JSON_ANSWERS.items():
        spec.components.response(name, answer)
    for endpoint in receiver.endpoints():
        build = WEBHOOK_OPERATIONS.get(endpoint.name)
        operation = (build or _generic_operation)(endpoint)
        spec.path(path=openapi_path(endpoint), operations={"post": {"operationId": endpoint.name, **operation}})
    for path, operations in SERVICE_OPERATIONS.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    kinds = sorted(svc.rules.activity_kinds)
    schemas = document["components"]["schemas"]
    schemas["Event"]["properties"]["type"]["enum"] = kinds
    schemas["Event"]["properties"]["occurred_at"]["pattern"] = STORABLE_YEAR_PATTERN
    schemas["Event"]["properties"]["crm"]["enum"] = [*sorted(registry()), None]
    schemas["SalesforceFlowEvent"]["properties"]["type"]["enum"] = ["record_snapshot", *kinds]
    return document


def init_app(app: Flask) -> None:
    @app.get("/openapi.json")
    def openapi_json() -> Any:
        svc: Services = current_app.extensions["leadloop"]
        cached = current_app.extensions.get("leadloop_openapi")
        if cached is None or cached[0] != svc.rules.version:
            cached = current_app.extensions["leadloop_openapi"] = (svc.rules.version, openapi_document(svc))
        return jsonify(cached[1])

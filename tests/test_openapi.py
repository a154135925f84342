"""``GET /openapi.json``: a valid OpenAPI 3 document of every endpoint, readable without
authentication, holding no secret, whose examples the endpoints accept.

The document's promises on generated input (no 5xx, documented statuses, bodies and headers) are
checked by the API fuzzer against a live server (``scripts/fuzz_api.py``, run by run-tests.sh).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from openapi_spec_validator import validate

import connectors
from connectors.base import Endpoint
from connectors.hubspot.webhook import hubspot_signature_v3
from integration.store.validation import EARLIEST, LATEST
from integration.web import receiver
from integration.web.intake import sign
from integration.web.openapi import _generic_operation, openapi_path
from integration.web.openapi_schemas import STORABLE_YEAR_PATTERN
from tests.conftest import EVENTS_SECRET, running_app

WORKFLOW_KEY = "workflow-key-0123456789"
SF_TOKEN = "sf-path-token-0123456789abcdef"
PATHS = {"/webhooks/events", "/webhooks/hubspot", "/webhooks/hubspot/workflow", "/webhooks/salesforce/{token}",
         "/webhooks/salesforce/{token}/flow", "/healthz", "/readyz", "/metrics", "/openapi.json"}


@pytest.fixture
def app(config):
    with running_app(config, HUBSPOT_WORKFLOW_API_KEYS=WORKFLOW_KEY) as app:
        yield app


@pytest.fixture
def document(client) -> dict[str, Any]:
    response = client.get("/openapi.json")  # no credentials: the document needs none
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_it_is_a_valid_openapi_3_document(document):
    validate(document)
    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": "https://leads.example.com"}]


def test_it_has_one_path_per_endpoint_with_its_answers(document):
    assert set(document["paths"]) == PATHS
    for endpoint in receiver.endpoints():
        operation = document["paths"][openapi_path(endpoint)]["post"]
        assert operation["operationId"] == endpoint.name
        assert {"200", "400", "401", "413", "503"} <= set(operation["responses"])
    assert document["components"]["responses"]["Unavailable"]["headers"]["Retry-After"]["required"]
    assert set(document["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}
    assert "text/plain; version=0.0.4" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_each_webhook_names_its_authentication(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["leadloopSignature"]["name"] == "X-Leadloop-Signature"
    assert schemes["hubspotSignatureV3"]["name"] == "X-HubSpot-Signature-v3"
    assert schemes["hubspotWorkflowApiKey"]["name"] == "X-Leadloop-Api-Key"
    paths = document["paths"]
    assert paths["/webhooks/events"]["post"]["security"] == [{"leadloopSignature": []}]
    assert {"hubspotSignatureV3": []} in paths["/webhooks/hubspot"]["post"]["security"]
    token = paths["/webhooks/salesforce/{token}"]["post"]["parameters"][0]
    assert token["in"] == "path" and "SALESFORCE_WEBHOOK_TOKENS" in token["description"]
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert paths[path]["get"]["security"] == []


def test_bodies_come_from_the_marshmallow_schemas_and_this_instance(document, svc):
    schemas = document["components"]["schemas"]
    event = schemas["Event"]
    assert event["required"] == ["id", "occurred_at", "type"]
    assert event["properties"]["id"]["maxLength"] == 200
    assert event["properties"]["type"]["enum"] == sorted(svc.rules.activity_kinds)
    assert event["properties"]["crm"]["enum"] == ["hubspot", "salesforce", None]
    assert schemas["SalesforceFlowEvent"]["properties"]["type"]["enum"][0] == "record_snapshot"
    assert schemas["SalesforceFlowEvent"]["properties"]["id"]["maxLength"] == 195  # stored as flow:<id>
    assert schemas["IntakeResult"]["required"] == ["accepted", "duplicates", "ignored"]


def test_it_holds_no_secret(client, config):
    text = client.get("/openapi.json").get_data(as_text=True)
    secrets = [*config["LEADLOOP_EVENTS_SECRETS"].split(","), *config["HUBSPOT_CLIENT_SECRETS"].split(","),
               config["SALESFORCE_WEBHOOK_TOKENS"], WORKFLOW_KEY]
    assert not [secret for secret in secrets if secret in text]


def test_the_year_pattern_is_looser_than_the_store_by_one_year():
    years = re.compile(STORABLE_YEAR_PATTERN)
    assert (EARLIEST.year, LATEST.year) == (1970, 2200)
    assert all(years.match(f"{year}-01-01T00:00:00Z") for year in range(EARLIEST.year - 1, LATEST.year + 1))
    assert not years.match(f"{EARLIEST.year - 2}-12-31T23:59:59-14:00")
    assert not years.match(f"{LATEST.year + 1}-01-01T00:00:00+14:00")


def _send_example(client: Any, path: str, media_type: str, example: Any) -> Any:
    url = path.replace("{token}", SF_TOKEN)
    body = example.encode() if isinstance(example, str) else json.dumps(example).encode()
    headers = {"Content-Type": media_type}
    if path == "/webhooks/events":
        headers["X-Leadloop-Signature"] = sign(body, EVENTS_SECRET, int(time.time()))
    elif path == "/webhooks/hubspot":
        stamp = str(int(time.time() * 1000))
        headers["X-HubSpot-Request-Timestamp"] = stamp
        headers["X-HubSpot-Signature-v3"] = hubspot_signature_v3(
            "hs-client-secret-new", "POST", "https://leads.example.com" + url, body, stamp)
    elif path == "/webhooks/hubspot/workflow":
        headers["X-Leadloop-Api-Key"] = WORKFLOW_KEY
    return client.post(url, data=body, headers=headers)


def test_the_documented_examples_are_accepted(client, document):
    sent = []
    for path, operations in document["paths"].items():
        for media_type, content in operations.get("post", {}).get("requestBody", {}).get("content", {}).items():
            response = _send_example(client, path, media_type, content["example"])
            assert response.status_code == 200, (path, response.get_data(as_text=True))
            sent.append(path)
    assert len(sent) == 5


def test_an_undeclared_method_is_405_with_the_allowed_ones(client):
    response = client.delete("/webhooks/events")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert response.mimetype == "application/json" and response.get_json()["error"]


def test_a_connector_without_a_description_here_still_gets_its_path(config, monkeypatch):
    monkeypatch.setattr(connectors, "CONNECTOR_MODULES", (*connectors.CONNECTOR_MODULES, "tests.test_extra_connector"))
    with running_app(config) as app:
        document = app.test_client().get("/openapi.json").get_json()
    validate(document)
    operation = document["paths"]["/webhooks/acmecrm"]["post"]
    assert set(operation["responses"]) == {"200", "400", "401", "413", "503"}
    assert "acmecrm" in document["components"]["schemas"]["Event"]["properties"]["crm"]["enum"]


def test_a_generic_entry_claims_no_json_body_for_an_endpoint_answering_in_its_own_format():
    endpoint = Endpoint(rule="/acme/<key>", name="acme", verify=lambda r, c: None, parse=lambda r, c: [],
                        ok_response=lambda result: (b"ok", 200, {}))
    operation = _generic_operation(endpoint)
    assert operation["parameters"][0]["name"] == "key"
    assert set(operation["responses"]) == {"200", "400", "401", "404", "413", "503"}
    assert "content" not in operation["responses"]["200"]

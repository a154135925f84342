"""The schema check that guards every HubSpot request body (``tests/hubspot_openapi.py``).

The client and setup tests run it on every request they capture; these tests show it catches
what it must: the batch read without ``propertiesWithHistory`` (the bug this check was added for),
a wrong type, a field HubSpot does not define, an operation with no published schema.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.base import LEADLOOP_FIELDS, TaskSpec
from connectors.hubspot.fields import PROPERTY_FIELDS
from connectors.hubspot.paths import PATHS, api_path
from connectors.hubspot.setup import property_definition
from connectors.hubspot.tasks import task_body, task_key_property_definition
from tests.hubspot_openapi import body_errors, schemas_for

API = "https://api.hubapi.com"
READ = API + PATHS["contacts.batch_read"]


def test_the_batch_read_we_send_is_valid_and_the_old_one_was_not():
    body = {"properties": list(PROPERTY_FIELDS), "inputs": [{"id": "1"}]}
    assert any("'propertiesWithHistory' is a required property" in e for e in body_errors("POST", READ, body))
    assert body_errors("POST", READ, {**body, "propertiesWithHistory": []}) == []


@pytest.mark.parametrize(("body", "message"), [
    ({"inputs": [{"id": 1}], "properties": [], "propertiesWithHistory": []}, "inputs/0/id: 1 is not of type 'string'"),
    ({"inputs": [], "properties": [], "propertiesWithHistory": [], "idProperty": 5}, "idProperty: 5 is not of type"),
    ({"inputs": [], "properties": [], "propertiesWithHistory": [], "propertiesWithHistroy": []},
     "Additional properties are not allowed ('propertiesWithHistroy' was unexpected)"),
])
def test_wrong_types_and_undefined_fields_are_named(body, message):
    errors = body_errors("POST", READ, body)
    assert any(message in e for e in errors), errors
    # Both the dated document and the numbered one are consulted.
    assert {e.split("[")[1].split("]")[0] for e in errors} == {"2026-03/contacts.json", "v3/contacts.json"}


def test_update_values_must_be_strings():
    url = API + PATHS["contacts.batch_update"]
    assert body_errors("POST", url, {"inputs": [{"id": "1", "properties": {"leadloop_score": "87"}}]}) == []
    errors = body_errors("POST", url, {"inputs": [{"id": "1", "properties": {"leadloop_score": 87}}]})
    assert any("inputs/0/properties/leadloop_score: 87 is not of type 'string'" in e for e in errors)


@pytest.mark.parametrize("key", list(LEADLOOP_FIELDS))
def test_every_property_definition_setup_creates_is_valid(key):
    url = API + PATHS["properties.contacts"]
    assert body_errors("POST", url, property_definition(key, 0)) == []


def test_the_task_key_property_and_a_keyed_task_are_valid():
    assert body_errors("POST", API + PATHS["properties.tasks"], task_key_property_definition()) == []
    task = TaskSpec(key="task:hubspot:101:1:0d9f3c2b1a4e5f60", crm_id="101", subject="Call", body="b",
                    due_at=datetime(2026, 12, 1, 9, tzinfo=UTC), priority="high", type="call")
    assert body_errors("POST", API + PATHS["tasks.create"], task_body(task)) == []


def test_every_operation_in_the_path_table_with_a_body_has_a_schema():
    # Operations we send bodies to, in both versions; reads without a body need none.
    for name, params in [("contacts.batch_read", {}), ("contacts.batch_update", {}), ("contacts.batch_upsert", {}),
                         ("tasks.create", {}), ("properties.contacts", {}), ("property_groups.contacts", {}),
                         ("properties.tasks", {}), ("property_groups.tasks", {}),
                         ("deals.batch_read", {}), ("webhooks.subscriptions", {"app_id": 1}),
                         ("associations.batch_read", {"from_type": "deals", "to_type": "contacts"})]:
        assert len(schemas_for("POST", api_path(name, **params))) == 2, name


def test_an_operation_without_a_published_schema_is_refused():
    with pytest.raises(AssertionError, match="no request schema"):
        body_errors("POST", API + "/crm/objects/2026-03/contacts/batch/archive", {"inputs": []})


def test_the_unpublished_token_info_call_is_let_through():
    assert body_errors("POST", API + PATHS["token_info"], {"tokenKey": "x"}) == []

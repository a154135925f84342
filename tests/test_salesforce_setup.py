"""``leadloop setup salesforce`` / ``doctor``: idempotent field creation, no secrets printed."""

from __future__ import annotations

import json

import pytest
import responses

from connectors.base import LEADLOOP_FIELDS
from connectors.salesforce.client import LEADLOOP_FIELD_NAMES
from connectors.salesforce.setup import field_metadata, run_doctor, run_setup

LOGIN = "https://login.salesforce.com/services/oauth2/token"
INSTANCE = "https://acme.my.salesforce.com"
API = f"{INSTANCE}/services/data/v62.0"
WEBHOOK_TOKEN = "f3a9c1d2e4b5a6978812ab34cd56ef78"
CONFIG = {
    "SALESFORCE_CLIENT_ID": "3MVG9consumerkey",
    "SALESFORCE_CLIENT_SECRET": "client-secret-value",
    "SALESFORCE_REFRESH_TOKEN": "5Aep861refresh-token-value",
    "SALESFORCE_WEBHOOK_TOKENS": f"{WEBHOOK_TOKEN},second-token-value-0000",
    "SALESFORCE_ORG_ID": "00Do0000000e0vQEAQ",
    "PUBLIC_BASE_URL": "https://leadloop.acme.example/",
}
ALL_FIELDS = [f"{o}.{n}" for o in ("Lead", "Contact") for n in LEADLOOP_FIELD_NAMES.values()]
KEY_FIELDS = ["Lead.Leadloop_Key__c", "Task.Leadloop_Key__c"]
SECRETS = (WEBHOOK_TOKEN, "second-token-value-0000", "client-secret-value", "5Aep861refresh-token-value",
           "00Dxx!access-token")
#: The Tooling API defines activity custom fields on Activity; Task's describe shows them.
TOOLING_OBJECTS = {"Activity": "Task"}


class FakeOrg:
    """Describe answers from a set of existing custom fields; Tooling creates add to it."""

    def __init__(self, rsps, existing=(), updateable=True, key_attributes=None):
        self.fields: dict[str, dict[str, dict]] = {"Lead": {}, "Contact": {}, "Task": {}}
        for full_name in existing:
            sobject, name = full_name.split(".")
            self.fields[sobject][name] = dict(key_attributes or {"externalId": True, "unique": True}) \
                if name == "Leadloop_Key__c" else {}
        self.updateable = updateable
        rsps.post(LOGIN, json={"access_token": "00Dxx!access-token", "instance_url": INSTANCE})
        for sobject in self.fields:
            rsps.add_callback(responses.GET, f"{API}/sobjects/{sobject}/describe",
                              callback=self.describe(sobject))
        rsps.add_callback(responses.POST, f"{API}/tooling/sobjects/CustomField", callback=self.create)

    def describe(self, sobject):
        def answer(request):
            names = {"Id": {}, "Email": {}, **self.fields[sobject]}
            fields = [{"name": n, "updateable": self.updateable and n != "Id", "externalId": False, "unique": False,
                       **attributes} for n, attributes in sorted(names.items())]
            return 200, {}, json.dumps({"name": sobject, "fields": fields})
        return answer

    def create(self, request):
        body = json.loads(request.body)
        tooling_object, name = body["FullName"].split(".")
        metadata = body["Metadata"]
        self.fields[TOOLING_OBJECTS.get(tooling_object, tooling_object)][name] = {
            k: metadata[k] for k in ("externalId", "unique") if k in metadata}
        return 201, {}, json.dumps({"id": "00N1N00000XyZ", "success": True, "errors": []})


def run(fn, *args):
    lines: list[str] = []
    code = fn(*args, lines.append)
    return code, "\n".join(lines)


def posts(rsps):
    return [c for c in rsps.calls if c.request.method == "POST" and c.request.url != LOGIN]


@responses.activate
def test_dry_run_changes_nothing():
    FakeOrg(responses, existing=["Lead.Leadloop_Score__c"])
    code, out = run(run_setup, CONFIG, None, True)
    assert code == 1  # fields are still missing
    assert not posts(responses)
    assert "Lead.Leadloop_Score__c: exists" in out
    assert "Contact.Leadloop_Score__c: missing, would be created" in out


@responses.activate
def test_setup_creates_missing_fields_then_rerun_changes_nothing():
    org = FakeOrg(responses, existing=["Lead.Leadloop_Score__c", "Lead.Leadloop_Band__c"])
    code, out = run(run_setup, CONFIG, None, False)
    assert code == 0, out
    created = [json.loads(c.request.body)["FullName"] for c in posts(responses)]
    assert len(created) == 2 * len(LEADLOOP_FIELD_NAMES) - 2 + 2
    assert "Lead.Leadloop_Score__c" not in created and "Contact.Leadloop_Score__c" in created
    assert set(org.fields["Contact"]) == set(LEADLOOP_FIELD_NAMES.values())
    assert set(org.fields["Lead"]) == set(LEADLOOP_FIELD_NAMES.values()) | {"Leadloop_Key__c"}
    # The key field: External ID and Unique on Lead and on activities (Task), so a retry finds its record.
    assert created[-2:] == ["Lead.Leadloop_Key__c", "Activity.Leadloop_Key__c"]
    key = json.loads(posts(responses)[-1].request.body)["Metadata"]
    assert {k: key[k] for k in ("type", "length", "externalId", "unique", "caseSensitive")} == \
        {"type": "Text", "length": 255, "externalId": True, "unique": True, "caseSensitive": True}
    assert org.fields["Task"] == {"Leadloop_Key__c": {"externalId": True, "unique": True}}

    before = len(posts(responses))
    code, out = run(run_setup, CONFIG, None, False)
    assert code == 0 and len(posts(responses)) == before
    assert ": created" not in out


@responses.activate
def test_setup_prints_masked_endpoint_and_no_secrets():
    FakeOrg(responses, existing=ALL_FIELDS + KEY_FIELDS)
    code, out = run(run_setup, CONFIG, None, True)
    assert code == 0
    assert "https://leadloop.acme.example/webhooks/salesforce/****ef78" in out
    assert "https://leadloop.acme.example/webhooks/salesforce/****ef78/flow" in out
    assert "LastModifiedDate" in out and "Leadloop Integration" in out
    for secret in SECRETS:
        assert secret not in out


@responses.activate
def test_setup_reports_missing_configuration_and_login_failure():
    responses.post(LOGIN, status=400,
                   json={"error": "invalid_grant", "error_description": "expired access/refresh token"})
    code, out = run(run_setup, {**CONFIG, "SALESFORCE_ORG_ID": None}, None, True)
    assert code == 1 and "expired access/refresh token" in out


def test_field_metadata_shapes():
    assert field_metadata("score") == {"label": "Leadloop score", "description": LEADLOOP_FIELDS["score"][2],
                                       "type": "Number", "precision": 18, "scale": 0}
    assert field_metadata("fit_points")["scale"] == 2
    assert field_metadata("mql")["type"] == "Checkbox" and field_metadata("mql")["defaultValue"] == "false"
    assert {k: field_metadata("reasons")[k] for k in ("type", "length", "visibleLines")} == \
        {"type": "LongTextArea", "length": 32768, "visibleLines": 5}
    text = field_metadata("rules_version")
    assert (text["type"], text["length"]) == ("Text", 255)
    assert field_metadata("scored_at")["type"] == "DateTime"
    band = field_metadata("band")
    assert band["type"] == "Picklist" and band["valueSet"]["restricted"] is True
    values = band["valueSet"]["valueSetDefinition"]["value"]
    assert [v["fullName"] for v in values] == ["cold", "cool", "warm", "hot"]
    for key in LEADLOOP_FIELDS:
        assert len(field_metadata(key)["label"]) <= 40  # Salesforce label limit


def doctor_org(rsps, org_id="00Do0000000e0vQEAQ", updateable=True, remaining=4982, key_attributes=None):
    FakeOrg(rsps, existing=ALL_FIELDS + KEY_FIELDS, updateable=updateable, key_attributes=key_attributes)
    rsps.get(f"{INSTANCE}/services/data/", json=[{"version": "61.0"}, {"version": "62.0"}])
    rsps.get(f"{API}/query", json={"done": True, "records": [{"Id": org_id}]})
    rsps.get(f"{API}/limits", json={"DailyApiRequests": {"Max": 5000, "Remaining": remaining}},
             headers={"Sforce-Limit-Info": "api-usage=18/5000"})


@responses.activate
def test_doctor_healthy():
    doctor_org(responses)
    code, out = run(run_doctor, CONFIG, None)
    assert code == 0, out
    assert "[ok] API version 62.0 available" in out
    assert "daily API requests: 4982 of 5000 remaining" in out and "18/5000" in out
    assert "[ok] Task.Leadloop_Key__c: External ID and Unique (creates happen once)" in out
    for secret in SECRETS:
        assert secret not in out


@responses.activate
def test_a_key_field_that_is_not_an_external_id_is_reported_not_changed():
    FakeOrg(responses, existing=ALL_FIELDS + KEY_FIELDS, key_attributes={"externalId": False, "unique": True})
    code, out = run(run_setup, CONFIG, None, False)
    assert code == 1
    assert "Lead.Leadloop_Key__c: exists, but it is not an External ID" in out
    assert not posts(responses)


@pytest.mark.parametrize(("kwargs", "config", "expect"), [
    ({"updateable": False}, {}, "Lead: missing or read-only"),
    ({"org_id": "00D000000000001AAA"}, {}, "organization id does not match"),
    ({"remaining": 0}, {}, "[FAIL] daily API requests: 0 of 5000"),
    ({}, {"SALESFORCE_API_VERSION": "99.0"}, "[FAIL] API version 99.0 not offered"),
    ({}, {"SALESFORCE_WEBHOOK_TOKENS": ""}, "[FAIL] SALESFORCE_WEBHOOK_TOKENS is not set"),
    ({"key_attributes": {"externalId": True, "unique": False}}, {},
     "[FAIL] Task.Leadloop_Key__c: it is not Unique (edit the field: Unique)"),
])
@responses.activate
def test_doctor_failures(kwargs, config, expect):
    doctor_org(responses, **kwargs)
    code, out = run(run_doctor, {**CONFIG, **config}, None)
    assert code == 1 and expect in out


@responses.activate
def test_doctor_login_failure():
    responses.post(LOGIN, status=400, json={"error": "invalid_grant", "error_description": "bad refresh"})
    code, out = run(run_doctor, CONFIG, None)
    assert code == 1 and "[FAIL] login" in out and "bad refresh" in out

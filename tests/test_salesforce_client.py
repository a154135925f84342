"""Salesforce REST client: collections batching, partial failures, limits, session refresh, SOQL, tasks, Leads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses

from connectors.base import CrmAuthError, CrmError, CrmRateLimited, RecordCreate, RecordUpdate, TaskSpec
from connectors.salesforce.client import SalesforceClient, make_client

FIXTURES = Path(__file__).parent / "fixtures" / "salesforce"
COMPOSITE = json.loads((FIXTURES / "composite_sobjects_update_errors.json").read_text())
ERRORS = json.loads((FIXTURES / "rest_errors.json").read_text())
LEAD_ANSWERS = json.loads((FIXTURES / "lead_upsert_responses.json").read_text())
TASK_SAMPLE = {k: v for k, v in json.loads((FIXTURES / "task_create_request.json").read_text()).items()
               if not k.startswith("_")}
LOGIN = "https://login.salesforce.com/services/oauth2/token"
INSTANCE = "https://acme.my.salesforce.com"
API = f"{INSTANCE}/services/data/v62.0"
CONFIG = {"SALESFORCE_CLIENT_ID": "3MVG9consumerkey", "SALESFORCE_REFRESH_TOKEN": "5Aep861refresh"}


@pytest.fixture
def client():
    return make_client(CONFIG, None)


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(LOGIN, json={"access_token": "00Dxx!one", "instance_url": INSTANCE})
        yield rsps


def api_calls(rsps, method: str | None = None) -> list:
    return [c for c in rsps.calls if c.request.url.startswith(API) and method in (None, c.request.method)]


def token_calls(rsps) -> list:
    return [c for c in rsps.calls if c.request.url == LOGIN]


def lead_id(n: int) -> str:
    return f"00Q1N0000{n:06d}AAA"


def update(n: int, **kw) -> RecordUpdate:
    crm_id = kw.pop("crm_id", lead_id(n))
    return RecordUpdate(key=f"k{n}", crm_id=crm_id, fields=kw.pop("fields", {"score": n}), **kw)


# --- update_records -----------------------------------------------------------------------------

def test_450_updates_go_out_as_200_200_50(client, mocked):
    def ok(request):
        records = json.loads(request.body)["records"]
        return 200, {}, json.dumps([{"id": r["id"], "success": True, "errors": []} for r in records])

    mocked.add_callback(responses.PATCH, f"{API}/composite/sobjects", callback=ok)
    outcomes = client.update_records([update(n) for n in range(450)])
    bodies = [json.loads(c.request.body) for c in api_calls(mocked, "PATCH")]
    assert [len(b["records"]) for b in bodies] == [200, 200, 50]
    assert all(b["allOrNone"] is False for b in bodies)
    assert bodies[2]["records"][0] == {"attributes": {"type": "Lead"}, "id": lead_id(400),
                                       "Leadloop_Score__c": 400}
    assert [o.key for o in outcomes] == [f"k{n}" for n in range(450)]
    assert all(o.ok for o in outcomes) and outcomes[7].external_id == lead_id(7)
    assert len(token_calls(mocked)) == 1


def test_record_body_maps_every_field(client, mocked):
    mocked.patch(f"{API}/composite/sobjects",
                 json=[{"id": "0031N00001AbCdEQAV", "success": True, "errors": []}])
    fields = {"score": 87, "fit_points": 40.5, "engagement_points": 46.5, "band": "hot", "grade": "A",
              "mql": True, "reasons": ["Asked for a demo", "Director at a 250-person firm"], "stage": "mql",
              "rules_version": "2026.01.3",
              "scored_at": datetime(2026, 1, 15, 10, 30, tzinfo=timezone(timedelta(hours=1))),
              "recycle_reason": None, "recycle_count": 0}
    client.update_records([RecordUpdate(key="k", crm_id="0031N00001AbCdEQAV", fields=fields,
                                        owner_id="005000000000001AAA", crm_fields={"LeadSource": "Web"})])
    [record] = json.loads(api_calls(mocked)[0].request.body)["records"]
    assert record == {
        "attributes": {"type": "Contact"}, "id": "0031N00001AbCdEQAV",
        "Leadloop_Score__c": 87, "Leadloop_Fit_Points__c": 40.5, "Leadloop_Engagement_Points__c": 46.5,
        "Leadloop_Band__c": "hot", "Leadloop_Grade__c": "A", "Leadloop_MQL__c": True,
        "Leadloop_Reasons__c": "Asked for a demo\nDirector at a 250-person firm", "Leadloop_Stage__c": "mql",
        "Leadloop_Rules_Version__c": "2026.01.3", "Leadloop_Scored_At__c": "2026-01-15T09:30:00Z",
        "Leadloop_Recycle_Reason__c": None, "Leadloop_Recycle_Count__c": 0,
        "OwnerId": "005000000000001AAA", "LeadSource": "Web",
    }


def test_partial_failure_in_request_order(client, mocked):
    mocked.patch(f"{API}/composite/sobjects", json=COMPOSITE["allOrNone_false_partial"])
    ok, bad = client.update_records([update(1), update(2, crm_fields={"Status": "Working"})])
    assert ok.ok and ok.external_id == "001RM000003oLrHYAU"
    assert not bad.ok and not bad.retryable
    assert bad.error == "MALFORMED_ID: malformed id 001RM000003oLrB000"


def test_transient_codes_are_retryable(client, mocked):
    mocked.patch(f"{API}/composite/sobjects", json=[
        {"success": False, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain "
                                       "exclusive access to this record", "fields": []}]},
        COMPOSITE["allOrNone_true_rolled_back"][0],
        {"success": False, "errors": [{"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                                       "message": "Company required", "fields": ["Company"]}]},
    ])
    locked, rolled_back, invalid = client.update_records([update(1), update(2), update(3)])
    assert locked.retryable and rolled_back.retryable
    assert not invalid.retryable
    assert invalid.error == "FIELD_CUSTOM_VALIDATION_EXCEPTION: Company required (Company)"


def test_unsendable_updates_fail_alone(client, mocked):
    mocked.patch(f"{API}/composite/sobjects", json=[{"id": lead_id(1), "success": True, "errors": []}])
    outcomes = client.update_records([
        update(0, crm_id="0011N00001XyZabQAB"), update(1), update(2, fields={"colour": "red"}),
        update(3, crm_id="00Q' OR Id != '"), update(4, crm_fields={"id": "00Q000000000000AAA"}),
    ])
    assert [o.ok for o in outcomes] == [False, True, False, False, False]
    assert "neither a Lead" in outcomes[0].error and "unknown leadloop field" in outcomes[2].error
    assert [r["id"] for r in json.loads(api_calls(mocked)[0].request.body)["records"]] == [lead_id(1)]


def test_request_limit_exceeded(client, mocked):
    mocked.patch(f"{API}/composite/sobjects", json=ERRORS["403_REQUEST_LIMIT_EXCEEDED"], status=403,
                 headers={"Sforce-Limit-Info": "api-usage=5001/5000"})
    with pytest.raises(CrmRateLimited, match="TotalRequests Limit exceeded") as err:
        client.update_records([update(1)])
    assert err.value.retry_after == 900
    assert client.api_usage == (5001, 5000)


def test_expired_session_refreshed_once(client, mocked):
    mocked.post(LOGIN, json={"access_token": "00Dxx!two", "instance_url": INSTANCE})
    mocked.patch(f"{API}/composite/sobjects", json=ERRORS["401_INVALID_SESSION_ID"], status=401)
    mocked.patch(f"{API}/composite/sobjects", json=[{"id": lead_id(1), "success": True, "errors": []}],
                 headers={"Sforce-Limit-Info": "api-usage=18/5000"})
    [outcome] = client.update_records([update(1)])
    assert outcome.ok
    assert len(token_calls(mocked)) == 2
    first, second = api_calls(mocked)
    assert first.request.headers["Authorization"] == "Bearer 00Dxx!one"
    assert second.request.headers["Authorization"] == "Bearer 00Dxx!two"
    assert client.api_usage == (18, 5000)


def test_second_401_is_an_auth_error_not_a_loop(client, mocked):
    mocked.patch(f"{API}/composite/sobjects", json=ERRORS["401_INVALID_SESSION_ID"], status=401)
    with pytest.raises(CrmAuthError, match="INVALID_SESSION_ID"):
        client.update_records([update(1)])
    assert len(token_calls(mocked)) == 2
    assert len(api_calls(mocked)) == 2


@pytest.mark.parametrize("kwargs", [{"status": 500, "body": "oops"}, {"status": 503, "json": []},
                                    {"body": requests.ConnectionError("reset")},
                                    {"status": 400, "json": ERRORS["400_field_error_shape"]}])
def test_server_and_network_errors(client, mocked, kwargs):
    mocked.patch(f"{API}/composite/sobjects", **kwargs)
    with pytest.raises(CrmError):
        client.update_records([update(1)])


# --- fetch_fields -------------------------------------------------------------------------------

def test_fetch_fields_batches_and_routes_by_prefix(client, mocked):
    leads = [lead_id(n) for n in range(250)]
    contacts = ["0031N00001AbCdEQAV"]

    def query(request):
        soql = parse_qs(urlparse(request.url).query)["q"][0]
        ids = soql.split("IN (")[1].rstrip(")").replace("'", "").split(", ")
        sobject = "Contact" if "FROM Contact" in soql else "Lead"
        records = [{"attributes": {"type": sobject}, "Id": i, "Email": f"{i}@x.example",
                    "NumberOfEmployees": 10} for i in ids]
        return 200, {}, json.dumps({"totalSize": len(ids), "done": True, "records": records})

    mocked.add_callback(responses.GET, f"{API}/query", callback=query)
    found = client.fetch_fields(leads + contacts)
    soqls = [parse_qs(urlparse(c.request.url).query)["q"][0] for c in api_calls(mocked)]
    assert [s.count("'") // 2 for s in soqls] == [200, 50, 1]
    assert soqls[0].startswith("SELECT Id, Email, FirstName, LastName, Company, Title, ")
    assert "FROM Lead" in soqls[0]
    assert soqls[2] == ("SELECT Id, Email, FirstName, LastName, Title, Phone, MobilePhone, MailingCountry, "
                        "MailingState, MailingCity, LeadSource, OwnerId, HasOptedOutOfEmail FROM Contact "
                        "WHERE Id IN ('0031N00001AbCdEQAV')")
    assert set(found) == set(leads + contacts)
    assert found[lead_id(3)] == {"email": f"{lead_id(3)}@x.example", "employees": 10}


def test_fetch_fields_follows_next_records_url_and_15_char_ids(client, mocked):
    mocked.get(f"{API}/query", json={"done": False, "nextRecordsUrl": "/services/data/v62.0/query/01gxx-2000",
                                     "records": [{"Id": "00Q1N00000bS2eOUAS", "Company": "Acme"}]})
    mocked.get(f"{API}/query/01gxx-2000", json={"done": True, "records": [
        {"Id": "00Q1N00000bS2ZoUAK", "Status": "Open", "HasOptedOutOfEmail": True}]})
    found = client.fetch_fields(["00Q1N00000bS2eO", "00Q1N00000bS2ZoUAK"])
    assert found == {"00Q1N00000bS2eO": {"company": "Acme"},
                     "00Q1N00000bS2ZoUAK": {"lead_status": "Open", "do_not_contact": True}}


@pytest.mark.parametrize("bad", ["00Q' OR Name != '", "00Q1N00000bS2eOUAS'", "0011N00001XyZabQAB", ""])
def test_fetch_fields_refuses_bad_ids_before_querying(client, mocked, bad):
    with pytest.raises(ValueError):
        client.fetch_fields(["00Q1N00000bS2ZoUAK", bad])
    assert not api_calls(mocked)


# --- create_task --------------------------------------------------------------------------------

def task(**kw) -> TaskSpec:
    spec = {"key": "t1", "crm_id": "00Q1N00000bS2eOUAS", "subject": "Call back: score 87 (Hot)",
            "body": "Scored by service; top drivers: ...", "due_at": datetime(2026, 1, 15, 16, 0, tzinfo=UTC),
            "priority": "high", "type": "call", "owner_id": "005000000000001AAA"}
    return TaskSpec(**{**spec, **kw})


TASK_BY_KEY = f"{API}/sobjects/Task/Leadloop_Key__c/t1"


def no_record_with_key(mocked, url=TASK_BY_KEY):
    mocked.get(url, status=404, json=LEAD_ANSWERS["404_no_record_with_key"])


def test_task_body_matches_the_sample(client, mocked):
    no_record_with_key(mocked)
    mocked.patch(TASK_BY_KEY, status=201,
                 json={"id": "00T1N00003xyzAAAQ2", "success": True, "errors": [], "created": True})
    outcome = client.create_task(task())
    assert outcome.ok and outcome.external_id == "00T1N00003xyzAAAQ2" and outcome.key == "t1"
    lookup, upsert = api_calls(mocked)
    assert (lookup.request.method, lookup.request.url) == ("GET", TASK_BY_KEY + "?fields=Id")
    # The task is written by an upsert on its key: the body is the sample's fields, the key is in the URL.
    assert upsert.request.method == "PATCH"
    assert json.loads(upsert.request.body) == TASK_SAMPLE
    assert list(json.loads(upsert.request.body)) == list(TASK_SAMPLE)


def test_a_task_created_before_is_found_by_its_key_and_not_written_again(client, mocked):
    mocked.get(TASK_BY_KEY, json={"attributes": {"type": "Task"}, "Id": "00T1N00003xyzAAAQ2"})
    outcome = client.create_task(task())
    assert (outcome.ok, outcome.external_id) == (True, "00T1N00003xyzAAAQ2")
    assert [c.request.method for c in api_calls(mocked)] == ["GET"]


def test_a_missing_key_field_is_recorded_with_the_fix(client, mocked):
    no_record_with_key(mocked)
    mocked.patch(TASK_BY_KEY, status=404, json=[{
        "errorCode": "NOT_FOUND", "message": "Provided external ID field does not exist or is not accessible: "
                                             "Leadloop_Key__c"}])
    outcome = client.create_task(task())
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert "run `leadloop setup salesforce`" in outcome.error


def test_a_key_matching_several_records_is_recorded(client, mocked):
    no_record_with_key(mocked)
    mocked.patch(TASK_BY_KEY, status=300, json=["/services/data/v62.0/sobjects/Task/00T1",
                                                "/services/data/v62.0/sobjects/Task/00T2"])
    outcome = client.create_task(task())
    assert not outcome.ok and "matches several records" in outcome.error


@pytest.mark.parametrize(("kw", "expected"), [
    ({"type": "todo", "owner_id": None, "priority": "low", "subject": "Send the price list"},
     {"Subject": "Send the price list", "Priority": "Low"}),
    ({"type": "email", "priority": "normal", "subject": "Follow up on the coverage map"},
     {"Subject": "Email: Follow up on the coverage map", "Priority": "Normal"}),
    ({"due_at": datetime(2026, 1, 15, 23, 30, tzinfo=timezone(timedelta(hours=-5)))},
     {"ActivityDate": "2026-01-16"}),
    ({"subject": "Call " + "x" * 300, "body": "y" * 40_000}, {"Subject": "Call " + "x" * 250,
                                                             "Description": "y" * 32_000}),
])
def test_task_body_variants(client, mocked, kw, expected):
    no_record_with_key(mocked)
    mocked.patch(TASK_BY_KEY, status=201, json={"id": "00T1", "success": True, "errors": [], "created": True})
    client.create_task(task(**kw))
    body = json.loads(api_calls(mocked, "PATCH")[0].request.body)
    assert {k: body[k] for k in expected} == expected
    assert ("OwnerId" in body) == (kw.get("owner_id", "x") is not None)


def test_task_validation_error_is_final(client, mocked):
    no_record_with_key(mocked)
    mocked.patch(TASK_BY_KEY, status=400, json=[
        {"message": "Assigned To ID: owner cannot be blank", "errorCode": "FIELD_INTEGRITY_EXCEPTION",
         "fields": []},
    ])
    outcome = client.create_task(task())
    assert not outcome.ok and not outcome.retryable and "FIELD_INTEGRITY_EXCEPTION" in outcome.error


def test_task_for_unknown_record_type_not_sent(client, mocked):
    outcome = client.create_task(task(crm_id="0011N00001XyZabQAB"))
    assert not outcome.ok and not api_calls(mocked)


def test_client_satisfies_the_protocol():
    assert SalesforceClient.max_update_batch == 200
    for name in ("fetch_fields", "update_records", "create_records", "create_task", "task_is_open"):
        assert callable(getattr(SalesforceClient, name))


@pytest.mark.parametrize(("is_closed", "open_"), [(True, False), (False, True)])
def test_task_is_open_reads_is_closed(client, mocked, is_closed, open_):
    mocked.get(f"{API}/sobjects/Task/00T1N00003xyzAAAQ2", json={"IsClosed": is_closed, "Id": "00T1N00003xyzAAAQ2"})
    assert client.task_is_open("00T1N00003xyzAAAQ2") is open_
    assert api_calls(mocked)[0].request.url.endswith("/sobjects/Task/00T1N00003xyzAAAQ2?fields=IsClosed")


def test_task_is_open_refuses_a_bad_id_without_calling(client, mocked):
    with pytest.raises(CrmError):
        client.task_is_open("00T' OR Id != '")
    assert api_calls(mocked) == []


# --- create_records: a Lead for a web-only lead -------------------------------------------------

LEAD_BY_KEY = f"{API}/sobjects/Lead/Leadloop_Key__c/create%3Asalesforce%3Alead7%3A5c1e"


def web_lead(**kw) -> RecordCreate:
    spec = {"key": "create:salesforce:lead7:5c1e", "email": "ada@acme-logistics.example",
            "lead_fields": {"first_name": "Ada", "phone": "+49 30 1234567", "employees": 250, "country": "DE",
                            "industry": "Logistics", "timezone": "Europe/Berlin"},
            "fields": {"score": 87, "mql": True, "stage": "mql"}, "owner_id": "005000000000001AAA",
            "crm_fields": {"Status": "Open - Not Contacted"}}
    return RecordCreate(**{**spec, **kw})


def test_a_lead_is_created_with_what_is_known_and_placeholders_for_the_rest(client, mocked):
    no_record_with_key(mocked, LEAD_BY_KEY)
    mocked.patch(LEAD_BY_KEY, status=201, json=LEAD_ANSWERS["201_created"])
    outcome, = client.create_records([web_lead()])
    assert (outcome.ok, outcome.external_id) == (True, "00Q1N00000WebLeadAAA")
    upsert = api_calls(mocked, "PATCH")[0].request
    assert json.loads(upsert.body) == {
        "Email": "ada@acme-logistics.example", "FirstName": "Ada", "Phone": "+49 30 1234567",
        "NumberOfEmployees": 250, "LastName": "[not provided]", "Company": "[not provided]",
        "Leadloop_Score__c": 87, "Leadloop_MQL__c": True, "Leadloop_Stage__c": "mql",
        "OwnerId": "005000000000001AAA", "Status": "Open - Not Contacted"}
    # Assignment rules would replace the owner the hand-off chose.
    assert upsert.headers["Sforce-Auto-Assign"] == "FALSE"


def test_without_an_owner_the_orgs_assignment_rules_decide(client, mocked):
    no_record_with_key(mocked, LEAD_BY_KEY)
    mocked.patch(LEAD_BY_KEY, status=201, json=LEAD_ANSWERS["201_created"])
    client.create_records([web_lead(owner_id=None, lead_fields={"last_name": "Lovelace", "company": "Acme"})])
    upsert = api_calls(mocked, "PATCH")[0].request
    assert "Sforce-Auto-Assign" not in upsert.headers
    body = json.loads(upsert.body)
    assert (body["LastName"], body["Company"]) == ("Lovelace", "Acme") and "OwnerId" not in body


def test_a_lead_created_before_the_crash_is_found_by_its_key(client, mocked):
    mocked.get(LEAD_BY_KEY, json={"attributes": {"type": "Lead"}, "Id": "00Q1N00000WebLeadAAA"})
    outcome, = client.create_records([web_lead()])
    assert (outcome.ok, outcome.external_id) == (True, "00Q1N00000WebLeadAAA")
    assert [c.request.method for c in api_calls(mocked)] == ["GET"]


@pytest.mark.parametrize(("answer", "expected"), [
    ("400_DUPLICATES_DETECTED_duplicateResut",
     "DUPLICATES_DETECTED: Use one of these records? (rule Standard_Lead_Duplicate_Rule; "
     "matches Lead 00Q1N00000OldLeadAAA)"),
    ("400_DUPLICATES_DETECTED_duplicateResult",
     "DUPLICATES_DETECTED: You're creating a duplicate record. We recommend you use an existing record "
     "instead. (rule Leads_by_email; matches Contact 0031N00001ExistAAA)"),
])
def test_a_duplicate_rule_refusal_is_recorded_with_salesforces_message(client, mocked, answer, expected):
    no_record_with_key(mocked, LEAD_BY_KEY)
    mocked.patch(LEAD_BY_KEY, status=400, json=LEAD_ANSWERS[answer])
    outcome, = client.create_records([web_lead()])
    assert (outcome.ok, outcome.retryable, outcome.error) == (False, False, expected)


def test_a_stage_field_may_not_set_the_key(client, mocked):
    outcome, = client.create_records([web_lead(crm_fields={"Leadloop_Key__c": "other"})])
    assert not outcome.ok and "Leadloop_Key__c" in outcome.error
    assert api_calls(mocked) == []

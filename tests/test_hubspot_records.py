"""The HubSpot record reader: deals and calls/emails/meetings read back in batches, under the
record events' names; every body checked against HubSpot's published schemas."""

from __future__ import annotations

import json

import pytest
import responses

from connectors.base import CrmError
from connectors.hubspot import connector
from connectors.hubspot.records import make_record_reader
from tests.hubspot_openapi import assert_valid_bodies

API = "https://api.hubapi.com"
DEALS_READ = f"{API}/crm/objects/2026-03/0-3/batch/read"
DEAL_CONTACTS = f"{API}/crm/associations/2026-03/deals/contacts/batch/read"


@pytest.fixture
def reader(redis_server):
    redis_server.flushall()
    return make_record_reader({"HUBSPOT_ACCESS_TOKEN": "pat-na1-test"}, redis_server)


@pytest.fixture
def api():
    with responses.RequestsMock() as mock:
        yield mock
        assert_valid_bodies(mock.calls)


def deal(deal_id: str, **properties: str | None) -> dict:
    return {"id": deal_id, "properties": {"hs_object_id": deal_id, **properties}, "archived": False,
            "createdAt": "2026-05-04T09:12:00Z", "updatedAt": "2026-05-20T15:40:00Z"}


def associations(source: str, *contacts: int) -> dict:
    return {"from": {"id": source}, "to": [{"toObjectId": c, "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}]} for c in contacts]}


def test_the_connector_offers_the_reader():
    assert connector.make_record_reader is make_record_reader


def test_deals_come_with_their_stage_flags_amount_and_people(reader, api):
    api.post(DEALS_READ, json={"status": "COMPLETE", "results": [
        deal("7891023", dealname="Acme, 200 trucks", pipeline="default", dealstage="closedwon", amount="12000.00",
             deal_currency_code="EUR", createdate="2026-05-04T09:12:00.000Z", closedate="2026-05-20T15:40:00.000Z",
             hs_is_closed="true", hs_is_closed_won="true", hubspot_owner_id="41"),
        deal("7891024", pipeline="default", dealstage="qualifiedtobuy", amount=None, deal_currency_code=None,
             hs_is_closed="false", hs_is_closed_won="false")]})
    api.post(DEAL_CONTACTS, json={"status": "COMPLETE", "results": [associations("7891023", 100, 101)]})
    found = reader.read_deals(["7891023", "7891024", "404"])
    assert found["7891023"] == {"pipeline": "default", "stage": "closedwon", "amount": "12000", "currency": "EUR",
                                "created_at": "2026-05-04T09:12:00+00:00", "closed_at": "2026-05-20T15:40:00+00:00",
                                "is_closed": True, "is_won": True, "contact_ids": ["100", "101"]}
    assert found["7891024"] == {"pipeline": "default", "stage": "qualifiedtobuy", "amount": None, "currency": None,
                                "is_closed": False, "is_won": False, "contact_ids": []}
    assert json.loads(api.calls[1].request.body) == {"inputs": [{"id": "7891023"}, {"id": "7891024"}]}


def test_a_value_of_the_wrong_kind_is_left_out_not_the_deal(reader, api):
    api.post(DEALS_READ, json={"status": "COMPLETE", "results": [
        deal("1", dealstage="4711", amount="call me", hs_is_closed="true", hs_is_closed_won="false")]})
    api.post(DEAL_CONTACTS, json={"status": "COMPLETE", "results": []})
    assert reader.read_deals(["1"]) == {"1": {"stage": "4711", "is_closed": True, "is_won": False, "contact_ids": []}}


def test_no_deal_found_reads_no_associations(reader, api):
    api.post(DEALS_READ, status=207, json={"status": "COMPLETE", "results": [], "numErrors": 1, "errors": [
        {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Could not get some DEAL objects"}]})
    assert reader.read_deals(["404"]) == {}
    assert len(api.calls) == 1


@pytest.mark.parametrize(("activity_type", "object_name", "properties", "expected"), [
    ("call", "calls", {"hs_call_direction": "OUTBOUND", "hs_call_status": "COMPLETED"},
     {"direction": "outbound", "status": "COMPLETED"}),
    ("email", "emails", {"hs_email_direction": "INCOMING_EMAIL", "hs_email_status": "SENT"},
     {"direction": "inbound", "status": "SENT"}),
    ("meeting", "meetings", {"hs_meeting_outcome": "SCHEDULED"}, {"status": "SCHEDULED"}),
])
def test_rep_activity_comes_with_owner_times_and_people(reader, api, activity_type, object_name, properties, expected):
    url = f"{API}/crm/objects/2026-03/{object_name}/batch/read"
    api.post(url, json={"status": "COMPLETE", "results": [
        {"id": "45012301", "properties": {"hubspot_owner_id": "41", "hs_createdate": "2026-05-04T09:05:00.000Z",
                                          "hs_timestamp": "2026-05-04T09:00:00.000Z", **properties}}]})
    api.post(f"{API}/crm/associations/2026-03/{object_name}/contacts/batch/read",
             json={"status": "COMPLETE", "results": [associations("45012301", 100)]})
    found = reader.read_rep_activities({"45012301": activity_type})
    assert found == {"45012301": {"owner_id": "41", "logged_at": "2026-05-04T09:05:00+00:00",
                                  "activity_at": "2026-05-04T09:00:00+00:00", **expected,
                                  "activity_type": activity_type, "contact_ids": ["100"]}}
    assert json.loads(api.calls[0].request.body)["properties"][0] == "hubspot_owner_id"


def test_activities_are_read_in_one_batch_per_type(reader, api):
    calls = f"{API}/crm/objects/2026-03/calls/batch/read"
    def reply(request):
        inputs = json.loads(request.body)["inputs"]
        results = [{"id": i["id"], "properties": {}} for i in inputs]
        return 200, {}, json.dumps({"status": "COMPLETE", "results": results})

    api.add_callback(responses.POST, calls, callback=reply)
    api.post(f"{API}/crm/associations/2026-03/calls/contacts/batch/read", json={"status": "COMPLETE", "results": []})
    found = reader.read_rep_activities({str(i): "call" for i in range(150)})
    assert len(found) == 150
    assert [len(json.loads(c.request.body)["inputs"]) for c in api.calls if c.request.url == calls] == [100, 50]


def test_a_refused_read_raises(reader, api):
    api.post(f"{API}/crm/objects/2026-03/meetings/batch/read", status=403,
             json={"status": "error", "message": "missing scopes", "category": "MISSING_SCOPES"})
    with pytest.raises(CrmError, match="meetings batch read -> 403: MISSING_SCOPES: missing scopes"):
        reader.read_rep_activities({"1": "meeting"})

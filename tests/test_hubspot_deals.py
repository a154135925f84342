"""Deal and association batch reads against ``responses``; every body checked against HubSpot's schemas."""

from __future__ import annotations

import json

import pytest
import responses

from connectors.base import CrmError
from connectors.hubspot.client import make_client
from connectors.hubspot.deals import DEAL_PROPERTIES, associated_ids, read_deals
from tests.hubspot_openapi import assert_valid_bodies

API = "https://api.hubapi.com"
DEALS_READ = f"{API}/crm/objects/2026-03/0-3/batch/read"
DEAL_CONTACTS = f"{API}/crm/associations/2026-03/deals/contacts/batch/read"


@pytest.fixture
def client(redis_server):
    redis_server.flushall()
    return make_client({"HUBSPOT_ACCESS_TOKEN": "pat-na1-test"}, redis_server)


@pytest.fixture
def api():
    with responses.RequestsMock() as mock:
        yield mock
        assert_valid_bodies(mock.calls)


def sent(call) -> dict:
    return json.loads(call.request.body)


def test_read_deals_in_batches_of_100(client, api):
    def reply(request):
        ids = [i["id"] for i in json.loads(request.body)["inputs"]]
        results = [{"id": i, "properties": {"dealstage": "closedwon", "amount": "12000", "hs_is_closed_won": "true"},
                    "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-02T00:00:00Z", "archived": False}
                   for i in ids if i != "7"]
        return 207 if len(results) < len(ids) else 200, {}, json.dumps({"status": "COMPLETE", "results": results})

    api.add_callback(responses.POST, DEALS_READ, callback=reply)
    deals = read_deals(client, [str(i) for i in range(150)] + ["1"])
    assert [len(sent(c)["inputs"]) for c in api.calls] == [100, 50]
    assert sent(api.calls[0])["properties"] == list(DEAL_PROPERTIES)
    assert sent(api.calls[0])["propertiesWithHistory"] == []
    assert len(deals) == 149 and "7" not in deals
    assert deals["0"] == {"dealstage": "closedwon", "amount": "12000", "hs_is_closed_won": "true"}


def test_read_deals_refused_as_a_whole_raises(client, api):
    api.post(DEALS_READ, status=400, json={"status": "error", "message": "bad", "category": "VALIDATION_ERROR"})
    with pytest.raises(CrmError, match="deal batch read -> 400: VALIDATION_ERROR: bad"):
        read_deals(client, ["1"])


def test_deal_contacts_follow_each_deals_paging(client, api):
    pages = [
        {"status": "COMPLETE", "results": [
            {"from": {"id": "7891023"}, "to": [{"toObjectId": 100, "associationTypes": [
                {"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}]}],
             "paging": {"next": {"after": "cursor-1"}}},
            {"from": {"id": "987654"}, "to": [{"toObjectId": 200, "associationTypes": []}]}]},
        {"status": "COMPLETE", "results": [
            {"from": {"id": "7891023"}, "to": [{"toObjectId": 101, "associationTypes": []}]}]},
    ]
    api.add_callback(responses.POST, DEAL_CONTACTS, callback=lambda r: (200, {}, json.dumps(pages.pop(0))))
    found = associated_ids(client, "deals", "contacts", ["7891023", "987654", "555"])
    assert found == {"7891023": ["100", "101"], "987654": ["200"], "555": []}
    assert sent(api.calls[0]) == {"inputs": [{"id": "7891023"}, {"id": "987654"}, {"id": "555"}]}
    assert sent(api.calls[1]) == {"inputs": [{"id": "7891023", "after": "cursor-1"}]}


def test_associations_are_read_at_most_1000_ids_a_call(client, api):
    api.post(DEAL_CONTACTS, json={"status": "COMPLETE", "results": []})
    found = associated_ids(client, "deals", "contacts", [str(i) for i in range(1500)])
    assert [len(sent(c)["inputs"]) for c in api.calls] == [1000, 500]
    assert len(found) == 1500 and set(map(len, found.values())) == {0}

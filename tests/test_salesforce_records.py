"""Salesforce outbound messages on Opportunity, Task and Event (record events) and a converted
Lead's snapshot: one test per message, fixtures named after the vendor's object."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from test_salesforce_webhook import fixture, parse

from connectors.base import PayloadError

OPPORTUNITY, CONTACT = "0061N00000Dy2mBQAR", "0031N00001fGhIjQAK"
LEAD, OWNER = "00Q1N00000bS2eOUAS", "0051N000005cDeFQAU"
DEAL = {"amount": "12000", "currency": "EUR", "created_at": "2026-05-04T09:12:00+00:00",
        "closed_at": "2026-05-20T00:00:00+00:00", "contact_ids": [CONTACT], "change": "snapshot",
        "sobject_type": "Opportunity", "action_id": "04k1N0000008pYaQAI", "organization_id": "00Do0000000e0vQEAQ"}


@pytest.mark.parametrize(("name", "state", "at"), [
    ("outbound_message_opportunity.xml", {"stage": "Qualification", "is_closed": False, "is_won": False},
     datetime(2026, 5, 4, 9, 12, tzinfo=UTC)),
    ("outbound_message_opportunity_closed_won.xml", {"stage": "Closed Won", "is_closed": True, "is_won": True},
     datetime(2026, 5, 20, 15, 40, tzinfo=UTC)),
    ("outbound_message_opportunity_closed_lost.xml", {"stage": "Closed Lost", "is_closed": True, "is_won": False},
     datetime(2026, 5, 18, 11, 0, tzinfo=UTC)),
])
def test_an_opportunity_is_a_deal_change_with_its_stage_flags(name, state, at):
    [event] = parse(fixture(name))
    assert (event.kind, event.crm, event.record_id, event.crm_id, event.email) == \
        ("deal_change", "salesforce", OPPORTUNITY, None, None)
    assert event.properties == {**DEAL, **state}
    assert event.occurred_at == at  # LastModifiedDate: an older snapshot never overwrites a newer one
    assert event.fields == {}
    assert event.raw["fields"]["Name"] == "Novo Payment - 200 trucks"


def test_a_logged_call_is_rep_activity_on_its_lead():
    [event] = parse(fixture("outbound_message_task_call.xml"))
    assert (event.kind, event.record_id, event.crm_id) == ("rep_activity", "00T1N00003xYzAbUAC", None)
    assert {k: v for k, v in event.properties.items() if k not in ("action_id", "organization_id")} == {
        "change": "snapshot", "activity_type": "call", "owner_id": OWNER, "logged_at": "2026-05-04T09:05:00+00:00",
        "activity_at": "2026-05-04T00:00:00+00:00", "direction": "outbound", "status": "Completed",
        "contact_ids": [LEAD], "sobject_type": "Task"}


def test_a_meeting_is_rep_activity_on_the_converted_contact():
    [event] = parse(fixture("outbound_message_event.xml"))
    assert (event.kind, event.record_id) == ("rep_activity", "00U1N00000pQrStUAD")
    assert event.properties["activity_type"] == "meeting"
    assert event.properties["activity_at"] == "2026-05-06T13:00:00+00:00"
    assert event.properties["logged_at"] == "2026-05-04T16:30:00+00:00"
    assert event.properties["contact_ids"] == [CONTACT]


@pytest.mark.parametrize(("subtype", "activity_type"), [
    ("Email", "email"), ("ListEmail", "email"), ("Task", "task"), ("Cadence", "task"), (None, "task")])
def test_the_task_subtype_says_what_the_rep_did(subtype, activity_type):
    body = fixture("outbound_message_task_call.xml").decode()
    body = body.replace("<sf:TaskSubtype>Call</sf:TaskSubtype>",
                        f"<sf:TaskSubtype>{subtype}</sf:TaskSubtype>" if subtype else "")
    assert parse(body.encode())[0].properties["activity_type"] == activity_type


def test_a_converted_lead_names_its_contact_and_opportunity_but_keeps_them_out_of_its_fields():
    [event] = parse(fixture("outbound_message_lead_converted.xml"))
    assert (event.kind, event.crm_id) == ("record_snapshot", LEAD)
    assert event.properties["converted_contact_id"] == CONTACT
    assert event.properties["converted_opportunity_id"] == OPPORTUNITY
    assert event.properties["converted_date"] == "2026-05-04T00:00:00+00:00"
    assert event.fields["lead_status"] == "Closed - Converted"
    assert not any(name.startswith(("Converted", "IsConverted")) for name in event.fields)


def test_a_lead_not_converted_names_nothing():
    body = fixture("outbound_message_lead_converted.xml").decode().replace(
        "<sf:IsConverted>true</sf:IsConverted>", "<sf:IsConverted>false</sf:IsConverted>")
    [event] = parse(body.encode())
    assert not any(key.startswith("converted") for key in event.properties)


@pytest.mark.parametrize(("name", "old", "new", "message"), [
    ("outbound_message_opportunity.xml", "<sf:Amount>12000.0", "<sf:Amount>lots", "Amount: expected a number"),
    ("outbound_message_opportunity.xml", "<sf:IsWon>false", "<sf:IsWon>maybe", "IsWon: expected true or false"),
    ("outbound_message_opportunity.xml", "<sf:ContactId>0031N", "<sf:ContactId>nobody0031N",
     "ContactId: not a Salesforce id"),
    ("outbound_message_opportunity.xml", "<sf:CloseDate>2026-05-20", "<sf:CloseDate>2026-13-40",
     "CloseDate: expected a date (YYYY-MM-DD)"),
    ("outbound_message_task_call.xml", "<sf:WhoId>00Q", "<sf:WhoId>x00Q", "WhoId: not a Salesforce id"),
    ("outbound_message_lead_converted.xml", "<sf:ConvertedOpportunityId>006",
     "<sf:ConvertedOpportunityId>-006", "ConvertedOpportunityId: not a Salesforce id"),
])
def test_bad_record_values_are_a_400_naming_the_field(name, old, new, message):
    body = fixture(name).decode().replace(old, new)
    with pytest.raises(PayloadError, match=re.escape(message)) as info:
        parse(body.encode())
    assert info.value.status == 400


def test_a_flow_callout_says_the_same_of_a_conversion():
    from test_salesforce_webhook import flow, flow_payload

    payload = flow_payload()
    payload["events"][0]["fields"].update(IsConverted=True, ConvertedContactId=CONTACT,
                                          ConvertedOpportunityId=OPPORTUNITY, Status="Closed - Converted")
    event = flow(payload)[0]
    assert (event.properties["converted_contact_id"], event.properties["converted_opportunity_id"]) == \
        (CONTACT, OPPORTUNITY)
    assert "IsConverted" not in event.fields and event.fields["lead_status"] == "Closed - Converted"

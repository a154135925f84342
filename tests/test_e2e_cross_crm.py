"""The same lead history told by HubSpot and by Salesforce must be judged the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from integration.pipeline.processing import signals_of
from integration.store.models import Lead, ScoreRecord
from scoring import LeadProfile, score_lead
from tests.conftest import drain, post_events, post_hubspot, web_event

HUBSPOT_ID = "5150"
SALESFORCE_ID = "00Q1N00000cR0sSUAS"
EMAIL = "ada.meyer@acme-robotics.com"
#: The profile as the web form carried it, and what each CRM knows it as.
PROFILE = {"email": EMAIL, "first_name": "Ada", "last_name": "Meyer", "company": "Acme Robotics",
           "job_title": "Head of Operations", "industry": "Logistics", "country": "Germany",
           "employees": 250, "phone": "+49 30 1234567"}
SALESFORCE_NAMES = {"email": "Email", "first_name": "FirstName", "last_name": "LastName", "company": "Company",
                    "job_title": "Title", "industry": "Industry", "country": "Country",
                    "employees": "NumberOfEmployees", "phone": "Phone"}


#: One clock reading for the whole module: both CRMs must report exactly the same moments.
START = datetime.now(UTC).replace(microsecond=0)


def at(days_ago: float) -> datetime:
    return START - timedelta(days=days_ago)


FORM_AT = at(6)


def activity(prefix: str, crm: str, crm_id: str) -> list[dict[str, Any]]:
    """The same web and product activity at the same times, addressed to one CRM's record."""
    def event(n: int, kind: str, days_ago: float, **properties: Any) -> dict[str, Any]:
        return web_event(f"{prefix}-{n}", kind, email=EMAIL, crm=crm, crm_id=crm_id,
                         occurred_at=at(days_ago).isoformat(), properties=properties)

    return [
        event(1, "page_view", 9, url="https://acme.example/blog/warehouse-robots"),
        event(2, "page_view", 8, url="https://acme.example/pricing"),
        event(3, "content_download", 7, asset="coverage-map"),
        web_event(f"{prefix}-4", "form_submit", email=EMAIL, crm=crm, crm_id=crm_id,
                  occurred_at=FORM_AT.isoformat(), properties={"form": "demo-request", "fields": PROFILE}),
        event(5, "page_view", 3, url="https://acme.example/customers/logistics-co"),
        event(6, "email_click", 2, campaign="november-webinar"),
    ]


def deliver_through_hubspot(client: Any) -> None:
    created = [{"eventId": 91001, "subscriptionId": 21, "portalId": 62515, "appId": 54321,
                "occurredAt": int(at(10).timestamp() * 1000), "subscriptionType": "contact.creation",
                "attemptNumber": 0, "objectId": int(HUBSPOT_ID), "changeFlag": "CREATED", "changeSource": "FORM"}]
    response = post_hubspot(client, created)
    assert response.status_code == 200
    assert post_events(client, activity("hs", "hubspot", HUBSPOT_ID)).status_code == 200


#: HubSpot contact property -> canonical field (the connector's PROPERTY_FIELDS, reversed here by hand).
HUBSPOT_NAMES = {"email": "email", "first_name": "firstname", "last_name": "lastname", "company": "company",
                 "job_title": "jobtitle", "industry": "industry", "country": "country",
                 "employees": "numemployees", "phone": "phone"}


def deliver_profile_as_hubspot_property_changes(client: Any) -> None:
    """The profile as HubSpot itself reports it: one propertyChange per property, values as text."""
    changes = [{"eventId": 92000 + n, "subscriptionId": 22, "portalId": 62515, "appId": 54321,
                "occurredAt": int(FORM_AT.timestamp() * 1000), "subscriptionType": "contact.propertyChange",
                "attemptNumber": 0, "objectId": int(HUBSPOT_ID), "propertyName": HUBSPOT_NAMES[name],
                "propertyValue": str(value), "changeSource": "FORM"} for n, (name, value) in enumerate(PROFILE.items())]
    response = post_hubspot(client, changes)
    assert response.get_json() == {"accepted": len(PROFILE), "duplicates": 0, "ignored": 0}


def deliver_through_salesforce(client: Any) -> None:
    values = "".join(f"<sf:{SALESFORCE_NAMES[name]}>{value}</sf:{SALESFORCE_NAMES[name]}>"
                     for name, value in PROFILE.items())
    stamp = FORM_AT.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        "<OrganizationId>00Do0000000e0vQEAQ</OrganizationId><ActionId>04k1N0000008pXOQAY</ActionId>"
        '<SessionId xsi:nil="true"/><Notification><Id>04l1N00000HXRSsQAP</Id>'
        '<sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"<sf:Id>{SALESFORCE_ID}</sf:Id>{values}<sf:LastModifiedDate>{stamp}</sf:LastModifiedDate>"
        "</sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()
    response = client.post("/webhooks/salesforce/sf-path-token-0123456789abcdef", data=body,
                           headers={"Content-Type": "text/xml; charset=utf-8"})
    assert response.status_code == 200
    assert post_events(client, activity("sf", "salesforce", SALESFORCE_ID)).status_code == 200


def the_two_leads(session: Any) -> tuple[Lead, Lead]:
    """The lead HubSpot reported and the one Salesforce reported."""
    return tuple(session.scalars(select(Lead).where(Lead.crm == crm)).one()  # type: ignore[return-value]
                 for crm in ("hubspot", "salesforce"))


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key != "as_of"}


def test_the_same_history_through_either_crm_gets_the_same_verdict(client, svc):
    deliver_through_hubspot(client)
    deliver_through_salesforce(client)
    drain(svc)
    with svc.sessions() as session:
        hubspot, salesforce = the_two_leads(session)
        assert (hubspot.crm_id, salesforce.crm_id) == (HUBSPOT_ID, SALESFORCE_ID)
        # The stored profile is the same whichever CRM told it.
        assert hubspot.fields == salesforce.fields == PROFILE
        assert hubspot.field_times == salesforce.field_times
        assert hubspot.email == salesforce.email == EMAIL

        latest = {}
        for lead in (hubspot, salesforce):
            latest[lead.crm] = session.scalars(select(ScoreRecord).where(ScoreRecord.lead_id == lead.id)
                                               .order_by(ScoreRecord.id.desc())).first()
        hs, sf = latest["hubspot"], latest["salesforce"]
        assert (hs.score, hs.band, hs.grade, hs.mql) == (sf.score, sf.band, sf.grade, sf.mql)
        assert comparable(hs.result) == comparable(sf.result)
        assert hs.result["band"] == "hot" and hs.result["grade"] == "A"  # a real verdict, not two empty ones

        # And at one as-of, from what each lead has stored, the results are identical.
        as_of = datetime.now(UTC)
        verdicts = []
        for lead in (hubspot, salesforce):
            profile = LeadProfile(fields={**lead.fields, "email": lead.email})
            verdicts.append(score_lead(profile, signals_of(session, lead, svc.rules.activity_kinds),
                                       svc.rules, as_of).to_dict())
        assert verdicts[0] == verdicts[1]


def test_profile_fields_reported_by_hubspot_property_changes_are_stored_like_salesforce_ones(client, svc):
    """HubSpot sends every property value as text ("250"); Salesforce sends typed XML that the
    connector reads as a number. Canonical fields (``scoring.fields.LEAD_FIELDS``: employees is
    "a number") must not depend on which CRM said it."""
    deliver_profile_as_hubspot_property_changes(client)
    deliver_through_salesforce(client)
    drain(svc)
    with svc.sessions() as session:
        hubspot, salesforce = the_two_leads(session)
        assert hubspot.fields == salesforce.fields


# --- the same journey to revenue through either CRM -----------------------------------------------

def test_form_mql_call_and_a_won_deal_end_the_same_through_either_crm(config, tmp_path):
    """Form -> MQL -> a call logged by the owner -> a deal won for 12,000 EUR, told by HubSpot
    (generic webhooks, deals and calls read back) and by Salesforce (outbound messages on the Lead,
    the Task, the converted Lead and the Opportunity): the same stage, outcome and amount."""
    from integration.cli.leads import lead_report
    from tests.outcomes_support import (
        Clock,
        fake_hubspot,
        hs_association,
        hs_object,
        hs_property,
        outbound_message,
        rules_file,
        send_hubspot,
        send_salesforce,
        sf_stamp,
        world,
    )
    from tests.test_outcomes_hubspot import START, iso

    hs_owner, sf_owner, deal, call, contact = "41", "0051N000005cDeFQAU", 7891023, 45012301, "0031N00001fGhIjQAK"
    clock = Clock(START)
    logged, won_at = START + timedelta(minutes=20), START + timedelta(days=16, hours=7)

    def form(prefix: str, crm: str, crm_id: str) -> list[dict[str, Any]]:
        return [web_event(f"{prefix}-form", "form_submit", email=EMAIL, crm=crm, crm_id=crm_id,
                          occurred_at=(START - timedelta(hours=1)).isoformat(),
                          properties={"form": "demo-request", "fields": PROFILE}),
                web_event(f"{prefix}-map", "content_download", email=EMAIL, crm=crm, crm_id=crm_id,
                          occurred_at=(START - timedelta(minutes=5)).isoformat(), properties={"asset": "coverage-map"})]

    with world(config, rules_file(tmp_path, ["REPLACE-rep"]), clock, HUBSPOT_ACCESS_TOKEN="pat-na1-test") as (
            client, svc), fake_hubspot() as hubspot:
        # Who the person is and who owns the record, as each CRM says it; then the form.
        send_hubspot(client, [hs_property("contact", int(HUBSPOT_ID), START - timedelta(hours=2),
                                          "hubspot_owner_id", hs_owner)])
        send_salesforce(client, outbound_message("Lead", SALESFORCE_ID, {
            "Email": EMAIL, "LastName": "Meyer", "Company": "Acme Robotics", "OwnerId": sf_owner,
            "Status": "Open - Not Contacted", "LastModifiedDate": sf_stamp(START - timedelta(hours=2))}))
        assert post_events(client, form("hs", "hubspot", HUBSPOT_ID) + form("sf", "salesforce", SALESFORCE_ID)
                           ).status_code == 200
        drain(svc)
        # The owner calls within the hour.
        clock.value = logged + timedelta(minutes=1)
        hubspot.activity("calls", call, [int(HUBSPOT_ID)], hubspot_owner_id=hs_owner, hs_createdate=iso(logged),
                         hs_timestamp=iso(logged), hs_call_direction="OUTBOUND", hs_call_status="COMPLETED")
        send_hubspot(client, [hs_object("creation", "call", call, logged),
                              *hs_association("call", call, int(HUBSPOT_ID), logged)])
        send_salesforce(client, outbound_message("Task", "00T1N00003xYzAbUAC", {
            "CallType": "Outbound", "CreatedDate": sf_stamp(logged), "LastModifiedDate": sf_stamp(logged),
            "OwnerId": sf_owner, "Status": "Completed", "Subject": "Call", "TaskSubtype": "Call",
            "WhoId": SALESFORCE_ID}))
        drain(svc)
        with svc.sessions() as session:
            due = max(session.scalars(select(Lead.sla_due_at).where(Lead.sla_due_at.is_not(None))))
        clock.value = due + timedelta(seconds=1)
        drain(svc)  # the SLA checks: both met by the call
        clock.advance(minutes=1)
        # The deal is won.
        clock.value = won_at + timedelta(minutes=1)
        drain(svc)
        clock.advance(minutes=1)
        hubspot.deal(deal, [int(HUBSPOT_ID)], pipeline="default", dealstage="closedwon", amount="12000",
                     deal_currency_code="EUR", createdate=iso(START + timedelta(days=2)), closedate=iso(won_at),
                     hs_is_closed="true", hs_is_closed_won="true")
        send_hubspot(client, [hs_object("creation", "deal", deal, won_at),
                              *hs_association("deal", deal, int(HUBSPOT_ID), won_at)])
        send_salesforce(client, outbound_message("Lead", SALESFORCE_ID, {
            "Email": EMAIL, "LastName": "Meyer", "Company": "Acme Robotics", "OwnerId": sf_owner,
            "Status": "Closed - Converted", "IsConverted": "true", "ConvertedContactId": contact,
            "ConvertedOpportunityId": "0061N00000Dy2mBQAR", "LastModifiedDate": sf_stamp(won_at)}))
        drain(svc)
        clock.advance(minutes=1)  # one rescoring per lead and clock reading: the writes are stamped with it
        send_salesforce(client, outbound_message("Opportunity", "0061N00000Dy2mBQAR", {
            "Amount": "12000.0", "CloseDate": sf_stamp(won_at)[:10], "ContactId": contact,
            "CreatedDate": sf_stamp(START + timedelta(days=2)), "CurrencyIsoCode": "EUR", "IsClosed": "true",
            "IsWon": "true", "LastModifiedDate": sf_stamp(won_at), "StageName": "Closed Won"}))
        drain(svc)
        with svc.sessions() as session:
            # The Salesforce Contact the Lead became is only a pointer to it.
            hubspot_lead, salesforce_lead = (session.scalars(select(Lead).where(
                Lead.crm == crm, Lead.merged_into_id.is_(None))).one() for crm in ("hubspot", "salesforce"))
            reports = [lead_report(session, lead, svc.rules)[0] for lead in (hubspot_lead, salesforce_lead)]
            misses = [(lead.sla_misses, lead.owner_id) for lead in (hubspot_lead, salesforce_lead)]
    assert misses == [(0, hs_owner), (0, sf_owner)]  # the call met each SLA
    for report in reports:
        assert report["stage"] == "won"
        [won] = report["deals"]
        assert (won["outcome"], won["amount"], won["currency"]) == ("won", 12000, "EUR")
        assert len(report["tasks"]) == 1  # no reminder
        calls = [entry["text"] for entry in report["timeline"] if entry["what"] == "event"
                 and entry["kind"] == "rep_activity"]
        assert len(calls) == 1 and "/rep_activity call" in calls[0]
    stages = [[entry["detail"]["outcome"] for entry in report["timeline"]
               if entry["what"] == "stage" and entry["cause"] == "deal"] for report in reports]
    assert stages[0] == stages[1] == ["won"]

"""``leadloop import hubspot|salesforce``: a CRM's records with their history, against ``responses`` pages.

The fixtures (tests/fixtures/<crm>/backfill_*.json) are shaped like the vendors' documented pages:
HubSpot's contacts list with ``propertiesWithHistory`` and ``paging.next.after``, the associations
and deals batch reads; Salesforce's SOQL query pages with ``nextRecordsUrl``, ``LeadHistory`` and
``Opportunity`` rows. Each backfill meets a rate limit on its second page and waits it out.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import responses
from sqlalchemy import func, select

from integration.imports.backfill import backfill
from integration.store.models import Deal, DealLead, Event, ImportProgress, Lead, OutboxWrite, ScoreRecord, Transition
from tests.hubspot_openapi import assert_valid_bodies

FIXTURES = Path(__file__).parent / "fixtures"
HUBSPOT = "https://api.hubapi.com"
CONTACTS = f"{HUBSPOT}/crm/objects/2026-03/contacts"
CONTACT_DEALS = f"{HUBSPOT}/crm/associations/2026-03/contacts/deals/batch/read"
DEALS_READ = f"{HUBSPOT}/crm/objects/2026-03/0-3/batch/read"
LOGIN = "https://login.salesforce.com/services/oauth2/token"
INSTANCE = "https://acme.my.salesforce.com"
QUERY = f"{INSTANCE}/services/data/v62.0/query"


def fixture(crm: str, name: str) -> dict:
    return json.loads((FIXTURES / crm / f"backfill_{name}.json").read_text())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def stored(svc) -> dict[str, dict]:
    with svc.sessions() as session:
        transitions = session.execute(select(Transition.lead_id, Transition.from_stage, Transition.to_stage,
                                             Transition.at).order_by(Transition.id)).all()
        return {lead.crm_id: {
            "email": lead.email, "fields": lead.fields, "stage": lead.stage, "band": lead.band,
            "created_at": lead.created_at,
            "transitions": [(a, b, when) for lead_id, a, b, when in transitions if lead_id == lead.id],
        } for lead in session.scalars(select(Lead))}


def counts(svc) -> dict[str, int]:
    with svc.sessions() as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model))
                for model in (Lead, Event, Transition, ScoreRecord, Deal, DealLead, OutboxWrite)}


# --- HubSpot ---------------------------------------------------------------------------------

@pytest.fixture
def hubspot_api(svc):
    svc.config["HUBSPOT_ACCESS_TOKEN"] = "pat-na1-test"
    pages = {None: fixture("hubspot", "contacts_page_1"), "103": fixture("hubspot", "contacts_page_2")}
    limited = []

    def contacts(request):
        after = parse_qs(urlparse(request.url).query).get("after", [None])[0]
        if after == "103" and not limited:  # the second page is refused once: a burst limit
            limited.append(request)
            return 429, {"Retry-After": "1"}, (FIXTURES / "hubspot" / "rate_limit_429_ten_secondly.json").read_text()
        return 200, {}, json.dumps(pages[after])

    def only_asked(name: str, key):
        def reply(request):
            asked = {item["id"] for item in json.loads(request.body)["inputs"]}
            body = fixture("hubspot", name)
            body["results"] = [result for result in body["results"] if key(result) in asked]
            return 200, {}, json.dumps(body)
        return reply

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.GET, CONTACTS, callback=contacts)
        mock.add_callback(responses.POST, CONTACT_DEALS, callback=only_asked("contacts_to_deals",
                                                                             lambda r: r["from"]["id"]))
        mock.add_callback(responses.POST, DEALS_READ, callback=only_asked("deals_batch_read", lambda r: r["id"]))
        mock.limited = limited
        yield mock
        assert_valid_bodies(mock.calls)


def test_a_hubspot_backfill_pages_through_contacts_with_their_history_and_deals(svc, hubspot_api):
    since = datetime.now(UTC) - timedelta(days=365)
    waits: list[float] = []

    def wait(seconds: float) -> None:  # really waits: the client's limiter holds every call meanwhile
        waits.append(seconds)
        time.sleep(seconds)

    done = backfill(svc, "hubspot", since, sleep=wait)

    lists = [call for call in hubspot_api.calls if call.request.method == "GET"]
    query = parse_qs(urlparse(lists[0].request.url).query)
    assert query["propertiesWithHistory"] == ["lifecyclestage,hs_lead_status"] and query["limit"] == ["50"]
    assert "email" in query["properties"][0].split(",")
    assert [parse_qs(urlparse(c.request.url).query).get("after") for c in lists] == [None, ["103"], ["103"]]
    assert len(hubspot_api.limited) == 1 and waits == [1.0] and done.waits == [1.0]

    leads = stored(svc)
    assert sorted(leads) == ["101", "102", "104"]  # 103 was last modified before --since
    ada = leads["101"]
    assert ada["email"] == "ada@acme-robotics.example" and ada["created_at"] == at("2026-09-01T08:00:00+00:00")
    assert ada["fields"]["employees"] == 250 and ada["fields"]["job_title"] == "Head of Operations"
    # Lifecycle and lead status history through the rules file; the won deal closes it.
    assert ada["transitions"] == [("new", "mql", at("2026-09-10T12:00:00+00:00")),
                                  ("mql", "sql", at("2026-09-20T12:00:00+00:00")),
                                  ("sql", "won", at("2026-10-20T12:00:00+00:00"))]
    assert leads["102"]["transitions"] == [("new", "recycled", at("2026-10-15T10:00:00+00:00"))]
    assert leads["102"]["fields"]["employees"] == "25-50"
    assert leads["104"]["stage"] == "sql"
    assert all(lead["band"] for lead in leads.values())
    assert counts(svc) == {"leads": 3, "events": 3, "transitions": 5, "scores": 3, "deals": 2, "deal_leads": 2,
                           "outbox": 0}
    with svc.sessions() as session:
        outcomes = dict(session.execute(select(Deal.crm_id, Deal.outcome)).all())
    assert outcomes == {"5001": "won", "5002": "open"}
    assert done.counts["pages"] == 2 and done.counts["leads"] == 3
    assert len(svc.queue) == 0


def test_a_finished_backfill_changes_nothing_and_an_interrupted_one_resumes_at_its_page(svc, hubspot_api):
    with pytest.raises(KeyboardInterrupt):
        def interrupt(seconds: float) -> None:
            raise KeyboardInterrupt  # killed while waiting out the rate limit on page 2
        backfill(svc, "hubspot", None, sleep=interrupt)
    with svc.sessions() as session:
        progress = session.scalars(select(ImportProgress)).one()
        assert progress.position == {"cursor": "103", "pages_done": False} and progress.finished_at is None
    assert counts(svc)["leads"] == 2

    done = backfill(svc, "hubspot", None)
    assert done.resumed_at["cursor"] == "103"
    before = counts(svc)
    assert before["leads"] == 4 and before["scores"] == 4  # 103 too: no --since
    calls = len(hubspot_api.calls)
    again = backfill(svc, "hubspot", None)
    assert again.already_done and len(hubspot_api.calls) == calls and counts(svc) == before


# --- Salesforce ------------------------------------------------------------------------------

@pytest.fixture
def salesforce_api(svc):
    svc.config.update({"SALESFORCE_CLIENT_ID": "3MVG9consumerkey", "SALESFORCE_REFRESH_TOKEN": "5Aep861refresh"})
    limited = []
    errors = json.loads((FIXTURES / "salesforce" / "rest_errors.json").read_text())

    def query(request):
        soql = parse_qs(urlparse(request.url).query)["q"][0]
        if "FROM LeadHistory" in soql:
            body = fixture("salesforce", "lead_history")
            body["records"] = [row for row in body["records"] if f"'{row['LeadId']}'" in soql]
            return 200, {}, json.dumps(body)
        if "FROM Opportunity" in soql:
            return 200, {}, json.dumps(fixture("salesforce", "opportunities"))
        return 200, {"Sforce-Limit-Info": "api-usage=18/5000"}, json.dumps(fixture("salesforce", "leads_page_1"))

    answers = ["limit"]  # the next page is refused once: the org's daily API limit

    def next_page(request):
        answer = answers.pop(0) if answers else "page"
        if answer == "limit":
            limited.append(request)
            return 403, {}, json.dumps(errors["403_REQUEST_LIMIT_EXCEEDED"])
        if answer == "expired":
            return 400, {}, json.dumps([{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}])
        return 200, {}, json.dumps(fixture("salesforce", "leads_page_2"))

    with responses.RequestsMock() as mock:
        mock.post(LOGIN, json={"access_token": "00Dxx!one", "instance_url": INSTANCE})
        mock.add_callback(responses.GET, QUERY, callback=query)
        mock.add_callback(responses.GET, f"{QUERY}/01gRO0000016PIAYA2-2", callback=next_page)
        mock.limited, mock.answers = limited, answers
        yield mock


def test_a_salesforce_backfill_follows_next_records_url_with_status_history_and_opportunities(svc, salesforce_api):
    since = datetime(2026, 1, 1, tzinfo=UTC)
    waits: list[float] = []
    done = backfill(svc, "salesforce", since, sleep=waits.append)

    soql = [parse_qs(urlparse(c.request.url).query).get("q", [""])[0] for c in salesforce_api.calls
            if c.request.url.startswith(QUERY)]
    assert soql[0].startswith("SELECT Id, Email,") and "CreatedDate, IsConverted, ConvertedDate" in soql[0]
    assert soql[0].endswith("FROM Lead WHERE LastModifiedDate >= 2026-01-01T00:00:00Z ORDER BY CreatedDate, Id")
    assert "FROM LeadHistory WHERE Field = 'Status' AND LeadId IN ('00Q5e00000AbCdEAAA', '00Q5e00000BcDeFAAA')" \
        in soql[1]
    assert soql[2] == ("SELECT Id, StageName, IsWon, IsClosed, Amount, CloseDate, CreatedDate FROM Opportunity "
                       "WHERE Id IN ('0065e00000XyZaBAAV')")
    assert len(salesforce_api.limited) == 1 and waits == [900.0]  # REQUEST_LIMIT_EXCEEDED: wait, same page again

    leads = stored(svc)
    assert sorted(leads) == ["00Q5e00000AbCdEAAA", "00Q5e00000BcDeFAAA", "00Q5e00000CdEfGAAA"]
    ada = leads["00Q5e00000AbCdEAAA"]
    assert ada["email"] == "ada@acme-robotics.example" and ada["fields"]["employees"] == 250
    assert ada["transitions"] == [("new", "accepted", at("2026-09-12T09:30:00+00:00")),
                                  ("accepted", "sql", at("2026-09-25T15:00:00+00:00")),
                                  ("sql", "won", at("2026-10-20T00:00:00+00:00"))]
    assert leads["00Q5e00000BcDeFAAA"]["transitions"] == [("new", "recycled", at("2026-10-08T11:00:00+00:00"))]
    # "Open - Not Contacted" is written for two stages (nurture and mql): it says nothing.
    assert leads["00Q5e00000CdEfGAAA"]["stage"] == "new" and leads["00Q5e00000CdEfGAAA"]["transitions"] == []
    assert counts(svc) == {"leads": 3, "events": 3, "transitions": 4, "scores": 3, "deals": 1, "deal_leads": 1,
                           "outbox": 0}
    with svc.sessions() as session:
        deal = session.scalars(select(Deal)).one()
        assert (deal.outcome, str(deal.amount), deal.closed_at) == ("won", "48000.00", at("2026-10-20T00:00:00+00:00"))
    assert done.counts["pages"] == 2


def test_an_expired_salesforce_cursor_starts_the_backfill_over_without_duplicates(svc, salesforce_api):
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt  # killed while waiting out the API limit on page 2

    with pytest.raises(KeyboardInterrupt):
        backfill(svc, "salesforce", None, sleep=interrupt)
    assert counts(svc)["leads"] == 2
    salesforce_api.answers.append("expired")  # the stored nextRecordsUrl is no longer valid
    done = backfill(svc, "salesforce", None)
    assert done.resumed_at["cursor"] == "/services/data/v62.0/query/01gRO0000016PIAYA2-2"
    assert counts(svc) == {"leads": 3, "events": 3, "transitions": 4, "scores": 3, "deals": 1, "deal_leads": 1,
                           "outbox": 0}
    assert done.counts["pages"] == 3  # page 1 twice (nothing new the second time), then page 2


# --- the command -----------------------------------------------------------------------------

@pytest.fixture
def environment(config, monkeypatch):
    for name, value in config.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_the_command_backfills_and_names_missing_credentials(svc, environment, hubspot_api, capsys):
    from integration.cli.main import main

    assert main(["import", "hubspot", "--since", "365d"]) == 2
    assert "hubspot: no API credentials: set HUBSPOT_ACCESS_TOKEN" in capsys.readouterr().err
    assert main(["import", "hubspot", "--since", "last year"]) == 2
    assert "neither a duration like 365d nor a date" in capsys.readouterr().err

    environment.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-test")
    assert main(["import", "hubspot", "--dry-run"]) == 0
    shown = capsys.readouterr()
    assert "hubspot:101; email ada@acme-robotics.example; created 2026-09-01T08:00:00+00:00" in shown.out
    assert "stages mql 2026-09-10T12:00:00+00:00, mql 2026-09-10T12:00:00+00:00, sql" in shown.out
    assert "2 records on the first page (more pages follow); nothing was written" in shown.err
    assert counts(svc)["leads"] == 0

    assert main(["import", "hubspot", "--since", "2025-11-30"]) == 0
    assert capsys.readouterr().out.strip() == ("3 records read in 2 pages; 3 leads and 2 deals imported, "
                                               "5 stage changes, 3 leads scored; 1 rate-limit wait")
    assert counts(svc)["leads"] == 3

"""The seeded demo data set: deterministic, large, accepted by the real endpoints, and scored by the
shipped rules into every band with enough hand-offs (and none of the leads that must never be one)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from werkzeug.datastructures import Headers

from connectors import status_fields
from connectors.base import InboundRequest, IntakeContext
from connectors.events import ACTIVITY_KINDS
from connectors.hubspot.webhook import parse_webhook, verify_webhook
from connectors.salesforce.webhook import map_fields, parse_outbound_message, verify_token
from integration.demo import data as demo_data
from integration.demo.data import HUBSPOT_PATH, SALESFORCE_PATH, WEB_PATH, generate
from integration.web import intake as web_events
from scoring import LeadProfile, Signal, load_rules_file, score_lead
from scoring.checks import DISPOSABLE_DOMAINS, FREE_MAIL_DOMAINS, looks_gibberish, phone_status
from scoring.fields import country_code
from scoring.lifecycle import disposition_for
from scoring.matchers import url_pattern

RULES_FILE = Path(__file__).parents[1] / "rules" / "leadloop.yaml"
NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
ENV = {
    "LEADLOOP_EVENTS_SECRETS": "demo_current,demo_previous",
    "HUBSPOT_CLIENT_SECRETS": "demo-hubspot-secret",
    "SALESFORCE_WEBHOOK_TOKENS": "demotoken123,oldtoken",
    "SALESFORCE_ORG_ID": "00Dd0000000demoEAA",
    "PUBLIC_BASE_URL": "http://127.0.0.1:8080",
}
CONTEXT = IntakeContext(ENV, now=NOW)
NEVER_MQL = {"junk", "student", "competitor", "do_not_contact"}


@cache
def dataset() -> demo_data.Dataset:
    return generate(now=NOW)


@cache
def rules():
    return load_rules_file(RULES_FILE, status_fields())


def inbound(outgoing: demo_data.OutgoingRequest) -> InboundRequest:
    body, headers, path = outgoing.render(ENV)
    token = path.rsplit("/", 1)[-1] if outgoing.path == SALESFORCE_PATH else None
    return InboundRequest("POST", ENV["PUBLIC_BASE_URL"] + path, Headers(headers), body,
                          {"token": token} if token else {})


def parse(outgoing: demo_data.OutgoingRequest) -> list:
    """Verify and parse a request exactly as its endpoint does; return the events."""
    request = inbound(outgoing)
    if outgoing.path == WEB_PATH:
        web_events.verify(request, CONTEXT)
        return web_events.parse(request, CONTEXT)
    if outgoing.path == HUBSPOT_PATH:
        verify_webhook(request, CONTEXT)
        return parse_webhook(request, CONTEXT)
    verify_token(request, CONTEXT)
    return parse_outbound_message(request, CONTEXT)


def profile_of(lead: demo_data.DemoLead) -> dict:
    """The fields the pipeline will hold: the Salesforce record as mapped, else the form's fields."""
    if lead.sobject is not None:
        return map_fields(lead.sobject, "test")
    return {**lead.events[0]["properties"].get("fields", {}), "email": lead.email}


def score(lead: demo_data.DemoLead, as_of: datetime = NOW):
    signals = [Signal(e["type"], datetime.fromisoformat(e["occurred_at"]), e["properties"], e["id"])
               for e in lead.events]
    return score_lead(LeadProfile(profile_of(lead)), signals, rules(), as_of)


@cache
def results() -> list:
    return [(lead, score(lead)) for lead in dataset().leads]


# --- shape and size ------------------------------------------------------------------------------

def test_same_seed_same_bodies_other_seed_other_bodies():
    def bodies(data):
        return [(r.path, r.render(ENV)[0]) for r in data.phase1]

    first, again = generate(leads=120, seed=3, now=NOW), generate(leads=120, seed=3, now=NOW)
    assert bodies(first) == bodies(again)
    assert bodies(first) != bodies(generate(leads=120, seed=4, now=NOW))


def test_counts_span_and_crm_mix():
    data = dataset()
    assert data.lead_count == len(data.leads) >= 500
    assert 5000 <= data.event_count <= 9000
    web = [e for lead in data.leads for e in lead.events]
    assert data.event_count == len(web) + sum(1 for lead in data.leads if lead.crm)
    times = [datetime.fromisoformat(e["occurred_at"]) for e in web]
    assert NOW - timedelta(days=90) <= min(times) and max(times) <= NOW
    assert max(times) - min(times) > timedelta(days=80)  # spread over the whole period
    crms = Counter(lead.crm for lead in data.leads)
    assert crms == {"hubspot": 330, "salesforce": 180, None: 90}
    assert all(c.isalnum() and len(c) == 18 and c.startswith("00Q") for c in
               (lead.crm_id for lead in data.leads if lead.crm == "salesforce"))


def test_batch_sizes_unique_ids_redeliveries_and_disorder():
    data = dataset()
    sizes = {path: max(len(r.items) for r in data.phase1 if r.path == path) for path in _paths()}
    assert sizes[WEB_PATH] <= 500 and sizes[HUBSPOT_PATH] <= 100 and sizes[SALESFORCE_PATH] <= 100
    sent = [e["id"] for r in data.phase1 if r.path == WEB_PATH for e in r.items]
    distinct = {e["id"] for lead in data.leads for e in lead.events}
    assert set(sent) == distinct and len(distinct) == sum(len(lead.events) for lead in data.leads)
    resent = len(sent) - len(distinct)
    hubspot_retries = [e for r in data.phase1 if r.path == HUBSPOT_PATH for e in r.items if e["attemptNumber"] > 0]
    assert resent >= 3 and hubspot_retries
    assert data.redeliveries == resent + len(hubspot_retries) + _salesforce_resends(data)
    stamps = [e["occurred_at"] for r in data.phase1 if r.path == WEB_PATH for e in r.items]
    assert stamps != sorted(stamps)  # some arrive out of order


def _paths():
    return (WEB_PATH, HUBSPOT_PATH, SALESFORCE_PATH)


def _salesforce_resends(data) -> int:
    ids = [n["id"] for r in data.phase1 if r.path == SALESFORCE_PATH for n in r.items]
    return len(ids) - len(set(ids))


# --- the real endpoints accept every request -----------------------------------------------------------

def test_every_request_passes_its_endpoints_verifier_and_parser():
    data = dataset()
    kinds, crm_ids = Counter(), Counter()
    for outgoing in data.phase1:
        events = parse(outgoing)
        assert len(events) == len(outgoing.items)
        kinds.update(e.kind for e in events)
        crm_ids.update((e.crm, e.crm_id) for e in events if e.source != "web")
    by_ref = {(lead.crm, lead.crm_id): lead for lead in data.leads if lead.crm}
    assert set(crm_ids) == set(by_ref)
    assert kinds["lead_created"] >= 330 and kinds["record_snapshot"] >= 180
    assert set(kinds) - {"lead_created", "record_snapshot"} <= ACTIVITY_KINDS


def test_salesforce_records_and_hubspot_events_carry_the_documented_fields():
    data = dataset()
    hubspot = next(r for r in data.phase1 if r.path == HUBSPOT_PATH).items[0]
    assert set(hubspot) == {"eventId", "subscriptionId", "portalId", "appId", "occurredAt", "subscriptionType",
                            "attemptNumber", "objectId", "changeFlag", "changeSource", "sourceId"}
    salesforce = next(r for r in data.phase1 if r.path == SALESFORCE_PATH)
    (event, *_) = parse(salesforce)
    lead = next(lead for lead in data.leads if lead.crm_id == event.crm_id)
    assert event.email == lead.email and event.fields["lead_status"] == "Open - Not Contacted"
    assert {"Id", "Email", "LastName", "Status", "LeadSource", "LastModifiedDate"} <= set(lead.sobject)
    assert event.occurred_at == datetime.strptime(lead.sobject["LastModifiedDate"], demo_data.SF_TIME) \
        .replace(tzinfo=UTC)


def test_assets_and_urls_are_the_rules_files():
    assets = yaml.safe_load(RULES_FILE.read_text())["assets"]
    patterns = {name: url_pattern(spec["urls"]) for name, spec in assets.items() if spec.get("urls")}
    general = {demo_data.SITE + page for page in demo_data.PAGES["general"]}
    for lead in dataset().leads:
        for event in lead.events:
            props = event["properties"]
            if "asset" in props:
                assert props["asset"] in assets
                if props["asset"] in patterns:
                    assert patterns[props["asset"]].match(props["url"]), props
            elif event["type"] == "page_view":
                assert props["url"] in general or any(p.match(props["url"]) for p in patterns.values()), props
    for asset, pages in demo_data.PAGES.items():
        if asset != "general":
            assert all(patterns[asset].match(demo_data.SITE + page) for page in pages), asset


# --- who the leads are ------------------------------------------------------------------------------

def test_good_leads_have_plausible_profiles():
    checked = 0
    for lead in dataset().leads:
        fields = profile_of(lead)
        local, domain = lead.email.split("@")
        if lead.persona == "junk":
            assert looks_gibberish(local) or domain in DISPOSABLE_DOMAINS or local in ("test", "info", "john.doe")
            continue
        assert not looks_gibberish(local), lead.email
        if fields.get("phone"):
            region = country_code(str(fields["country"]))
            assert phone_status(fields["phone"], region) == "valid", (fields["phone"], region)
            checked += 1
        if lead.persona in ("trial", "event", "hot_content"):
            assert domain not in FREE_MAIL_DOMAINS and domain not in DISPOSABLE_DOMAINS
            assert {"first_name", "last_name", "company", "job_title", "country", "industry"} <= set(fields)
    assert checked > 200
    own = {company[1] for company in demo_data.COMPANIES}
    assert not own & (FREE_MAIL_DOMAINS | DISPOSABLE_DOMAINS)


def test_competitor_domains_come_from_the_rules():
    listed = set(yaml.safe_load(RULES_FILE.read_text())["negative"]["competitor"]["domains"])
    assert {domain for _, domain in demo_data.COMPETITORS} <= listed


# --- what the shipped rules make of them -----------------------------------------------------------

def test_all_bands_occur_and_enough_mqls():
    scored = results()
    bands = Counter(result.band for _, result in scored)
    assert set(bands) == {"cold", "cool", "warm", "hot"} and min(bands.values()) >= 20
    mqls = [lead for lead, result in scored if result.mql]
    assert 20 <= len(mqls) <= 200
    assert {lead.crm for lead in mqls} == {"hubspot", "salesforce", None}


def test_some_leads_qualify_in_the_last_days():
    fresh = [lead for lead, result in results() if result.mql and not score(lead, NOW - timedelta(days=3)).mql]
    assert len(fresh) >= 5


@pytest.mark.parametrize("persona", sorted(NEVER_MQL))
def test_leads_that_must_never_be_handed_off(persona):
    scored = [(lead, result) for lead, result in results() if lead.persona == persona]
    assert len(scored) >= 10
    assert not any(result.mql for _, result in scored)
    if persona != "junk":
        assert all(result.disqualified for _, result in scored)


def test_negative_signals_fire():
    fired = Counter(reason.rule for _, result in results() for reason in result.reasons)
    for rule in ("free_mail", "disposable", "gibberish", "missing_phone", "invalid_phone", "student", "competitor",
                 "bounce", "unsubscribe", "job-seeker", "very-small-company"):
        assert fired[rule] > 0, rule


# --- phase 2: sales answers the hand-offs ---------------------------------------------------------------

@pytest.mark.parametrize(("crm", "answer", "kind", "reason"), [
    ("hubspot", "accepted", "accepted", None), ("hubspot", "not_ready", "rejected", "not_ready"),
    ("hubspot", "bad_data", "rejected", "bad_data"), ("salesforce", "accepted", "accepted", None),
    ("salesforce", "not_ready", "rejected", "not_ready"),
])
def test_feedback_values_mean_what_the_rules_say(crm, answer, kind, reason):
    field = {"hubspot": "hs_lead_status", "salesforce": "Status"}[crm]
    for value in demo_data.FEEDBACK[crm][answer]:
        disposition = disposition_for(crm, field, value, rules().lifecycle)
        assert (disposition.kind, disposition.reason) == (kind, reason), value


def _store(stages: dict[tuple[str, str], str]) -> SimpleNamespace:
    from integration.store.models import Base, Lead

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine)
    with sessions.begin() as session:
        for (crm, crm_id), stage in stages.items():
            session.add(Lead(crm=crm, crm_id=crm_id, email=f"{crm_id}@example.com", stage=stage, fields={},
                             field_times={}))
    return SimpleNamespace(sessions=sessions)


def test_phase2_answers_the_mql_leads_through_the_crm_webhooks():
    data = dataset()
    crm_leads = [lead for lead in data.leads if lead.crm]
    stages = {(lead.crm, lead.crm_id): "mql" for lead in crm_leads[:80]}
    stages |= {(lead.crm, lead.crm_id): "nurture" for lead in crm_leads[80:120]}
    at = NOW + timedelta(minutes=30)
    requests = data.phase2_builder(_store(stages), at=at)
    events = [event for outgoing in requests for event in parse(outgoing)]
    assert all(stages[(e.crm, e.crm_id)] == "mql" for e in events)
    answers = Counter(disposition_for(e.crm, "lead_status", e.fields["lead_status"], rules().lifecycle).kind
                      for e in events)
    assert 35 <= answers["accepted"] <= 45 and 15 <= answers["rejected"] <= 30
    assert len(events) < 80  # some get no answer and will miss their SLA
    for event in events:
        assert event.occurred_at == at.replace(microsecond=0) or event.occurred_at == at
        if event.crm == "salesforce":
            lead = next(lead for lead in crm_leads if lead.crm_id == event.crm_id)
            assert event.fields["email"] == lead.email and event.fields["last_name"] == lead.sobject["LastName"]
            assert event.occurred_at > datetime.fromisoformat(lead.sobject["LastModifiedDate"].replace("Z", "+00:00"))
    assert requests == data.phase2_builder(_store(stages), at=at)  # deterministic


def test_phase2_without_mql_leads_sends_nothing():
    assert dataset().phase2_builder(_store({("hubspot", "123"): "nurture"}), at=NOW) == []


def test_requests_are_json_or_soap_with_the_right_content_type():
    for outgoing in dataset().phase1[:6]:
        body, headers, path = outgoing.render(ENV)
        if outgoing.path == SALESFORCE_PATH:
            assert headers["Content-Type"].startswith("text/xml") and path == "/webhooks/salesforce/demotoken123"
            assert body.startswith(b"<?xml")
        else:
            assert headers["Content-Type"] == "application/json" and isinstance(json.loads(body), list)


# --- phase 3: sales turns accepted leads into deals --------------------------------------------------

def test_phase3_makes_deals_of_the_accepted_leads_through_the_crm_webhooks():
    from scoring.lifecycle_outcomes import DealStage, deal_outcome

    data = dataset()
    crm_leads = [lead for lead in data.leads if lead.crm]
    stages = {(lead.crm, lead.crm_id): "accepted" for lead in crm_leads[:100]}
    stages |= {(lead.crm, lead.crm_id): "mql" for lead in crm_leads[100:140]}
    at = NOW + timedelta(hours=2)
    requests = data.deals_builder(_store(stages), at=at)
    events = [event for outgoing in requests for event in parse(outgoing)]
    deals = [e for e in events if e.kind == "deal_change"]
    conversions = [e for e in events if e.kind == "record_snapshot"]
    assert {e.kind for e in events} == {"deal_change", "record_snapshot"}
    assert all(e.properties["converted_opportunity_id"] and e.fields["lead_status"] == "Closed - Converted"
               for e in conversions)
    # Every deal names a lead sales accepted: a HubSpot contact, or the Contact a Salesforce Lead became.
    contacts = {e.properties["converted_contact_id"] for e in conversions}
    for event in deals:
        for person in event.properties.get("contact_ids", []):
            assert (event.crm, person) in stages or person in contacts
    # How each deal ends, read as leadloop reads it (HubSpot: the rules' stage table; Salesforce: IsWon/IsClosed).
    last = {}
    for event in sorted(deals, key=lambda e: e.occurred_at):
        state = last.setdefault((event.crm, event.record_id), {})
        state.update({k: v for k, v in event.properties.items() if k in ("stage", "pipeline", "is_closed", "is_won")})
    ends = Counter(deal_outcome(crm, DealStage(s.get("pipeline"), s.get("stage"), s.get("is_closed"), s.get("is_won")),
                                rules().lifecycle) for (crm, _), s in last.items())
    assert 60 <= sum(ends.values()) <= 95
    assert ends["won"] >= 25 and ends["lost"] >= 15 and ends["open"] >= 10, ends
    assert all(at < e.occurred_at < at + timedelta(minutes=20) for e in events)
    assert requests == data.deals_builder(_store(stages), at=at)  # deterministic


def test_sales_answers_some_hours_after_each_hand_off_and_deals_close_weeks_after_acceptance():
    # The demo's funnel shows real times between stages: each answer 1 h to 3 days after its
    # lead's hand-off, each deal opened 1-10 days after the acceptance and closed 1-4 weeks later,
    # never after the moment the demo sends them.
    data = dataset()
    crm_leads = [lead for lead in data.leads if lead.crm][:80]
    refs = [(lead.crm, lead.crm_id) for lead in crm_leads]
    by_ref = {(lead.crm, lead.crm_id): lead for lead in crm_leads}
    at = NOW + timedelta(days=90)
    handed_off = {ref: NOW + timedelta(days=i % 30) for i, ref in enumerate(refs)}
    handed_off[refs[0]] = at - timedelta(minutes=5)  # handed off just now: answered no later than `at`
    answers = [event for outgoing in demo_data.feedback_requests(refs, by_ref, 7, at, handed_off)
               for event in parse(outgoing)]
    assert answers
    for event in answers:
        start = handed_off[(event.crm, event.crm_id)]
        assert event.occurred_at <= at
        assert start + timedelta(hours=1) - timedelta(seconds=1) <= event.occurred_at <= start + timedelta(hours=72) \
            or event.occurred_at == at.replace(microsecond=0) or event.occurred_at == at
    accepted_at = {ref: NOW + timedelta(days=i % 30) for i, ref in enumerate(refs)}
    deals = [event for outgoing in demo_data.deal_requests(refs, by_ref, 7, at, accepted_at)
             for event in parse(outgoing) if event.kind == "deal_change"]
    assert deals and all(event.occurred_at <= at + timedelta(seconds=20) for event in deals)
    assert max(event.occurred_at for event in deals) - min(event.occurred_at for event in deals) > timedelta(days=7)

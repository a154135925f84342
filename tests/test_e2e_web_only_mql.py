"""Web-only MQLs reach the CRM: a lead known only by its email is created where the rules say
(``handoff.create_in``) when it is handed off, linked to that record, and gets its task.

Real app, worker, database and Redis; only the CRMs' HTTP APIs are faked (``tests.fake_crms``),
and every HubSpot request body is checked against HubSpot's published request schemas.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from sqlalchemy import func, select

from integration.store.models import Event, Lead, OutboxWrite
from tests.conftest import drain, post_events, running_app, web_event
from tests.fake_crms import HUBSPOT, LIVE, FakeHubSpot, FakeSalesforce
from tests.hubspot_openapi import assert_valid_bodies
from tests.test_e2e_hubspot import change, hs_event, post_hubspot
from tests.test_e2e_salesforce import notification_id, outbound_message, post_soap

SHIPPED_RULES = Path(__file__).resolve().parent.parent / "rules" / "leadloop.yaml"
EMAIL = "ada@acme-logistics.example"


def rules_creating_in(tmp_path: Path, crm: str | None) -> str:
    """The shipped rules file with ``handoff.create_in`` set to ``crm`` (None: left out)."""
    rules = yaml.safe_load(SHIPPED_RULES.read_text())
    rules["handoff"].pop("create_in", None)
    if crm:
        rules["handoff"]["create_in"] = crm
    path = tmp_path / f"rules-{crm}.yaml"
    path.write_text(yaml.safe_dump(rules))
    return str(path)


def hot_web_lead(email: str = EMAIL, **fields: Any) -> list[dict[str, Any]]:
    """A demo request and a trial sign-up from the website: a hot MQL with no CRM record."""
    now = datetime.now(UTC)
    profile = {"first_name": "Ada", "company": "Acme Logistics", "job_title": "VP Operations",
               "phone": "+49 30 1234567", "country": "DE", "employees": 250, "industry": "Logistics", **fields}
    return [web_event(f"{email}-form", "form_submit", email=email,
                      occurred_at=(now - timedelta(hours=1)).isoformat(),
                      properties={"form": "demo-request", "fields": profile}),
            web_event(f"{email}-trial", "trial_signup", email=email,
                      occurred_at=(now - timedelta(minutes=5)).isoformat())]


def live_leads(svc: Any) -> list[Lead]:
    with svc.sessions() as session:
        return list(session.scalars(select(Lead).where(Lead.merged_into_id.is_(None)).order_by(Lead.id)))


def writes(svc: Any, kind: str | None = None) -> list[OutboxWrite]:
    with svc.sessions() as session:
        stmt = select(OutboxWrite).order_by(OutboxWrite.id)
        return list(session.scalars(stmt.where(OutboxWrite.kind == kind) if kind else stmt))


def hubspot_calls(mock: Any) -> list[Any]:
    return [call for call in mock.calls if call.request.url.startswith(HUBSPOT)]


def upsert_inputs(call: Any) -> list[dict[str, Any]]:
    return json.loads(call.request.body)["inputs"]


# --- HubSpot ------------------------------------------------------------------------------------

def test_a_web_only_mql_becomes_a_hubspot_contact_with_its_task(config, tmp_path):
    with running_app(config, **LIVE, LEADLOOP_RULES=rules_creating_in(tmp_path, "hubspot")) as app, \
            responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        hubspot, svc, client = FakeHubSpot(mock), app.extensions["leadloop"], app.test_client()
        assert post_events(client, hot_web_lead()).status_code == 200
        drain(svc)
        assert_valid_bodies(hubspot_calls(mock))

        [lead] = live_leads(svc)
        assert (lead.crm, lead.crm_id, lead.stage, lead.band) == ("hubspot", "5001", "mql", "hot")
        # The status the create wrote is the lead's and its status at hand-off: the contact's
        # creation coming back from HubSpot is not sales acting on the hand-off.
        assert (lead.fields["lead_status"], lead.handoff_status) == ("NEW", "NEW")
        # One upsert by email makes the contact complete: what the person told us, the score, the
        # hand-off's owner and the MQL stage's HubSpot fields.
        [upsert] = hubspot.requests("POST", "/contacts/batch/upsert")
        [item] = upsert_inputs(upsert)
        assert (item["id"], item["idProperty"]) == (EMAIL, "email")
        props = item["properties"]
        assert {k: props[k] for k in ("email", "firstname", "company", "jobtitle", "phone")} == {
            "email": EMAIL, "firstname": "Ada", "company": "Acme Logistics", "jobtitle": "VP Operations",
            "phone": "+49 30 1234567"}
        assert (props["leadloop_stage"], props["leadloop_mql"], props["leadloop_band"]) == ("mql", "true", "hot")
        assert (props["lifecyclestage"], props["hs_lead_status"]) == ("marketingqualifiedlead", "NEW")
        assert props["hubspot_owner_id"] == lead.owner_id
        # Then the task, on the new contact.
        [task_id] = hubspot.tasks
        assert hubspot.tasks[task_id]["contact"] == "5001"
        urls = [call.request.url for call in hubspot_calls(mock)]
        assert urls.index(upsert.request.url) < urls.index(f"{HUBSPOT}/crm/objects/2026-03/tasks")
        [create], [task] = writes(svc, "create"), writes(svc, "task")
        assert (create.status, create.crm_id, create.external_id) == ("sent", "5001", "5001")
        assert (task.status, task.crm_id, task.external_id) == ("sent", "5001", task_id)
        assert hubspot.tasks[task_id]["key"] == task.idempotency_key

        # Later changes of that contact in HubSpot land on the same lead: sales accepts it.
        assert post_hubspot(client, [change(5001, 9001, datetime.now(UTC), "hs_lead_status", "IN_PROGRESS")]
                            ).status_code == 200
        drain(svc)
        assert_valid_bodies(hubspot_calls(mock))
    [same] = live_leads(svc)
    assert (same.id, same.stage) == (lead.id, "accepted")
    with svc.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event).where(Event.source == "hubspot",
                                                                             Event.lead_id == lead.id)) == 1


def test_a_contact_leadloop_already_knows_by_id_is_merged_into_the_handed_off_lead(config, tmp_path):
    """HubSpot matches the email to contact 4242, which leadloop holds as a lead of its own (its
    creation webhook came without an email): that lead is merged into the one handed off."""
    with running_app(config, **LIVE, LEADLOOP_RULES=rules_creating_in(tmp_path, "hubspot")) as app, \
            responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        hubspot = FakeHubSpot(mock, contacts={EMAIL: "4242"})
        svc, client = app.extensions["leadloop"], app.test_client()
        assert post_hubspot(client, [hs_event("contact.creation", 4242, 801, datetime.now(UTC) - timedelta(days=2),
                                              changeFlag="CREATED")]).status_code == 200
        assert post_events(client, hot_web_lead()).status_code == 200
        with svc.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Lead)) == 2  # the id-only lead and the web-only one
        drain(svc)
        assert_valid_bodies(hubspot_calls(mock))

        [survivor] = live_leads(svc)
        assert (survivor.crm, survivor.crm_id, survivor.stage, survivor.email) == ("hubspot", "4242", "mql", EMAIL)
        with svc.sessions() as session:
            merged = session.scalars(select(Lead).where(Lead.id != survivor.id)).one()
            assert (merged.merged_into_id, merged.crm, merged.crm_id) == (survivor.id, None, None)
            # The id-only lead's history moved over; its own pending write was superseded.
            assert session.scalar(select(func.count()).select_from(Event).where(Event.lead_id == merged.id)) == 0
            assert session.scalar(select(func.count()).select_from(Event)
                                  .where(Event.lead_id == survivor.id, Event.source == "hubspot")) == 1
        assert not any(w.status == "pending" for w in writes(svc))
        assert [t["contact"] for t in hubspot.tasks.values()] == ["4242"]
        assert len(hubspot.contacts) == 1

        assert post_hubspot(client, [change(4242, 802, datetime.now(UTC), "jobtitle", "COO")]).status_code == 200
        drain(svc)
    [same] = live_leads(svc)
    assert (same.id, same.fields["job_title"]) == (survivor.id, "COO")


# --- Salesforce ---------------------------------------------------------------------------------

def test_a_web_only_mql_becomes_a_salesforce_lead_with_its_task(config, tmp_path):
    with running_app(config, **LIVE, LEADLOOP_RULES=rules_creating_in(tmp_path, "salesforce")) as app, \
            responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        salesforce, svc, client = FakeSalesforce(mock), app.extensions["leadloop"], app.test_client()
        assert post_events(client, hot_web_lead()).status_code == 200
        drain(svc)

        [lead] = live_leads(svc)
        [(record_id, fields)] = salesforce.records["Lead"].items()
        assert (lead.crm, lead.crm_id, lead.stage) == ("salesforce", record_id, "mql")
        # Required fields come from what is known, the documented placeholder where nothing is.
        assert {k: fields[k] for k in ("Email", "FirstName", "LastName", "Company", "Title", "NumberOfEmployees")} == {
            "Email": EMAIL, "FirstName": "Ada", "LastName": "[not provided]", "Company": "Acme Logistics",
            "Title": "VP Operations", "NumberOfEmployees": 250}
        assert (fields["Leadloop_Stage__c"], fields["Status"], fields["OwnerId"]) == (
            "mql", "Open - Not Contacted", lead.owner_id)
        [upsert] = salesforce.requests("PATCH", r"/sobjects/Lead/Leadloop_Key__c/")
        assert upsert.request.headers["Sforce-Auto-Assign"] == "FALSE"
        [(task_id, task_fields)] = salesforce.records["Task"].items()
        assert task_fields["WhoId"] == record_id
        [create], [task] = writes(svc, "create"), writes(svc, "task")
        assert (create.status, create.crm_id, create.idempotency_key) == ("sent", record_id, fields["Leadloop_Key__c"])
        assert (task.status, task.crm_id, task.external_id) == ("sent", record_id, task_id)

        # The Lead's outbound messages now find this lead: sales starts working it.
        message = outbound_message([(notification_id(1), record_id, {
            "Email": EMAIL, "LastName": "[not provided]", "Company": "Acme Logistics", "Status": "Working - Contacted",
            "LastModifiedDate": datetime.now(UTC).isoformat()})])
        assert post_soap(client, message).status_code == 200
        drain(svc)
    [same] = live_leads(svc)
    assert (same.id, same.stage) == (lead.id, "accepted")


def test_a_duplicate_rule_refusal_is_recorded_and_the_task_waits_for_no_record(config, tmp_path):
    with running_app(config, **LIVE, LEADLOOP_RULES=rules_creating_in(tmp_path, "salesforce")) as app, \
            responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        FakeSalesforce(mock, duplicate_emails=(EMAIL,))
        svc, client = app.extensions["leadloop"], app.test_client()
        assert post_events(client, hot_web_lead()).status_code == 200
        drain(svc)
    [lead] = live_leads(svc)
    assert (lead.crm, lead.stage) == (None, "mql")
    [create], [task] = writes(svc, "create"), writes(svc, "task")
    assert (create.status, create.last_error) == (
        "failed", "DUPLICATES_DETECTED: Use one of these records? (rule Standard_Lead_Duplicate_Rule; "
                  "matches Lead 00Q1N00000OldLeadAAA)")
    assert (task.status, task.crm_id) == ("failed", "")
    assert task.last_error == f"no salesforce record: the create failed ({create.last_error})"


# --- shadow mode --------------------------------------------------------------------------------

@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_shadow_mode_records_the_create_and_the_task_and_sends_nothing(config, tmp_path, crm):
    with running_app(config, LEADLOOP_RULES=rules_creating_in(tmp_path, crm)) as app, \
            responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        svc = app.extensions["leadloop"]
        assert post_events(app.test_client(), hot_web_lead()).status_code == 200
        drain(svc)
        assert len(mock.calls) == 0
    [lead] = live_leads(svc)
    assert (lead.crm, lead.stage) == (None, "mql")  # no record is made in shadow mode
    [create], [task] = writes(svc, "create"), writes(svc, "task")
    assert (create.crm, create.status, create.payload["record"]["email"]) == (crm, "shadow", EMAIL)
    assert create.payload["owner_id"] == lead.owner_id and create.payload["fields"]["stage"] == "mql"
    assert (task.crm, task.status, task.crm_id) == (crm, "shadow", "")
    assert create.id < task.id


def test_without_create_in_a_web_only_mql_stays_out_of_the_crm(config, tmp_path):
    with running_app(config, LEADLOOP_RULES=rules_creating_in(tmp_path, None)) as app:
        svc = app.extensions["leadloop"]
        assert post_events(app.test_client(), hot_web_lead()).status_code == 200
        drain(svc)
    [lead] = live_leads(svc)
    assert (lead.crm, lead.stage, lead.sla_due_at is not None) == (None, "mql", True)
    assert writes(svc) == []


def test_a_lead_handed_off_in_shadow_mode_gets_its_record_at_the_next_hand_off_once_live(config, tmp_path):
    """Going live: the create recorded in shadow mode made nothing, so the SLA's reminder (a new
    hand-off of the same lead) creates the record, then the reminder's task."""
    from integration.pipeline.jobs import sweep_slas
    from integration.web import create_app

    rules = rules_creating_in(tmp_path, "hubspot")
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # a Tuesday
    moment = {"now": start}
    with running_app(config, LEADLOOP_RULES=rules) as shadow:
        svc = shadow.extensions["leadloop"]
        assert post_events(shadow.test_client(), hot_web_lead()).status_code == 200
        drain(svc)
    [lead] = live_leads(svc)
    assert [w.status for w in writes(svc)] == ["shadow", "shadow"] and lead.crm is None

    live = create_app({**config, **LIVE, "LEADLOOP_RULES": rules}, clock=lambda: moment["now"])
    svc = live.extensions["leadloop"]
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            hubspot = FakeHubSpot(mock)
            moment["now"] = max(start, lead.sla_due_at) + timedelta(minutes=10)
            assert sweep_slas() == {"due": 1}
            drain(svc)
            assert_valid_bodies(hubspot_calls(mock))
        [lead] = live_leads(svc)
        assert (lead.crm, lead.crm_id, lead.sla_misses) == ("hubspot", "5001", 1)
        # The create carries the score fields: no separate update.
        assert [(w.kind, w.status) for w in writes(svc)] == [
            ("create", "shadow"), ("task", "shadow"), ("create", "sent"), ("task", "sent")]
        assert [t["contact"] for t in hubspot.tasks.values()] == ["5001"]
    finally:
        svc.engine.dispose()
        svc.redis.close()

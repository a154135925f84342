"""A worker killed between the CRM's create and leadloop's commit: the retried flush finds what
the first attempt created instead of creating it again, for each CRM.

The kill is the commit failing (the flush's transaction rolls back, as a killed process's would)
right after the connector's create succeeded on the fake CRM; RQ retries the flush job, as it
does after a dead worker. Real app, worker, database and Redis; the CRMs' HTTP APIs are faked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import responses
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from integration.store.models import Lead, OutboxWrite
from tests.conftest import drain, post_events, running_app
from tests.fake_crms import HUBSPOT, LIVE, FakeHubSpot, FakeSalesforce
from tests.hubspot_openapi import assert_valid_bodies
from tests.test_e2e_web_only_mql import EMAIL, hot_web_lead, rules_creating_in

SF_LEAD = "00Q1N00000bS2eOUAS"


@contextlib.contextmanager
def commit_lost_once(svc: Any, when: Callable[[Session], bool]) -> Iterator[list[str]]:
    """The first commit of a transaction for which ``when`` holds raises: the worker died after
    the CRM answered and before leadloop recorded the answer. Yields what was lost."""
    lost: list[str] = []

    def before_commit(session: Session) -> None:
        if not lost and when(session):
            lost.append(", ".join(sorted(f"{row.kind} {row.status}" for row in session.identity_map.values()
                                         if isinstance(row, OutboxWrite))))
            raise RuntimeError("worker killed between the CRM's create and leadloop's commit")

    event.listen(svc.sessions, "before_commit", before_commit)
    try:
        yield lost
    finally:
        event.remove(svc.sessions, "before_commit", before_commit)


def settled(kind: str) -> Callable[[Session], bool]:
    """The transaction records a ``kind`` write as sent (each flush transaction is a new session)."""
    return lambda session: any(isinstance(row, OutboxWrite) and row.kind == kind and row.status == "sent"
                               for row in session.identity_map.values())


def crm_lead(crm: str, crm_id: str) -> list[dict[str, Any]]:
    """A hot lead that already has its CRM record: its hand-off makes a task."""
    return [{**item, "crm": crm, "crm_id": crm_id} for item in hot_web_lead()]


def the_write(svc: Any, kind: str) -> OutboxWrite:
    with svc.sessions() as session:
        return session.scalars(select(OutboxWrite).where(OutboxWrite.kind == kind)).one()


def test_hubspot_a_retried_flush_finds_the_task_instead_of_creating_another(config):
    with running_app(config, **LIVE) as app, responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        hubspot, svc = FakeHubSpot(mock), app.extensions["leadloop"]
        assert post_events(app.test_client(), crm_lead("hubspot", "51")).status_code == 200
        with commit_lost_once(svc, settled("task")) as lost:
            drain(svc, horizon=120)  # RQ retries the failed flush after 10 s
        assert lost == ["task sent"]
        assert_valid_bodies([call for call in mock.calls if call.request.url.startswith(HUBSPOT)])

        # One task in HubSpot, created once; the retry found it by its unique key.
        [(task_id, task)] = hubspot.tasks.items()
        assert task["contact"] == "51"
        assert len(hubspot.requests("POST", "/crm/objects/2026-03/tasks")) == 1
        lookups = [c for c in hubspot.requests("GET", "") if "idProperty=leadloop_task_key" in c.request.url]
        assert len(lookups) == 2
    row = the_write(svc, "task")
    assert (row.status, row.external_id, row.attempts) == ("sent", task_id, 1)
    assert task["key"] == row.idempotency_key


def test_salesforce_a_retried_flush_finds_the_task_instead_of_creating_another(config):
    with running_app(config, **LIVE) as app, responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        salesforce, svc = FakeSalesforce(mock), app.extensions["leadloop"]
        assert post_events(app.test_client(), crm_lead("salesforce", SF_LEAD)).status_code == 200
        with commit_lost_once(svc, settled("task")) as lost:
            drain(svc, horizon=120)
        assert lost == ["task sent"]

        [(task_id, task)] = salesforce.records["Task"].items()
        assert task["WhoId"] == SF_LEAD
        assert len(salesforce.requests("PATCH", r"/sobjects/Task/Leadloop_Key__c/")) == 1
        assert len(salesforce.requests("GET", r"/sobjects/Task/Leadloop_Key__c/")) == 2
    row = the_write(svc, "task")
    assert (row.status, row.external_id, row.attempts) == ("sent", task_id, 1)
    assert task["Leadloop_Key__c"] == row.idempotency_key


def test_salesforce_a_retried_flush_finds_the_lead_it_created_then_makes_one_task(config, tmp_path):
    with running_app(config, **LIVE, LEADLOOP_RULES=rules_creating_in(tmp_path, "salesforce")) as app, \
            responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        salesforce, svc = FakeSalesforce(mock), app.extensions["leadloop"]
        assert post_events(app.test_client(), hot_web_lead()).status_code == 200
        with commit_lost_once(svc, settled("create")) as lost:
            drain(svc, horizon=120)
        assert lost == ["create sent"]
        [lead_id] = salesforce.records["Lead"]
        assert len(salesforce.requests("PATCH", r"/sobjects/Lead/Leadloop_Key__c/")) == 1
        assert len(salesforce.records["Task"]) == 1
    with svc.sessions() as session:
        lead = session.scalars(select(Lead)).one()
        assert (lead.crm, lead.crm_id) == ("salesforce", lead_id)
    assert (the_write(svc, "create").status, the_write(svc, "task").status) == ("sent", "sent")


def test_hubspot_a_retried_create_matches_the_contact_by_email(config, tmp_path):
    with running_app(config, **LIVE, LEADLOOP_RULES=rules_creating_in(tmp_path, "hubspot")) as app, \
            responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        hubspot, svc = FakeHubSpot(mock), app.extensions["leadloop"]
        assert post_events(app.test_client(), hot_web_lead()).status_code == 200
        with commit_lost_once(svc, settled("create")) as lost:
            drain(svc, horizon=120)
        assert lost == ["create sent"]
        # The upsert is sent again and HubSpot answers with the contact the first one made.
        assert len(hubspot.requests("POST", "/contacts/batch/upsert")) == 2
        assert hubspot.contacts == {EMAIL: "5001"} and len(hubspot.tasks) == 1
    with svc.sessions() as session:
        assert session.scalars(select(Lead.crm_id)).one() == "5001"


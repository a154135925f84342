"""A lead whose processing fails never blocks the other leads of its job.

The poison here is an event stored by an earlier version, before the edge checks refused
such input (an ``asset`` that is a list, which scoring cannot look up): written straight into
the store, as it would be found after an upgrade.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, select, update

from integration.cli.main import main as leadloop
from integration.pipeline.failures import MAX_ATTEMPTS, failing_leads
from integration.pipeline.jobs import sweep
from integration.pipeline.queue import request_rescore
from integration.store.models import Event, Lead
from integration.web import create_app
from tests.conftest import drain, post_events, web_event

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EMAILS = ("ada@acme-robotics.com", "bo@acme-robotics.com", "cy@acme-robotics.com")


@pytest.fixture
def world(config):
    app = create_app(config, clock=lambda: NOW)
    yield app.test_client(), app.extensions["leadloop"]
    app.extensions["leadloop"].engine.dispose()


def leads_by_email(svc) -> dict[str, Lead]:
    with svc.sessions() as session:
        return {lead.email: lead for lead in session.scalars(select(Lead))}


def poison(svc, lead_id: int) -> None:
    with svc.sessions.begin() as session:
        session.execute(insert(Event), [{
            "source": "web", "event_key": "old-bad-1", "lead_id": lead_id, "kind": "content_download",
            "occurred_at": NOW, "received_at": NOW, "fields": {}, "properties": {"asset": ["a", "b"]},
            "raw": None, "processed_at": None}])


def dead_letters(config, monkeypatch, capsys, *args: str) -> str:
    for name, value in config.items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    assert leadloop(["dead-letters", *args]) == 0
    return capsys.readouterr().out


def test_the_other_leads_of_the_job_are_scored_and_the_poison_lead_is_quarantined(world, config, monkeypatch,
                                                                                    capsys):
    client, svc = world
    events = [web_event(f"e{i}", "page_view", email=email, occurred_at="2026-11-20T11:00:00+00:00",
                        properties={"url": "/pricing"}) for i, email in enumerate(EMAILS)]
    assert post_events(client, events).status_code == 200
    bad = leads_by_email(svc)[EMAILS[1]]
    poison(svc, bad.id)
    drain(svc)

    leads = leads_by_email(svc)
    assert leads[EMAILS[0]].score is not None and leads[EMAILS[2]].score is not None
    poisoned = leads[EMAILS[1]]
    assert poisoned.score is None
    # Retried with backoff (all due at once under this fixed clock), then quarantined.
    assert poisoned.failures == MAX_ATTEMPTS and poisoned.quarantined_at == NOW
    assert poisoned.last_error.startswith("TypeError in ")
    with svc.sessions() as session:
        assert [lead.id for lead in failing_leads(session)] == [poisoned.id]
    assert quarantined_gauge(client) == 1

    # `leadloop dead-letters` lists it at once, with the error and no personal data.
    listed = dead_letters(config, monkeypatch, capsys)
    assert "failing leads: 1" in listed and f"email:{EMAILS[1]}  quarantined" in listed
    assert f"{MAX_ATTEMPTS}" in listed and "TypeError in " in listed

    # The sweeper leaves a quarantined lead alone; a job naming it skips it.
    assert sweep()["leads"] == 0
    request_rescore(svc.queue, [poisoned.id])
    drain(svc)
    assert leads_by_email(svc)[EMAILS[1]].failures == MAX_ATTEMPTS

    # Once the bad event is repaired, releasing the lead processes it and clears the record.
    with svc.sessions.begin() as session:
        session.execute(update(Event).where(Event.event_key == "old-bad-1")
                        .values(properties={"asset": "coverage-map"}))
    retried = dead_letters(config, monkeypatch, capsys, "--retry")
    assert retried.splitlines()[-1] == "requeued 0 jobs, 1 lead and 0 CRM writes; the worker will retry them"
    drain(svc)
    healed = leads_by_email(svc)[EMAILS[1]]
    assert healed.score is not None
    assert (healed.failures, healed.last_error, healed.quarantined_at) == (0, None, None)
    with svc.sessions() as session:
        assert failing_leads(session) == []
    assert quarantined_gauge(client) == 0


def quarantined_gauge(client) -> float:
    page = client.get("/metrics").get_data(as_text=True)
    return next(sample.value for family in text_string_to_metric_families(page) for sample in family.samples
                if sample.name == "leadloop_leads_failing" and sample.labels == {"state": "quarantined"})


def test_a_failure_record_names_no_personal_data(world):
    client, svc = world
    assert post_events(client, [web_event("p1", "page_view", email=EMAILS[0])]).status_code == 200
    lead = leads_by_email(svc)[EMAILS[0]]
    poison(svc, lead.id)
    drain(svc)
    error = leads_by_email(svc)[EMAILS[0]].last_error
    assert error and "acme" not in error and "['a', 'b']" not in error

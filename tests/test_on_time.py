"""Scores that age on time: a lead's verdict changes when time alone changes it, with no new event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from integration.cli.main import main as leadloop
from integration.pipeline.jobs import rescore_on_time
from integration.pipeline.on_time import due_for_review
from integration.store.models import Lead, OutboxWrite
from integration.web import create_app
from tests.conftest import drain, post_events, web_event

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
#: Who they are barely counts (a free-mail address, no company): the trial alone makes them hot.
WEAK_FIT = {"first_name": "Lee"}


class Clock:
    def __init__(self, start: datetime):
        self.value = start

    def __call__(self) -> datetime:
        return self.value


@pytest.fixture
def world(config):
    clock = Clock(START)
    app = create_app(config, clock=clock)
    yield app.test_client(), app.extensions["leadloop"], clock
    app.extensions["leadloop"].engine.dispose()


def lead(svc) -> Lead:
    with svc.sessions() as session:
        return session.scalars(select(Lead).where(Lead.crm_id == "901")).one()


def updates(svc) -> list[OutboxWrite]:
    with svc.sessions() as session:
        return list(session.scalars(select(OutboxWrite).where(OutboxWrite.kind == "update").order_by(OutboxWrite.id)))


def test_a_lead_hot_through_the_trial_override_cools_when_the_override_ends(world, config, monkeypatch, capsys):
    client, svc, clock = world
    trial_at = START - timedelta(hours=1)
    post_events(client, [web_event("t1", "trial_signup", email="lee@gmail.com", crm="hubspot", crm_id="901",
                                   occurred_at=trial_at.isoformat(), properties={"fields": WEAK_FIT})])
    drain(svc)
    hot = lead(svc)
    assert hot.band == "hot"  # "came to an event or started a trial" within 60 days
    override_ends = trial_at + timedelta(days=60)

    # One sweep period before the next review nothing is due, and a run changes nothing.
    clock.value = hot.next_review_at - timedelta(seconds=60)
    with svc.sessions() as session:
        assert due_for_review(session, clock.value) == []
    assert rescore_on_time()["due"] == 0

    # The score decays step by step (each step of the written score is a review); the lead stays
    # hot until the override's 60 days end.
    while lead(svc).next_review_at is not None and lead(svc).next_review_at < override_ends:
        clock.value = lead(svc).next_review_at + timedelta(seconds=30)  # the cron's next run
        assert rescore_on_time()["rescored"] == 1
        assert lead(svc).band == "hot"
    assert lead(svc).next_review_reason == "band hot->" + lead(svc).next_review_reason.split("->")[1] and \
        "override event-or-trial ends" in lead(svc).next_review_reason
    written = len(updates(svc))

    # Within one cron period after the override's 60 days end: the lead is what its score says.
    clock.value = override_ends + timedelta(seconds=30)
    assert next_review_gauge(client) == {"due": 1, "waiting": 0}  # the on-time backlog
    assert rescore_on_time() == {"due": 1, "rescored": 1, "failed": 0}
    cooled = lead(svc)
    assert cooled.band != "hot" and cooled.scored_at == clock.value
    new_writes = updates(svc)[written:]
    assert len(new_writes) == 1 and new_writes[0].payload["fields"]["band"] == cooled.band  # queued for the CRM
    drain(svc)

    # Nothing new happened: the next review lies ahead, and running again finds nothing due.
    assert cooled.next_review_at is None or cooled.next_review_at > clock.value
    assert rescore_on_time()["due"] == 0
    with svc.sessions() as session:
        assert session.scalar(select(func.count()).select_from(OutboxWrite)
                              .where(OutboxWrite.kind == "update")) == written + 1

    # The timeline says why the lead was scored again.
    for name, value in config.items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    assert leadloop(["lead", "show", "hubspot:901"]) == 0
    assert "rescored on time (band hot->" in capsys.readouterr().out


def next_review_gauge(client) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    page = client.get("/metrics").get_data(as_text=True)
    return {sample.labels["state"]: sample.value for family in text_string_to_metric_families(page)
            for sample in family.samples if sample.name == "leadloop_next_review_leads"}

"""The path every event travels: stored -> coalesced rescore -> scored -> outbox -> batched flush."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from rq.registry import StartedJobRegistry
from sqlalchemy import func, select, text

from integration.store.models import Event, Lead, OutboxWrite, ScoreRecord
from tests.conftest import drain, post_events, web_event


def scalar(svc, stmt):
    with svc.sessions() as session:
        return session.scalar(stmt)


def iso(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()


def test_a_burst_for_one_lead_is_one_scoring(client, svc):
    for batch in range(5):
        events = [web_event(f"b{batch}-{i}", "page_view", crm="hubspot", crm_id="42",
                            occurred_at=iso(1 + i / 10), properties={"url": f"https://x.example/{i}"})
                  for i in range(10)]
        assert post_events(client, events).status_code == 200
    assert len(svc.queue) == 1  # one job covers the lead however many requests came in
    assert drain(svc) == 2  # the rescore, then one flush
    assert scalar(svc, select(func.count()).select_from(ScoreRecord)) == 1
    assert scalar(svc, select(func.count()).select_from(Event).where(Event.processed_at.is_(None))) == 0
    assert scalar(svc, select(func.count()).select_from(OutboxWrite)) == 1


def test_many_leads_cost_one_scoring_each_and_few_batches(client, svc):
    events = [web_event(f"m{lead}-{i}", "content_download" if i % 4 == 0 else "page_view",
                        email=f"person{lead}@firm{lead}.example", crm="hubspot", crm_id=str(1000 + lead),
                        occurred_at=iso(i), properties={"asset": "pricing-page", "url": "https://x.example/p"})
              for lead in range(250) for i in range(4)]
    assert post_events(client, events).status_code == 200
    drain(svc)
    assert scalar(svc, select(func.count()).select_from(ScoreRecord)) == 250
    # HubSpot takes at most 100 records per call: 250 updates are 3 batches.
    assert scalar(svc, select(func.count(func.distinct(OutboxWrite.batch_id)))) == 3
    assert scalar(svc, select(func.count()).select_from(OutboxWrite).where(OutboxWrite.status == "shadow")) == 250


def test_events_are_applied_in_occurred_order_and_late_ones_do_not_win(client, svc):
    newer = web_event("f2", "form_submit", occurred_at=iso(1), properties={"fields": {"job_title": "CTO"}})
    older = web_event("f1", "form_submit", occurred_at=iso(5), properties={"fields": {"job_title": "Intern"}})
    post_events(client, [newer])
    drain(svc)
    post_events(client, [older])  # arrives late
    drain(svc)
    with svc.sessions() as session:
        lead = session.scalars(select(Lead)).one()
        assert lead.fields["job_title"] == "CTO"
        assert session.scalar(select(func.count()).select_from(ScoreRecord)) == 2


def test_rescoring_without_visible_change_queues_no_second_write(client, svc):
    post_events(client, [web_event("a1", crm="hubspot", crm_id="7", occurred_at=iso(2))])
    drain(svc)
    post_events(client, [web_event("a1", crm="hubspot", crm_id="7", occurred_at=iso(2))])  # duplicate
    drain(svc)
    assert scalar(svc, select(func.count()).select_from(ScoreRecord)) == 1
    assert scalar(svc, select(func.count()).select_from(OutboxWrite)) == 1


def test_an_event_arriving_while_the_job_runs_gets_its_own_job(client, svc):
    post_events(client, [web_event("r1", crm="hubspot", crm_id="9", occurred_at=iso(3))])
    from integration.pipeline.queue import clear_rescore_marks, request_rescore

    with svc.sessions() as session:
        lead_id = session.scalar(select(Lead.id))
    clear_rescore_marks(svc.redis, [lead_id])  # what the running job does first
    assert request_rescore(svc.queue, [lead_id]) == [lead_id]  # a new event gets it taken again
    drain(svc)
    assert scalar(svc, select(func.count()).select_from(Event).where(Event.processed_at.is_(None))) == 0


def test_sweeper_recovers_events_whose_job_was_lost(client, svc):
    post_events(client, [web_event("s1", crm="hubspot", crm_id="11", occurred_at=iso(1))])
    svc.queue.empty()  # the job is lost (say Redis restarted without persistence)
    with svc.sessions.begin() as session:
        session.execute(text("UPDATE events SET received_at = :t"), {"t": datetime.now(UTC) - timedelta(minutes=5)})
    from integration.pipeline.jobs import sweep

    result = sweep()
    assert result["released"] == 2 and result["leads"] == 1  # the lead's mark and the rescore job's
    drain(svc)
    assert scalar(svc, select(func.count()).select_from(ScoreRecord)) == 1


def _lock_lead_row(svc, lead_id):
    """Hold the lead's row (PostgreSQL) or the database (SQLite) from another connection."""
    connection = svc.engine.connect()
    if svc.engine.dialect.name == "postgresql":
        connection.begin()
        connection.execute(text("SELECT id FROM leads WHERE id = :id FOR UPDATE"), {"id": lead_id})
    else:
        connection.begin()  # BEGIN IMMEDIATE: the worker's transaction waits behind it
    return connection


def test_a_killed_workers_job_is_picked_up_again_exactly_once(client, svc, config):
    events = [web_event(f"k{i}", "content_download", crm="hubspot", crm_id="77", occurred_at=iso(i),
                        properties={"asset": "pricing-page"}) for i in range(5)]
    post_events(client, events)
    with svc.sessions() as session:
        lead_id = session.scalar(select(Lead.id))
    blocker = _lock_lead_row(svc, lead_id)
    env = {**os.environ, **{k: v for k, v in config.items() if isinstance(v, str)}}
    worker = subprocess.Popen([sys.executable, "-m", "integration.cli", "worker"], env=env,
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = StartedJobRegistry(queue=svc.queue)
        deadline = time.monotonic() + 30
        while not started.get_job_ids() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert started.get_job_ids(), "the worker never started the job"
        time.sleep(0.5)  # it is now blocked inside the job, waiting for the lead
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its work horse die mid-job
        worker.wait()
        blocker.rollback()
        blocker.close()
    assert scalar(svc, select(func.count()).select_from(Event).where(Event.processed_at.is_(None))) == 5
    # RQ notices the abandoned job (its heartbeat lapsed) and, having retries left, requeues it.
    started.cleanup(timestamp=time.time() + 3600)
    drain(svc)
    assert scalar(svc, select(func.count()).select_from(Event).where(Event.processed_at.is_(None))) == 0
    assert scalar(svc, select(func.count()).select_from(ScoreRecord)) == 1
    assert scalar(svc, select(func.count()).select_from(OutboxWrite)) == 1

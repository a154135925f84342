"""The guarantees the faster paths keep: duplicates absorbed by the one-statement intake also when
they arrive at once, and the worker that runs jobs in its own process (no fork per job) getting
through a job with a poison lead in it, and the job that reads its leads at once (few statements
per lead) seeing what an earlier lead's merge moved."""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, insert, select

from integration.pipeline.failures import LEADS_PER_COMMIT
from integration.pipeline.jobs import rescore_leads
from integration.pipeline.processing import score_now
from integration.pipeline.workers import InProcessWorker, run_worker
from integration.store.models import Event, Lead, OutboxWrite, ScoreRecord
from integration.web import create_app
from tests.conftest import post_events, web_event

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_the_same_events_posted_at_once_are_stored_once(config):
    app = create_app(config, clock=lambda: NOW)
    svc = app.extensions["leadloop"]
    known = [web_event(f"known-{i}", email="ada@acme-robotics.com") for i in range(5)]
    assert post_events(app.test_client(), [web_event("first", email="ada@acme-robotics.com")]).status_code == 200
    # Events of a known lead (the one-statement path) and of people not known yet (a lead created).
    batch = known + [web_event(f"new-{i}", email=f"new{i}@acme-robotics.com") for i in range(5)]
    senders, answers = 6, []
    start = threading.Barrier(senders)

    def send() -> None:
        client = app.test_client()
        start.wait()
        answers.append(post_events(client, batch))

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [200] * senders
    assert sum(answer.get_json()["accepted"] for answer in answers) == len(batch)
    assert sum(answer.get_json()["duplicates"] for answer in answers) == len(batch) * (senders - 1)
    with svc.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == len(batch) + 1
        assert session.scalar(select(func.count()).select_from(Lead)) == 6  # ada and the five new people
    svc.engine.dispose()


def test_the_worker_runs_jobs_in_its_own_process(config):
    app = create_app(config)
    svc = app.extensions["leadloop"]
    job = svc.queue.enqueue("os.getpid")
    run_worker(svc, burst=True)
    job.refresh()
    assert job.return_value() == os.getpid()
    svc.engine.dispose()


def test_a_poison_lead_rolls_back_alone_in_a_batch_committed_at_once(config):
    app = create_app(config, clock=lambda: NOW)
    svc = app.extensions["leadloop"]
    emails = [f"p{i}@acme-robotics.com" for i in range(LEADS_PER_COMMIT + 3)]  # two transactions
    events = [web_event(f"b{i}", "content_download", email=email, properties={"asset": "pricing-page"})
              for i, email in enumerate(emails)]
    assert post_events(app.test_client(), events).status_code == 200  # queues their rescoring
    with svc.sessions.begin() as session:
        ids = {email: lead_id for email, lead_id in session.execute(select(Lead.email, Lead.id))}
        bad = ids[emails[7]]
        session.execute(insert(Event), [{  # stored by an older version: scoring cannot look it up
            "source": "web", "event_key": "old-bad", "lead_id": bad, "kind": "content_download",
            "occurred_at": NOW, "received_at": NOW, "fields": {}, "properties": {"asset": ["a", "b"]},
            "raw": None, "processed_at": None}])
    worker = InProcessWorker([svc.queue], connection=svc.redis)
    worker.work(burst=True, with_scheduler=False)
    with svc.sessions() as session:
        scored = set(session.scalars(select(ScoreRecord.lead_id)))
        poisoned = session.get(Lead, bad)
        pending = session.scalar(select(func.count()).select_from(Event)
                                 .where(Event.processed_at.is_(None), Event.lead_id != bad))
    assert scored == set(ids.values()) - {bad}
    assert poisoned.failures == 1 and poisoned.last_error.startswith("TypeError in ")
    assert pending == 0
    svc.engine.dispose()


def test_a_job_reads_its_leads_at_once_and_writes_each_in_few_statements(config):
    app = create_app(config, clock=lambda: NOW)
    svc = app.extensions["leadloop"]
    emails = [f"s{i}@acme-robotics.com" for i in range(30)]
    events = [web_event(f"s{i}-{n}", kind, email=email, occurred_at=f"2026-11-20T0{n}:00:00+00:00",
                        crm="hubspot", crm_id=str(500 + i), properties={"asset": "pricing-page"})
              for i, email in enumerate(emails)
              for n, kind in enumerate(["page_view", "content_download", "page_view"])]
    assert post_events(app.test_client(), events).status_code == 200
    with svc.sessions() as session:
        lead_ids = sorted(session.scalars(select(Lead.id)))
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_rest) -> None:
        statements.append(statement)

    sa_event.listen(svc.engine, "before_cursor_execute", count)
    try:
        rescore_leads(lead_ids)
    finally:
        sa_event.remove(svc.engine, "before_cursor_execute", count)
    with svc.sessions() as session:
        assert set(session.scalars(select(ScoreRecord.lead_id))) == set(lead_ids)
        assert session.scalar(select(func.count()).select_from(Event).where(Event.processed_at.is_(None))) == 0
        assert session.scalar(select(func.count()).select_from(OutboxWrite)) == len(lead_ids)
    # Per lead: its events marked processed; the reads are the job's, a few for all its leads, and
    # the writes of the leads, scores, transitions and CRM updates one statement each at the commit.
    reads = [statement for statement in statements if statement.lstrip().upper().startswith("SELECT")]
    assert len(reads) <= 8, reads
    assert not [statement for statement in statements if "SAVEPOINT" in statement.upper()]
    # PostgreSQL inserts many rows in one statement (SQLAlchemy's insertmanyvalues); SQLite row by row.
    per_lead = 2 if svc.engine.dialect.name == "postgresql" else 5
    assert len(statements) <= per_lead * len(lead_ids), Counter(text.split("(")[0][:60] for text in statements)
    svc.engine.dispose()


@pytest.mark.parametrize("survivor_first", [True, False])
def test_a_merge_in_a_job_moves_what_the_job_read_for_the_merged_lead(config, survivor_first):
    app = create_app(config, clock=lambda: NOW)
    svc = app.extensions["leadloop"]
    people = [("m1@acme-robotics.com", "100"), ("m2@acme-robotics.com", "200")]
    events = [web_event(f"{crm_id}-{n}", "content_download", email=email, crm="hubspot", crm_id=crm_id,
                        occurred_at=f"2026-11-20T0{n}:00:00+00:00", properties={"asset": "pricing-page"})
              for email, crm_id in people for n in range(2)]
    assert post_events(app.test_client(), events).status_code == 200
    with svc.sessions.begin() as session:
        ids = {crm_id: lead_id for crm_id, lead_id in session.execute(select(Lead.crm_id, Lead.id))}
        survivor, merged = (ids["100"], ids["200"]) if survivor_first else (ids["200"], ids["100"])
        merged_crm_id = "200" if survivor_first else "100"
        session.execute(insert(Event), [{  # the CRM merged the two contacts, after their activity
            "source": "hubspot", "event_key": "merge-1", "lead_id": survivor, "kind": "merge",
            "occurred_at": datetime(2026, 11, 20, 9, tzinfo=UTC), "received_at": NOW, "fields": {},
            "properties": {"merged_ids": [merged_crm_id]}, "raw": None, "processed_at": None}])
    rescore_leads(sorted(ids.values()))
    with svc.sessions() as session:
        assert session.get(Lead, merged).merged_into_id == survivor
        assert set(session.scalars(select(Event.lead_id))) == {survivor}
        assert session.scalar(select(func.count()).select_from(Event).where(Event.processed_at.is_(None))) == 0
        lead = session.get(Lead, survivor)
        # Scored on both people's activity (four downloads), as a scoring that reads it all now.
        assert lead.score == score_now(session, svc, lead, NOW).score
        assert session.scalar(select(func.count()).select_from(OutboxWrite)
                              .where(OutboxWrite.status == "pending", OutboxWrite.kind == "update",
                                     OutboxWrite.lead_id == survivor)) == 1
    svc.engine.dispose()


@pytest.mark.parametrize("sent_meanwhile", [False, True])
def test_a_newer_update_supersedes_a_pending_one_but_never_one_the_flush_sent_meanwhile(config, sent_meanwhile):
    # The batch reads each lead's latest update before its turn; the flush may send that update
    # in between. Then the update stays sent, and the newer one does not carry its status field
    # (sales may have changed that status in the CRM since).
    from integration.pipeline.outbox import latest_update, queue_update

    app = create_app(config, clock=lambda: NOW)
    svc = app.extensions["leadloop"]
    with svc.sessions.begin() as session:
        lead = Lead(crm="hubspot", crm_id="101", email="ada@acme-robotics.com", fields={}, field_times={})
        session.add(lead)
        session.flush()
        session.add(OutboxWrite(lead_id=lead.id, crm="hubspot", crm_id="101", kind="update", idempotency_key="u1",
                                payload={"fields": {"score": 1}, "crm_fields": {"hs_lead_status": "NEW"}},
                                status="pending", created_at=NOW))
    with svc.sessions.begin() as session:
        lead = session.scalars(select(Lead)).one()
        last = latest_update(session, lead)
        if sent_meanwhile:  # another transaction's flush, which this session's object does not see
            session.execute(OutboxWrite.__table__.update().where(OutboxWrite.id == last.id).values(status="sent"))
        assert queue_update(session, lead, score_now(session, svc, lead, NOW), NOW, last=last)
    with svc.sessions() as session:
        first, newer = session.scalars(select(OutboxWrite).order_by(OutboxWrite.id)).all()
    assert first.status == ("sent" if sent_meanwhile else "superseded")
    assert newer.status == "pending"
    assert newer.payload.get("crm_fields", {}) == ({} if sent_meanwhile else {"hs_lead_status": "NEW"})
    svc.engine.dispose()

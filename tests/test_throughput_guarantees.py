"""The guarantees the faster paths keep: duplicates absorbed by the one-statement intake also when
they arrive at once, and the worker that runs jobs in its own process (no fork per job) getting
through a job with a poison lead in it."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from integration.pipeline.failures import LEADS_PER_COMMIT
from integration.pipeline.workers import InProcessWorker, run_worker
from integration.store.models import Event, Lead, ScoreRecord
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

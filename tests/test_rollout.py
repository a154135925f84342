"""Rules roll-out: a new rules file rescores every scored lead once, resumably, writing only
changed verdicts to the CRM."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from integration.cli.main import main as leadloop
from integration.pipeline import rollout
from integration.pipeline.jobs import sweep
from integration.store.models import Lead, OutboxWrite, ScoreRecord
from tests.conftest import drain, post_events, running_app, web_event

SHIPPED = Path(__file__).parents[1] / "rules" / "leadloop.yaml"
LEADS = 24


@pytest.fixture
def scored(config):
    """24 HubSpot leads scored under the shipped rules; every third one downloaded a document."""
    with running_app(config) as app:
        events = []
        for n in range(LEADS):
            events.append(web_event(f"v{n}", "page_view", email=f"p{n}@acme-robotics.com", crm="hubspot",
                                    crm_id=str(1000 + n), properties={"url": "https://acme.example/pricing"}))
            if n % 3 == 0:
                events.append(web_event(f"d{n}", "content_download", email=f"p{n}@acme-robotics.com",
                                        crm="hubspot", crm_id=str(1000 + n), properties={"asset": "coverage-map"}))
        assert post_events(app.test_client(), events).status_code == 200
        drain(app.extensions["leadloop"])
        yield app.extensions["leadloop"].rules.version


@pytest.fixture
def lower_bands(tmp_path) -> str:
    """The shipped rules with every band starting 25 points lower: the downloaders (28 points)
    turn warm, the others stay cold."""
    rules = yaml.safe_load(SHIPPED.read_text())
    for band in rules["bands"].values():
        if "from" in band:
            band["from"] -= 25
    path = tmp_path / "rules-v2.yaml"
    path.write_text(yaml.safe_dump(rules))
    return str(path)


def counts(svc, version: str) -> tuple[int, int, int]:
    with svc.sessions() as session:
        under_new = session.scalar(select(func.count()).select_from(ScoreRecord)
                                   .where(ScoreRecord.rules_version == version))
        leads_on_new = session.scalar(select(func.count()).select_from(Lead).where(Lead.rules_version == version))
        updates = session.scalar(select(func.count()).select_from(OutboxWrite).where(OutboxWrite.kind == "update"))
    return under_new, leads_on_new, updates


def test_a_new_rules_file_rescores_every_lead_once_and_writes_only_changed_verdicts(config, scored, lower_bands):
    with running_app(config, LEADLOOP_RULES=lower_bands) as app:
        svc = app.extensions["leadloop"]
        new = svc.rules.version
        assert new != scored
        with svc.sessions() as session:
            before = {lead.id: (lead.band, round(lead.score)) for lead in session.scalars(select(Lead))}
            assert rollout.progress(session, new).due == LEADS
            updates_before = session.scalar(select(func.count()).select_from(OutboxWrite))
        assert rollout.request_rollout(svc)
        assert not rollout.request_rollout(svc)  # one roll-out at a time
        drain(svc)
        under_new, leads_on_new, updates = counts(svc, new)
        assert (under_new, leads_on_new) == (LEADS, LEADS)
        with svc.sessions() as session:
            after = {lead.id: (lead.band, round(lead.score)) for lead in session.scalars(select(Lead))}
            assert rollout.progress(session, new).done
        changed = sum(before[lead_id] != after[lead_id] for lead_id in before)
        assert 0 < changed < LEADS  # the lower bands move some leads, not all
        assert updates - updates_before == changed  # unchanged verdicts write nothing
        assert not rollout.request_rollout(svc)  # nothing left to do


def test_a_roll_out_stopped_midway_resumes_without_rescoring_a_lead_twice(config, scored, lower_bands, monkeypatch):
    with running_app(config, LEADLOOP_RULES=lower_bands) as app:
        svc = app.extensions["leadloop"]
        new = svc.rules.version
        # The first job gets through one batch of 10, then its worker dies: its lock stays behind.
        monkeypatch.setattr(rollout, "BATCH", 10)
        monkeypatch.setattr(rollout, "BATCHES_PER_JOB", 1)
        svc.redis.set(rollout.LOCK_KEY, "rollout-of-a-dead-worker", ex=rollout.LOCK_SECONDS)
        rollout.run_rollout(svc, svc.now())
        assert counts(svc, new)[:2] == (10, 10)
        assert not rollout.request_rollout(svc)  # the dead job's lock still holds
        sweep()  # the sweeper releases a lock whose job is gone and resumes the roll-out
        drain(svc)
        assert counts(svc, new)[:2] == (LEADS, LEADS)  # each lead rescored exactly once
        with svc.sessions() as session:
            per_lead = session.execute(select(ScoreRecord.lead_id, func.count()).where(ScoreRecord.rules_version == new)
                                       .group_by(ScoreRecord.lead_id)).all()
        assert {count for _lead, count in per_lead} == {1}


def test_rescore_all_by_hand_with_a_dry_run_first(config, scored, monkeypatch, capsys):
    for name, value in config.items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    assert leadloop(["rescore", "--all", "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert f"rules {scored}: {LEADS} leads examined; the verdict would change for 0 leads" in dry
    assert leadloop(["rescore", "--status"]) == 0
    assert f"{LEADS} of {LEADS} scored leads rescored, 0 to go (done)" in capsys.readouterr().out
    assert leadloop(["rescore", "--all"]) == 0
    queued = capsys.readouterr().out
    assert f"{LEADS} leads marked to be rescored" in queued and "roll-out queued" in queued
    assert f"0 of {LEADS} scored leads rescored, {LEADS} to go" in queued

"""The report summaries: an incremental refresh equals a full rebuild, merges and erasures move or
drop a lead's rows, and migration 0007 fills them from the rows already stored."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.pipeline.jobs import cron_jobs, refresh_summaries
from integration.pipeline.processing import erase_personal_data, merge_into
from integration.store.migrate import current, upgrade
from integration.store.models import LeadContentSummary, LeadSummary, SummaryWatermark
from integration.store.summaries import ENTERED_STAGES, rebuild, refresh
from tests.conftest import drain, post_events, web_event
from tests.reports_support import History, at, session  # noqa: F401 - the fixture
from tests.test_migrations import downgraded


def snapshot(store: Session) -> dict[str, list[tuple]]:
    """Every summary row, sorted: per lead its touch and conversion (``touch``), per lead and
    stage entered its first and last entry and count (``stage``), and the content rows."""
    leads = store.execute(select(LeadSummary.__table__)).mappings().all()
    content = select(*(LeadContentSummary.__table__.c[column] for column in
                       ("lead_id", "kind", "name", "first_at", "last_at", "first_conversion_at", "conversions")))
    return {"touch": sorted((row["lead_id"], row["first_touch_at"], row["first_conversion_at"]) for row in leads),
            "stage": sorted((row["lead_id"], stage, row[f"{stage}_first_at"], row[f"{stage}_last_at"],
                             row[f"{stage}_entries"]) for row in leads for stage in ENTERED_STAGES
                            if row[f"{stage}_entries"]),
            "content": sorted(tuple(row) for row in store.execute(content))}


def write_first_part(write: History):
    ada = write.lead(at("03-01"))
    bob = write.lead(at("03-01"))
    write.event(ada, "page_view", at("03-02"), asset="pricing")
    write.event(ada, "form_submit", at("03-04"), form="demo", campaign="spring")
    write.event(bob, "content_download", at("03-06"), asset="guide", campaign="spring")
    write.move(ada, "new nurture mql", at("03-03"), at("03-04"))
    write.move(bob, "new nurture", at("03-06"))
    return ada, bob


def test_an_incremental_refresh_equals_a_full_rebuild(session):  # noqa: F811
    write = History(session)
    ada, bob = write_first_part(write)
    session.commit()
    assert refresh(session)["events"] == 3
    # More arrives: an earlier touch (an event processed late is still read at its business
    # time), repeat conversions, a second entry into a stage, a new lead.
    write.event(ada, "page_view", at("02-27"), asset="pricing")
    write.event(ada, "form_submit", at("03-20"), form="demo")
    write.event(bob, "form_submit", at("03-10"), form="demo", campaign="spring")
    write.move(ada, "mql recycled nurture mql", at("03-10"), at("03-11"), at("03-15"))
    cyd = write.lead(at("03-09"))
    write.event(cyd, "page_view", at("03-09"), campaign="autumn")
    write.move(bob, "nurture nurture", at("03-12"))  # a reminder: no entry
    session.commit()
    assert refresh(session) == {"events": 4, "transitions": 4, "rebuilt": 0}
    incremental = snapshot(session)
    rebuild(session)
    assert snapshot(session) == incremental
    found = {row[:3]: row[3:] for row in incremental["content"]}
    assert found[(ada.id, "asset", "pricing")] == (at("02-27"), at("03-02"), None, 0)
    assert found[(ada.id, "form", "demo")] == (at("03-04"), at("03-20"), at("03-04"), 2)
    assert found[(bob.id, "campaign", "spring")] == (at("03-06"), at("03-10"), at("03-06"), 2)
    stages = {row[:2]: row[2:] for row in incremental["stage"]}
    assert stages[(ada.id, "mql")] == (at("03-04"), at("03-15"), 2)
    assert stages[(bob.id, "nurture")] == (at("03-06"), at("03-06"), 1)
    touches = {row[0]: row[1:] for row in incremental["touch"]}
    assert touches == {ada.id: (at("02-27"), at("03-04")), bob.id: (at("03-06"), at("03-06")),
                       cyd.id: (at("03-09"), None)}
    assert refresh(session) == {"events": 0, "transitions": 0, "rebuilt": 0}
    assert snapshot(session) == incremental


def test_a_merge_moves_the_merged_leads_summary_to_the_survivor(session):  # noqa: F811
    write = History(session)
    ada, bob = write_first_part(write)
    session.commit()
    refresh(session)
    merge_into(session, ada, bob)
    session.commit()
    assert refresh(session)["rebuilt"] == 2
    merged = snapshot(session)
    assert {row[0] for rows in merged.values() for row in rows} == {ada.id}
    touches = {row[0]: row[1:] for row in merged["touch"]}
    assert touches[ada.id] == (at("03-02"), at("03-04"))
    content = {row[1:3]: row[3:] for row in merged["content"]}
    assert content[("campaign", "spring")] == (at("03-04"), at("03-06"), at("03-04"), 2)
    assert content[("asset", "guide")] == (at("03-06"), at("03-06"), at("03-06"), 1)
    rebuild(session)
    assert snapshot(session) == merged
    assert refresh(session)["rebuilt"] == 0  # done once


def test_an_erasure_drops_the_leads_calls_to_action(session):  # noqa: F811
    write = History(session)
    ada, bob = write_first_part(write)
    session.commit()
    refresh(session)
    erase_personal_data(session, ada, at("04-01"))
    session.commit()
    assert refresh(session)["rebuilt"] == 1
    erased = snapshot(session)
    assert {row[0] for row in erased["content"]} == {bob.id}
    assert (ada.id, at("03-02"), None) in erased["touch"]  # the times stay: anonymous counts
    rebuild(session)
    assert snapshot(session) == erased


def test_the_summary_migration_fills_the_tables_from_the_stored_rows(tmp_path: Path):
    engine = downgraded(tmp_path, "0006")
    assert current(engine) == "0006"
    with engine.connect() as connection:
        # Only the tables of 0006 exist: write the history with plain SQL on them.
        connection.exec_driver_sql(
            "INSERT INTO leads (id, fields, field_times, stage, mql, disqualified, recycle_count, sla_misses, "
            "score_penalty, failures, created_at, updated_at) "
            "VALUES (1, '{}', '{}', 'mql', 0, 0, 0, 0, 0, 0, '2026-03-01 00:00:00', '2026-03-01 00:00:00')")
        connection.exec_driver_sql(
            "INSERT INTO events (id, source, event_key, lead_id, kind, occurred_at, received_at, fields, properties) "
            "VALUES (1, 'web', 'k1', 1, 'form_submit', '2026-03-04 00:00:00', '2026-03-04 00:00:00', '{}', "
            "'{\"form\": \"demo\"}')")
        connection.exec_driver_sql(
            "INSERT INTO transitions (id, lead_id, from_stage, to_stage, cause, detail, at) "
            "VALUES (1, 1, 'new', 'mql', 'score', '{}', '2026-03-04 00:00:00')")
        connection.commit()
    upgrade(engine)
    assert current(engine) == "0007"
    with Session(engine) as migrated:
        assert snapshot(migrated) == {
            "touch": [(1, at("03-04"), at("03-04"))],
            "stage": [(1, "mql", at("03-04"), at("03-04"), 1)],
            "content": [(1, "form", "demo", at("03-04"), at("03-04"), at("03-04"), 1)]}
        mark = migrated.get(SummaryWatermark, 1)
        assert (mark.event_id, mark.transition_id) == (1, 1)
    engine.dispose()


def test_the_cron_refreshes_the_summaries_from_what_the_pipeline_wrote(client, svc, config):
    assert (refresh_summaries, 60) in cron_jobs({**config, "LEADLOOP_SWEEP_SECONDS": 60})
    post_events(client, [web_event("e1", "content_download", occurred_at="2026-11-20T10:00:00+00:00",
                                   properties={"asset": "buyers-guide"}),
                         web_event("e2", "page_view", occurred_at="2026-11-19T09:00:00+00:00")])
    drain(svc)
    assert refresh_summaries()["events"] == 2
    with svc.sessions() as store:
        touch = snapshot(store)["touch"]
        content = snapshot(store)["content"]
    first, download = datetime(2026, 11, 19, 9, tzinfo=UTC), datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert [row[1:] for row in touch] == [(first, download)]
    assert [row[1:] for row in content] == [("asset", "buyers-guide", download, download, download, 1)]
    assert refresh_summaries()["events"] == 0

"""bench/big_store.py: the seeded store is consistent table to table, repeatable, and PostgreSQL's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from bench.big_store import build_big_store
from integration.reports import ReportQuery
from integration.reports.funnel import build as funnel
from tests.reports_support import session  # noqa: F401 - the fixture

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
FINGERPRINT = text("SELECT md5(string_agg(id || stage || coalesce(owner_id, '') || score::text || "
                   "coalesce(next_review_at::text, ''), ',' ORDER BY id)) FROM leads")


def test_big_store_is_consistent_and_repeatable(config, migrated_engine, session):  # noqa: F811 - the fixture
    if migrated_engine.dialect.name != "postgresql":
        with pytest.raises(ValueError, match="not SQLite"):
            build_big_store(config["DATABASE_URL"], leads=10, events=100)
        return
    built = build_big_store(config["DATABASE_URL"], leads=3000, events=24000, seed=7, now=NOW)
    assert built["rows"]["leads"] == 3000 and built["rows"]["events"] == 24000

    def one(sql: str):
        with migrated_engine.connect() as connection:
            return connection.execute(text(sql)).scalar()

    # Each lead's first touch is its entry form; nothing happened after now.
    assert one("SELECT count(*) FROM (SELECT lead_id, min(occurred_at) AS first FROM events GROUP BY lead_id) f "
               "JOIN events e ON e.lead_id = f.lead_id AND e.occurred_at = f.first "
               "WHERE e.event_key LIKE 'big-entry-%'") == 3000
    assert one("SELECT count(*) FROM events WHERE occurred_at > '2026-11-30 12:00+00' OR processed_at IS NULL") == 0
    assert one("SELECT count(*) FROM transitions WHERE at > '2026-11-30 12:00+00'") == 0
    # The lead's stage is where its last stage change took it.
    assert one("SELECT count(*) FROM leads l LEFT JOIN LATERAL (SELECT to_stage FROM transitions t "
               "WHERE t.lead_id = l.id AND t.to_stage <> t.from_stage ORDER BY at DESC, id DESC LIMIT 1) last ON true "
               "WHERE coalesce(last.to_stage, 'new') <> l.stage") == 0
    # One deal per lead that reached sql; its outcome is the lead's when it ended.
    assert one("SELECT count(*) FROM leads WHERE stage IN ('sql', 'won', 'lost')") == one("SELECT count(*) FROM deals")
    assert one("SELECT count(*) FROM deals d JOIN deal_leads dl ON dl.deal_id = d.id JOIN leads l ON l.id = dl.lead_id "
               "WHERE l.stage IN ('won', 'lost') AND d.outcome <> l.stage") == 0
    due = one("SELECT avg((next_review_at <= '2026-11-30 12:00+00')::int) FROM leads WHERE next_review_at IS NOT NULL")
    assert 0.005 <= float(due) <= 0.04
    # The constraints and indexes are back.
    assert one("SELECT count(*) FROM pg_constraint WHERE conname = 'uq_events_source_key'") == 1
    [row] = funnel(session, ReportQuery()).rows
    assert row["entered"]["new"] == 3000
    assert row["entered"]["won"] == one("SELECT count(*) FROM leads WHERE stage = 'won'")
    session.rollback()  # the build below takes table locks
    first = one(FINGERPRINT.text)
    with pytest.raises(ValueError, match="not empty"):
        build_big_store(config["DATABASE_URL"], leads=3000, events=24000, seed=7, now=NOW)
    build_big_store(config["DATABASE_URL"], leads=3000, events=24000, seed=7, now=NOW, reset=True)
    assert one(FINGERPRINT.text) == first
    build_big_store(config["DATABASE_URL"], leads=3000, events=24000, seed=8, now=NOW, reset=True)
    assert one(FINGERPRINT.text) != first

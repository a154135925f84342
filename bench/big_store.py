"""A big, seeded store for the benchmarks: N leads (default 1,000,000) and M events (10,000,000).

Built by PostgreSQL itself (``INSERT ... SELECT FROM generate_series``), one transaction: the
tables' secondary indexes and constraints are dropped first and built again at the end (faster
than keeping them up to date row by row). Every value comes from ``hashint8extended`` of the row
number and the seed, so the same seed and ``now`` give the same store, row for row.

What it holds, realistic for every table the reports and the on-time rescoring read:

- leads: CRM (HubSpot 55 %, Salesforce 30 %, web-only 15 %) and record id, email, fields
  (lead source, campaign, job title, country, company, employees), stage, score, band, grade,
  owner and team (routed like the shipped rules: DACH, enterprise, inbound), hand-off columns
  (band, playbook, SLA due), recycle columns, first touch over the last 12 months, and
  ``next_review_at`` spread over the next 30 days (about 2 % due now);
- events: one entry form per lead at its first touch, then the scored activity kinds (page views,
  e-mail opens and clicks, downloads, forms with the demo request among them, chats, trials,
  events, contact requests) with ``url`` / ``asset`` / ``form`` / ``campaign`` properties, and 2 %
  CRM field changes; all processed;
- transitions: each lead's stage path at business times (5 % disqualified, 20 % handed off: of
  those a quarter recycled, by sales or an SLA miss, some back to MQL after the cooldown; two
  thirds accepted, most of them SQL, then won or lost by their deal), with SLA reminders;
- scores: the latest per lead, and the one at the hand-off (its reasons name the rules);
- deals and deal_leads: one deal per SQL lead, open, won (with an amount) or lost.

Run: ``.venv/bin/python bench/big_store.py [--leads N --events M --seed S --reset]`` with
``DATABASE_URL`` (or ``--database-url``) naming a PostgreSQL database; SQLite is refused. From
Python: ``build_big_store(database_url, leads=..., events=..., seed=...)``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration.demo.data import CAMPAIGNS, DOWNLOADS, FORMS, PAGES, SITE  # noqa: E402
from integration.services import make_engine  # noqa: E402
from integration.store.migrate import upgrade  # noqa: E402
from integration.store.summaries import SUMMARY_TABLES, rebuild  # noqa: E402

#: The tables the store fills, parents first.
TABLES = ("leads", "events", "scores", "transitions", "deals", "deal_leads")
SOURCES = ["Website", "Webinar", "Paid Search", "Organic Search", "Trade Show", "Referral", "Partner", "Newsletter"]
COUNTRIES = ["DE", "AT", "CH", "GB", "US", "FR", "NL", "CA", "DE", "GB"]
TITLES = ["Head of Logistics", "Director of Operations", "VP Supply Chain", "COO", "Logistics Manager",
          "Fleet Manager", "Transport Manager", "Dispatcher", "Supply Chain Analyst", "Buyer", "Student"]
FIT_RULES = ["decision-maker", "manager", "target-industry", "company-size", "target-country", "named-company"]
ENGAGEMENT_RULES = ["download-hot", "download-warm", "view-hot-page", "read-guide-section", "read-case-study",
                    "demo-form", "asked-for-contact", "trial-signup", "attended-event", "email-click"]
AMOUNTS = [4800, 9600, 12000, 18000, 24000, 36000, 48000, 72000]
REPS_PER_TEAM = 12


def _arrays() -> dict[str, list[Any]]:
    return {
        "sources": SOURCES, "countries": COUNTRIES, "titles": TITLES, "campaigns": list(CAMPAIGNS),
        "fit_rules": FIT_RULES, "engagement_rules": ENGAGEMENT_RULES, "amounts": AMOUNTS,
        "pages": [SITE + page for pages in PAGES.values() for page in pages],
        "assets": list(DOWNLOADS), "asset_urls": [SITE + url for url in DOWNLOADS.values()],
        "forms": list(FORMS), "form_urls": [SITE + url for url in FORMS.values()],
    }


def _pick(array: str, salt: str) -> str:
    """SQL: one element of the bound array ``array``, chosen by ``pg_temp.rnd(..., salt)``."""
    return (f"(CAST(:{array} AS text[]))[1 + floor({salt} * cardinality(CAST(:{array} AS text[])))::int]")


# Per lead: its path through the loop, with the raw time of each stage (NULL: the path does not go
# there); a stage later than now is not reached yet (times only grow along a path).
PATHS = """
CREATE TEMP TABLE big_paths ON COMMIT DROP AS
WITH dice AS (
  SELECT i, pg_temp.rnd(i, 1) AS r1, pg_temp.rnd(i, 2) AS r2, pg_temp.rnd(i, 3) AS r3, pg_temp.rnd(i, 4) AS r4,
         pg_temp.rnd(i, 5) AS r5, pg_temp.rnd(i, 6) AS r6, pg_temp.rnd(i, 7) AS r7, pg_temp.rnd(i, 8) AS r8,
         pg_temp.rnd(i, 9) AS r9, pg_temp.rnd(i, 10) AS r10, pg_temp.rnd(i, 11) AS r11, pg_temp.rnd(i, 12) AS r12,
         pg_temp.rnd(i, 16) AS r16
  FROM generate_series(1, :leads) AS i
), raw AS (
  SELECT i, r5, r6, r16,
         CAST(:now AS timestamptz) - interval '365 days' * r1 AS first_at,
         r2 < 0.05 AS dq, r2 >= 0.80 AS handed, r3 < 0.25 AS recycles, r3 >= 0.35 AS accepts, r4 >= 0.30 AS qualifies,
         r5 < 0.40 AS wins, r5 < 0.75 AS closes, r6 < 0.5 AS back, r3 < 0.10 AS by_sla,
         interval '1 hour' * (1 + 47 * r7) AS to_nurture, interval '1 day' * (1 + 59 * r8) AS to_mql,
         r9, r10, r11, r12
  FROM dice
), timed AS (
  SELECT i, first_at, dq, handed, recycles, accepts, qualifies, wins, closes, by_sla, r5, r6, r16,
         CASE WHEN dq THEN first_at + interval '1 hour' END AS dq_at,
         CASE WHEN NOT dq THEN first_at + to_nurture END AS nurture_at,
         CASE WHEN handed THEN first_at + to_nurture + to_mql END AS mql_at,
         CASE WHEN handed AND recycles THEN first_at + to_nurture + to_mql + interval '1 day' * (1 + 9 * r9) END
           AS recycled_at,
         CASE WHEN handed AND recycles THEN first_at + to_nurture + to_mql + interval '1 day' * (31 + 9 * r9) END
           AS nurture_again_at,
         CASE WHEN handed AND recycles AND back THEN first_at + to_nurture + to_mql
           + interval '1 day' * (32 + 9 * r9 + 40 * r10) END AS mql_again_at,
         CASE WHEN handed AND accepts THEN first_at + to_nurture + to_mql + interval '1 day' * (0.1 + 4.9 * r9) END
           AS accepted_at,
         CASE WHEN handed AND accepts AND qualifies THEN first_at + to_nurture + to_mql
           + interval '1 day' * (3.1 + 4.9 * r9 + 27 * r11) END AS sql_at,
         CASE WHEN handed AND accepts AND qualifies AND closes THEN first_at + to_nurture + to_mql
           + interval '1 day' * (13.1 + 4.9 * r9 + 27 * r11 + 80 * r12) END AS end_at
  FROM raw
)
SELECT i AS id, first_at, dq, recycles, by_sla, wins, r5, r6, r16,
       CASE WHEN dq_at <= :now THEN dq_at END AS dq_at,
       CASE WHEN nurture_at <= :now THEN nurture_at END AS nurture_at,
       CASE WHEN mql_at <= :now THEN mql_at END AS mql_at,
       CASE WHEN recycled_at <= :now THEN recycled_at END AS recycled_at,
       CASE WHEN nurture_again_at <= :now THEN nurture_again_at END AS nurture_again_at,
       CASE WHEN mql_again_at <= :now THEN mql_again_at END AS mql_again_at,
       CASE WHEN accepted_at <= :now THEN accepted_at END AS accepted_at,
       CASE WHEN sql_at <= :now THEN sql_at END AS sql_at,
       CASE WHEN end_at <= :now THEN end_at END AS end_at,
       CASE WHEN mql_at <= :now AND NOT (accepted_at <= mql_at + interval '1 day') AND r16 < 0.3
            THEN mql_at + interval '1 day' END AS sla_at
FROM timed
"""

DETAILS = """
CREATE TEMP TABLE big_leads ON COMMIT DROP AS
SELECT p.*,
       CASE WHEN p.end_at IS NOT NULL THEN CASE WHEN p.wins THEN 'won' ELSE 'lost' END
            WHEN p.sql_at IS NOT NULL THEN 'sql' WHEN p.accepted_at IS NOT NULL THEN 'accepted'
            WHEN p.mql_again_at IS NOT NULL THEN 'mql' WHEN p.nurture_again_at IS NOT NULL THEN 'nurture'
            WHEN p.recycled_at IS NOT NULL THEN 'recycled' WHEN p.mql_at IS NOT NULL THEN 'mql'
            WHEN p.dq_at IS NOT NULL THEN 'disqualified' WHEN p.nurture_at IS NOT NULL THEN 'nurture'
            ELSE 'new' END AS stage,
       GREATEST(p.first_at, p.dq_at, p.nurture_at, p.mql_at, p.sla_at, p.recycled_at, p.nurture_again_at,
                p.mql_again_at, p.accepted_at, p.sql_at, p.end_at) AS changed_at,
       CASE WHEN pg_temp.rnd(p.id, 13) < 0.55 THEN 'hubspot' WHEN pg_temp.rnd(p.id, 13) < 0.85 THEN 'salesforce'
            END AS crm,
       {country} AS country,
       CASE WHEN pg_temp.rnd(p.id, 14) < 0.15 THEN 1500 + floor(20000 * pg_temp.rnd(p.id, 15))::int
            ELSE 5 + floor(900 * pg_temp.rnd(p.id, 15))::int END AS employees,
       CASE WHEN pg_temp.rnd(p.id, 17) < 0.4 THEN 'hot' ELSE 'warm' END AS handoff_band,
       CASE WHEN p.recycles AND p.by_sla THEN 'no_response' WHEN p.recycles THEN 'not_ready' END AS recycle_reason
FROM big_paths AS p
"""

LEADS = """
INSERT INTO leads (id, crm, crm_id, email, fields, field_times, stage, owner_id, team, score, fit_points,
                   engagement_points, band, grade, mql, disqualified, rules_version, scored_at, recycle_count,
                   recycle_reason, cooldown_until, engagement_reset_at, last_handoff_at, sla_due_at, sla_misses,
                   handoff_status, handoff_playbook, handoff_band, recycled_at, score_penalty, nurture_track,
                   last_engagement_at, stage_changed_at, created_at, updated_at, failures, next_review_at,
                   next_review_reason)
SELECT id, crm,
       CASE crm WHEN 'hubspot' THEN (100000000 + id)::text WHEN 'salesforce' THEN '00Q' || lpad(id::text, 15, '0') END,
       'lead' || id || '@company' || (id % 50000) || '.example',
       jsonb_build_object('lead_source', {source}, 'campaign', {campaign}, 'job_title', {title},
                          'country', country, 'company', 'Company ' || (id % 50000), 'employees', employees,
                          'lead_status', CASE WHEN accepted_at IS NOT NULL THEN 'IN_PROGRESS' ELSE 'NEW' END),
       '{{}}'::jsonb, stage,
       CASE WHEN team IS NOT NULL AND stage <> 'recycled' AND stage <> 'nurture'
            THEN team || '-rep-' || (1 + floor({reps} * pg_temp.rnd(id, 18))::int) END,
       team, score, LEAST(score, 60), score - LEAST(score, 60),
       CASE WHEN score >= 90 THEN 'hot' WHEN score >= 60 THEN 'warm' WHEN score >= 30 THEN 'cool' ELSE 'cold' END,
       CASE WHEN score >= 80 THEN 'A' WHEN score >= 50 THEN 'B' WHEN score >= 20 THEN 'C' ELSE 'D' END,
       stage IN ('mql', 'accepted', 'sql', 'won', 'lost'), dq_at IS NOT NULL, 'bench-v1', changed_at,
       CASE WHEN recycled_at IS NOT NULL THEN 1 ELSE 0 END, recycle_reason,
       CASE WHEN recycled_at IS NOT NULL THEN recycled_at + interval '30 days' END, NULL,
       COALESCE(mql_again_at, mql_at),
       CASE WHEN stage = 'mql' THEN COALESCE(mql_again_at, mql_at) + interval '1 day' END,
       CASE WHEN stage = 'mql' AND sla_at IS NOT NULL THEN 1 ELSE 0 END,
       CASE WHEN mql_at IS NOT NULL THEN 'NEW' END,
       CASE WHEN mql_at IS NULL THEN NULL WHEN handoff_band = 'hot' THEN 'call_now' ELSE 'individual_follow_up' END,
       CASE WHEN mql_at IS NOT NULL THEN handoff_band END, recycled_at, 0,
       CASE WHEN recycled_at IS NOT NULL THEN 'recycled-' || replace(recycle_reason, '_', '-') END,
       changed_at, changed_at, first_at, changed_at, 0,
       CASE WHEN dq_at IS NULL THEN CAST(:now AS timestamptz) + interval '1 day' * (31 * pg_temp.rnd(id, 19) - 0.6) END,
       CASE WHEN dq_at IS NULL THEN 'engagement decays' END
FROM (SELECT b.*,
             CASE WHEN b.mql_at IS NULL THEN NULL WHEN b.country IN ('DE', 'AT', 'CH') THEN 'dach'
                  WHEN b.employees >= 1000 THEN 'enterprise' ELSE 'inbound' END AS team,
             CASE WHEN b.dq_at IS NOT NULL THEN -40 + 30 * pg_temp.rnd(b.id, 20)
                  WHEN b.stage IN ('mql', 'accepted', 'sql', 'won', 'lost')
                    THEN CASE WHEN b.handoff_band = 'hot' THEN 90 + 40 * pg_temp.rnd(b.id, 20)
                              ELSE 60 + 29 * pg_temp.rnd(b.id, 20) END
                  ELSE 55 * pg_temp.rnd(b.id, 20) END AS score
      FROM big_leads AS b) AS l
"""

# The entry form of each lead at its first touch, then the rest spread over the leads' lives.
ENTRY_EVENTS = """
INSERT INTO events (source, event_key, lead_id, record_id, kind, occurred_at, received_at, fields, properties, raw,
                    processed_at)
SELECT 'web', 'big-entry-' || id, id, NULL, 'form_submit', first_at, first_at + interval '30 seconds', '{}'::jsonb,
       jsonb_build_object('form', (CAST(:forms AS text[]))[1 + (id % cardinality(CAST(:forms AS text[])))::int],
                          'url', (CAST(:form_urls AS text[]))[1 + (id % cardinality(CAST(:form_urls AS text[])))::int]),
       NULL, first_at + interval '32 seconds'
FROM big_paths
"""

EVENTS = """
INSERT INTO events (source, event_key, lead_id, record_id, kind, occurred_at, received_at, fields, properties, raw,
                    processed_at)
SELECT CASE WHEN kind = 'field_change' THEN 'hubspot' ELSE 'web' END, 'big-' || j, lead_id, NULL, kind, at,
       at + interval '30 seconds',
       CASE WHEN kind = 'field_change' THEN jsonb_build_object('job_title', {title}) ELSE '{{}}'::jsonb END,
       CASE kind
         WHEN 'page_view' THEN jsonb_build_object('url', {page})
         WHEN 'content_download' THEN jsonb_build_object('asset', (CAST(:assets AS text[]))[k], 'url',
                                                          (CAST(:asset_urls AS text[]))[k])
         WHEN 'form_submit' THEN jsonb_build_object('form', (CAST(:forms AS text[]))[f], 'url',
                                                     (CAST(:form_urls AS text[]))[f])
         WHEN 'email_open' THEN jsonb_build_object('campaign', {campaign})
         WHEN 'email_click' THEN jsonb_build_object('campaign', {campaign}, 'url', {page})
         WHEN 'trial_signup' THEN jsonb_build_object('plan', '14-day trial', 'url', '{site}/trial')
         WHEN 'event_attended' THEN jsonb_build_object('event', 'LogiMAT, Stuttgart')
         WHEN 'chat_intent' THEN jsonb_build_object('topic', 'SAP integration')
         WHEN 'contact_request' THEN jsonb_build_object('url', '{site}/contact')
         WHEN 'unsubscribe' THEN jsonb_build_object('campaign', {campaign})
         ELSE '{{}}'::jsonb END,
       NULL, at + interval '32 seconds'
FROM (SELECT e.j, e.lead_id, p.first_at + (CAST(:now AS timestamptz) - p.first_at) * pg_temp.rnd(e.j, 22) AS at,
             1 + floor(pg_temp.rnd(e.j, 24) * cardinality(CAST(:assets AS text[])))::int AS k,
             1 + floor(pg_temp.rnd(e.j, 24) * cardinality(CAST(:forms AS text[])))::int AS f,
             CASE WHEN e.r < 0.50 THEN 'page_view' WHEN e.r < 0.68 THEN 'email_open'
                  WHEN e.r < 0.76 THEN 'email_click' WHEN e.r < 0.84 THEN 'content_download'
                  WHEN e.r < 0.90 THEN 'form_submit' WHEN e.r < 0.93 THEN 'chat_intent'
                  WHEN e.r < 0.95 THEN 'trial_signup' WHEN e.r < 0.96 THEN 'event_attended'
                  WHEN e.r < 0.97 THEN 'contact_request' WHEN e.r < 0.98 THEN 'unsubscribe'
                  ELSE 'field_change' END AS kind
      FROM (SELECT j, 1 + floor(:leads * pg_temp.rnd(j, 21))::int AS lead_id, pg_temp.rnd(j, 23) AS r
            FROM generate_series(1, :more) AS j) AS e
      JOIN big_paths AS p ON p.id = e.lead_id) AS x
"""

_REASONS = ("jsonb_build_array("
            "jsonb_build_object('points', 25, 'text', 'fit', 'rule', {fit}, 'kind', 'fit'), "
            "jsonb_build_object('points', 20, 'text', 'engagement', 'rule', {engagement}, 'kind', 'engagement'), "
            "jsonb_build_object('points', 10, 'text', 'engagement', 'rule', {engagement2}, 'kind', 'engagement'))")

SCORES = """
INSERT INTO scores (lead_id, computed_at, as_of, rules_version, score, fit_points, engagement_points, band, grade, mql,
                    disqualified, summary, result, events_seen)
SELECT id, scored_at, scored_at, 'bench-v1', score, fit_points, engagement_points, band, grade, mql, disqualified,
       band || ' lead', jsonb_build_object('score', score, 'band', band, 'mql', mql, 'playbook', handoff_playbook,
                                           'reasons', {reasons}, 'rules_version', 'bench-v1'), 10
FROM leads
UNION ALL
SELECT id, mql_at, mql_at, 'bench-v1', score, fit_points, engagement_points, at_handoff, grade, true, false,
       at_handoff || ' lead', jsonb_build_object('score', score, 'band', at_handoff, 'mql', true,
                                                 'playbook', handoff_playbook, 'reasons', {reasons},
                                                 'rules_version', 'bench-v1'), 8
FROM (SELECT l.id, l.score, l.fit_points, l.engagement_points, l.grade, l.handoff_playbook, b.mql_at,
             b.handoff_band AS at_handoff
      FROM leads AS l JOIN big_leads AS b ON b.id = l.id WHERE b.mql_at IS NOT NULL) AS handed
"""

TRANSITIONS = """
INSERT INTO transitions (lead_id, from_stage, to_stage, cause, detail, rules_version, at)
SELECT id, 'new', 'nurture', 'score', jsonb_build_object('band', 'cool', 'mql', false), 'bench-v1', nurture_at
  FROM big_leads WHERE nurture_at IS NOT NULL
UNION ALL SELECT id, 'new', 'disqualified', 'score', jsonb_build_object('disqualify_reason', 'student'), 'bench-v1',
                 dq_at
  FROM big_leads WHERE dq_at IS NOT NULL
UNION ALL SELECT id, 'nurture', 'mql', 'score', jsonb_build_object('band', handoff_band, 'mql', true), 'bench-v1',
                 mql_at
  FROM big_leads WHERE mql_at IS NOT NULL
UNION ALL SELECT id, 'mql', 'mql', 'sla', jsonb_build_object('action', 'remind', 'sla_misses', 1), 'bench-v1', sla_at
  FROM big_leads WHERE sla_at IS NOT NULL
UNION ALL SELECT id, 'mql', 'recycled', CASE WHEN recycle_reason = 'no_response' THEN 'sla' ELSE 'disposition' END,
                 jsonb_build_object('reason', recycle_reason, 'recycle_count', 1), 'bench-v1', recycled_at
  FROM big_leads WHERE recycled_at IS NOT NULL
UNION ALL SELECT id, 'recycled', 'nurture', 'cooldown_expired', '{}'::jsonb, 'bench-v1', nurture_again_at
  FROM big_leads WHERE nurture_again_at IS NOT NULL
UNION ALL SELECT id, 'nurture', 'mql', 'score', jsonb_build_object('band', handoff_band, 'mql', true), 'bench-v1',
                 mql_again_at
  FROM big_leads WHERE mql_again_at IS NOT NULL
UNION ALL SELECT id, 'mql', 'accepted', 'disposition', jsonb_build_object('disposition', 'accepted'), 'bench-v1',
                 accepted_at
  FROM big_leads WHERE accepted_at IS NOT NULL
UNION ALL SELECT id, 'accepted', 'sql', 'deal', jsonb_build_object('outcome', 'open'), 'bench-v1', sql_at
  FROM big_leads WHERE sql_at IS NOT NULL
UNION ALL SELECT id, 'sql', CASE WHEN wins THEN 'won' ELSE 'lost' END, 'deal',
                 jsonb_build_object('outcome', CASE WHEN wins THEN 'won' ELSE 'lost' END), 'bench-v1', end_at
  FROM big_leads WHERE end_at IS NOT NULL
"""

DEALS = """
INSERT INTO deals (id, crm, crm_id, pipeline, stage, is_closed, is_won, amount, currency, created_at, closed_at,
                   outcome, field_times, deleted_at, merged_into_id, updated_at)
SELECT id, COALESCE(crm, 'hubspot'), 'big-deal-' || id, 'default',
       CASE WHEN end_at IS NULL THEN 'qualifiedtobuy' WHEN wins THEN 'closedwon' ELSE 'closedlost' END,
       end_at IS NOT NULL, CASE WHEN end_at IS NOT NULL THEN wins END,
       (CAST(:amounts AS int[]))[1 + floor(pg_temp.rnd(id, 25) * cardinality(CAST(:amounts AS int[])))::int],
       'EUR', sql_at, end_at, CASE WHEN end_at IS NULL THEN 'open' WHEN wins THEN 'won' ELSE 'lost' END,
       '{}'::jsonb, NULL, NULL, COALESCE(end_at, sql_at)
FROM big_leads WHERE sql_at IS NOT NULL
"""

DEAL_LEADS = "INSERT INTO deal_leads (deal_id, lead_id, linked_at) SELECT id, id, sql_at FROM big_leads " \
             "WHERE sql_at IS NOT NULL"


def _random_function(seed: int) -> str:
    # hashint8extended: PostgreSQL's 64-bit hash of a bigint with a seed; the same inputs, the same value.
    return (f"CREATE FUNCTION pg_temp.rnd(i bigint, salt int) RETURNS float8 LANGUAGE sql IMMUTABLE AS "
            f"$$ SELECT (hashint8extended(i, salt::bigint * 1000003 + {int(seed)}) & 2147483647)::float8 "
            f"/ 2147483648.0 $$")


def _drop_secondary(connection: Connection) -> list[str]:
    """Drop the filled tables' foreign keys, unique constraints and indexes (not the primary keys);
    return the statements that create them again."""
    names = ", ".join(f"'{table}'" for table in TABLES)
    constraints = connection.execute(text(
        f"SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        f"WHERE conrelid::regclass::text IN ({names}) AND contype IN ('f', 'u') ORDER BY contype")).all()
    restore_constraints = []
    for table, name, definition in constraints:
        connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
        restore_constraints.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    indexes = connection.execute(text(
        f"SELECT i.indexname, i.indexdef FROM pg_indexes AS i WHERE i.tablename IN ({names}) "
        f"AND i.schemaname = current_schema() AND i.indexname NOT IN "
        f"(SELECT conname FROM pg_constraint WHERE contype = 'p')")).all()
    for name, _ in indexes:
        connection.execute(text(f'DROP INDEX "{name}"'))
    # Dropped foreign keys first; made again last, after the indexes and unique constraints.
    return [definition for _, definition in indexes] + restore_constraints[::-1]


def build_big_store(database_url: str, *, leads: int = 1_000_000, events: int = 10_000_000, seed: int = 1,
                    now: datetime | None = None, reset: bool = False, echo: bool = False) -> dict[str, Any]:
    """Fill the PostgreSQL store at ``database_url`` with ``leads`` leads and ``events`` events.

    Runs the migrations first. The store must be empty, or ``reset`` empties it. ``now`` (default:
    the current hour) is the end of the 12 months of history. Returns the rows per table and the
    seconds per step. Raises ``ValueError`` for SQLite, too few events or a store that is not empty.
    """
    if not database_url.startswith(("postgresql", "postgres:")):
        raise ValueError("the big store is built by PostgreSQL (generate_series, hashint8extended): "
                         "give a postgresql:// DATABASE_URL, not SQLite")
    if events < leads:
        raise ValueError("at least one event per lead: events >= leads")
    if database_url.startswith(("postgresql://", "postgres://")):
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    engine = make_engine(database_url)
    upgrade(engine)
    params = {"leads": leads, "more": events - leads, "now": now, **_arrays()}
    # (step, SQL, the table it fills, whether the SQL is a template)
    steps = [("paths", PATHS, None, False), ("lead details", DETAILS, None, True), ("leads", LEADS, "leads", True),
             ("entry events", ENTRY_EVENTS, "events", False), ("events", EVENTS, "events", True),
             ("scores", SCORES, "scores", True), ("transitions", TRANSITIONS, "transitions", False),
             ("deals", DEALS, "deals", False), ("deal_leads", DEAL_LEADS, "deal_leads", False)]
    formats = {"country": _pick("countries", "pg_temp.rnd(p.id, 26)"),
               "source": _pick("sources", "pg_temp.rnd(id, 27)"), "campaign": _pick("campaigns", "pg_temp.rnd(id, 28)"),
               "title": _pick("titles", "pg_temp.rnd(id, 29)"), "reps": REPS_PER_TEAM,
               "page": _pick("pages", "pg_temp.rnd(e.j, 30)").replace("e.j", "j"), "site": SITE,
               "reasons": _REASONS.format(fit=_pick("fit_rules", "pg_temp.rnd(id, 31)"),
                                          engagement=_pick("engagement_rules", "pg_temp.rnd(id, 32)"),
                                          engagement2=_pick("engagement_rules", "pg_temp.rnd(id, 33)"))}
    formats_events = {**formats, "title": _pick("titles", "pg_temp.rnd(j, 29)"),
                      "campaign": _pick("campaigns", "pg_temp.rnd(j, 28)")}
    timings: dict[str, float] = {}
    rows: dict[str, int] = {}
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL synchronous_commit = off"))
        connection.execute(text("SET LOCAL work_mem = '256MB'"))
        connection.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        if connection.execute(text("SELECT EXISTS (SELECT 1 FROM leads)")).scalar():
            if not reset:
                raise ValueError("the store is not empty: pass reset=True (--reset) to empty it first")
            emptied = ", ".join((*TABLES, *SUMMARY_TABLES, "outbox", "rotation_state"))
            connection.execute(text(f"TRUNCATE {emptied} RESTART IDENTITY CASCADE"))
        connection.execute(text(_random_function(seed)))
        restore = _drop_secondary(connection)
        for name, sql, table, template in steps:
            step_started = time.perf_counter()
            statement = sql.format(**(formats_events if name == "events" else formats)) if template else sql
            result = connection.execute(text(statement), _bound(statement, params))
            timings[name] = time.perf_counter() - step_started
            if table:
                rows[table] = rows.get(table, 0) + (result.rowcount or 0)
            if echo:
                print(f"  {name:<14} {_rate(result.rowcount if table else None, timings[name])}", flush=True)
        step_started = time.perf_counter()
        for statement in restore:
            connection.execute(text(statement))
        for table in ("leads", "deals"):
            connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                    f"GREATEST((SELECT max(id) FROM {table}), 1))"))
        timings["indexes"] = time.perf_counter() - step_started
        if echo:
            print(f"  {'indexes':<14} {timings['indexes']:.1f} s", flush=True)
    step_started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # VACUUM too, as autovacuum would soon: index-only scans need the visibility map.
        connection.execute(text(f"VACUUM ANALYZE {', '.join(TABLES)}"))
    timings["vacuum"] = time.perf_counter() - step_started
    step_started = time.perf_counter()
    with Session(engine) as session:
        rebuild(session)  # the report summaries, from all the rows just written (a full refresh)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"VACUUM ANALYZE {', '.join(SUMMARY_TABLES)}"))
    timings["summaries"] = time.perf_counter() - step_started
    if echo:
        print(f"  {'summaries':<14} {timings['summaries']:.1f} s (full refresh)", flush=True)
    timings["total"] = time.perf_counter() - started
    engine.dispose()
    return {"rows": rows, "seconds": timings, "now": now.isoformat()}


def _bound(statement: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters ``statement`` names (text() refuses unknown ones on some drivers)."""
    return {name: value for name, value in params.items() if f":{name}" in statement}


def _rate(count: int | None, seconds: float) -> str:
    if count is None:
        return f"{seconds:.1f} s"
    return f"{count:>11,} rows {seconds:7.1f} s {count / max(seconds, 1e-9):>12,.0f} rows/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="a PostgreSQL URL (default: DATABASE_URL)")
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reset", action="store_true", help="empty a store that is not empty first")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("set DATABASE_URL or pass --database-url (PostgreSQL)")
    print(f"building {args.leads:,} leads and {args.events:,} events (seed {args.seed})", flush=True)
    try:
        built = build_big_store(args.database_url, leads=args.leads, events=args.events, seed=args.seed,
                                reset=args.reset, echo=True)
    except ValueError as exc:
        parser.error(str(exc))
    total_rows = sum(built["rows"].values())
    seconds = built["seconds"]["total"]
    print(f"done: {total_rows:,} rows in {seconds:.1f} s ({total_rows / seconds:,.0f} rows/s); "
          + ", ".join(f"{table} {count:,}" for table, count in built["rows"].items()))


if __name__ == "__main__":
    main()

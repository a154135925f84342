"""``leadloop import csv``: a spreadsheet export with every column kind becomes leads with their history.

The fixture files (tests/fixtures/csv/) hold a number, a bool, an ISO date, dates in custom
formats in a named time zone, empty cells, a custom field, stage dates, the outcome column, a
cell spanning two lines, and bad rows (a bad number, a bad date, a bad bool, no id) in both files.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from integration.cli.main import main
from integration.imports.csv_import import import_csv
from integration.imports.mapping import MappingError, load_mapping, load_mapping_text
from integration.store.models import Event, ImportProgress, Lead, OutboxWrite, ScoreRecord, Transition
from scoring import check_rules_text

FIXTURES = Path(__file__).parent / "fixtures" / "csv"
MAPPING = FIXTURES / "mapping.yaml"
LEADS = FIXTURES / "leads.csv"
ACTIVITIES = FIXTURES / "activities.csv"
ROOT = Path(__file__).parents[1]


def run_import(svc, leads=LEADS, activities=ACTIVITIES, mapping=MAPPING, **options):
    bad: list = []
    done = import_csv(svc, leads, load_mapping(mapping), mapping.read_text(), activities, on_bad_row=bad.append,
                      **options)
    # A row is reported when it is read, or (an activity of an unknown lead) when its batch is stored.
    return done, sorted(bad, key=lambda row: (row.file != "leads.csv", row.line))


def table_counts(svc) -> dict[str, int]:
    with svc.sessions() as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model))
                for model in (Lead, Event, Transition, ScoreRecord, OutboxWrite)}


def stored_leads(svc) -> dict[str, dict]:
    with svc.sessions() as session:
        leads = session.scalars(select(Lead).order_by(Lead.crm_id)).all()
        transitions = session.execute(select(Transition.lead_id, Transition.from_stage, Transition.to_stage,
                                             Transition.cause, Transition.at).order_by(Transition.id)).all()
        return {lead.crm_id: {
            "crm": lead.crm, "email": lead.email, "fields": lead.fields, "field_times": lead.field_times,
            "stage": lead.stage, "created_at": lead.created_at, "band": lead.band, "score": lead.score,
            "last_engagement_at": lead.last_engagement_at,
            "transitions": [(a, b, cause, at) for lead_id, a, b, cause, at in transitions if lead_id == lead.id],
        } for lead in leads}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_every_column_kind_becomes_a_lead_with_its_history(svc):
    done, bad = run_import(svc)

    # Bad rows are reported by their line (the two-line cell counts two) and the import goes on.
    assert [(row.file, row.line) for row in bad] == [
        ("leads.csv", 4), ("leads.csv", 5), ("leads.csv", 6), ("leads.csv", 9),
        ("activities.csv", 6), ("activities.csv", 7), ("activities.csv", 8)]
    reasons = [row.reason for row in bad]
    assert "'lots' is not a number" in reasons[0]
    assert "'31/02/2026 10:00' is not a date" in reasons[1]
    assert reasons[2] == 'column "Prospect ID": no id'
    assert "'maybe' is not true or false" in reasons[3]
    assert reasons[4] == 'no lead with id "P-9"'
    assert 'unknown activity kind "Carrier Pigeon"' in reasons[5]
    assert "'yesterday' is not a date" in reasons[6]
    assert done.counts["rows"] == 8 + 7 and done.counts["bad_rows"] == 7

    leads = stored_leads(svc)
    assert sorted(leads) == ["P-1", "P-2", "P-5", "P-7"]
    ada = leads["P-1"]
    assert ada["crm"] == "csv" and ada["email"] == "ada@acme-robotics.example"
    # Dates without an offset are in the mapping's time zone (Berlin: UTC+1 in November).
    assert ada["created_at"] == at("2026-11-03T08:30:00+00:00")
    assert ada["fields"] == {"company": "Acme Robotics", "country": "DE", "employees": 250, "newsletter": True,
                             "trial_started": "2026-11-05T10:00:00+00:00", "favourite_robot": "R2-D2"}
    assert set(ada["field_times"].values()) == {"2026-11-03T08:30:00+00:00"}
    assert ada["transitions"] == [("new", "mql", "import", at("2026-11-09T23:00:00+00:00")),
                                  ("mql", "sql", "import", at("2026-11-15T08:00:00+00:00")),
                                  ("sql", "won", "import", at("2026-11-15T08:00:00+00:00"))]
    assert ada["stage"] == "won"
    assert ada["last_engagement_at"] == at("2026-11-07T09:00:00+00:00")

    bob = leads["P-2"]  # empty cells are missing, not empty values; the outcome falls back to created_at
    assert bob["fields"] == {"company": "Bolt Logistics", "country": "FR", "newsletter": False}
    assert bob["transitions"] == [("new", "lost", "import", at("2026-11-04T13:00:00+00:00"))]
    assert bob["stage"] == "lost"

    fay = leads["P-5"]  # a cell over two lines, a decimal, a bare ISO date, an open lead
    assert fay["fields"]["company"] == "Fab\nLabs" and fay["fields"]["employees"] == 40.5
    assert fay["fields"]["trial_started"] == "2026-11-07T23:00:00+00:00"
    assert fay["stage"] == "mql" and len(fay["transitions"]) == 1
    assert leads["P-7"]["stage"] == "sql"

    # Every lead is scored once, quietly; its events are stored processed; nothing for the CRM.
    assert all(lead["band"] is not None for lead in leads.values())
    counts = table_counts(svc)
    assert counts == {"leads": 4, "events": 4 + 3, "transitions": 6, "scores": 4, "outbox": 0}
    with svc.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event).where(Event.processed_at.is_(None))) == 0
        kinds = sorted(session.scalars(select(Event.kind).join(Lead).where(Lead.crm_id == "P-1")))
        assert kinds == ["form_submit", "lead_created", "page_view"]
        form = session.scalars(select(Event).where(Event.kind == "form_submit")).one()
        assert form.properties == {"url": "https://acme.example/demo", "form": "demo-request"}
        assert all(result["cause"] == "import" for result in session.scalars(select(ScoreRecord.result)))
    assert len(svc.queue) == 0  # nothing queued: no rescore, no flush


def test_a_second_import_changes_nothing(svc, tmp_path):
    run_import(svc)
    before_counts, before_leads = table_counts(svc), stored_leads(svc)

    again, bad = run_import(svc)  # the same files: the finished import is recognised
    assert again.already_done and bad == []
    assert table_counts(svc) == before_counts and stored_leads(svc) == before_leads

    # The same rows in new files (another export of the same data, one more lead): only the new lead is added.
    leads, activities = tmp_path / "leads.csv", tmp_path / "activities.csv"
    shutil.copy(ACTIVITIES, activities)
    leads.write_text(LEADS.read_text() + "P-8,ivy@ink.example,10/11/2026 09:00,Ink,DE,5,no,,,,,\n")
    done, _ = run_import(svc, leads=leads, activities=activities)
    assert not done.already_done and done.counts["leads"] == 1 and done.counts["activities"] == 0
    after = stored_leads(svc)
    assert {crm_id: lead for crm_id, lead in after.items() if crm_id != "P-8"} == before_leads
    assert table_counts(svc) == {**before_counts, "leads": 5, "events": 8, "scores": 5}


def test_an_interrupted_import_resumes_after_its_last_batch_without_duplicates(svc):
    batches: list[str] = []

    def stop_after_two_batches(phase: str) -> None:
        batches.append(phase)
        if len(batches) == 2:
            raise KeyboardInterrupt  # as if killed between two batches

    with pytest.raises(KeyboardInterrupt):
        run_import(svc, batch_rows=3, on_batch=stop_after_two_batches)
    with svc.sessions() as session:
        progress = session.scalars(select(ImportProgress)).one()
        assert progress.position == {"leads": 8} and progress.finished_at is None
    assert table_counts(svc)["leads"] == 3  # six rows, lines 2-8: P-1, P-2 and P-5 (three bad rows)

    done, bad = run_import(svc, batch_rows=3)
    assert done.resumed_at == {"leads": 8}
    assert [row.line for row in bad if row.file == "leads.csv"] == [9]  # the rows before were reported already
    assert done.counts["leads"] == 4 and done.counts["bad_rows"] == 7
    assert table_counts(svc) == {"leads": 4, "events": 7, "transitions": 6, "scores": 4, "outbox": 0}


def test_the_mapping_lists_every_mistake_with_its_place():
    text = """
crm: CSV Export
id: Prospect ID
fields:
  email: Email
  visits: {column: Visits, type: int}
  signup: {column: Signup, format: "%d/%m/%Y"}
  seen: {colum: Seen}
stages:
  customer: Won Date
  mql: {column: MQL, format: "no directives"}
outcome:
  column: Converted
  won: ["1"]
  lost: ["1"]
activites: {}
"""
    with pytest.raises(MappingError) as raised:
        load_mapping_text(text, "map.yaml")
    assert raised.value.errors == [
        'activites: unknown key "activites" (did you mean "activities"?)',
        "crm: must be a short lower-case source name (letters, digits, - or _; at most 20)",
        "fields.email: the email has its own key: email: COLUMN",
        'fields.seen.colum: unknown key "colum" (did you mean "column"?)',
        "fields.seen.column: required",
        "fields.signup.format: only a date column has a format (add type: date)",
        'fields.visits.type: unknown type "int" (use number, string, bool or date)',
        "outcome.lost: '1' is listed under won too",
        'stages.customer: unknown stage "customer" (use nurture, mql, accepted, sql, won, lost, recycled or '
        'disqualified)',
        'stages.mql.format: must be a strptime pattern like "%d/%m/%Y %H:%M"',
    ]
    assert str(raised.value).startswith("map.yaml: 10 mistakes\n  activites:")


def test_a_rules_file_may_condition_on_a_custom_field_and_imported_leads_score_by_it(svc, tmp_path, monkeypatch):
    rules = (ROOT / "rules" / "leadloop.yaml").read_text()
    custom = rules.replace("fit:\n", "fit:\n  - id: droid-fan\n    text: likes a famous droid\n"
                                     "    field: favourite_robot\n    in: [R2-D2, C-3PO]\n    points: 11\n", 1)
    ok, report = check_rules_text(custom, "custom.yaml")
    assert ok, report
    path = tmp_path / "custom.yaml"
    path.write_text(custom)
    from scoring import load_rules_file
    svc.rules = load_rules_file(str(path))
    run_import(svc)
    with svc.sessions() as session:
        reasons = {lead.crm_id: [r["rule"] for r in session.scalars(
            select(ScoreRecord.result).where(ScoreRecord.lead_id == lead.id)).one()["reasons"]]
            for lead in session.scalars(select(Lead))}
    assert "droid-fan" in reasons["P-1"] and "droid-fan" in reasons["P-5"]
    assert "droid-fan" not in reasons["P-2"]


@pytest.fixture
def environment(config, monkeypatch):
    for name, value in config.items():
        monkeypatch.setenv(name, value)
    return config


def test_the_command_imports_and_dry_run_writes_nothing(svc, environment, capsys):
    code = main(["import", "csv", str(LEADS), "--mapping", str(MAPPING), "--activities", str(ACTIVITIES),
                 "--dry-run"])
    captured = capsys.readouterr()
    assert code == 0
    assert "line 2: csv:P-1; email ada@acme-robotics.example; created 2026-11-03T08:30:00+00:00; " \
           "fields company='Acme Robotics'" in captured.out
    assert "line 4: skipped: column \"Employees\": 'lots' is not a number" in captured.out
    assert "line 2: lead P-1: page_view at 2026-11-06T09:00:00+00:00" in captured.out
    assert "nothing was written" in captured.err
    assert table_counts(svc) == {"leads": 0, "events": 0, "transitions": 0, "scores": 0, "outbox": 0}
    with svc.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ImportProgress)) == 0

    assert main(["import", "csv", str(LEADS), "--mapping", str(MAPPING), "--activities", str(ACTIVITIES)]) == 0
    captured = capsys.readouterr()
    assert "skipped leads.csv, line 4: column \"Employees\": 'lots' is not a number" in captured.err
    assert captured.out.strip() == ("15 rows read, 7 bad rows skipped; 4 leads and 3 activities imported, "
                                    "6 stage changes, 4 leads scored")
    assert table_counts(svc)["leads"] == 4
    assert main(["import", "csv", str(LEADS), "--mapping", str(MAPPING), "--activities", str(ACTIVITIES)]) == 0
    assert "imported already" in capsys.readouterr().err


def test_a_column_missing_from_the_file_is_a_setup_error(svc, environment, tmp_path, capsys):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING.read_text().replace("Favourite Robot", "Favorite Robot"))
    assert main(["import", "csv", str(LEADS), "--mapping", str(mapping)]) == 2
    assert 'fields.favourite_robot: column "Favorite Robot" is not in leads.csv\'s header' in capsys.readouterr().err
    assert table_counts(svc)["leads"] == 0


def test_the_workers_cron_finds_nothing_to_do_in_imported_history(svc):
    from integration.pipeline.jobs import rescore_on_time, sweep, sweep_slas
    from tests.conftest import drain

    run_import(svc)
    before_counts, before_leads = table_counts(svc), stored_leads(svc)
    assert sweep()["leads"] == 0  # no unprocessed event
    assert rescore_on_time() == {"due": 0, "rescored": 0, "failed": 0}  # no next review was planned
    assert sweep_slas() == {"due": 0}
    drain(svc)  # whatever the cron queued (a roll-out check) runs
    assert table_counts(svc) == before_counts and stored_leads(svc) == before_leads


def test_a_rules_roll_out_rescores_imported_history_but_never_hands_it_off(svc):
    # Imported CSV leads belong to no connector: a roll-out keeps their scores current for the
    # reports, but they never move stage, are never handed off and queue nothing for a CRM.
    from integration.pipeline.rollout import mark_all_due, run_rollout

    run_import(svc)
    before = stored_leads(svc)
    with svc.sessions.begin() as session:
        assert mark_all_due(session) > 0
    assert run_rollout(svc, svc.now())["rescored"] > 0
    after, counts = stored_leads(svc), table_counts(svc)
    assert counts["outbox"] == 0
    assert {ref: (lead["stage"], lead["transitions"]) for ref, lead in after.items()} == \
           {ref: (lead["stage"], lead["transitions"]) for ref, lead in before.items()}
    with svc.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead).where(Lead.rules_version.is_(None))) == 0

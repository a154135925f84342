"""``leadloop report KIND``: the table, CSV and JSON outputs parse and say the same; bad input is
a usage error (exit 2) with a one-line reason."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from click.testing import CliRunner

from integration.cli.main import cli as leadloop_group
from integration.cli.reports import parse_moment
from integration.cli.runtime import Runtime
from tests.reports_support import History, at, session  # noqa: F401 - the fixture


def leadloop(config: dict[str, Any], *args: str) -> Any:
    """``leadloop ARGS`` in-process with click's runner, on the test store."""
    env = {key: value for key, value in config.items() if isinstance(value, str)}
    return CliRunner().invoke(leadloop_group, list(args), obj=Runtime(), env=env, catch_exceptions=False)


def two_leads(session) -> None:  # noqa: F811 - the fixture
    write = History(session)
    ada = write.lead(at("03-01"), fields={"lead_source": "Webinar"})
    write.event(ada, "page_view", at("03-01"))
    write.move(ada, "new nurture mql", at("03-02"), at("03-04"))
    bob = write.lead(at("04-01"), fields={"lead_source": "Search"})
    write.event(bob, "page_view", at("04-01"))
    write.move(bob, "new nurture", at("04-03"))
    session.commit()


def test_funnel_as_json_csv_and_table(config, session):  # noqa: F811 - the fixture
    two_leads(session)
    shown = leadloop(config, "report", "funnel", "--by", "source", "--format", "json", "--since", "2026-03-01")
    assert shown.exit_code == 0, shown.output
    rows = {row["group"]: row for row in json.loads(shown.stdout)}
    assert rows["Webinar"]["converted"]["nurture->mql"] == 1.0 and rows["Search"]["converted"]["nurture->mql"] == 0.0
    assert rows["Webinar"]["median_days"]["new->nurture"] == 1.0
    as_csv = leadloop(config, "report", "funnel", "--by", "source", "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [row["group"] for row in parsed] == ["Search", "Webinar"]
    assert parsed[1]["converted.nurture->mql"] == "1.0" and parsed[0]["median_days.nurture->mql"] == ""
    as_table = leadloop(config, "report", "funnel", "--until", "2026-04-01")
    lines = as_table.stdout.splitlines()
    assert lines[0].split() == ["group", "all"]
    assert [line.split() for line in lines if line.startswith("entered.new ")] == [["entered.new", "1"]]


def test_bad_input_is_a_usage_error(config, session):  # noqa: F811 - the fixture
    for args, reason in ((["--by", "colour"], "'colour' is not one of 'cohort', 'source'"),
                         (["--since", "last tuesday"], "'last tuesday' is no date"),
                         (["--since", "2026-05-01", "--until", "2026-04-01"], "since must be before until")):
        shown = leadloop(config, "report", "funnel", *args)
        assert shown.exit_code == 2 and reason in shown.output, shown.output
    unknown = leadloop(config, "report", "velocity")
    assert unknown.exit_code == 2 and "No such command 'velocity'" in unknown.output


def test_dates_iso_and_relative():
    now = at("2026-03-31", 12)
    assert parse_moment("2026-03-01", now) == at("03-01")
    assert parse_moment("2026-03-01T09:00:00+01:00", now) == at("03-01", 8)
    assert parse_moment("30d", now) == at("03-01", 12) and parse_moment("2w", now) == at("03-17", 12)


def test_every_report_prints_json_and_csv_that_parse(config, session):  # noqa: F811 - the fixture
    write = History(session)
    ada = write.lead(at("03-01"), fields={"lead_source": "Webinar"}, owner_id="rep-1", team="dach", handoff_band="hot")
    write.event(ada, "content_download", at("03-01"), asset="buyers-guide")
    write.score(ada, at("03-02"), "hot", True, ["decision-maker"])
    write.move(ada, "new mql accepted sql won", at("03-02"), at("03-03"), at("03-05"), at("03-20"))
    write.deal([ada], "won", "9600", at("03-05"), at("03-20"))
    session.commit()
    for kind in ("funnel", "content", "handoff", "sla", "recycle", "revenue"):
        as_json = leadloop(config, "report", kind, "--by", "owner", "--format", "json")
        assert as_json.exit_code == 0, as_json.output
        rows = json.loads(as_json.stdout)
        assert isinstance(rows, list) and all(isinstance(row, dict) for row in rows)
        as_csv = leadloop(config, "report", kind, "--by", "owner", "--format", "csv")
        parsed = list(csv.reader(io.StringIO(as_csv.stdout)))
        assert len(parsed) == len(rows) + 1 and all(len(line) == len(parsed[0]) for line in parsed), kind
        assert leadloop(config, "report", kind).exit_code == 0
    revenue = json.loads(leadloop(config, "report", "revenue", "--format", "json").stdout)
    assert revenue[0]["amount"] == {"EUR": 9600.0} and revenue[0]["first_content"] == {
        "buyers-guide": {"won_deals": 1, "amount": {"EUR": 9600.0}}}

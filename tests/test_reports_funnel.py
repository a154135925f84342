"""The funnel report on hand-built histories with known answers (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from integration.reports import REPORTS, ReportQuery
from integration.reports.funnel import build
from tests.reports_support import History, at, session  # noqa: F401 - the fixture

SPRING = ReportQuery(since=at("03-01"), until=at("05-01"))


@pytest.fixture
def history(session):  # noqa: F811 - the fixture
    """Four leads first touched in March and April 2026, one merged away, one touched in May.

    ada (Webinar): new 03-01 -> nurture 03-02 -> mql 03-05 -> accepted 03-06 -> sql 03-11 -> won 03-21
    bob (Webinar): new 03-10 -> mql 03-12 (an SLA reminder 03-13) -> recycled 03-15 -> nurture 03-15
                   -> mql 03-25
    cy (Search): new 04-02 -> nurture 04-03 -> mql 05-03 (after the window: outcomes count to date)
    dee (no source, no event; created 04-05) -> disqualified 04-05
    """
    write = History(session)
    ada = write.lead(at("02-27"), fields={"lead_source": "Webinar"}, owner_id="rep-1", team="dach",
                     handoff_band="hot")
    write.event(ada, "page_view", at("03-01"), url="https://example.com/pricing")
    write.event(ada, "email_open", at("03-03"), campaign="spring")
    write.move(ada, "new nurture mql accepted sql won", at("03-02"), at("03-05"), at("03-06"), at("03-11"), at("03-21"))
    bob = write.lead(at("03-10"), fields={"lead_source": "Webinar"}, owner_id="rep-2", team="dach",
                     handoff_band="warm")
    write.event(bob, "email_click", at("03-10"), campaign="webinar-invite")
    write.event(bob, "email_open", at("03-20"), campaign="spring")
    write.move(bob, "new mql", at("03-12"))
    write.move(bob, "mql mql", at("03-13"), cause="sla")
    write.move(bob, "mql recycled nurture mql", at("03-15"), at("03-15"), at("03-25"))
    cy = write.lead(at("04-01"), fields={"lead_source": "Search"})
    write.event(cy, "content_download", at("04-02"), asset="buyers-guide")
    write.move(cy, "new nurture mql", at("04-03"), at("05-03"))
    dee = write.lead(at("04-05"))
    write.move(dee, "new disqualified", at("04-05"))
    gone = write.lead(at("03-02"), fields={"lead_source": "Webinar"})
    write.event(gone, "page_view", at("03-02"))
    write.move(gone, "new mql", at("03-03"))
    gone.merged_into_id = ada.id
    late = write.lead(at("05-02"), fields={"lead_source": "Search"})
    write.event(late, "page_view", at("05-02"))
    session.commit()
    return session


def test_funnel_counts_conversions_and_times_of_the_cohort(history):
    report = build(history, SPRING)
    assert report.kind == "funnel"
    [row] = report.rows
    assert row["group"] == "all"
    assert row["entered"] == {"new": 4, "nurture": 3, "mql": 3, "accepted": 1, "sql": 1, "won": 1, "lost": 0,
                              "recycled": 1, "disqualified": 1}
    converted = row["converted"]
    assert converted["new->nurture"] == 0.75
    assert converted["nurture->mql"] == 1.0  # ada, bob after his recycle, cy after the window
    assert converted["mql->accepted"] == 0.3333
    assert converted["accepted->sql"] == converted["sql->won"] == 1.0
    assert converted["new->mql"] == 0.75 and converted["new->won"] == 0.25 and converted["mql->won"] == 0.3333
    assert converted["mql->recycled"] == 0.3333 and converted["recycled->mql"] == 1.0
    assert converted["sql->lost"] == 0.0 and converted["new->disqualified"] == 0.25
    assert converted["new->accepted"] == 0.25
    # new->nurture: 1, 5 and 1 days; nurture->mql: 3 (ada), 10 (bob, from his nurture after the recycle), 30 (cy)
    assert row["median_days"]["new->nurture"] == 1.0 and row["p90_days"]["new->nurture"] == 4.2
    assert row["median_days"]["nurture->mql"] == 10.0 and row["p90_days"]["nurture->mql"] == 26.0
    assert row["median_days"]["new->mql"] == 4.0 and row["p90_days"]["new->mql"] == 25.6
    assert row["median_days"]["mql->recycled"] == 3.0  # the SLA reminder at 03-13 is no stage entry
    assert row["median_days"]["recycled->mql"] == 10.0
    assert row["median_days"]["sql->won"] == 10.0
    assert row["median_days"]["sql->lost"] is None and row["p90_days"]["sql->lost"] is None


def test_funnel_by_source_cohort_and_campaign(history):
    by_source = {row["group"]: row for row in build(history, ReportQuery(SPRING.since, SPRING.until, "source")).rows}
    assert sorted(by_source) == ["(none)", "Search", "Webinar"]
    assert by_source["Webinar"]["entered"]["new"] == 2 and by_source["Webinar"]["entered"]["won"] == 1
    assert by_source["Webinar"]["converted"]["new->mql"] == 1.0
    assert by_source["Search"]["converted"]["nurture->mql"] == 1.0 and by_source["Search"]["entered"]["new"] == 1
    assert by_source["(none)"]["entered"]["disqualified"] == 1
    by_cohort = {row["group"]: row["entered"]["new"] for row in build(history, ReportQuery(by="cohort")).rows}
    assert by_cohort == {"2026-03": 2, "2026-04": 2, "2026-05": 1}
    by_campaign = {row["group"]: row["entered"]["new"] for row in build(history, ReportQuery(SPRING.since, SPRING.until,
                                                                                              "campaign")).rows}
    assert by_campaign == {"spring": 1, "webinar-invite": 1, "(none)": 2}
    by_band = {row["group"]: row["entered"]["mql"] for row in build(history, ReportQuery(by="band")).rows}
    assert by_band == {"hot": 1, "warm": 1, "(none)": 1}  # cy has no hand-off band


def test_funnel_without_window_counts_every_live_lead(history):
    [row] = build(history, ReportQuery()).rows
    assert row["entered"]["new"] == 5 and row["converted"]["new->nurture"] == 0.6  # "late" has no stage yet


def test_table_rows_flatten_the_json_and_unknown_dimensions_are_refused(history):
    report = REPORTS["funnel"](history, SPRING)
    assert report.columns[:3] == ["group", "entered.new", "entered.nurture"]
    [flat] = report.table_rows()
    assert flat[report.columns.index("converted.mql->accepted")] == 0.3333
    assert len(flat) == len(report.columns)
    with pytest.raises(ValueError, match="cohort, source, campaign, band, owner, team"):
        ReportQuery(by="colour")


def test_a_lead_that_entered_a_stage_three_times_is_timed_from_the_right_entry(session):  # noqa: F811
    """eve: mql 03-02, recycled 03-03, nurture 03-03, mql 03-10, recycled 03-11, nurture 03-11, mql 03-20."""
    write = History(session)
    eve = write.lead(at("03-01"))
    write.event(eve, "page_view", at("03-01"))
    write.move(eve, "new mql recycled nurture mql recycled nurture mql", at("03-02"), at("03-03"), at("03-03"),
               at("03-10"), at("03-11"), at("03-11"), at("03-20"))
    session.commit()
    [row] = build(session, ReportQuery()).rows
    assert row["entered"]["mql"] == 1 and row["converted"]["recycled->mql"] == 1.0
    assert row["median_days"]["recycled->mql"] == 7.0  # 03-03 to the second MQL, not the first or the third
    assert row["median_days"]["nurture->mql"] == 7.0
    assert row["median_days"]["mql->recycled"] == 1.0 and row["median_days"]["new->mql"] == 1.0

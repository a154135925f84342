"""The sla, recycle, revenue and content reports on hand-built histories with known answers
(SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from integration.reports import ReportQuery, content, recycle, revenue, sla
from tests.reports_support import History, at, session  # noqa: F401 - the fixture

MARCH = ReportQuery(since=at("03-01"), until=at("04-01"))


@pytest.fixture
def handoffs(session):  # noqa: F811 - the fixture
    """Hand-offs to two reps in March (times in hours after midnight).

    rep-a: ada mql 03-02 00h, rep call 03-02 03h, accepted 03-03           -> met, first action 3 h
           bob mql 03-02 00h, SLA reminder 03-03 00h, accepted 03-03 06h   -> missed (not escalated), 30 h
           cy  mql 03-04 00h, the lead e-mailed in 01h (inbound), still open -> pending
    rep-b: dee mql 03-05 00h, reassigned 03-06, SLA recycle 03-07           -> missed, escalated, no action
           eve mql 03-05 00h, rejected not_ready 03-05 12h                   -> met, 12 h
    """
    write = History(session)

    def handed(name: str, rep: str, day: str):
        lead = write.lead(at("02-01"), owner_id=rep, team="dach", handoff_band="hot")
        write.event(lead, "page_view", at("02-01"))
        write.move(lead, "new mql", at(day))
        return lead

    ada = handed("ada", "rep-a", "03-02")
    write.event(ada, "rep_activity", at("03-02", 3), source="hubspot", activity_type="call", direction="outbound")
    write.move(ada, "mql accepted", at("03-03"), cause="disposition")
    bob = handed("bob", "rep-a", "03-02")
    write.move(bob, "mql mql", at("03-03"), cause="sla", action="remind", sla_misses=1)
    write.move(bob, "mql accepted", at("03-03", 6), cause="disposition")
    cy = handed("cy", "rep-a", "03-04")
    write.event(cy, "rep_activity", at("03-04", 1), source="hubspot", activity_type="email", direction="inbound")
    dee = handed("dee", "rep-b", "03-05")
    write.move(dee, "mql mql", at("03-06"), cause="sla", action="reassign", sla_misses=1)
    write.move(dee, "mql recycled nurture", at("03-07"), at("03-07"), cause="sla", reason="no_response")
    eve = handed("eve", "rep-b", "03-05")
    write.move(eve, "mql recycled nurture", at("03-05", 12), at("03-05", 12), cause="disposition", reason="not_ready")
    session.commit()
    return session, {"ada": ada, "bob": bob, "cy": cy, "dee": dee, "eve": eve}


def test_sla_met_missed_escalated_and_time_to_first_action(handoffs):
    db, _ = handoffs
    rows = {row["group"]: row for row in sla.build(db, ReportQuery(MARCH.since, MARCH.until, "owner")).rows}
    assert rows["rep-a"] == {"group": "rep-a", "handed_off": 3, "due": 2, "met": 1, "missed": 1, "escalated": 0,
                             "pending": 1, "met_rate": 0.5, "median_hours_to_first_action": 16.5,
                             "p90_hours_to_first_action": 27.3}
    assert rows["rep-b"] == {"group": "rep-b", "handed_off": 2, "due": 2, "met": 1, "missed": 1, "escalated": 1,
                             "pending": 0, "met_rate": 0.5, "median_hours_to_first_action": 12.0,
                             "p90_hours_to_first_action": 12.0}


def test_recycle_by_reason_back_to_mql_and_won(handoffs):
    db, leads = handoffs
    write = History(db)
    # eve engages again and comes back: mql 03-25, accepted, sql, won 04-10; dee stays in nurture.
    write.move(leads["eve"], "nurture mql accepted sql won", at("03-25"), at("03-26"), at("04-01"), at("04-10"))
    db.commit()
    rows = {row["reason"]: row for row in recycle.build(db, MARCH).rows}
    assert rows["not_ready"] == {"group": "all", "reason": "not_ready", "recycled": 1, "by_sales": 1, "by_sla": 0,
                                 "back_to_mql": 1, "back_to_mql_rate": 1.0, "median_days_to_mql": 19.5, "won": 1,
                                 "won_rate": 1.0}
    assert rows["no_response"] == {"group": "all", "reason": "no_response", "recycled": 1, "by_sales": 0,
                                   "by_sla": 1, "back_to_mql": 0, "back_to_mql_rate": 0.0,
                                   "median_days_to_mql": None, "won": 0, "won_rate": 0.0}
    assert recycle.build(db, ReportQuery(since=at("03-06"), until=at("04-01"))).rows[0]["reason"] == "no_response"


def test_revenue_by_band_at_handoff_and_first_content(session):  # noqa: F811 - the fixture
    write = History(session)

    def won_lead(band: str, handed: str, first_asset: str):
        lead = write.lead(at("01-01"), handoff_band=band)
        write.event(lead, "page_view", at("01-02"))
        write.event(lead, "content_download", at("01-03"), asset=first_asset)
        write.event(lead, "form_submit", at("01-04"), form="demo-request")
        write.move(lead, "new mql", at(handed))
        return lead

    ada, bob, cy = won_lead("hot", "02-01", "coverage-map"), won_lead("hot", "02-11", "buyers-guide"), \
        won_lead("warm", "02-01", "coverage-map")
    write.deal([ada], "won", "12000", at("02-05"), at("03-03"))        # 30 days after the hand-off
    write.deal([bob, cy], "won", "8000.50", at("02-15"), at("03-13"))  # bob's (linked first): 30 days
    write.deal([cy], "lost", None, at("02-10"), at("03-20"))
    write.deal([cy], "won", "5000", at("02-10"), at("03-31"))          # 58 days after cy's hand-off
    write.deal([ada], "won", "99", at("02-10"), at("04-02"))            # after the window
    write.deal([ada], "open", "700", at("02-10"), None)
    session.commit()
    rows = {row["group"]: row for row in revenue.build(session, ReportQuery(MARCH.since, MARCH.until, "band")).rows}
    assert rows["hot"] == {"group": "hot", "won_deals": 2, "lost_deals": 0, "win_rate": 1.0,
                           "median_days_to_win": 30.0, "p90_days_to_win": 30.0, "amount": {"EUR": 20000.5},
                           "first_content": {"buyers-guide": {"won_deals": 1, "amount": {"EUR": 8000.5}},
                                             "coverage-map": {"won_deals": 1, "amount": {"EUR": 12000.0}}}}
    assert rows["warm"]["won_deals"] == 1 and rows["warm"]["lost_deals"] == 1 and rows["warm"]["win_rate"] == 0.5
    assert rows["warm"]["median_days_to_win"] == 58.0 and rows["warm"]["amount"] == {"EUR": 5000.0}


def test_content_touches_first_touches_repeat_converters_and_rates(session):  # noqa: F811 - the fixture
    """Who touched what in March (downloads and forms are conversions):

    ada: guide download 03-01 (first touch), demo form 03-05, mql 03-06, accepted, won
    bob: page view 03-01 (first touch), demo form 03-02, guide download 03-10 (repeat), never an MQL
    cy:  e-mail campaign spring 03-01 (first touch), mql 03-02, guide download 03-03 (after the MQL)
    dee: demo form 02-20 (before the window), demo form 03-04 (repeat on the same form: not a repeat converter)
    """
    write = History(session)
    ada, bob, cy, dee = (write.lead(at("02-01")) for _ in range(4))
    write.event(ada, "content_download", at("03-01"), asset="buyers-guide")
    write.event(ada, "form_submit", at("03-05"), form="demo-request", campaign="spring")
    write.move(ada, "new mql accepted sql won", at("03-06"), at("03-07"), at("03-08"), at("03-09"))
    write.event(bob, "page_view", at("03-01"), url="https://example.com/")
    write.event(bob, "form_submit", at("03-02"), form="demo-request")
    write.event(bob, "content_download", at("03-10"), asset="buyers-guide")
    write.event(cy, "email_open", at("03-01"), campaign="spring")
    write.move(cy, "new mql", at("03-02"))
    write.event(cy, "content_download", at("03-03"), asset="buyers-guide")
    write.event(dee, "form_submit", at("02-20"), form="demo-request")
    write.event(dee, "form_submit", at("03-04"), form="demo-request")
    session.commit()
    rows = {(row["type"], row["name"]): row for row in content.build(session, MARCH).rows}
    guide = rows[("asset", "buyers-guide")]
    assert guide == {"group": "all", "type": "asset", "name": "buyers-guide", "leads_touched": 3, "first_touches": 1,
                     "conversions": 3, "converters": 3, "new_converters": 2, "repeat_converters": 1,
                     "repeat_share": 0.3333, "touched_before_mql": 2, "mql_rate": 0.5, "accepted_rate": 0.5,
                     "won_rate": 0.5}
    demo = rows[("form", "demo-request")]
    assert (demo["leads_touched"], demo["first_touches"], demo["conversions"]) == (3, 0, 3)
    assert (demo["new_converters"], demo["repeat_converters"]) == (2, 1)  # ada had downloaded the guide first
    spring = rows[("campaign", "spring")]
    assert (spring["leads_touched"], spring["first_touches"], spring["touched_before_mql"], spring["mql_rate"]) == \
        (2, 1, 2, 1.0)

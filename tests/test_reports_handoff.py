"""The handoff report on a hand-built history with known answers (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from integration.reports import ReportQuery
from integration.reports.handoff import build
from tests.reports_support import History, at, session  # noqa: F401 - the fixture

MARCH = ReportQuery(since=at("03-01"), until=at("04-01"))


@pytest.fixture
def history(session):  # noqa: F811 - the fixture
    """Six hand-offs in March (bob twice), one in February.

    ada (hot): mql 03-01 -> accepted 03-03 -> sql 03-10          rules decision-maker, demo-form
    bob (warm): mql 03-02 -> rejected not_ready 03-05 -> recycled -> nurture -> mql 03-20 -> accepted 03-21
                                                                 rules manager, email-click
    cy (warm): mql 03-04 -> the SLA recycles it 03-08            rules manager
    dee (hot): mql 03-05, still open                             rules decision-maker
    eve (hot): mql 03-06 -> rejected bad_data 03-07 -> disqualified   rules decision-maker (free-mail: minus)
    fay (hot): mql 02-20 -> accepted 02-21 (before the window)
    """
    write = History(session)

    def lead(name: str, band: str, rules: list[str], handed: str, minus: tuple[str, ...] = ()):
        lead = write.lead(at("02-01"), email=f"{name}@example.com", handoff_band=band, team="dach",
                          owner_id=f"rep-{name}")
        write.event(lead, "page_view", at("02-01"))
        write.score(lead, at("02-02"), "cool", False, ["target-country"])
        write.score(lead, at(handed), band, True, rules, minus=minus)
        write.move(lead, "new mql", at(handed))
        return lead

    ada = lead("ada", "hot", ["decision-maker", "demo-form"], "03-01")
    write.move(ada, "mql accepted sql", at("03-03"), at("03-10"), cause="disposition")
    bob = lead("bob", "warm", ["manager", "email-click"], "03-02")
    write.move(bob, "mql recycled nurture", at("03-05"), at("03-05"), cause="disposition", reason="not_ready")
    write.score(bob, at("03-20"), "warm", True, ["trial-signup"])
    write.move(bob, "nurture mql", at("03-20"))
    write.move(bob, "mql accepted", at("03-21"), cause="disposition")
    cy = lead("cy", "warm", ["manager"], "03-04")
    write.move(cy, "mql recycled nurture", at("03-08"), at("03-08"), cause="sla", reason="no_response")
    lead("dee", "hot", ["decision-maker"], "03-05")
    eve = lead("eve", "hot", ["decision-maker"], "03-06", minus=("free-mail",))
    write.move(eve, "mql disqualified", at("03-07"), cause="disposition", reason="bad_data")
    fay = lead("fay", "hot", ["decision-maker"], "02-20")
    write.move(fay, "mql accepted", at("02-21"), cause="disposition")
    session.commit()
    return session


def test_handoff_outcomes_acceptance_time_and_precision(history):
    [row] = build(history, MARCH).rows
    assert row["handed_off"] == 6
    assert (row["accepted"], row["rejected"], row["no_response"], row["other"], row["open"]) == (2, 2, 1, 0, 1)
    assert row["acceptance_rate"] == 0.4  # 2 of the 5 decided
    assert row["median_days_to_accept"] == 1.5 and row["p90_days_to_accept"] == 1.9
    assert row["qualified"] == 1 and row["precision"] == 0.2
    assert row["rejection_reasons"] == {"bad_data": 1, "not_ready": 1}


def test_handoff_by_band_and_by_rule(history):
    by_band = {row["group"]: row for row in build(history, ReportQuery(MARCH.since, MARCH.until, "band")).rows}
    assert by_band["hot"]["handed_off"] == 3 and by_band["hot"]["acceptance_rate"] == 0.5
    assert by_band["warm"]["handed_off"] == 3 and by_band["warm"]["acceptance_rate"] == 0.3333
    rules = build(history, MARCH).rows[0]["rules"]
    assert rules == {
        "decision-maker": {"handed_off": 3, "accepted": 1, "acceptance_rate": 0.5},
        "manager": {"handed_off": 3, "accepted": 1, "acceptance_rate": 0.3333},
        "email-click": {"handed_off": 2, "accepted": 1, "acceptance_rate": 0.5},
        "demo-form": {"handed_off": 1, "accepted": 1, "acceptance_rate": 1.0},
    }
    everything = build(history, ReportQuery()).rows[0]
    assert everything["handed_off"] == 7 and everything["accepted"] == 3

"""``scoring.gap.mql_gap``: how far a lead is from MQL and the fewest new activities that close it.

Pure: tables of (profile, signals, rules) -> (points short, steps, blocker), against the shipped
rules (grade B fit of 28 points, MQL from warm = 50 points) and a variant without the overrides
where no single activity is enough.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from scoring import LeadProfile, Signal, load_rules, load_rules_file
from scoring.gap import mql_gap, mql_threshold, probe_signal

SHIPPED = Path(__file__).parents[1] / "rules" / "leadloop.yaml"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FIT = {"email": "ada@acme-logistics.example", "company": "Acme Logistics", "job_title": "Operations Manager",
       "phone": "+49 30 1234567", "country": "DE", "employees": 250}  # 28 points, grade B


def pricing(days_ago: float) -> Signal:
    return Signal("page_view", NOW - timedelta(days=days_ago), {"url": "https://acme.example/pricing"}, f"p{days_ago}")


@pytest.fixture(scope="module")
def shipped():
    return load_rules_file(SHIPPED)


@pytest.fixture(scope="module")
def no_single_step():
    """No at-least overrides, no demo rule, and no activity worth more than 15 points."""
    data = yaml.safe_load(SHIPPED.read_text())
    data["overrides"] = [rule for rule in data["overrides"] if "force" in rule]
    data["engagement"] = [rule for rule in data["engagement"] if rule["id"] != "demo-form"]
    for rule in data["engagement"]:
        rule["points"] = min(rule["points"], 15)
    return load_rules(yaml.safe_dump(data))


def test_the_threshold_is_the_coldest_mql_band(shipped):
    assert mql_threshold(shipped) == 50


@pytest.mark.parametrize(("fields", "signals", "short", "steps"), [
    # 22 short: one contact request (+30, and at least warm) is the smallest single step; a demo
    # request or an event are worth as much, and the rule ids break the tie.
    (FIT, [], 22, [("asked-for-contact", 30, "+30 asked to be contacted")]),
    # 38: a Logistics company; the buyer's guide download (+12) makes exactly 50.
    ({**FIT, "industry": "Logistics"}, [], 12, [("download-warm", 12, "+12 downloaded Buyer's guide")]),
    # 37.5 with yesterday's pricing visit (already counted, so not offered again): a chat (+15).
    (FIT, [pricing(1)], 12.5, [("chat-intent", 15, "+15 asked in chat about our offer")]),
])
def test_the_smallest_set_of_new_activities(shipped, fields, signals, short, steps):
    gap = mql_gap(LeadProfile(fields), signals, shipped, NOW)
    assert (gap.mql, gap.short, gap.blocker) == (False, short, None)
    assert [(s.rule, s.points, s.text) for s in gap.steps] == steps
    assert gap.describe() == f"{short:g} points short of MQL: " + ", ".join(text for *_, text in steps)


def test_two_activities_when_one_is_not_enough(no_single_step):
    """22 short, at most 15 per activity: two, and of the pairs worth 22 (12 + 10) the first by rule id."""
    gap = mql_gap(LeadProfile(FIT), [], no_single_step, NOW)
    assert [(s.rule, s.points) for s in gap.steps] == [("form-submitted", 10), ("download-warm", 12)]
    assert gap.describe() == "22 points short of MQL: +10 filled in an interest form, +12 downloaded Buyer's guide"


def test_an_activity_meeting_several_rules_says_what_it_adds_in_all(shipped):
    data = yaml.safe_load(SHIPPED.read_text())
    data["overrides"] = [rule for rule in data["overrides"] if "force" in rule]
    for rule in data["engagement"]:
        if rule["id"] not in ("form-submitted", "demo-form"):
            rule["points"] = min(rule["points"], 5)
    rules = load_rules(yaml.safe_dump(data))
    gap = mql_gap(LeadProfile(FIT), [], rules, NOW)
    assert [(s.rule, s.points, s.text) for s in gap.steps] == [("demo-form", 30, "+20 requested a demo (+30 in all)")]


def test_blockers_fit_grade(shipped):
    """Free mail (−20) takes the fit to 8 points: grade D, which MQL does not take; no activity helps."""
    gap = mql_gap(LeadProfile({**FIT, "email": "ada@gmail.com"}), [], shipped, NOW)
    assert gap.steps == () and gap.blocker.startswith("fit grade D: MQL takes grades A, B, C")
    assert gap.describe().endswith("and activity does not change fit")


def test_blockers_disqualified(shipped):
    gap = mql_gap(LeadProfile({**FIT, "job_title": "Werkstudent Logistik"}), [], shipped, NOW)
    assert gap.steps == () and gap.blocker == "disqualified (student): no activity makes it an MQL"


def test_an_mql_has_no_gap(shipped):
    gap = mql_gap(LeadProfile(FIT), [Signal("contact_request", NOW - timedelta(hours=1), {}, "c")], shipped, NOW)
    assert (gap.mql, gap.short, gap.steps, gap.describe()) == (True, 0.0, (), "an MQL")


def test_probe_signals_carry_what_the_rule_names(shipped):
    assets = shipped.data["assets"]
    by_id = {rule["id"]: rule for rule in shipped.data["engagement"]}
    assert probe_signal(by_id["read-guide-section"], assets, NOW).properties == {"asset": "buyers-guide"}
    assert probe_signal(by_id["download-hot"], assets, NOW).properties == {"asset": "coverage-map"}
    assert probe_signal(by_id["demo-form"], assets, NOW).properties == {"form": "demo-request"}
    assert probe_signal(by_id["asked-for-contact"], assets, NOW).kind == "contact_request"
    assert probe_signal({"id": "x", "kind": ["page_view"], "tag": ["nothing-has-it"]}, assets, NOW) is None

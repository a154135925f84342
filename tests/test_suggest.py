"""``leadloop rules suggest``: point values learned from outcomes, as a rules file a person can read.

The history is generated with a seed and a known signal: leads that came by referral are won
twice as often as the others. The proposal must find it, beat the live rules in cross-validation,
and be a rules file ``leadloop rules check`` accepts.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

from connectors import status_fields
from scoring import check_rules_text
from tests.lab_support import FIT, add_event, add_lead, add_outcome, leadloop

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SOURCES = ("Referral", "Web", "Paid search", "Trade fair")


def generated_history(svc, leads: int, seed: int = 7) -> int:
    """``leads`` leads over six months; a referral wins 40% of the time, any other source 20%. Fit and
    activity are drawn independently of the outcome. Returns how many were won."""
    rng = random.Random(seed)
    won = 0
    with svc.sessions.begin() as session:
        for n in range(leads):
            created = T0 + timedelta(hours=rng.randrange(0, 24 * 180))
            source = rng.choice(SOURCES)
            fields = {**FIT, "lead_source": source, "employees": rng.choice([8, 40, 250, 1200, 4000]),
                      "industry": rng.choice(["Logistics", "Retail", "Banking", "Software"])}
            lead = add_lead(session, str(10_000 + n), fields, created)
            for visit in range(rng.randrange(0, 4)):
                add_event(session, lead, "page_view", created + timedelta(days=visit + 1),
                          url=rng.choice(["https://x.example/pricing", "https://x.example/blog/a"]))
            is_won = rng.random() < (0.4 if source == "Referral" else 0.2)
            won += is_won
            add_outcome(session, lead, "won" if is_won else "lost", created + timedelta(days=20))
    return won


def test_the_proposal_finds_the_known_signal_and_beats_the_live_rules(svc, config, tmp_path, monkeypatch, capsys):
    won = generated_history(svc, 600)
    proposed = tmp_path / "proposed.yaml"
    code, stdout, stderr = leadloop(config, monkeypatch, capsys, "rules", "suggest", "--out", str(proposed),
                                    "--format", "json")
    assert code == 0, stderr
    data = json.loads(stdout)
    assert {"live", "proposed", "folds", "rows", "out"} <= set(data)
    assert (data["rows"], data["positives"], data["folds"], data["out"]) == (600, won, 5, str(proposed))
    assert data["proposed"]["auc"] > data["live"]["auc"] + 0.05, data
    for side in ("live", "proposed"):
        assert set(data[side]) == {"auc", "precision_at_mql"}
    points = {row["feature"]: row["points"] for row in data["points"]}
    referral = points.get("field:lead_source=Referral", 0)
    assert referral > 0, points
    others = [points.get(f"field:lead_source={source}", 0) for source in SOURCES[1:]]
    assert referral > max(others), points
    referral_row = next(row for row in data["points"] if row["feature"] == "field:lead_source=Referral")
    assert referral_row["lift"] > 1.4 and referral_row["support"] > 100

    text = proposed.read_text()
    ok, report = check_rules_text(text, str(proposed), status_fields())
    assert ok, report
    assert "lead source is Referral" in text and "had it; won" in text  # the rule, its support and lift
    code, checked, _ = leadloop(config, monkeypatch, capsys, "rules", "check", str(proposed))
    assert code == 0 and "rules OK" in checked


def test_the_report_for_a_person_shows_the_points_table(svc, config, monkeypatch, capsys):
    generated_history(svc, 300, seed=11)
    code, stdout, _ = leadloop(config, monkeypatch, capsys, "rules", "suggest", "--folds", "3")
    assert code == 0
    assert "learned from 300 leads with a known outcome" in stdout and "3-fold cross-validation" in stdout
    assert "live rules: AUC" in stdout and "proposal:   AUC" in stdout
    assert "lead source is Referral" in stdout
    assert "# Suggested by `leadloop rules suggest --target won`" in stdout  # the file follows the report


def test_too_little_history_says_how_much_more_it_needs(svc, config, monkeypatch, capsys):
    won = generated_history(svc, 50)
    code, stdout, stderr = leadloop(config, monkeypatch, capsys, "rules", "suggest")
    assert code == 1 and stdout == ""
    assert f"50 leads with a known outcome, {won} won" in stderr
    assert "it needs at least 200 leads and 20 won (150 more leads with a known outcome" in stderr

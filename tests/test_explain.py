"""``leadloop explain``: a lead's verdict now or at a past time, each reason with the events behind
it and its decay, when the verdict next changes on its own, and what would change it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.lab_support import FIT, add_event, add_lead, leadloop

T0 = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
PRICING = "https://acme.example/pricing"


def history(svc):
    """hubspot:501: created with a grade B fit (28), a pricing visit on day 1, its company size on
    day 3 (+10 for the size band), a second pricing visit on day 15."""
    fields = {k: v for k, v in FIT.items() if k != "employees"}
    with svc.sessions.begin() as session:
        lead = add_lead(session, "501", fields, T0)
        add_event(session, lead, "page_view", T0 + timedelta(days=1), url=PRICING)
        add_event(session, lead, "field_change", T0 + timedelta(days=3), fields={"employees": 250})
        add_event(session, lead, "page_view", T0 + timedelta(days=15), url=PRICING)


def test_explain_at_a_past_time_with_events_decay_next_change_and_gap(svc, config, monkeypatch, capsys):
    history(svc)
    at = (T0 + timedelta(days=15)).isoformat()
    code, stdout, stderr = leadloop(config, monkeypatch, capsys, "explain", "hubspot:501", "--at", at, "--json")
    assert code == 0, stderr
    data = json.loads(stdout)
    # fit 28; pricing visits: 10 just now, 10 * 0.5 ** (14 / 14) = 5 from two weeks ago (capped per
    # rule at 3 per week: both count).
    assert (data["score"], data["band"], data["grade"], data["mql"]) == (43.0, "cool", "B", False)
    assert data["at"] == at
    visits = next(r for r in data["reasons"] if r["rule"] == "view-hot-page")
    assert visits["points"] == 15
    assert [(e["at"], e["points_then"], e["points_now"]) for e in visits["events"]] == [
        ((T0 + timedelta(days=15)).isoformat(), 10, 10), ((T0 + timedelta(days=1)).isoformat(), 10, 5)]
    size = next(r for r in data["reasons"] if r["rule"] == "company-size")
    assert size["events"] == [{"kind": "field_change", "at": (T0 + timedelta(days=3)).isoformat(),
                               "fields": {"employees": 250}}]
    # The verdict changes on its own when the visits' points fade: the written score moves by 5.
    change = data["next_change"]
    assert change["cause"] == "decay" and change["at"] > at
    gap = data["what_would_change_it"]
    assert gap["points_short"] == 7 and gap["blocker"] is None
    assert gap["text"] == "7 points short of MQL: +8 viewed Buyer's guide"

    code, text, _ = leadloop(config, monkeypatch, capsys, "explain", "hubspot:501", "--at", at)
    assert code == 0
    lines = text.splitlines()
    assert lines[0].startswith("hubspot:501 as of 2026-10-20T09:00 UTC") and lines[0].endswith("cool 43, grade B")
    assert any(line.strip().startswith("page_view") and "+10 then, +5 now" in line for line in lines)
    assert "what would change it: 7 points short of MQL: +8 viewed Buyer's guide" in lines


def test_explain_before_a_field_was_set_uses_the_fields_of_then(svc, config, monkeypatch, capsys):
    history(svc)
    code, stdout, _ = leadloop(config, monkeypatch, capsys, "explain", "hubspot:501", "--at",
                               (T0 + timedelta(days=2)).isoformat(), "--json")
    data = json.loads(stdout)
    assert data["fit_points"] == 18 and "company-size" not in {r["rule"] for r in data["reasons"]}


def test_explain_an_unknown_lead_is_a_clear_failure(svc, config, monkeypatch, capsys):
    code, stdout, stderr = leadloop(config, monkeypatch, capsys, "explain", "hubspot:nope")
    assert (code, stdout) == (1, "") and "no lead hubspot:nope" in stderr
    code, _, stderr = leadloop(config, monkeypatch, capsys, "explain", "hubspot:nope", "--at", "last week")
    assert code == 2 and "neither an ISO date or time nor a duration" in stderr

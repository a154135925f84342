"""``leadloop rules compare``: the stored history replayed event by event under two rules files.

Histories are written straight into the store (as an import would leave them), except where the
live rules must reproduce the pipeline's own decisions: there real events go through the signed
intake and the worker, the clock standing at each event's time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from integration.lab.backtest import backtest
from integration.lab.history import Replay, stream_histories
from integration.store.models import Transition
from integration.web import create_app
from scoring import load_rules_file
from tests.conftest import drain, post_events, web_event
from tests.lab_support import FIT, SHIPPED, add_event, add_lead, add_outcome, leadloop, rules_with
from tests.outcomes_support import Clock

T0 = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
PRICING = {"url": "https://acme.example/pricing"}


def louder_pricing(data):
    """The candidate: a pricing-page visit is worth 30 points instead of 10."""
    next(rule for rule in data["engagement"] if rule["id"] == "view-hot-page")["points"] = 30


def history(svc):
    """701 is won; live hands it off at its demo request 9 days after its pricing visit, the candidate
    at the visit. 702 visits pricing and is lost (only the candidate hands it off); 703 reads the blog;
    704 asks to be contacted (both hand it off at once), sales accepts it and loses it."""
    with svc.sessions.begin() as session:
        won = add_lead(session, "701", FIT, T0)
        add_event(session, won, "page_view", T0 + timedelta(hours=1), **PRICING)
        add_event(session, won, "form_submit", T0 + timedelta(days=9, hours=1), form="demo-request")
        add_outcome(session, won, "won", T0 + timedelta(days=30))
        lost = add_lead(session, "702", FIT, T0)
        add_event(session, lost, "page_view", T0 + timedelta(hours=2), **PRICING)
        add_outcome(session, lost, "lost", T0 + timedelta(days=20))
        quiet = add_lead(session, "703", FIT, T0)
        add_event(session, quiet, "page_view", T0 + timedelta(hours=3), url="https://acme.example/blog/a")
        asked = add_lead(session, "704", FIT, T0)
        add_event(session, asked, "contact_request", T0 + timedelta(days=1))
        add_outcome(session, asked, "accepted", T0 + timedelta(days=2))
        add_outcome(session, asked, "lost", T0 + timedelta(days=12))


def test_candidate_hands_off_a_won_lead_9_days_earlier(svc, config, tmp_path, monkeypatch, capsys):
    history(svc)
    candidate = rules_with(tmp_path, "candidate.yaml", louder_pricing)
    page = tmp_path / "report.html"
    until = (T0 + timedelta(days=40)).isoformat()
    code, stdout, stderr = leadloop(config, monkeypatch, capsys, "rules", "compare", str(candidate),
                                    "--until", until, "--format", "json", "--html", str(page))
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data["leads"] == 4
    assert data["won_timing"] == {"both": 1, "earlier": 1, "later": 0, "same": 0, "median_days_earlier": 9.0}
    assert (data["live"]["mqls"], data["candidate"]["mqls"]) == (2, 3)
    assert data["live"]["handed_off"] == {"won": 1, "accepted": 2}
    assert [entry["lead"] for entry in data["added"]] == ["hubspot:702"] and data["removed"] == []
    assert data["added"][0]["outcome"] == "lost"
    assert any("Pricing page" in reason for reason in data["added"][0]["reasons"])
    assert data["outcomes"] == {"won": 1, "accepted": 2, "lost": 2, "rejected": 0}
    # Sales works 2 MQLs per won deal under live, 3 under the candidate.
    assert (data["live"]["mqls_per_won_deal"], data["candidate"]["mqls_per_won_deal"]) == (2.0, 3.0)
    mql_rows = data["live"]["by_band"]["won"]["mql"], data["candidate"]["by_band"]["won"]["mql"]
    assert [(row["leads"], row["hits"], row["precision"], row["recall"]) for row in mql_rows] == [
        (2, 1, 0.5, 1.0), (3, 1, 0.333, 1.0)]
    assert mql_rows[0]["lift"] == 2.0  # half the MQLs won, against one lead in four overall
    assert sum(n for row in data["band_matrix"].values() for n in row.values()) == 4
    html = page.read_text()
    assert html.count("<svg") >= 3 and "hubspot:702" in html
    assert "<script" not in html and "https://" not in html  # one file: nothing to fetch

    code, text, _ = leadloop(config, monkeypatch, capsys, "rules", "compare", str(candidate), "--until", until)
    assert code == 0
    assert "MQLs: 2 live -> 3 candidate (+1 added, -0 removed)" in text
    assert "the candidate hands them off a median 9 days earlier" in text
    assert "MQL added: hubspot:702" in text


def test_since_counts_only_the_hand_offs_in_the_window(svc):
    history(svc)
    live, candidate = load_rules_file(SHIPPED), load_rules_file(SHIPPED)
    with svc.sessions() as session:
        report = backtest(session, live, candidate, since=T0 + timedelta(days=5), until=T0 + timedelta(days=40))
    assert (report.live.mql, report.candidate.mql) == (1, 1)  # 701's demo request, day 9


def test_decay_is_taken_as_of_each_moment(svc):
    """Three pricing visits a week apart (the first as the lead is created) each add 10 points that halve
    every 14 days: replayed as of each visit, not as of now, the score at the last one is 28 + 5 + 7.1 + 10
    (the fit and three visits), and that makes it warm, an MQL, then."""
    with svc.sessions.begin() as session:
        lead = add_lead(session, "801", FIT, T0)
        for week in range(3):
            add_event(session, lead, "page_view", T0 + timedelta(weeks=week), **PRICING)
    with svc.sessions() as session:
        found = next(stream_histories(session))
    replay = Replay(found, load_rules_file(SHIPPED))
    scores = [moment.result.score for moment in replay.moments()]
    assert scores == [38.0, 45.1, 50.1]
    assert replay.first_mql().at == T0 + timedelta(weeks=2)


def test_fields_are_taken_as_they_were_then(svc):
    """The lead became a manager only later: at its first visit it had no job title points."""
    with svc.sessions.begin() as session:
        lead = add_lead(session, "802", {k: v for k, v in FIT.items() if k != "job_title"}, T0)
        add_event(session, lead, "page_view", T0 + timedelta(days=1), **PRICING)
        add_event(session, lead, "field_change", T0 + timedelta(days=2), fields={"job_title": "Operations Manager"})
    with svc.sessions() as session:
        found = next(stream_histories(session))
    replay = Replay(found, load_rules_file(SHIPPED))
    assert replay.at(T0 + timedelta(days=1)).result.fit_points == 20
    assert replay.at(T0 + timedelta(days=2)).result.fit_points == 28


def lead_ref(n):
    return {"email": f"ada{n}@firm{n}.example", "crm": "hubspot", "crm_id": str(900 + n)}


#: Four leads' events: 901 asks to be contacted on day 2, 902 visits pricing day after day until it
#: is warm, 903 reads the blog and visits pricing once (never an MQL), 904 requests a demo at once.
TIMELINE = [
    (timedelta(0), web_event("a1", "form_submit", **lead_ref(1), properties={"form": "contact", "fields": FIT})),
    (timedelta(hours=5), web_event("b1", "form_submit", **lead_ref(2), properties={"form": "pricing", "fields": FIT})),
    (timedelta(hours=7), web_event("c1", "page_view", **lead_ref(3), properties={"url": "https://x.example/blog/a"})),
    (timedelta(days=1), web_event("b2", "page_view", **lead_ref(2), properties=PRICING)),
    (timedelta(days=2, hours=3), web_event("a2", "contact_request", **lead_ref(1))),
    (timedelta(days=3), web_event("b3", "page_view", **lead_ref(2), properties=PRICING)),
    (timedelta(days=3, hours=2), web_event("d1", "form_submit", **lead_ref(4),
                                            properties={"form": "demo-request", "fields": FIT})),
    (timedelta(days=4), web_event("b4", "page_view", **lead_ref(2), properties={"url": "https://x.example/roi"})),
    (timedelta(days=6), web_event("c2", "page_view", **lead_ref(3), properties=PRICING)),
]


def replay_against_stored(svc):
    with svc.sessions() as session:
        return backtest(session, svc.rules, svc.rules, since=None, until=T0 + timedelta(days=10))


def test_live_against_itself_reproduces_the_stored_decisions(config):
    """Real events through the signed intake and the worker, the clock at each event's time; the
    live rules replayed against themselves find every stored MQL at the very same instant."""
    clock = Clock(T0)
    app = create_app(config, clock=clock)
    client, svc = app.test_client(), app.extensions["leadloop"]
    try:
        for offset, event in TIMELINE:
            clock.value = T0 + offset
            assert post_events(client, [{**event, "occurred_at": clock.value.isoformat()}]).status_code == 200
            drain(svc)
        report = replay_against_stored(svc)
    finally:
        svc.engine.dispose()
    assert report.stored == 3, report.to_dict()["stored_check"]
    assert report.stored_matched == 3 and report.stored_mismatched == []
    assert report.added == [] and report.removed == []


def test_live_against_itself_reproduces_decisions_made_in_one_late_batch(config):
    """The same events arriving together ten days later and processed in one batch: the pipeline
    takes them in business-time order and records each MQL at its tipping event's time; the
    replay finds the same instants."""
    clock = Clock(T0 + timedelta(days=10))
    app = create_app(config, clock=clock)
    client, svc = app.test_client(), app.extensions["leadloop"]
    try:
        events = [{**event, "occurred_at": (T0 + offset).isoformat()} for offset, event in TIMELINE]
        assert post_events(client, events).status_code == 200
        drain(svc)
        report = replay_against_stored(svc)
        with svc.sessions() as session:
            stored = sorted(at for at, in session.execute(select(Transition.at).where(Transition.to_stage == "mql")))
    finally:
        svc.engine.dispose()
    assert stored == [T0 + timedelta(days=2, hours=3), T0 + timedelta(days=3), T0 + timedelta(days=3, hours=2)]
    assert (report.stored, report.stored_matched, report.stored_mismatched) == (3, 3, [])


def test_a_verdict_that_lifts_with_time_alone_is_found_between_events(svc, tmp_path):
    """Under a file that keeps a lead cold for 14 days after an unsubscribe, a contact request on the
    same day becomes an MQL when that window closes, with no event then (as the on-time rescoring
    would hand it off)."""
    def cold_after_unsubscribe(data):
        data["overrides"].insert(0, {"id": "cooling-off", "text": "unsubscribed lately", "force": "cold",
                                     "when_any": [{"kind": "unsubscribe", "within": "14d"}]})

    rules = load_rules_file(rules_with(tmp_path, "cooling.yaml", cold_after_unsubscribe))
    with svc.sessions.begin() as session:
        lead = add_lead(session, "803", FIT, T0)
        add_event(session, lead, "unsubscribe", T0 + timedelta(hours=1))
        add_event(session, lead, "contact_request", T0 + timedelta(hours=2))
    with svc.sessions() as session:
        found = next(stream_histories(session))
    replay = Replay(found, rules)
    assert not replay.at(T0 + timedelta(days=13)).result.mql
    first = replay.first_mql(T0 + timedelta(days=30))
    window_ends = T0 + timedelta(days=14, hours=1)
    assert first is not None and window_ends <= first.at <= window_ends + timedelta(seconds=1)
    assert replay.first_mql(T0 + timedelta(days=10)) is None  # not yet by then

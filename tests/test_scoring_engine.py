"""Table tests of the scoring engine: (profile, signals, rules) -> (score, band, reasons)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
import yaml

from scoring import LeadProfile, Rules, Signal, load_rules, score_lead

AS_OF = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)

BASE: dict[str, Any] = {
    "assets": {
        "coverage-map": {"name": "Coverage map", "intent": "hot", "tags": ["problem"], "urls": ["/coverage*"]},
        "guide": {"name": "Buyer's guide", "intent": "warm", "urls": ["/guide/*"]},
        "blog": {"name": "Blog", "intent": "cool", "urls": ["/blog/*"]},
    },
    "fit": [
        {"id": "head", "field": "job_title", "regex": r"\bhead\b", "points": 20, "text": "senior title"},
        {"id": "industry", "field": "industry", "in": ["Logistics", "Retail"], "points": 10},
        {"id": "size", "field": "employees", "min": 50, "max": 500, "points": 10},
        {"id": "company", "field": "company", "present": True, "points": 5},
        {"id": "sweden", "field": "country", "equals": "SE", "points": 3},
        {"id": "fleet", "field": "company", "contains": "fleet", "points": 2},
    ],
    "grades": {"A": 40, "B": 25, "C": 10},
    "engagement": [
        {"id": "map", "kind": "content_download", "asset": "coverage-map", "points": 20,
         "decay": {"half_life": "10d"}},
        {"id": "guide", "kind": "page_view", "asset": "guide", "points": 5, "group": "web",
         "limit": {"count": 3, "per": "30d"}},
        {"id": "blog", "kind": "page_view", "intent": "cool", "points": 1, "group": "web"},
        {"id": "pricing", "kind": "page_view", "url": "/pricing*", "points": 10, "group": "web",
         "decay": {"lifespan": "30d"}, "text": "viewed pricing"},
        {"id": "demo", "kind": "form_submit", "property": {"form": "demo"}, "points": 30},
        {"id": "event", "kind": "event_attended", "points": 5},
        {"id": "trial", "kind": "trial_signup", "points": 5},
        {"id": "ask", "kind": "contact_request", "points": 5},
        {"id": "opens", "kind": "email_open", "points": 1, "limit": {"count": 2}},
    ],
    "engagement_caps": {"total": 60, "groups": {"web": 15}},
    "bands": {"cold": {}, "cool": {"from": 20}, "warm": {"from": 40}, "hot": {"from": 70}},
    "overrides": [
        {"id": "dnc", "force": "cold", "text": "asked not to be contacted",
         "when_any": [{"kind": "do_not_contact"}, {"field": "do_not_contact", "equals": True}]},
        {"id": "asked", "at_least": "warm", "when_any": [{"kind": "contact_request", "within": "30d"}]},
        {"id": "event-trial", "at_least": "hot", "text": "came to an event or started a trial",
         "when_any": [{"kind": ["event_attended", "trial_signup"]}]},
    ],
    "priority": [
        {"id": "problem", "priority": "high", "text": "showed a problem we solve",
         "when_any": [{"tag": "problem", "within": "30d"}]},
        {"id": "weak", "priority": "low", "when_any": [{"grade": ["D"]}]},
    ],
    "disqualify": [
        {"id": "student", "reason": "student", "when_any": [{"field": "job_title", "contains": "student"}]},
        {"id": "floor", "reason": "score too low", "when_any": [{"score_below": -20}]},
    ],
    "mql": {"bands": ["warm", "hot"], "grades": ["A", "B", "C"]},
}
NEGATIVE: dict[str, Any] = {
    "free_mail": {"points": -20}, "disposable": {"points": -40}, "gibberish": {"points": -30},
    "missing_phone": {"points": -10}, "invalid_phone": {"points": -15},
    "student": {"points": -25, "domains": ["edu", "ac.uk"], "job_titles": ["student", "intern"]},
    "competitor": {"points": -50, "domains": ["rival.example"]},
    "bounce": {"points": -20}, "unsubscribe": {"points": -10},
}


def make_rules(**changes: Any) -> Rules:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return load_rules(yaml.safe_dump(data, sort_keys=False))


@cache
def base_rules() -> Rules:
    return make_rules()


@cache
def negative_rules() -> Rules:
    return make_rules(negative=NEGATIVE)


def sig(kind: str, days_ago: float, key: str = "", **properties: Any) -> Signal:
    return Signal(kind, AS_OF - days_ago * DAY, properties, key or f"{kind}-{days_ago}-{properties}")


def score(fields: dict[str, Any], signals: list[Signal] = (), rules: Rules | None = None):  # type: ignore[assignment]
    return score_lead(LeadProfile(fields), list(signals), rules or base_rules(), AS_OF)


def reason_texts(result: Any) -> list[str]:
    """Texts of the point-carrying reasons (overrides and priority are tested on their own)."""
    return [r.text for r in result.reasons if r.kind != "override"]


# --- fit -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "fit_points", "grade", "reasons"), [
    ({}, 0, "D", []),
    ({"job_title": "Head of Logistics"}, 20, "C", ["+20 senior title"]),
    ({"job_title": "Headhunter"}, 0, "D", []),                       # regex word boundary
    ({"industry": " logistics "}, 10, "C", ["+10 industry: logistics"]),  # case and spaces ignored
    ({"employees": 50}, 10, "C", ["+10 employees: 50"]),              # range is inclusive
    ({"employees": "500"}, 10, "C", ["+10 employees: 500"]),          # numeric text counts
    ({"employees": 501}, 0, "D", []),
    ({"employees": 49}, 0, "D", []),
    ({"company": "  "}, 0, "D", []),                                  # blank is not present
    ({"company": "Nordic Fleet AB"}, 7, "D", ["+5 company: Nordic Fleet AB", "+2 company: Nordic Fleet AB"]),
    ({"country": "Sweden"}, 3, "D", ["+3 country: SE"]),                 # names become ISO codes
    ({"country": "se"}, 3, "D", ["+3 country: SE"]),
    ({"job_title": "Head of Ops", "industry": "Retail", "employees": 80, "company": "Acme"}, 45, "A",
     ["+20 senior title", "+10 industry: Retail", "+10 employees: 80", "+5 company: Acme"]),  # ties: by id
    ({"job_title": "Head of Ops", "company": "Acme"}, 25, "B", ["+20 senior title", "+5 company: Acme"]),
])
def test_fit_rules_and_grade(fields: dict[str, Any], fit_points: float, grade: str, reasons: list[str]) -> None:
    result = score(fields)
    assert (result.fit_points, result.grade, reason_texts(result)) == (fit_points, grade, reasons)


def test_fit_is_recomputed_from_current_fields_so_points_never_stack() -> None:
    first = score({"industry": "Retail"})
    again = score({"industry": "Retail"})
    changed = score({"industry": "Logistics"})
    assert first.fit_points == again.fit_points == changed.fit_points == 10


# --- engagement: decay, lifespan, limits, caps ------------------------------------------------

@pytest.mark.parametrize(("signals", "points", "reasons"), [
    ([sig("content_download", 0, asset="coverage-map")], 20,
     ["+20 downloaded Coverage map (just now, decays 50% per 10d)"]),
    ([sig("content_download", 10, asset="coverage-map")], 10,
     ["+10 downloaded Coverage map (10 days ago, decays 50% per 10d)"]),
    ([sig("content_download", 20, asset="coverage-map")], 5,
     ["+5 downloaded Coverage map (20 days ago, decays 50% per 10d)"]),
    ([sig("content_download", 3, asset="coverage-map")], 16.2,
     ["+16.2 downloaded Coverage map (3 days ago, decays 50% per 10d)"]),
    ([sig("page_view", 29.9, url="https://acme.example/pricing")], 10,
     ["+10 viewed pricing (29 days ago, counts for 30d)"]),
    ([sig("page_view", 30, url="https://acme.example/pricing?plan=pro")], 0, []),   # lifespan over
    ([sig("page_view", 1, url="https://acme.example/guide/a"), sig("page_view", 2, url="/guide/b")], 10,
     ["+10 viewed Buyer's guide (2×, last 1 day ago)"]),
    ([sig("page_view", d, url=f"/guide/{d}") for d in (1, 2, 3, 4, 5)], 15,   # limit: 3 per 30d
     ["+15 viewed Buyer's guide (3×, last 1 day ago, 2 more not counted: max 3 per 30d)"]),
    ([sig("page_view", d, url=f"/guide/{d}") for d in (1, 2, 3, 20, 25)], 15,  # 20, 25: same window
     ["+15 viewed Buyer's guide (3×, last 1 day ago, 2 more not counted: max 3 per 30d)"]),
    ([sig("page_view", d, url=f"/guide/{d}") for d in (1, 2, 35, 40, 70)], 15,
     ["+25 viewed Buyer's guide (5×, last 1 day ago)", "−10 web activity counts at most 15"]),
    ([sig("email_open", d) for d in (1, 2, 3)], 2,                          # lifetime limit of 2
     ["+2 opened an email (2×, last 1 day ago, 1 more not counted: max 2)"]),
    ([sig("page_view", 1, url="/blog/x", key="k1"), sig("page_view", 1, url="/blog/x", key="k1")], 1,
     ["+1 viewed Blog (1 day ago)"]),                                      # same key counts once
    ([sig("page_view", -1, url="/blog/x")], 0, []),                        # after as_of: ignored
    ([sig("form_submit", 1, form="newsletter")], 0, []),                   # property narrows
    ([sig("form_submit", 1, form="Demo")], 30, ["+30 submitted a form (1 day ago)"]),
])
def test_engagement_points_and_reasons(signals: list[Signal], points: float, reasons: list[str]) -> None:
    result = score({}, signals)
    assert (result.engagement_points, reason_texts(result)) == (points, reasons)


def test_overall_cap() -> None:
    signals = [sig("form_submit", 1, form="demo"), sig("content_download", 0, asset="coverage-map"),
               sig("page_view", 1, url="/pricing"), sig("page_view", 2, url="/guide/1")]
    result = score({}, signals)
    assert result.engagement_points == 60
    assert "−5 activity counts at most 60 in all" in reason_texts(result)
    assert sum(r.points for r in result.reasons) == pytest.approx(result.score)


def test_signal_order_does_not_change_the_result() -> None:
    signals = [sig("page_view", d, url=f"/guide/{d}") for d in (1, 2, 3, 4, 5)]
    signals += [sig("content_download", 3, asset="coverage-map"), sig("email_open", 2)]
    forward = score({"company": "Acme"}, signals).to_dict()
    backward = score({"company": "Acme"}, signals[::-1]).to_dict()
    assert forward == backward


# --- negative signals ------------------------------------------------------------------------

GOOD = {"email": "ada@acme-logistics.com", "phone": "+49 30 901820", "country": "DE"}


@pytest.mark.parametrize(("fields", "signals", "points", "reasons"), [
    (GOOD, [], 0, []),
    ({**GOOD, "email": "ada@gmail.com"}, [], -20, ["−20 free-mail address (gmail.com)"]),
    ({**GOOD, "email": "ada@mailinator.com"}, [], -40, ["−40 disposable email address (mailinator.com)"]),
    ({**GOOD, "email": "sdfslk522@acme-logistics.com"}, [], -30,
     ["−30 email address looks made up (sdfslk522@)"]),
    ({**GOOD, "phone": ""}, [], -10, ["−10 no phone number"]),
    ({**GOOD, "phone": "12345"}, [], -15, ["−15 phone number is not valid (12345, DE)"]),
    ({**GOOD, "phone": "030 901820", "country": "Germany"}, [], 0, []),       # region from country
    ({**GOOD, "phone": "12345", "mobile_phone": "+44 20 7946 0958"}, [], 0, []),  # one valid is enough
    ({**GOOD, "email": "ada@ox.ac.uk"}, [], -25, ["−25 looks like a student (ox.ac.uk)"]),
    ({**GOOD, "job_title": "Marketing Intern"}, [], -25, ['−25 looks like a student (job title "Marketing Intern")']),
    ({**GOOD, "email": "ada@eu.rival.example"}, [], -50, ["−50 works for a competitor (eu.rival.example)"]),
    ({**GOOD, "website": "https://www.rival.example"}, [], -50, ["−50 works for a competitor (rival.example)"]),
    (GOOD, [sig("bounce", 2)], -20, ["−20 email bounced (2 days ago)"]),
    (GOOD, [sig("unsubscribe", 5), sig("unsubscribe", 1)], -10, ["−10 unsubscribed from email (1 day ago)"]),
])
def test_negative_signals(fields: dict[str, Any], signals: list[Signal], points: float,
                          reasons: list[str]) -> None:
    result = score(fields, signals, negative_rules())
    assert (result.score, reason_texts(result)) == (points, reasons)


@pytest.mark.parametrize("switch_off", [{"points": 0}, {"points": -20, "enabled": False}])
def test_negative_signal_can_be_switched_off(switch_off: dict[str, Any]) -> None:
    rules = make_rules(negative={**NEGATIVE, "free_mail": switch_off})
    assert score({**GOOD, "email": "ada@gmail.com"}, rules=rules).score == 0


def test_free_mail_and_gibberish_add_up_and_fit_grade_drops() -> None:
    result = score({**GOOD, "email": "xkcdjq@gmail.com", "phone": "", "job_title": "Head of IT"},
                   rules=negative_rules())
    assert (result.fit_points, result.grade) == (-40, "D")
    assert reason_texts(result) == ["−30 email address looks made up (xkcdjq@)", "+20 senior title",
                                        "−20 free-mail address (gmail.com)", "−10 no phone number"]


# --- bands: every boundary, just below and at ------------------------------------------------

def boundary_rules() -> Rules:
    fit = [{"id": f"p{n}", "field": f"p{n}", "present": True, "points": n} for n in (1, 2, 4, 8, 16, 32, 64)]
    return make_rules(fit=fit, overrides=[], priority=[], disqualify=[])


def points_profile(total: int) -> dict[str, Any]:
    return {f"p{n}": "x" for n in (1, 2, 4, 8, 16, 32, 64) if total & n}


@pytest.mark.parametrize(("total", "band", "grade", "mql", "playbook"), [
    (0, "cold", "D", False, "nurture_only"),
    (19, "cold", "C", False, "nurture_only"),
    (20, "cool", "C", False, "automated_follow_up"),
    (39, "cool", "B", False, "automated_follow_up"),
    (40, "warm", "A", True, "individual_follow_up"),
    (69, "warm", "A", True, "individual_follow_up"),
    (70, "hot", "A", True, "call_now"),
    (127, "hot", "A", True, "call_now"),
])
def test_band_boundaries(total: int, band: str, grade: str, mql: bool, playbook: str) -> None:
    result = score(points_profile(total), rules=boundary_rules())
    assert (result.score, result.band, result.grade, result.mql, result.playbook) == (
        total, band, grade, mql, playbook)


@pytest.mark.parametrize(("total", "grade"), [(9, "D"), (10, "C"), (24, "C"), (25, "B"), (39, "B"), (40, "A")])
def test_grade_boundaries(total: int, grade: str) -> None:
    assert score(points_profile(total), rules=boundary_rules()).grade == grade


# --- overrides, priority, disqualification, MQL ---------------------------------------------

@pytest.mark.parametrize(("fields", "signals", "band", "mql", "disqualified", "reason"), [
    ({}, [sig("contact_request", 2)], "warm", False, False, "raised to warm: contact request (2 days ago)"),
    ({}, [sig("contact_request", 31)], "cold", False, False, "+5 asked to be contacted (31 days ago)"),
    ({"job_title": "Head", "company": "Acme", "industry": "Retail"}, [sig("contact_request", 2)], "warm", True,
     False, "+5 asked to be contacted (2 days ago)"),                 # warm by score already
    ({}, [sig("event_attended", 200)], "hot", False, False,
     "raised to hot: came to an event or started a trial (event attended or trial signup, 200 days ago)"),
    ({}, [sig("trial_signup", 1), sig("contact_request", 1)], "hot", False, False,
     "raised to hot: came to an event or started a trial (event attended or trial signup, 1 day ago)"),
    ({"job_title": "Student"}, [sig("trial_signup", 1)], "cold", False, True,
     "disqualified: student (job title matches student)"),
    ({}, [sig("trial_signup", 1), sig("do_not_contact", 3)], "cold", False, False,
     "forced cold: asked not to be contacted (do not contact, 3 days ago)"),
    ({"do_not_contact": "true"}, [sig("event_attended", 1)], "cold", False, False,
     "forced cold: asked not to be contacted (do not contact is True)"),
])
def test_overrides_outrank_the_sum(fields: dict[str, Any], signals: list[Signal], band: str, mql: bool,
                                   disqualified: bool, reason: str) -> None:
    result = score(fields, signals)
    assert (result.band, result.mql, result.disqualified) == (band, mql, disqualified)
    assert reason in [r.text for r in result.reasons]


def test_override_reasons_come_first_with_zero_points() -> None:
    result = score({}, [sig("trial_signup", 1), sig("contact_request", 1)])
    assert [(r.points, r.kind, r.rule) for r in result.reasons[:3]] == [
        (0.0, "override", "asked"), (0.0, "override", "event-trial"), (0.0, "override", "weak")]
    assert [r.text for r in result.reasons[3:]] == ["+5 asked to be contacted (1 day ago)",
                                                     "+5 signed up for a trial (1 day ago)"]


@pytest.mark.parametrize(("fields", "signals", "priority"), [
    ({"company": "Acme", "job_title": "Head"}, [], "normal"),
    ({}, [], "low"),
    ({"company": "Acme", "job_title": "Head"}, [sig("page_view", 3, url="https://x.example/coverage")], "high"),
    ({"company": "Acme", "job_title": "Head"}, [sig("page_view", 31, url="/coverage")], "normal"),
    ({}, [sig("content_download", 1, asset="coverage-map")], "high"),   # high beats low
])
def test_priority(fields: dict[str, Any], signals: list[Signal], priority: str) -> None:
    assert score(fields, signals).priority == priority


def test_problem_indicator_reason_names_the_asset() -> None:
    result = score({"job_title": "Head"}, [sig("page_view", 3, url="/coverage-map")])
    assert result.reasons[0].text == "high priority: showed a problem we solve (Coverage map, 3 days ago)"


@pytest.mark.parametrize(("fields", "signals", "disqualified", "reason", "band"), [
    ({"job_title": "Working Student"}, [], True, "student", "cold"),
    ({"email": "x@gmail.com", "phone": ""}, [sig("bounce", 1)], True, "score too low", "cold"),
    ({"email": "x@gmail.com", "phone": "+49 30 901820"}, [], False, None, "cold"),  # -20 is not below -20
])
def test_disqualification(fields: dict[str, Any], signals: list[Signal], disqualified: bool,
                          reason: str | None, band: str) -> None:
    result = score(fields, signals, negative_rules())
    assert (result.disqualified, result.disqualify_reason, result.band) == (disqualified, reason, band)


def test_disqualified_lead_is_never_mql_even_when_hot() -> None:
    fields = {"job_title": "Head student rep", "industry": "Retail", "employees": 100, "company": "Acme"}
    result = score(fields, [sig("form_submit", 1, form="demo"), sig("content_download", 1, asset="coverage-map")])
    assert (result.band, result.grade, result.disqualified, result.mql) == ("hot", "A", True, False)


@pytest.mark.parametrize(("mql", "fields", "expected"), [
    ({"bands": ["hot"]}, points_profile(69), False),
    ({"bands": ["warm", "hot"]}, points_profile(69), True),
    ({"bands": ["warm", "hot"], "grades": ["A"]}, points_profile(39) | {"p1": None}, False),
    ({"bands": ["warm", "hot"], "min_score": 70}, points_profile(69), False),
])
def test_mql_definition(mql: dict[str, Any], fields: dict[str, Any], expected: bool) -> None:
    fit = [{"id": f"p{n}", "field": f"p{n}", "present": True, "points": n} for n in (1, 2, 4, 8, 16, 32, 64)]
    rules = make_rules(fit=fit, overrides=[], priority=[], disqualify=[], mql=mql)
    assert score(fields, rules=rules).mql is expected


# --- result shape, summary, determinism -----------------------------------------------------

def test_result_to_dict_and_summary() -> None:
    signals = [sig("content_download", 3, asset="coverage-map"), sig("contact_request", 1)]
    result = score({"job_title": "Head of Ops", "company": "Acme"}, signals)
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["as_of"] == "2025-06-02T12:00:00+00:00"
    assert data["rules_version"] == base_rules().version
    assert (result.fit_points, result.engagement_points, result.score) == (25, 21.2, 46.2)
    assert (result.band, result.grade, result.mql, result.priority, result.playbook) == (
        "warm", "B", True, "high", "individual_follow_up")
    assert result.summary == ("warm 46.2, grade B, MQL: high priority: showed a problem we solve; "
                              "+20 senior title; +16.2 downloaded Coverage map; +5 company: Acme; "
                              "+5 asked to be contacted")
    assert data["reasons"][2] == {"points": 16.2, "rule": "map", "kind": "engagement",
                                  "text": "+16.2 downloaded Coverage map (3 days ago, decays 50% per 10d)"}


def test_summary_fits_a_crm_text_field() -> None:
    fields = {f"p{n}": "x" * 200 for n in (1, 2, 4, 8, 16, 32, 64)}
    fit = [{"id": f"p{n}", "field": f"p{n}", "present": True, "points": n} for n in (1, 2, 4, 8, 16, 32, 64)]
    result = score(fields, rules=make_rules(fit=fit))
    assert len(result.summary) <= 255
    assert result.summary.startswith("hot 127, grade A, MQL: +64 p64: xxx")
    assert result.summary.endswith(" …")


def test_same_inputs_give_the_same_result() -> None:
    signals = [sig("page_view", d / 3, url=f"/guide/{d}") for d in range(20)]
    fields = {**GOOD, "job_title": "Head of Ops"}
    results = {json.dumps(score(fields, signals, negative_rules()).to_dict(), sort_keys=True) for _ in range(3)}
    results.add(json.dumps(score(dict(fields), list(signals), make_rules(negative=NEGATIVE)).to_dict(),
                           sort_keys=True))
    assert len(results) == 1


def test_as_of_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        score_lead(LeadProfile({}), [], base_rules(), datetime(2025, 6, 2))

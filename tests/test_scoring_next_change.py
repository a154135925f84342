"""``next_change``: when a lead's visible verdict changes with no new event, to the microsecond.

Tables computed by hand (decay: ``t = half_life * log2(points / boundary)``, where ``boundary``
is the value the rounded term must fall below), then a property over generated leads: scored a
microsecond before the answer the verdict is unchanged, at the answer it differs.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.scoring import AS_OF as BENCH_AS_OF
from bench.scoring import make_profile, make_signals
from scoring import (
    LeadProfile,
    NextChange,
    Rules,
    ScoreResult,
    Signal,
    load_rules,
    load_rules_file,
    next_change,
    score_lead,
)
from tests.test_scoring_engine import AS_OF, BASE, DAY, NEGATIVE, make_rules, sig

SHIPPED = Path(__file__).resolve().parent.parent / "rules" / "leadloop.yaml"
US = timedelta(microseconds=1)
SECOND = timedelta(seconds=1)
#: Fit 25 (grade B): "Head" +20, a company +5.
FIT_25 = {"job_title": "Head", "company": "Acme"}
#: Fit 45 (grade A).
FIT_45 = {"job_title": "Head", "industry": "Logistics", "employees": 80, "company": "Acme"}
MAP_NOW = sig("content_download", 0, asset="coverage-map")  # 20 points, half-life 10 days
COMPLAINT = {"id": "complaint", "kind": "chat_intent", "points": -20, "decay": {"half_life": "10d"}}


@cache
def rules_with(step: int | None = None, negative: bool = False, complaint: bool = False) -> Rules:
    changes: dict[str, Any] = {}
    if step is not None:
        changes["rescore"] = {"score_step": step}
    if negative:
        changes["negative"] = NEGATIVE
    if complaint:
        changes["engagement"] = [*BASE["engagement"], COMPLAINT]
    return make_rules(**changes)


def change_of(fields: dict[str, Any], signals: list[Signal], rules: Rules, penalty: float = 0) -> NextChange | None:
    return next_change(LeadProfile(fields), signals, rules, AS_OF, penalty=penalty)


# --- decay: the instant solved in closed form, to the second ----------------------------------

@pytest.mark.parametrize(("fields", "signals", "rules", "penalty", "after", "reason"), [
    # 25 + 20 = 45, written 45; 40 is written once the term is 15.5 (y < 15.55): 10d * log2(20 / 15.55)
    pytest.param(FIT_25, [MAP_NOW], rules_with(), 0, timedelta(days=3, hours=15, minutes=8, seconds=25.8),
                 "score 45->40", id="written-score-moves-by-the-step"),
    # the band (warm from 40) once the term is 14.9 (y < 14.95): 10d * log2(20 / 14.95)
    pytest.param(FIT_25, [MAP_NOW], rules_with(step=100), 0, timedelta(days=4, hours=4, minutes=45, seconds=54.3),
                 "band warm->cool", id="band-falls"),
    # 45 - 7.5 = 37.5, written 38; 33 once the score is below 33.5 (term 15.9, y < 15.95)
    pytest.param(FIT_25, [MAP_NOW], rules_with(), 7.5, timedelta(days=3, hours=6, minutes=20, seconds=47.2),
                 "score 38->33", id="with-a-penalty"),
    # 3 x 20 points capped with a demo form (30) at 60 in all: nothing shows until the three are
    # worth 25.4 (y < 25.45), the score then 55.4, written 55: 10d * log2(60 / 25.45)
    pytest.param({}, [sig("form_submit", 1, form="demo")] + [
        sig("content_download", 0, key=f"d{n}", asset="coverage-map") for n in range(3)], rules_with(), 0,
        timedelta(days=12, hours=8, minutes=57, seconds=4.5), "score 60->55", id="decay-under-a-cap"),
    # free mail -20, no phone -10, +20 coverage map = -10; disqualified below -20 (y < 9.95)
    pytest.param({"email": "x@gmail.com", "phone": ""}, [MAP_NOW], rules_with(step=100, negative=True), 0,
                 timedelta(days=10, hours=1, minutes=44, seconds=8.1), "disqualified false->true", id="score-floor"),
    # 45 - 20 (a complaint in chat, decaying) = 25; warm from 40 once it is -5.0 (y > -5.05)
    pytest.param(FIT_45, [sig("chat_intent", 0)], rules_with(step=100, complaint=True), 0,
                 timedelta(days=19, hours=20, minutes=33, seconds=17), "band cool->warm",
                 id="negative-points-decay-and-the-score-rises"),
])
def test_decay_crossing_is_solved(fields: dict[str, Any], signals: list[Signal], rules: Rules, penalty: float,
                                  after: timedelta, reason: str) -> None:
    change = change_of(fields, signals, rules, penalty)
    assert change is not None
    assert (change.reason, change.cause) == (reason, "decay")
    assert abs(change.at - (AS_OF + after)) < SECOND


# --- the lead's own instants: exact ----------------------------------------------------------

@pytest.mark.parametrize(("fields", "signals", "after", "reason", "cause"), [
    # asked to be contacted 2 days ago: at least warm within 30 days, so until 28 days + 1 µs from now
    pytest.param({}, [sig("contact_request", 2)], 28 * DAY + US, "band warm->cold", "override asked ends",
                 id="override-window-closes"),
    # a coverage page 3 days ago: high priority within 30 days
    pytest.param({"job_title": "Head"}, [sig("page_view", 3, url="/coverage")], 27 * DAY + US,
                 "priority high->normal", "priority problem ends", id="priority-window-closes"),
    # pricing 10 days ago counts for 30 days: gone when its age is 30 days (35 + 10 = 45 -> 35)
    pytest.param({"job_title": "Head", "industry": "Retail", "company": "Acme"},
                 [sig("page_view", 10, url="/pricing")], 20 * DAY, "band warm->cool", "engagement pricing ends",
                 id="lifespan-ends"),
    # a trial dated tomorrow (a CRM clock ahead of ours) counts from its time on: at least hot
    pytest.param({}, [sig("trial_signup", -1)], DAY, "band cold->hot", "signal trial_signup arrives",
                 id="signal-dated-later-arrives"),
])
def test_instants_of_the_lead(fields: dict[str, Any], signals: list[Signal], after: timedelta, reason: str,
                              cause: str) -> None:
    assert change_of(fields, signals, rules_with()) == NextChange(AS_OF + after, reason, cause)


@pytest.mark.parametrize(("fields", "signals"), [
    pytest.param({}, [], id="nothing-at-all"),
    pytest.param(FIT_45, [], id="fit-has-no-clock"),
    # five guide pages, at most 3 count in any 30 days: the two dropped never count again by waiting
    pytest.param({}, [sig("page_view", d, url=f"/guide/{d}") for d in (1, 2, 3, 4, 5)],
                 id="limit-windows-do-not-reopen"),
    pytest.param({}, [sig("event_attended", 400)], id="override-without-window"),
    # 25 + 1.2 (coverage map 30 days ago) can only fall by 1.2 points: never written differently
    pytest.param(FIT_25, [sig("content_download", 40, asset="coverage-map")], id="decay-smaller-than-the-step"),
])
def test_nothing_changes_on_its_own(fields: dict[str, Any], signals: list[Signal]) -> None:
    assert change_of(fields, signals, rules_with()) is None


def test_first_of_several_changes_wins() -> None:
    # The override window (28 days) closes long after the step (3.6 days) ...
    signals = [MAP_NOW, sig("contact_request", 2)]
    assert change_of(FIT_25, signals, rules_with()).reason == "score 50->45"
    # ... and with a coarse step, the score alone never shows before the window closes.
    assert change_of(FIT_25, signals, rules_with(step=100)) == NextChange(
        AS_OF + 28 * DAY + US, "band warm->cool", "override asked ends")


def test_arguments_are_checked_like_score_lead() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_change(LeadProfile({}), [], rules_with(), datetime(2025, 6, 2))
    with pytest.raises(ValueError, match="penalty"):
        next_change(LeadProfile({}), [], rules_with(), AS_OF, penalty=-1)


def test_result_is_json_able_and_signals_may_be_an_iterator() -> None:
    change = next_change(LeadProfile(FIT_25), iter([MAP_NOW]), rules_with(), AS_OF)
    assert change is not None
    assert json.loads(json.dumps(change.to_dict())) == {
        "at": change.at.isoformat(), "reason": "score 45->40", "cause": "decay"}


# --- property: exact to the microsecond, over generated leads --------------------------------

@cache
def rising_rules() -> Rules:
    """The shipped rules plus decaying negative points, a lifespan with a limit, step 1, a min score."""
    data = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    data["engagement"] += [
        {"id": "cold-chat", "kind": "chat_intent", "points": -25, "decay": {"half_life": "10d"}},
        {"id": "click-fades", "kind": "email_click", "points": -4, "group": "email", "decay": {"half_life": "3d"},
         "limit": {"count": 2, "per": "7d"}},
        {"id": "recent-view", "kind": "page_view", "points": 2, "group": "web", "decay": {"lifespan": "20d"},
         "limit": {"count": 3, "per": "5d"}}]
    data["rescore"] = {"score_step": 1}
    data["mql"]["min_score"] = 52
    return load_rules(yaml.safe_dump(data, allow_unicode=True))


def shows(result: ScoreResult) -> tuple[str, bool, bool, str]:
    return result.band, result.disqualified, result.mql, result.priority


def check_lead(rules: Rules, profile: LeadProfile, signals: list[Signal], as_of: datetime, penalty: float,
               rng: random.Random) -> NextChange | None:
    """Score around ``next_change``'s answer; return it."""
    step = rules.data.get("rescore", {}).get("score_step", 5)
    start = score_lead(profile, signals, rules, as_of, penalty=penalty)

    def changed_at(when: datetime) -> bool:
        result = score_lead(profile, signals, rules, when, penalty=penalty)
        assert result.grade == start.grade  # fit has no clock
        return shows(result) != shows(start) or abs(round(result.score) - round(start.score)) >= step

    change = next_change(profile, signals, rules, as_of, penalty=penalty)
    if change is None:
        assert not any(changed_at(as_of + days * DAY) for days in (1, 10, 100, 1000, 10000))
        return None
    assert not changed_at(change.at - US) and not changed_at(change.at - SECOND), change
    assert changed_at(change.at), change
    span = (change.at - as_of) // US
    assert not any(changed_at(as_of + rng.randrange(span) * US) for _ in range(3)), change
    assert change.reason.split()[0] in {"band", "disqualified", "mql", "priority", "score"}
    return change


@pytest.mark.parametrize(("rules_name", "count"), [("shipped", 300), ("rising", 150)])
def test_verdict_holds_until_the_answer_and_changes_at_it(rules_name: str, count: int) -> None:
    rules = load_rules_file(SHIPPED) if rules_name == "shipped" else rising_rules()
    rng = random.Random(41)
    found = 0
    for i in range(count):
        profile = make_profile(rng, i)
        signals = make_signals(rng, rng.choice([1, 5, 20, 40]), i)
        if rng.random() < 0.3:  # a signal dated after as_of
            first = signals[0]
            later = BENCH_AS_OF + timedelta(days=rng.randint(0, 40), seconds=rng.randint(0, 86400))
            signals.append(Signal(first.kind, later, first.properties, first.key + "-later"))
        as_of = BENCH_AS_OF + rng.choice([0, 1, 250, 999_999]) * US
        found += check_lead(rules, profile, signals, as_of, rng.choice([0, 0, 10]), rng) is not None
    assert found > count // 3  # most leads have something that fades

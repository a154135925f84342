"""Smooth weighted round-robin: exact, spread-out, deterministic, skips unavailable reps."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from scoring.lifecycle_rules import Team, TeamMember
from scoring.routing import NoAvailableRep, pick_rep

TEAM_2_1_1 = Team("dach", (TeamMember("anna", 2), TeamMember("ben", 1), TeamMember("carla", 1)))


def run(team: Team, picks: int, state: dict[str, float] | None = None) -> tuple[list[str], dict[str, float]]:
    state = dict(state or {})
    chosen = []
    for _ in range(picks):
        rep, state = pick_rep(team, state)
        chosen.append(rep)
    return chosen, state


def test_first_picks_follow_nginx_order() -> None:
    # (2,1,1) -> anna; (0,2,2) -> ben (tie, first listed); (2,-1,3) -> carla; (4,0,0) -> anna.
    picks, state = run(TEAM_2_1_1, 8)
    assert picks == ["anna", "ben", "carla", "anna"] * 2
    assert state == {"anna": 0.0, "ben": 0.0, "carla": 0.0}


def test_heavier_rep_is_spread_out_not_bursty() -> None:
    team = Team("t", (TeamMember("a", 3), TeamMember("b", 1)))
    assert run(team, 4)[0] == ["a", "a", "b", "a"]
    team = Team("t", (TeamMember("a", 5), TeamMember("b", 1), TeamMember("c", 1)))
    assert run(team, 7)[0] == ["a", "a", "b", "a", "c", "a", "a"]


def test_fairness_2_1_1_over_1000_picks() -> None:
    counts = Counter(run(TEAM_2_1_1, 1000)[0])
    for rep, share in {"anna": 0.50, "ben": 0.25, "carla": 0.25}.items():
        assert abs(counts[rep] / 1000 - share) <= 0.02
    assert counts == {"anna": 500, "ben": 250, "carla": 250}  # smooth WRR is exact


def test_rep_going_unavailable_midway() -> None:
    first, state = run(TEAM_2_1_1, 500)
    assert Counter(first) == {"anna": 250, "ben": 125, "carla": 125}
    away = TEAM_2_1_1.without(frozenset({"carla"}))
    second, state = run(away, 300, state)
    assert Counter(second) == {"anna": 200, "ben": 100}
    assert state["carla"] == 0.0  # an absent rep's value is frozen, not drained or inflated
    back, _ = run(TEAM_2_1_1, 400, state)
    assert Counter(back) == {"anna": 200, "ben": 100, "carla": 100}
    assert Counter(first + second + back) == {"anna": 650, "ben": 325, "carla": 225}


def test_unavailable_flag_in_rules_is_skipped() -> None:
    team = Team("t", (TeamMember("a", 1), TeamMember("b", 5, available=False), TeamMember("c", 1)))
    picks, _ = run(team, 6)
    assert Counter(picks) == {"a": 3, "c": 3}


def test_state_survives_a_json_round_trip_and_is_deterministic() -> None:
    picks_a, state = run(TEAM_2_1_1, 3)
    restored = json.loads(json.dumps(state))
    assert pick_rep(TEAM_2_1_1, restored) == pick_rep(TEAM_2_1_1, restored)
    assert pick_rep(TEAM_2_1_1, restored)[0] == "anna"
    assert picks_a + run(TEAM_2_1_1, 5, restored)[0] == run(TEAM_2_1_1, 8)[0]


def test_new_members_start_at_zero_and_former_members_are_dropped() -> None:
    rep, state = pick_rep(Team("t", (TeamMember("new", 1),)), {"gone": 7.0})
    assert (rep, state) == ("new", {"new": 0.0})


def test_input_state_is_not_mutated() -> None:
    state = {"anna": 1.0, "ben": -1.0, "carla": 0.0}
    pick_rep(TEAM_2_1_1, state)
    assert state == {"anna": 1.0, "ben": -1.0, "carla": 0.0}


def test_nobody_available() -> None:
    with pytest.raises(NoAvailableRep, match="no available rep in team 'dach'"):
        pick_rep(TEAM_2_1_1.without(frozenset({"anna", "ben", "carla"})), {})

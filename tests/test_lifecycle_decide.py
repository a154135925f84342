"""Stage transitions for every cause, and the rules decide() must keep."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from lifecycle_support import DAY, berlin, make_result, make_rules

from scoring.lifecycle import (
    Disposition,
    LeadState,
    crm_fields_for,
    decide,
    disposition_for,
    merge_leads,
    score_may_move,
)
from scoring.lifecycle_schemas import STAGES
from scoring.routing import Handoff

RULES = make_rules()
NOW = berlin(2026, 3, 9, 10, 0)
EARLIER = NOW - 40 * DAY
DACH = {"country": "DE", "first_name": "Jana", "last_name": "Roth"}


def lead(stage: str = "new", **kwargs: Any) -> LeadState:
    return LeadState(stage=stage, crm="hubspot", fields=kwargs.pop("fields", DACH), **kwargs)


def rejected(reason: str, occurred_at: datetime | None = None) -> Disposition:
    return Disposition("rejected", reason, occurred_at=occurred_at)


# (id, lead, result, disposition, [(from, to, cause), ...])
TRANSITIONS = [
    ("cold new lead is nurtured", lead(), make_result("cold"), None, [("new", "nurture", "score")]),
    ("cool new lead is nurtured", lead(), make_result("cool"), None, [("new", "nurture", "score")]),
    ("hot new lead becomes mql", lead(), make_result("hot"), None, [("new", "mql", "score")]),
    ("warm nurture lead becomes mql", lead("nurture"), make_result("warm"), None,
     [("nurture", "mql", "score")]),
    ("cold nurture lead stays", lead("nurture"), make_result("cold"), None, []),
    ("mql with falling score stays with sales", lead("mql"), make_result("cold"), None, []),
    ("score disqualifies a nurture lead", lead("nurture"),
     make_result("cold", disqualified=True, disqualify_reason="competitor"), None,
     [("nurture", "disqualified", "score")]),
    ("score disqualifies an mql", lead("mql"),
     make_result("hot", disqualified=True, disqualify_reason="student"), None,
     [("mql", "disqualified", "score")]),
    ("sales-owned lead ignores scores", lead("accepted"), make_result("hot"), None, []),
    ("sql ignores a disqualifying score", lead("sql"), make_result("hot", disqualified=True), None, []),
    ("won ignores scores", lead("won"), make_result("hot"), None, []),
    ("disqualified stays disqualified", lead("disqualified"), make_result("hot"), None, []),
    ("cooldown blocks mql", lead("recycled", cooldown_until=NOW + DAY, recycled_at=EARLIER,
                                 last_engagement_at=NOW - DAY),
     make_result("hot"), None, []),
    ("cooldown expires", lead("recycled", cooldown_until=NOW - DAY, recycled_at=EARLIER), None, None,
     [("recycled", "nurture", "cooldown_expired")]),
    ("cooldown expired but no fresh engagement",
     lead("recycled", cooldown_until=NOW - DAY, recycled_at=EARLIER, last_engagement_at=EARLIER - DAY),
     make_result("hot"), None, [("recycled", "nurture", "cooldown_expired")]),
    ("cooldown expired with fresh engagement", lead("recycled", cooldown_until=NOW - DAY, recycled_at=EARLIER,
                                                    last_engagement_at=NOW - timedelta(hours=2)),
     make_result("hot"), None, [("recycled", "nurture", "cooldown_expired"), ("nurture", "mql", "score")]),
    ("accepted", lead("mql"), None, Disposition("accepted"), [("mql", "accepted", "disposition")]),
    ("qualified", lead("accepted"), None, Disposition("qualified"), [("accepted", "sql", "disposition")]),
    ("qualified straight from nurture", lead("nurture"), None, Disposition("qualified"),
     [("nurture", "sql", "disposition")]),
    ("won", lead("sql"), None, Disposition("won"), [("sql", "won", "disposition")]),
    ("lost", lead("sql"), None, Disposition("lost"), [("sql", "lost", "disposition")]),
    ("won after lost (reopened)", lead("lost"), None, Disposition("won"), [("lost", "won", "disposition")]),
    ("accepted after won is ignored", lead("won"), None, Disposition("accepted"), []),
    ("lost after won is ignored", lead("won"), None, Disposition("lost"), []),
    ("accepted after sql is ignored", lead("sql"), None, Disposition("accepted"), []),
    ("rejection after won is ignored", lead("won"), None, rejected("not_ready"), []),
    ("stale rejection is ignored", lead("accepted", stage_changed_at=NOW - DAY), None,
     rejected("not_ready", NOW - 2 * DAY), []),
    ("rejected not_ready recycles", lead("mql"), None, rejected("not_ready"),
     [("mql", "recycled", "disposition")]),
    ("rejection without cooldown goes straight on to nurture", lead("accepted"), None,
     rejected("wrong_person"),
     [("accepted", "recycled", "disposition"), ("recycled", "nurture", "recycle")]),
    ("rejection of a reason the file omits: no cooldown", lead("sql"), None, rejected("student"),
     [("sql", "recycled", "disposition"), ("recycled", "nurture", "recycle")]),
    ("bad data disqualifies", lead("mql"), None, rejected("bad_data"),
     [("mql", "disqualified", "disposition")]),
    ("bad data disqualifies a nurture lead", lead("nurture"), None, rejected("bad_data"),
     [("nurture", "disqualified", "disposition")]),
    ("not_ready on a nurture lead changes nothing", lead("nurture"), None, rejected("not_ready"), []),
    ("max recycles disqualifies", lead("mql", recycle_count=2), None, rejected("not_ready"),
     [("mql", "disqualified", "disposition")]),
]


@pytest.mark.parametrize(("start", "result", "disposition", "expected"),
                         [row[1:] for row in TRANSITIONS], ids=[row[0] for row in TRANSITIONS])
def test_transitions(start: LeadState, result: Any, disposition: Disposition | None,
                     expected: list[tuple[str, str, str]]) -> None:
    decision = decide(start, result, disposition, RULES, NOW)
    assert [(t.from_stage, t.to_stage, t.cause) for t in decision.transitions] == expected
    assert all(t.at == NOW for t in decision.transitions)
    assert decision.stage == decision.state.stage == (expected[-1][1] if expected else start.stage)
    # Idempotent: the same inputs give the same decision ...
    assert decide(start, result, disposition, RULES, NOW) == decision
    # ... and deciding again on the stored outcome changes nothing more.
    assert decide(decision.state, result, disposition, RULES, NOW).transitions == ()


def test_handoff_routes_and_records_the_playbook() -> None:
    decision = decide(lead(), make_result("hot"), None, RULES, NOW)
    assert decision.handoff == Handoff(route="dach", team="dach")
    assert decision.playbook == "call_now"
    assert decision.crm_fields == {"lifecyclestage": "marketingqualifiedlead", "hs_lead_status": "NEW"}
    state = decision.state
    assert (state.last_handoff_at, state.sla_misses, state.team) == (NOW, 0, "dach")
    assert (state.handoff_playbook, state.handoff_band, state.stage_changed_at) == ("call_now", "hot", NOW)
    assert decision.transitions[0].detail == {"score": 90, "band": "hot", "grade": "A", "mql": True,
                                              "playbook": "call_now", "rules_version": "v7", "route": "dach"}


def test_handoff_keeps_an_existing_owner_when_the_file_says_so() -> None:
    owned = lead(owner_id="olga")
    assert decide(owned, make_result("hot"), None, RULES, NOW).handoff == \
        Handoff(route="keep_existing_owner", owner_id="olga")
    reroute = make_rules(handoff={**RULES_HANDOFF_RAW, "keep_existing_owner": False})
    assert decide(owned, make_result("hot"), None, reroute, NOW).handoff == Handoff(route="dach", team="dach")


RULES_HANDOFF_RAW = {
    "fallback_owner": "queue-owner",
    "routes": [{"name": "dach", "when_all": [{"field": "country", "in": ["DE"]}], "team": "dach"}],
    "teams": {"dach": {"members": [{"id": "anna"}]}},
}


def test_recycle_sets_cooldown_reset_and_track() -> None:
    decision = decide(lead("mql", owner_id="anna", sla_misses=1), None, rejected("not_ready"), RULES, NOW)
    assert decision.recycle is not None
    assert (decision.recycle.reason, decision.recycle.recycle_count) == ("not_ready", 1)
    assert decision.recycle.cooldown_until == NOW + 30 * DAY
    assert decision.recycle.nurture_track == "long-term-nurture"
    assert (decision.recycle.engagement_reset_at, decision.recycle.score_penalty) == (NOW, 0)
    state = decision.state
    assert (state.recycle_count, state.recycle_reason, state.recycled_at) == (1, "not_ready", NOW)
    assert (state.cooldown_until, state.engagement_reset_at, state.sla_misses) == (NOW + 30 * DAY, NOW, 0)
    assert state.owner_id == "anna"  # a sales rejection keeps the owner
    assert decision.crm_fields == {"hs_lead_status": "BAD_TIMING"}
    assert decision.transitions[0].detail["reason"] == "not_ready"


def test_penalty_policy_accumulates_points() -> None:
    decision = decide(lead("mql", score_penalty=5), None, rejected("no_response"), RULES, NOW)
    assert decision.recycle is not None and decision.recycle.score_penalty == 10
    assert decision.state.score_penalty == 15
    assert decision.state.engagement_reset_at is None
    assert decision.recycle.nurture_track == "re-engagement"


def test_default_track_for_a_reason_without_one() -> None:
    decision = decide(lead("mql"), None, rejected("student"), RULES, NOW)
    assert decision.recycle is not None and decision.recycle.nurture_track == "general-nurture"


@pytest.mark.parametrize(("start", "disposition", "reason"), [
    (lead("mql"), rejected("bad_data"), "bad_data"),
    (lead("mql", recycle_count=2), rejected("not_ready"), "max_recycles"),
    (lead("mql", recycle_count=1), rejected("competitor"), "competitor"),
])
def test_disqualified_flag_and_reason(start: LeadState, disposition: Disposition, reason: str) -> None:
    decision = decide(start, None, disposition, RULES, NOW)
    assert (decision.stage, decision.disqualified) == ("disqualified", True)
    assert decision.disqualify_reason == reason
    assert decision.recycle is None
    assert decision.crm_fields == {"hs_lead_status": "UNQUALIFIED"}


def test_one_recycle_below_the_maximum_is_still_a_recycle() -> None:
    decision = decide(lead("mql", recycle_count=1), None, rejected("not_ready"), RULES, NOW)
    assert (decision.stage, decision.state.recycle_count) == ("recycled", 2)


def test_notes_say_why_nothing_happened() -> None:
    cooling = lead("nurture", cooldown_until=NOW + DAY, recycled_at=EARLIER)
    assert decide(cooling, make_result("hot"), None, RULES, NOW).notes == \
        ("not an MQL yet: in cooldown until 2026-03-10T10:00:00+01:00",)
    quiet = lead("nurture", recycled_at=EARLIER)
    assert decide(quiet, make_result("hot"), None, RULES, NOW).notes == \
        ("not an MQL yet: needs engagement after the recycle at 2026-01-28T10:00:00+01:00",)
    assert decide(lead("won"), None, Disposition("accepted"), RULES, NOW).notes == \
        ("ignored accepted: the lead is already won",)
    assert decide(lead("sql"), make_result("hot"), None, RULES, NOW).notes == \
        ("score ignored: the lead is sql",)


def test_crm_fields_only_when_the_stage_changes() -> None:
    assert decide(lead("nurture"), make_result("cold"), None, RULES, NOW).crm_fields == {}
    salesforce = replace(lead(), crm="salesforce")
    assert decide(salesforce, make_result("hot"), None, RULES, NOW).crm_fields == \
        {"Status": "Open - Not Contacted"}
    web_only = replace(lead(), crm=None)
    assert decide(web_only, make_result("hot"), None, RULES, NOW).crm_fields == {}


@pytest.mark.parametrize(("crm", "field_name", "value", "expected"), [
    ("hubspot", "hs_lead_status", "BAD_TIMING", Disposition("rejected", "not_ready")),
    ("hubspot", "lead_status", "BAD_TIMING", Disposition("rejected", "not_ready")),
    ("hubspot", "hs_lead_status", "IN_PROGRESS", Disposition("accepted")),
    ("hubspot", "lifecyclestage", "customer", Disposition("won")),
    ("hubspot", "lifecycle_stage", "opportunity", Disposition("qualified")),
    ("salesforce", "Status", "Closed - Converted", Disposition("won")),
    ("salesforce", "lead_status", "Working - Contacted", Disposition("accepted")),
    ("hubspot", "hs_lead_status", "NEW", None),
    ("hubspot", "hs_lead_status", "bad_timing", None),
    ("salesforce", "Status", "BAD_TIMING", None),
    ("pipedrive", "status", "won", None),
])
def test_disposition_for(crm: str, field_name: str, value: str, expected: Disposition | None) -> None:
    found = disposition_for(crm, field_name, value, RULES)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert (found.kind, found.reason) == (expected.kind, expected.reason)
        assert found.source == f"{crm} {field_name}={value}"


def test_disposition_for_carries_the_change_time() -> None:
    changed_at = NOW - DAY
    found = disposition_for("hubspot", "hs_lead_status", "BAD_TIMING", RULES, occurred_at=changed_at)
    assert found is not None and found.occurred_at == changed_at
    accepted_today = lead("accepted", stage_changed_at=NOW)
    assert decide(accepted_today, None, found, RULES, NOW + DAY).notes == \
        ("ignored rejected:not_ready: older than the last stage change",)


def test_our_own_crm_writes_echoing_back_change_nothing() -> None:
    recycled = decide(lead("mql"), None, rejected("not_ready"), RULES, NOW)
    echo = disposition_for("hubspot", "hs_lead_status", recycled.crm_fields["hs_lead_status"], RULES)
    assert decide(recycled.state, None, echo, RULES, NOW + timedelta(seconds=5)).transitions == ()
    disqualified = decide(lead("mql"), None, rejected("bad_data"), RULES, NOW)
    echo = disposition_for("hubspot", "hs_lead_status", disqualified.crm_fields["hs_lead_status"], RULES)
    assert decide(disqualified.state, None, echo, RULES, NOW).transitions == ()


def test_crm_fields_for() -> None:
    assert crm_fields_for("hubspot", "recycled", RULES) == {"hs_lead_status": "BAD_TIMING"}
    assert crm_fields_for("salesforce", "won", RULES) == {}
    assert crm_fields_for(None, "mql", RULES) == {}


def test_merge_takes_the_further_stage() -> None:
    survivor = lead("nurture", recycle_count=1, cooldown_until=NOW + DAY)
    absorbed = lead("accepted", owner_id="ben", team="dach", recycle_count=0, cooldown_until=NOW + 3 * DAY)
    decision = merge_leads(survivor, absorbed, RULES, NOW)
    assert [(t.from_stage, t.to_stage, t.cause) for t in decision.transitions] == \
        [("nurture", "accepted", "merge")]
    assert (decision.state.owner_id, decision.state.team, decision.state.recycle_count) == ("ben", "dach", 1)
    assert decision.state.cooldown_until == NOW + 3 * DAY
    assert merge_leads(absorbed, survivor, RULES, NOW).transitions == ()


@pytest.mark.parametrize(("factory", "message"), [
    (lambda: LeadState(stage="open"), "unknown stage 'open'"),
    (lambda: Disposition("maybe"), "unknown disposition 'maybe'"),
    (lambda: Disposition("rejected"), "bad reason None for disposition 'rejected'"),
    (lambda: Disposition("accepted", "not_ready"), "bad reason 'not_ready' for disposition 'accepted'"),
    (lambda: decide(lead(), None, None, RULES, datetime(2026, 3, 9, 10)), "now must be timezone-aware"),
])
def test_bad_inputs(factory: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        factory()


@pytest.mark.parametrize(("stage", "may_move"), [
    ("new", True), ("nurture", True), ("recycled", True), ("mql", True),
    ("accepted", False), ("sql", False), ("won", False), ("lost", False), ("disqualified", False),
])
def test_score_may_move(stage: str, may_move: bool) -> None:
    assert score_may_move(stage) is may_move


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_score_moves_only_a_lead_score_may_move(stage: str) -> None:
    # A batch skips scoring where score_may_move says no: decide() must agree for any score.
    state = lead(stage, recycled_at=EARLIER, cooldown_until=EARLIER + DAY, last_engagement_at=NOW - DAY)
    results = [make_result("hot"), make_result("cold"), make_result("cold", disqualified=True,
                                                                     disqualify_reason="competitor")]
    moved = any(decide(state, result, None, RULES, NOW).changed for result in results)
    assert moved <= score_may_move(stage)
    assert moved or stage in ("accepted", "sql", "won", "lost", "disqualified")

"""The lifecycle sections of the rules file: defaults, the shipped fragment, error paths."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from lifecycle_support import RULES_YAML, make_rules
from marshmallow import Schema, ValidationError

from connectors import status_fields
from scoring.lifecycle_rules import LIFECYCLE_SECTIONS, build
from scoring.lifecycle_schemas import parse_disposition, parse_duration

SHIPPED = Path(__file__).parents[1] / "rules" / "leadloop.yaml"
#: The way the scoring loader nests the sections.
RulesFileSchema = Schema.from_dict({key: make_field() for key, make_field in LIFECYCLE_SECTIONS.items()})


def flatten(messages: Any, prefix: str = "") -> dict[str, str]:
    """Return ``{"a.b.c": "message"}`` for marshmallow's nested messages."""
    if isinstance(messages, list):
        return {prefix: "; ".join(messages)}
    flat: dict[str, str] = {}
    for key, value in messages.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def errors_for(document: dict[str, Any]) -> dict[str, str]:
    """The errors of the lifecycle sections, checked against the registered CRMs as the service does."""
    with pytest.raises(ValidationError) as caught:
        build(document, status_fields())
    return flatten(caught.value.messages)


@pytest.mark.parametrize(("text", "expected"), [
    ("90m", timedelta(minutes=90)),
    ("4h", timedelta(hours=4)),
    ("30d", timedelta(days=30)),
    ("2w", timedelta(weeks=2)),
    ("1d4h", timedelta(hours=28)),
    (" 2h 30m ", timedelta(hours=2, minutes=30)),
    ("0m", timedelta(0)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["30", "30 days", "-1d", "", "1.5h", "h", 30, None])
def test_parse_duration_rejects(text: Any) -> None:
    with pytest.raises(ValueError, match='must be a duration like "30d"'):
        parse_duration(text)


def test_working_durations_use_the_working_day() -> None:
    rules = build({"working_hours": {"opens": "08:00", "closes": "18:00"},
                   "playbooks": {"call_now": {"due": "1d2h"}, "individual_follow_up": {"due": "1w"}}})
    assert rules.working_hours.day_length == timedelta(hours=10)
    assert rules.playbooks["call_now"].due == timedelta(hours=12)
    assert rules.playbooks["individual_follow_up"].due == timedelta(hours=50)  # 5 workdays


@pytest.mark.parametrize(("text", "expected"), [
    ("accepted", ("accepted", None)),
    ("won", ("won", None)),
    ("rejected:competitor", ("rejected", "competitor")),
])
def test_parse_disposition(text: str, expected: tuple[str, str | None]) -> None:
    assert parse_disposition(text) == expected


def test_defaults_without_any_section() -> None:
    rules = build({})
    assert rules.working_hours.opens == time(9) and rules.working_hours.closes == time(17)
    assert rules.working_hours.workdays == frozenset({0, 1, 2, 3, 4})
    call_now = rules.playbooks["call_now"]
    assert (call_now.task, call_now.due, call_now.priority, call_now.type) == \
        (True, timedelta(hours=1), "high", "call")
    follow_up = rules.playbooks["individual_follow_up"]
    assert (follow_up.due, follow_up.priority, follow_up.type) == (timedelta(hours=8), "normal", "email")
    assert not rules.playbooks["nurture_only"].task
    assert rules.handoff.keep_existing_owner is False
    assert rules.handoff.create_in is None  # web-only leads stay out of the CRM unless the file says where
    assert rules.sla_for("call_now", "hot").escalation == ("remind", "reassign", "recycle")
    assert rules.recycle.max_recycles == 3
    assert rules.recycle.policy_for("not_ready").to == "nurture"


def test_shipped_lifecycle_sections_validate_and_build() -> None:
    document = yaml.safe_load(SHIPPED.read_text())
    sections = {key: document[key] for key in LIFECYCLE_SECTIONS}
    RulesFileSchema().load(sections)
    rules = build(sections, status_fields())
    assert rules.playbooks["call_now"].due == timedelta(hours=1)
    assert rules.playbooks["individual_follow_up"].due == timedelta(hours=8)
    assert [route.name for route in rules.handoff.routes] == ["dach", "enterprise", "everyone-else"]
    assert rules.handoff.create_in == "hubspot"
    assert rules.recycle.policy_for("not_ready").cooldown == timedelta(days=30)
    assert rules.recycle.policy_for("bad_data").to == "disqualified"
    assert rules.feedback["hubspot"]["lead_status"]["BAD_TIMING"] == "rejected:not_ready"
    assert rules.crm_stages["hubspot"]["mql"] == \
        {"lifecyclestage": "marketingqualifiedlead", "hs_lead_status": "NEW"}
    assert rules.sla_for("call_now", "hot").actions == ("call", "email", "meeting")
    assert rules.outcomes["hubspot"].pipelines["default"].stages["closedwon"] == "won"
    assert rules.outcomes["salesforce"].pipelines["default"].stages["Closed Lost"] == "lost"


def test_loading_is_idempotent() -> None:
    raw = yaml.safe_load(RULES_YAML)
    loaded = RulesFileSchema().load(raw)
    assert build(loaded, status_fields()) == build(raw, status_fields()) == make_rules()


def test_feedback_field_names_become_canonical() -> None:
    rules = make_rules()
    assert set(rules.feedback["hubspot"]) == {"lead_status", "lifecycle_stage"}
    assert set(rules.feedback["salesforce"]) == {"lead_status"}


@pytest.mark.parametrize(("document", "expected"), [
    ({"recycle": {"reasons": {"not_ready": {"cooldown": "30 days"}}}},
     {"recycle.reasons.not_ready.cooldown": 'must be a duration like "30d"'}),
    ({"recycle": {"reasons": {"maybe_later": {}}}},
     {"recycle.reasons.maybe_later": "Unknown field."}),
    ({"recycle": {"reasons": {"no_response": {"reset": "penalty"}}}},
     {"recycle.reasons.no_response.penalty": "is required when reset is penalty"}),
    ({"recycle": {"reasons": {"student": {"to": "trash"}}, "max_recycles": -1}},
     {"recycle.reasons.student.to": "must be one of nurture, disqualified",
      "recycle.max_recycles": "must be 0 or more"}),
    ({"playbooks": {"call_now": {"priority": "urgent", "due": "soon"}}},
     {"playbooks.call_now.priority": "must be one of high, normal, low",
      "playbooks.call_now.due": 'must be a duration like "30d"'}),
    ({"playbooks": {"call_now": {"subject": "Call {nme}"}}},
     {"playbooks.call_now.subject":
      "unknown placeholder {nme}; use band, company, email, grade, name, playbook, score, summary"}),
    ({"playbooks": {"call_later": {}}}, {"playbooks.call_later": "Unknown field."}),
    ({"handoff": {"routes": [{"name": "dach", "team": "dachh"}],
                  "teams": {"dach": {"members": [{"id": "a"}]}}}},
     {"handoff.routes.0.team": "unknown team 'dachh'; teams are: dach"}),
    ({"handoff": {"routes": [{"name": "x", "owner": "o"},
                             {"name": "y", "owner": "o", "when": [{"field": "country", "op": "contains",
                                                                   "value": "D"}]}]}},
     {"handoff.routes.1.when.0.op": "must be one of eq, ne, in, not_in, gt, gte, lt, lte, exists"}),
    ({"handoff": {"routes": [{"name": "x", "owner": "o", "when": [{"field": "country", "op": "in",
                                                                   "value": "DE"}]}]}},
     {"handoff.routes.0.when.0.value": "must be a list for in"}),
    ({"handoff": {"routes": [{"name": "x", "owner": "o", "when": [{"field": "employees", "op": "gte",
                                                                   "value": "1000"}]}]}},
     {"handoff.routes.0.when.0.value": "must be a number for gte"}),
    ({"handoff": {"routes": [{"name": "x", "owner": "o", "team": "t"}],
                  "teams": {"t": {"members": [{"id": "a"}]}}}},
     {"handoff.routes.0.team": "give either team or owner"}),
    ({"handoff": {"routes": [{"name": "x", "owner": "o", "when_all": [{"field": "country", "startswith": "D"},
                                                                      {"field": "employees", "min": "many"}]}]}},
     {"handoff.routes.0.when_all.0.startswith":
      'unknown operator "startswith" (use equals, in, not_in, contains, regex, min, max, above, below or present)',
      "handoff.routes.0.when_all.1.min": "must be a number"}),
    ({"handoff": {"routes": [{"name": "x", "owner": "o", "when_all": [{"field": "country", "kind": "page_view",
                                                                       "in": ["DE"]}]}]}},
     {"handoff.routes.0.when_all.0.kind": '"kind" cannot be used in a route (routes look at lead fields only)'}),
    ({"handoff": {"routes": [{"name": "x", "owner": "o", "when_all": [{"field": "country", "in": ["DE"]}],
                              "when": [{"field": "country", "in": ["AT"]}]}]}},
     {"handoff.routes.0.when": "is the old name of when_all; give only when_all"}),
    ({"handoff": {"routes": [{"name": "x", "owner": "o", "when": [{"field": "country", "op": "eq", "value": None},
                                                                  {"field": "country", "op": "in", "value": []}]}]}},
     {"handoff.routes.0.when.0.value": "must be one value (text, a number or true/false) for eq",
      "handoff.routes.0.when.1.value": "must list at least one value (text, numbers, true/false) for in"}),
    ({"handoff": {"teams": {"dach": {"members": [{"id": "a", "weight": 0},
                                                 {"id": "b", "timezone": "Mars/Base", "country": "XX"}]}}}},
     {"handoff.teams.dach.members.0.weight": "must be 1 or more",
      "handoff.teams.dach.members.1.timezone": 'must be a timezone like "Europe/Berlin"',
      "handoff.teams.dach.members.1.country": 'must be a country code like "DE" or "US-CA"'}),
    ({"handoff": {"teams": {"dach": {"members": []}, "ent": {"members": [{"id": "a"}, {"id": "a"}]}}}},
     {"handoff.teams.dach.members": "needs at least one member",
      "handoff.teams.ent.members": "lists a rep twice"}),
    ({"sla": {"call_now": {"escalation": ["remind", "shout"], "max_misses": 0}, "purple": {}}},
     {"sla.call_now.escalation.1": "must be one of remind, reassign, recycle",
      "sla.call_now.max_misses": "must be 1 or more", "sla.purple": "Unknown field."}),
    ({"feedback": {"hubspot": {"hs_lead_status": {"UNQUALIFIED": "rejected:rude", "OPEN": "maybe"}}}},
     {"feedback.hubspot.hs_lead_status.UNQUALIFIED":
      "rejected needs a reason, one of not_ready, no_response, wrong_person, bad_data, competitor, student"
      " (e.g. rejected:not_ready)",
      "feedback.hubspot.hs_lead_status.OPEN":
      "must be one of accepted, qualified, won, lost or rejected:<reason>"}),
    ({"feedback": {"hubspot": {"hs_lead_status": {"NEW": "accepted"}, "lead_status": {"OPEN": "accepted"}}}},
     {"feedback.hubspot.lead_status": "is the same field as hs_lead_status; list its values once"}),
    ({"feedback": {"pipedrive": {}}},
     {"feedback.pipedrive": "unknown CRM; the registered CRMs are hubspot, salesforce"}),
    ({"handoff": {"create_in": "pipedrive"}},
     {"handoff.create_in": "unknown CRM; the registered CRMs are hubspot, salesforce"}),
    ({"handoff": {"create_in": ["hubspot"]}}, {"handoff.create_in": "Not a valid string."}),
    ({"crm_stages": {"hubspot": {"mqll": {"hs_lead_status": "NEW"}},
                     "salesforce": {"mql": {"Status": ["Open"]}}}},
     {"crm_stages.hubspot.mqll":
      "unknown stage; use one of new, nurture, mql, accepted, sql, won, lost, recycled, disqualified",
      "crm_stages.salesforce.mql.Status": "must be a single value"}),
    ({"working_hours": {"opens": "9am", "workdays": ["monday"], "country": "XX"}},
     {"working_hours.opens": 'must be a time like "09:00"',
      "working_hours.workdays.0": "must be one of mon, tue, wed, thu, fri, sat, sun",
      "working_hours.country": 'must be a country code like "DE" or "US-CA"'}),
    ({"working_hours": {"opens": "09:00", "closes": "08:30"}},
     {"working_hours.closes": "must be after opens"}),
    ({"sla": {"default": {"escalation": ["remind"], "max_misses": 1, "actions": ["call", "fax"]}}},
     {"sla.default.actions.1": "must be one of call, email, meeting, task"}),
    ({"outcomes": {"pipedrive": {}, "hubspot": {"pipelines": {"default": {"stages": {"closedwon": "yay"}}},
                                                 "other_pipelines": "maybe"},
                   "salesforce": {"pipelines": {"default": {"count": "sometimes"}}, "stages": {}}}},
     {"outcomes.pipedrive": "unknown CRM; the registered CRMs are hubspot, salesforce",
      "outcomes.hubspot.pipelines.default.stages.closedwon": "must be one of open, won, lost, ignore",
      "outcomes.hubspot.other_pipelines": "must be one of count, ignore",
      "outcomes.salesforce.pipelines.default.count": "Not a valid boolean.",
      "outcomes.salesforce.stages": "Unknown field."}),
])
def test_errors_name_the_path(document: dict[str, Any], expected: dict[str, str]) -> None:
    assert errors_for(document) == expected


def test_build_reports_errors_by_section() -> None:
    with pytest.raises(ValidationError) as caught:
        build({"recycle": {"reasons": {"not_ready": {"cooldown": "soon"}}}})
    assert flatten(caught.value.messages) == \
        {"recycle.reasons.not_ready.cooldown": 'must be a duration like "30d"'}

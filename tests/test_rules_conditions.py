"""The rules file's one condition language on lead fields: every operator works in every section.

Fit rules, ``when_any`` conditions (overrides, priority, disqualify) and hand-off routes'
``when_all`` all write ``{field: ..., <operator>: ...}`` and hold for the same leads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from scoring import LeadProfile, RulesError, load_rules, score_lead
from scoring.matchers import field_test
from scoring.routing import route_lead

AS_OF = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
MINIMAL = """\
grades: {A: 40, B: 25, C: 10}
bands: {cold: {}, cool: {from: 20}, warm: {from: 40}, hot: {from: 70}}
mql: {bands: [warm, hot]}
"""
#: One condition per form of the language (each operator; the two bounds together).
CONDITION_FORMS: list[dict[str, Any]] = [
    {"field": "industry", "equals": "Logistics"},
    {"field": "employees", "equals": 1000},
    {"field": "do_not_contact", "equals": True},
    {"field": "country", "in": ["DE", "AT", "CH"]},
    {"field": "country", "in": "DE"},
    {"field": "country", "not_in": ["DE", "AT", "CH"]},
    {"field": "industry", "contains": ["logist", "freight"]},
    {"field": "job_title", "regex": r"\b(head|chief)\b"},
    {"field": "employees", "min": 50},
    {"field": "employees", "max": 5000},
    {"field": "employees", "min": 50, "max": 5000},
    {"field": "employees", "above": 999},
    {"field": "employees", "below": 50},
    {"field": "employees", "above": 49, "below": 5001},
    {"field": "employees", "min": 50, "below": 5000},
    {"field": "company", "present": True},
    {"field": "phone", "present": False},
    {"field": "email_domain", "in": ["acme.com"]},
]


@pytest.mark.parametrize(("check", "value", "holds"), [
    ({"not_in": ["DE", "AT"]}, "FR", True),
    ({"not_in": ["DE", "AT"]}, " de ", False),
    ({"not_in": ["DE", "AT"]}, None, True),
    ({"not_in": ["DE", "AT"]}, "  ", True),
    ({"not_in": [1000, True]}, "1000", False),
    ({"not_in": [1000, True]}, "TRUE", False),
    ({"above": 999}, 1000, True),
    ({"above": 999}, 999, False),
    ({"above": 999}, "999.5", True),
    ({"above": 999}, "1,000", True),
    ({"above": 999}, None, False),
    ({"above": 999}, "many", False),
    ({"below": 50}, 49.9, True),
    ({"below": 50}, "50", False),
    ({"below": 50}, "", False),
    ({"above": 10, "below": 20}, 10, False),
    ({"above": 10, "below": 20}, 15, True),
    ({"min": 10, "below": 20}, 10, True),
    ({"above": 10, "max": 20}, 20, True),
    ({"min": 10, "max": 20}, 20, True),
])
def test_new_operators(check: dict[str, Any], value: Any, holds: bool) -> None:
    assert field_test(check)(value) is holds


def fit_points(condition: dict[str, Any], fields: dict[str, Any]) -> float:
    rules = load_rules(MINIMAL + yaml.safe_dump({"fit": [{"id": "c", "points": 1, **condition}]}))
    return score_lead(LeadProfile(fields), [], rules, AS_OF).fit_points


@pytest.mark.parametrize(("condition", "fields", "points"), [
    ({"field": "country", "not_in": ["DE", "AT", "CH"]}, {"country": "France"}, 1),
    ({"field": "country", "not_in": ["DE", "AT", "CH"]}, {"country": "Germany"}, 0),
    ({"field": "country", "not_in": ["DE", "AT", "CH"]}, {}, 1),
    ({"field": "employees", "above": 999}, {"employees": "1,000"}, 1),
    ({"field": "employees", "above": 999}, {"employees": 999}, 0),
    ({"field": "employees", "below": 10}, {"employees": 9.5}, 1),
    ({"field": "employees", "below": 10}, {}, 0),
])
def test_new_operators_in_fit(condition: dict[str, Any], fields: dict[str, Any], points: float) -> None:
    assert fit_points(condition, fields) == points


def test_new_operators_in_when_any() -> None:
    rules = load_rules(MINIMAL + yaml.safe_dump({
        "disqualify": [{"id": "outside", "reason": "outside our countries",
                        "when_any": [{"field": "country", "not_in": ["DE", "AT", "CH"]}]}],
        "priority": [{"id": "big", "priority": "high", "when_any": [{"field": "employees", "above": 999}]}],
        "overrides": [{"id": "tiny", "force": "cold", "when_any": [{"field": "employees", "below": 10}]}],
    }))

    def result(fields: dict[str, Any]) -> Any:
        return score_lead(LeadProfile(fields), [], rules, AS_OF)

    assert result({"country": "Schweiz", "employees": 1000}).disqualified is False
    assert result({"country": "US"}).disqualify_reason == "outside our countries"
    assert result({"country": "DE", "employees": "1,000"}).priority == "high"
    assert result({"country": "DE", "employees": 999}).priority == "normal"
    assert result({"country": "DE", "employees": 5}).band == "cold"


@pytest.mark.parametrize("condition", CONDITION_FORMS, ids=lambda c: "-".join(k for k in c if k != "field"))
def test_every_condition_form_validates_in_every_scoring_section(condition: dict[str, Any]) -> None:
    rules = load_rules(MINIMAL + yaml.safe_dump({
        "fit": [{"id": "f", "points": 1, **condition}],
        "overrides": [{"id": "o", "at_least": "warm", "when_any": [condition]}],
        "priority": [{"id": "p", "priority": "high", "when_any": [condition]}],
        "disqualify": [{"id": "d", "reason": "r", "when_any": [condition]}],
    }))
    assert rules.data["fit"][0].keys() == {"id", "points", *condition}
    assert all(rules.data[key][0]["when_any"][0].keys() == condition.keys()
               for key in ("overrides", "priority", "disqualify"))


def rules_using_everywhere(condition: dict[str, Any]) -> Any:
    """Return rules using ``condition`` in fit, overrides, priority, disqualify and a route."""
    return load_rules(MINIMAL + yaml.safe_dump({
        "fit": [{"id": "f", "points": 1, **condition}],
        "overrides": [{"id": "o", "at_least": "warm", "when_any": [condition]}],
        "priority": [{"id": "p", "priority": "high", "when_any": [condition]}],
        "disqualify": [{"id": "d", "reason": "r", "when_any": [condition]}],
        "handoff": {"fallback_owner": "nobody", "routes": [{"name": "r", "owner": "o", "when_all": [condition]}]},
    }))


@pytest.mark.parametrize("condition", CONDITION_FORMS, ids=lambda c: "-".join(k for k in c if k != "field"))
def test_every_condition_form_works_in_every_section(condition: dict[str, Any]) -> None:
    rules = rules_using_everywhere(condition)
    assert rules.warnings == ()
    assert rules.data["handoff"]["routes"][0]["when_all"] == rules.data["disqualify"][0]["when_any"]


#: Leads whose values the condition forms disagree on: names and codes, case, numbers as text, blanks.
LEADS: list[dict[str, Any]] = [
    {}, {"country": "Germany", "industry": "logistics", "employees": "1,000", "company": "Acme"},
    {"country": " de ", "industry": "Freight", "employees": 50, "job_title": "Head of Ops", "phone": " "},
    {"country": "Narnia", "employees": "5000", "do_not_contact": "yes", "company": "  "},
    {"country": "US", "industry": "Retail", "employees": 999.5, "job_title": "chief of staff", "phone": "+49 1"},
    {"country": "Österreich", "employees": "many", "do_not_contact": False, "industry": " LOGISTICS "},
    {"country": "", "employees": 4999, "do_not_contact": "true", "email": "Jo@ACME.com"},
    {"employees": "9", "email": "not an address", "phone": "+49 30 1234567"},
]


@pytest.mark.parametrize("condition", CONDITION_FORMS, ids=lambda c: "-".join(k for k in c if k != "field"))
def test_a_condition_holds_for_the_same_leads_in_every_section(condition: dict[str, Any]) -> None:
    rules = rules_using_everywhere(condition)
    for fields in LEADS:
        result = score_lead(LeadProfile(fields), [], rules, AS_OF)
        fit = result.fit_points == 1
        assert result.disqualified is fit, fields
        assert (result.priority == "high") is fit, fields
        assert (route_lead(fields, rules.lifecycle.handoff).route == "r") is fit, fields


@pytest.mark.parametrize(("condition", "message"), [
    ({"field": "employees", "min": 50, "above": 49}, "fit[0]: use one operator per condition, found min and above"),
    ({"field": "employees", "max": 50, "below": 51}, "fit[0]: use one operator per condition, found max and below"),
    ({"field": "employees", "in": [1], "not_in": [2]},
     "fit[0]: use one operator per condition, found in and not_in"),
    ({"field": "employees", "above": 50, "below": 50}, "fit[0].below: no number fits above: 50 and below: 50"),
    ({"field": "employees", "min": 60, "below": 50.5}, "fit[0].below: no number fits min: 60 and below: 50.5"),
    ({"field": "employees", "min": 60, "max": 50}, "fit[0].max: must not be below min"),
    ({"field": "employees", "above": "1000"}, "fit[0].above: must be a number"),
    ({"field": "country", "not_in": []}, "fit[0].not_in: must be a value or a list of values (text, numbers, "
                                         "true/false)"),
    ({"field": "country", "notin": ["DE"]}, 'fit[0].notin: unknown operator "notin" (did you mean "not_in"?)'),
])
def test_operator_mistakes(condition: dict[str, Any], message: str) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(MINIMAL + yaml.safe_dump({"fit": [{"id": "f", "points": 1, **condition}]}))
    assert caught.value.errors == [message]


@pytest.mark.parametrize(("condition", "label"), [
    ({"field": "country", "not_in": ["DE", "AT"]}, "country is not DE, AT"),
    ({"field": "employees", "above": 999}, "employees above 999"),
    ({"field": "employees", "below": 10}, "employees below 10"),
])
def test_new_operators_are_worded_in_reasons(condition: dict[str, Any], label: str) -> None:
    override = {"id": "o", "at_least": "warm", "when_any": [condition]}
    rules = load_rules(MINIMAL + yaml.safe_dump({"overrides": [override]}))
    lead = LeadProfile({"country": "US", "employees": 1000 if "above" in condition else 5})
    result = score_lead(lead, [], rules, AS_OF)
    assert [reason.text for reason in result.reasons if reason.kind == "override"] == [f"raised to warm: {label}"]

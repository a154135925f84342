"""Territory/segment routes and owner assignment; the old route syntax routes like its rewrite."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import yaml
from lifecycle_support import RULES_YAML, make_rules

from scoring.fields import as_number, as_text, country_code, is_present
from scoring.lifecycle_rules import RouteCondition
from scoring.lifecycle_schemas import RouteConditionField
from scoring.routing import Handoff, assign_owner, condition_holds, route_lead

RULES = make_rules()
#: The routes of RULES in the old syntax ``{field, op, value}`` under ``when``.
OLD_SYNTAX_ROUTES = [
    {"name": "dach", "when": [{"field": "country", "op": "in", "value": ["DE", "AT", "CH"]}], "team": "dach"},
    {"name": "enterprise", "when": [{"field": "employees", "op": "gte", "value": 1000}], "team": "enterprise"},
    {"name": "partners", "when": [{"field": "lead_source", "op": "eq", "value": "Partner"}],
     "owner": "partner-manager"},
]
OLD_SYNTAX_RULES = make_rules(handoff={**yaml.safe_load(RULES_YAML)["handoff"], "routes": OLD_SYNTAX_ROUTES})


def route_condition(spec: dict[str, Any]) -> RouteCondition:
    """Return the route condition a rules file entry loads to (either syntax)."""
    return RouteCondition.of(RouteConditionField().deserialize(spec))


# --- the old route implementation, verbatim: the reference the old syntax must still match ---

def _old_compare(op: str, left: Any, right: Any) -> bool:
    left_number, right_number = as_number(left), as_number(right)
    if left_number is None or right_number is None:
        return False
    return _OLD_NUMBER_COMPARISONS[op](left_number, right_number)


def _old_texts(options: Iterable[Any]) -> set[str]:
    return {as_text(option) for option in options}


_OLD_NUMBER_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}
_OLD_CONDITION_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda value, expected: is_present(value) and as_text(value) == as_text(expected),
    "ne": lambda value, expected: not is_present(value) or as_text(value) != as_text(expected),
    "in": lambda value, options: is_present(value) and as_text(value) in _old_texts(options),
    "not_in": lambda value, options: not is_present(value) or as_text(value) not in _old_texts(options),
    "exists": lambda value, expected: is_present(value) == bool(expected),
    **{op: (lambda value, expected, op=op: is_present(value) and _old_compare(op, value, expected))
       for op in _OLD_NUMBER_COMPARISONS},
}


def old_condition_holds(field: str, op: str, expected: Any, lead_fields: dict[str, Any]) -> bool:
    value = lead_fields.get(field)
    if field == "country" and isinstance(value, str) and value.strip():
        value = country_code(value) or value
    return _OLD_CONDITION_TESTS[op](value, expected)


# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("lead_fields", "route", "team", "owner"), [
    ({"country": "DE", "employees": 50}, "dach", "dach", None),
    ({"country": "Germany"}, "dach", "dach", None),
    ({"country": "ch"}, "dach", "dach", None),
    ({"country": "Austria", "employees": 5000}, "dach", "dach", None),  # first match wins
    ({"country": "US", "employees": 5000}, "enterprise", "enterprise", None),
    ({"country": "US", "employees": "1,200"}, "enterprise", "enterprise", None),
    ({"country": "FR", "employees": 999, "lead_source": "partner"}, "partners", None, "partner-manager"),
    ({"country": "FR", "employees": 999}, "fallback", None, "queue-owner"),
    ({}, "fallback", None, "queue-owner"),
])
def test_route_lead(lead_fields: dict[str, Any], route: str, team: str | None, owner: str | None) -> None:
    assert route_lead(lead_fields, RULES.handoff) == Handoff(route=route, team=team, owner_id=owner)
    assert route_lead(lead_fields, OLD_SYNTAX_RULES.handoff) == Handoff(route=route, team=team, owner_id=owner)


@pytest.mark.parametrize("rules", [RULES, OLD_SYNTAX_RULES], ids=["one-language", "old-syntax"])
@pytest.mark.parametrize(("lead_fields", "route"), [
    ({"country": "DE", "employees": 50}, "dach"),
    ({"country": "Germany"}, "dach"),
    ({"country": "ch"}, "dach"),
    ({"country": "US", "employees": 5000}, "enterprise"),
    ({"country": "US", "employees": "1,200"}, "enterprise"),
    ({"country": "US", "employees": "999"}, "fallback"),
    ({"country": "FR", "lead_source": " PARTNER "}, "partners"),
    ({"country": "FR", "lead_source": ""}, "fallback"),
])
def test_old_syntax_routes_like_its_rewrite(rules: Any, lead_fields: dict[str, Any], route: str) -> None:
    assert route_lead(lead_fields, rules.handoff).route == route


def test_old_syntax_loads_to_the_same_routes() -> None:
    assert OLD_SYNTAX_RULES.handoff == RULES.handoff
    assert [[(condition.field, condition.check) for condition in route.when_all]
            for route in OLD_SYNTAX_RULES.handoff.routes] == [
        [("country", (("in", ("DE", "AT", "CH")),))],
        [("employees", (("min", 1000),))],
        [("lead_source", (("equals", "Partner"),))],
    ]


@pytest.mark.parametrize(("old", "new"), [
    ({"op": "eq", "value": "Software"}, {"equals": "Software"}),
    ({"op": "eq", "value": 1000}, {"in": [1000]}),
    ({"op": "eq", "value": True}, {"in": [True]}),
    ({"op": "eq", "value": " "}, {"in": [" "]}),
    ({"op": "ne", "value": "Software"}, {"not_in": ["Software"]}),
    ({"op": "in", "value": ["DE", "AT"]}, {"in": ["DE", "AT"]}),
    ({"op": "not_in", "value": ["DE", "AT"]}, {"not_in": ["DE", "AT"]}),
    ({"op": "gt", "value": 999}, {"above": 999}),
    ({"op": "gte", "value": 1000}, {"min": 1000}),
    ({"op": "lt", "value": 50}, {"below": 50}),
    ({"op": "lte", "value": 49.5}, {"max": 49.5}),
    ({"op": "exists", "value": True}, {"present": True}),
    ({"op": "exists", "value": False}, {"present": False}),
])
def test_each_old_op_has_a_rewrite(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert RouteConditionField().deserialize({"field": "industry", **old}) == {"field": "industry", **new}
    assert route_condition({"field": "industry", **old}) == route_condition({"field": "industry", **new})


#: (op, rule values) of the old syntax, every op with text, numbers, true/false, countries.
OLD_CONDITIONS: list[tuple[str, Any]] = [
    *((op, value) for op in ("eq", "ne") for value in ("Software", "", " ", "1000", 1000, 1000.5, 0, True, False,
                                                        "DE", "Germany", "true")),
    *((op, value) for op in ("in", "not_in") for value in (["DE", "AT", "CH"], ["Software", 1000, True],
                                                            ["de"], ["Germany"], [""], [0, False])),
    *((op, value) for op in ("gt", "gte", "lt", "lte") for value in (1000, 999.5, 0, -1)),
    ("exists", True), ("exists", False),
]
#: Lead values: missing, blank, case, spaces, numbers as text, country names and codes, booleans.
LEAD_VALUES: list[Any] = [
    None, "", "   ", "Software", "software", " SOFTWARE ", "Hardware", "DE", "de", " de ", "Germany", "germany ",
    "Deutschland", "Austria", "AT", "FR", "Narnia", " Narnia ", 1000, 1000.0, 999, 1001, 1000.5, 999.5, -1, 0,
    "1000", "1,000", "1,200", "999", " 1000 ", "1e3", "1000.0", "many", True, False, "true", "TRUE", "yes",
    "false", "0", 1, [], ["x"],
]


@pytest.mark.parametrize(("op", "expected"), OLD_CONDITIONS, ids=lambda v: repr(v))
@pytest.mark.parametrize("field", ["industry", "country"])
def test_old_syntax_holds_exactly_where_it_did(field: str, op: str, expected: Any) -> None:
    """The old condition, loaded (translated into the one language), agrees with the old code on every value."""
    condition = route_condition({"field": field, "op": op, "value": expected})
    for lead_fields in itertools.chain([{}], ({field: value} for value in LEAD_VALUES)):
        assert condition_holds(condition, lead_fields) is old_condition_holds(field, op, expected, lead_fields), \
            (lead_fields, condition.check)


@pytest.mark.parametrize(("op", "expected_value", "lead_value", "holds"), [
    ("eq", "Software", "software", True),
    ("eq", "Software", "Hardware", False),
    ("eq", "Software", None, False),
    ("ne", "Software", "Hardware", True),
    ("ne", "Software", None, True),
    ("in", ["DE", "AT"], "at", True),
    ("in", ["DE", "AT"], "FR", False),
    ("in", ["DE", "AT"], "", False),
    ("not_in", ["DE", "AT"], "FR", True),
    ("not_in", ["DE", "AT"], "DE", False),
    ("gt", 1000, 1001, True),
    ("gt", 1000, 1000, False),
    ("gte", 1000, 1000, True),
    ("gte", 1000, "2,000", True),
    ("gte", 1000, "many", False),
    ("gte", 1000, None, False),
    ("lt", 50, 49.5, True),
    ("lte", 50, 51, False),
    ("exists", True, "x", True),
    ("exists", True, "  ", False),
    ("exists", False, None, True),
])
def test_condition_ops(op: str, expected_value: Any, lead_value: Any, holds: bool) -> None:
    condition = route_condition({"field": "industry", "op": op, "value": expected_value})
    assert condition_holds(condition, {"industry": lead_value}) is holds


@pytest.mark.parametrize(("condition", "lead_fields", "holds"), [
    ({"field": "country", "in": ["DE", "AT", "CH"]}, {"country": "Österreich"}, True),
    ({"field": "country", "not_in": ["DE"]}, {"country": "Germany"}, False),
    ({"field": "country", "not_in": ["DE"]}, {}, True),
    ({"field": "country", "regex": "^(DE|AT)$"}, {"country": "germany"}, True),
    ({"field": "country", "equals": "Narnia"}, {"country": " Narnia "}, True),
    ({"field": "industry", "contains": ["logist", "freight"]}, {"industry": "Freight & Logistics"}, True),
    ({"field": "email_domain", "in": ["acme.com"]}, {"email": "Jo.Doe@ACME.com"}, True),
    ({"field": "email_domain", "present": False}, {"email": "not an address"}, True),
    ({"field": "employees", "above": 999}, {"employees": "1,000"}, True),
    ({"field": "employees", "above": 999, "below": 5000}, {"employees": 5000}, False),
    ({"field": "employees", "min": 50, "max": 5000}, {"employees": "5000"}, True),
    ({"field": "do_not_contact", "equals": True}, {"do_not_contact": "yes"}, True),
])
def test_route_conditions_use_the_fit_language(condition: dict[str, Any], lead_fields: dict[str, Any],
                                               holds: bool) -> None:
    assert condition_holds(route_condition(condition), lead_fields) is holds


def test_assign_owner_rotates_the_team() -> None:
    owner, state = assign_owner(Handoff(route="dach", team="dach"), RULES.handoff, {})
    assert (owner, state) == ("anna", {"anna": -2.0, "ben": 1.0, "carla": 1.0})
    owner, state = assign_owner(Handoff(route="dach", team="dach"), RULES.handoff, state)
    assert owner == "ben"


def test_assign_owner_skips_unavailable_and_excluded_reps() -> None:
    # evan is marked unavailable in the rules; erin is excluded (missed the SLA) -> fallback.
    owner, state = assign_owner(Handoff(route="enterprise", team="enterprise"), RULES.handoff, {})
    assert owner == "erin"
    owner, state = assign_owner(Handoff(route="sla_reassign", team="enterprise", exclude=("erin",)),
                                RULES.handoff, state)
    assert (owner, state) == ("queue-owner", {"erin": 0.0, "evan": 0.0})


def test_assign_owner_direct_and_fallback() -> None:
    assert assign_owner(Handoff(route="keep_existing_owner", owner_id="olga"), RULES.handoff, {"x": 1.0}) \
        == ("olga", {"x": 1.0})
    assert assign_owner(Handoff(route="partners", owner_id="pm", exclude=("pm",)), RULES.handoff, {}) \
        == ("queue-owner", {})
    no_fallback = make_rules(handoff={"routes": []}).handoff
    assert assign_owner(Handoff(route="fallback"), no_fallback, {}) == (None, {})

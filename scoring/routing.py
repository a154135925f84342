"""Who gets a lead at hand-off: territory/segment routes, then weighted round-robin in a team.

Pure. The rotation state of a team (``{rep_id: current_weight}``) lives in the database
(``rotation_state``); the caller loads it under a row lock, calls ``pick_rep`` or
``assign_owner`` and saves the state they return in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scoring.fields import as_number, as_text, country_code, is_present
from scoring.lifecycle_rules import Condition, HandoffRules, Team


class NoAvailableRep(ValueError):
    """Every member of the team is unavailable (or excluded)."""


@dataclass(frozen=True)
class Handoff:
    """Whom a lead goes to. ``decide`` returns it; ``assign_owner`` turns it into an owner id."""

    #: The matched route's name, or ``keep_existing_owner``, ``fallback`` or ``sla_reassign``.
    route: str
    #: Pick a rep of this team with ``pick_rep`` (None: use ``owner_id``).
    team: str | None = None
    #: Assign this owner directly (kept owner, a route's owner, or the fallback owner).
    owner_id: str | None = None
    #: Reps to skip when picking in ``team`` (the rep who missed the SLA on a reassign).
    exclude: tuple[str, ...] = ()

    @property
    def keeps_owner(self) -> bool:
        """True when the lead stays with the owner it already has."""
        return self.route == "keep_existing_owner"


def _compare(op: str, left: Any, right: Any) -> bool:
    left_number, right_number = as_number(left), as_number(right)
    if left_number is None or right_number is None:
        return False
    return _NUMBER_COMPARISONS[op](left_number, right_number)


def _texts(options: Iterable[Any]) -> set[str]:
    return {as_text(option) for option in options}


_NUMBER_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}

#: op -> test(lead value, rule value). Text compares case-insensitively; a missing field
#: matches only ``ne``, ``not_in`` and ``exists: false``.
_CONDITION_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda value, expected: is_present(value) and as_text(value) == as_text(expected),
    "ne": lambda value, expected: not is_present(value) or as_text(value) != as_text(expected),
    "in": lambda value, options: is_present(value) and as_text(value) in _texts(options),
    "not_in": lambda value, options: not is_present(value) or as_text(value) not in _texts(options),
    "exists": lambda value, expected: is_present(value) == bool(expected),
    **{op: (lambda value, expected, op=op: is_present(value) and _compare(op, value, expected))
       for op in _NUMBER_COMPARISONS},
}


def condition_holds(condition: Condition, lead_fields: Mapping[str, Any]) -> bool:
    """Return True if the lead's canonical fields satisfy one route condition."""
    value = lead_fields.get(condition.field)
    if condition.field == "country" and isinstance(value, str) and value.strip():
        value = country_code(value) or value  # "Germany" and "de" both route as DE
    return _CONDITION_TESTS[condition.op](value, condition.value)


def route_lead(lead_fields: Mapping[str, Any], handoff: HandoffRules) -> Handoff:
    """Return the first route whose conditions all hold, else the fallback owner."""
    for route in handoff.routes:
        if all(condition_holds(condition, lead_fields) for condition in route.when):
            return Handoff(route=route.name, team=route.team, owner_id=route.owner)
    return Handoff(route="fallback", owner_id=handoff.fallback_owner)


def pick_rep(team: Team, state: Mapping[str, float]) -> tuple[str, dict[str, float]]:
    """Return ``(rep_id, new_state)`` by smooth weighted round-robin over the available members.

    nginx's algorithm: every available member's current value grows by its weight, the largest
    wins (ties go to the earlier member), and the winner gives back the total weight of the
    available members. Over any run of ``total weight`` picks each member is picked exactly
    ``weight`` times, spread out rather than in bursts. Unavailable members keep their value.
    Members missing from ``state`` start at 0; entries of former members are dropped.
    Raises ``NoAvailableRep`` if no member is available.
    """
    available = [member for member in team.members if member.available]
    if not available:
        raise NoAvailableRep(f"no available rep in team {team.name!r}")
    current = {member.rep_id: float(state.get(member.rep_id, 0.0)) for member in team.members}
    for member in available:
        current[member.rep_id] += member.weight
    chosen = max(available, key=lambda member: current[member.rep_id])  # max keeps the first of ties
    current[chosen.rep_id] -= sum(member.weight for member in available)
    return chosen.rep_id, current


def assign_owner(handoff: Handoff, rules: HandoffRules,
                 state: Mapping[str, float]) -> tuple[str | None, dict[str, float]]:
    """Return ``(owner_id, new_rotation_state)`` for a hand-off.

    A direct owner wins (unless excluded); a team is rotated with ``pick_rep``; with nobody
    available the fallback owner is used. ``owner_id`` None means no owner could be found
    (no fallback configured): leave the CRM owner as it is. ``state`` is the rotation state of
    ``handoff.team`` and comes back unchanged when no pick was made.
    """
    if handoff.owner_id is not None and handoff.owner_id not in handoff.exclude:
        return handoff.owner_id, dict(state)
    team = rules.teams.get(handoff.team) if handoff.team else None
    if team is not None:
        try:
            return pick_rep(team.without(frozenset(handoff.exclude)), state)
        except NoAvailableRep:
            pass
    return rules.fallback_owner, dict(state)

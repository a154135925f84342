"""Who gets a lead at hand-off: territory/segment routes, then weighted round-robin in a team.

A route's ``when_all`` conditions are written in the rules file's one condition language (as in
fit: ``{field: country, in: [DE, AT, CH]}``) and tested with the same ``field_test``.

Pure. The rotation state of a team (``{rep_id: current_weight}``) lives in the database
(``rotation_state``); the caller loads it under a row lock, calls ``pick_rep`` or
``assign_owner`` and saves the state they return in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scoring.fields import condition_values
from scoring.lifecycle_rules import HandoffRules, RouteCondition, Team


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


def route_values(lead_fields: Mapping[str, Any]) -> dict[str, Any]:
    """Return the values route conditions test: the lead's fields as fit rules see them
    (``scoring.fields.condition_values``)."""
    return condition_values(lead_fields)


def condition_holds(condition: RouteCondition, lead_fields: Mapping[str, Any]) -> bool:
    """Return True if the lead's canonical fields satisfy one route condition."""
    return condition.test(route_values(lead_fields).get(condition.field))


def route_lead(lead_fields: Mapping[str, Any], handoff: HandoffRules) -> Handoff:
    """Return the first route whose conditions all hold, else the fallback owner."""
    values = route_values(lead_fields)
    for route in handoff.routes:
        if all(condition.test(values.get(condition.field)) for condition in route.when_all):
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

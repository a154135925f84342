"""Rules-file sections for the lead lifecycle (working hours, playbooks, hand-off, routing, SLA,
feedback, recycle, CRM stage mapping, deal outcomes). Owned by the lifecycle work; the rules loader nests these.

Contract with ``scoring.rules``: ``LIFECYCLE_SECTIONS`` maps a top-level key of the rules file
to a factory of the marshmallow field that validates it (all optional); ``build(sections,
vocabulary)`` turns the loaded sections into the object exposed as ``Rules.lifecycle``, checking
the per-CRM sections (``feedback``, ``crm_stages``, ``outcomes``) and ``handoff.create_in`` against
the caller's CRM vocabulary;
``syntax_warnings(sections)`` lists old spellings that still load (the old route syntax). The schemas and the vocabulary
(stages, playbooks, reason codes) live in ``scoring.lifecycle_schemas``; ``build`` accepts the
raw or the loaded sections (it validates them again, which is idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from datetime import time, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields

from scoring.business_time import working_day_length
from scoring.lifecycle_schemas import (
    DEFAULT_SLA_ACTIONS,
    PLAYBOOKS,
    WEEKDAYS,
    CrmVocabulary,
    HandoffSchema,
    PlaybookSchema,
    PlaybooksSchema,
    RecycleSchema,
    SlaSchema,
    WorkingHoursSchema,
    canonical_field,
    crm_section_errors,
    crm_stages_field,
    duplicate_feedback_fields,
    feedback_field,
    old_route_syntax_warnings,
    outcomes_field,
    parse_duration,
)
from scoring.matchers import field_test


def _nested(schema: type[Schema]) -> Callable[[], fields.Field]:
    return lambda: fields.Nested(schema)


#: Top-level key -> a factory of the field that validates the section.
LIFECYCLE_SECTIONS: dict[str, Callable[[], fields.Field]] = {
    "working_hours": _nested(WorkingHoursSchema),
    "playbooks": _nested(PlaybooksSchema),
    "handoff": _nested(HandoffSchema),
    "sla": _nested(SlaSchema),
    "feedback": feedback_field,
    "recycle": _nested(RecycleSchema),
    "crm_stages": crm_stages_field,
    "outcomes": outcomes_field,
}
#: The sections keyed by CRM name.
CRM_SECTIONS = ("feedback", "crm_stages", "outcomes")


# --- the typed object ------------------------------------------------------------------------

#: Used for a playbook the file leaves out (matches the shipped rules/leadloop.yaml).
DEFAULT_PLAYBOOKS: dict[str, dict[str, Any]] = {
    "nurture_only": {"task": False},
    "automated_follow_up": {"task": False},
    "individual_follow_up": {"due": "1d", "priority": "normal", "type": "email",
                             "subject": "Follow up with {name} ({band} lead, score {score})"},
    "call_now": {"due": "1h", "priority": "high", "type": "call",
                 "subject": "Call {name} now: {band} lead, score {score}"},
}
#: Used when the file's ``sla`` section has no entry for a playbook, its band or ``default``.
DEFAULT_SLA: dict[str, Any] = {"escalation": ["remind", "reassign", "recycle"], "max_misses": 3}


@dataclass(frozen=True)
class WorkingHours:
    opens: time
    closes: time
    #: ``date.weekday()`` numbers, Monday = 0.
    workdays: frozenset[int]
    #: Used when the rep's own timezone / country is unknown.
    timezone: str
    country: str | None

    @property
    def day_length(self) -> timedelta:
        """Length of one working day, the unit of ``"1d"`` in a playbook's ``due``."""
        return working_day_length((self.opens, self.closes))


@dataclass(frozen=True)
class Playbook:
    name: str
    task: bool
    #: Working time from hand-off to the task's due time.
    due: timedelta
    priority: str
    type: str
    subject: str


@dataclass(frozen=True)
class RouteCondition:
    """One condition of a route, in the rules file's one condition language (as in fit)."""

    field: str
    #: Operator and value pairs as in the file, lists as tuples: ``(("in", ("DE", "AT")),)``.
    check: tuple[tuple[str, Any], ...]
    #: The test of the lead's value, ``scoring.matchers.field_test`` of the condition.
    test: Callable[[Any], bool] = dataclass_field(compare=False, repr=False)

    @classmethod
    def of(cls, condition: Mapping[str, Any]) -> RouteCondition:
        """Return the route condition for a loaded condition such as ``{"field": "country", "in": ["DE"]}``."""
        check = tuple((key, _frozen(value)) for key, value in condition.items() if key != "field")
        return cls(condition["field"], check, field_test(condition))


@dataclass(frozen=True)
class Route:
    name: str
    #: All must hold; empty matches every lead.
    when_all: tuple[RouteCondition, ...]
    team: str | None
    owner: str | None


@dataclass(frozen=True)
class TeamMember:
    rep_id: str
    weight: int = 1
    available: bool = True
    timezone: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class Team:
    name: str
    members: tuple[TeamMember, ...]

    def without(self, rep_ids: tuple[str, ...] | frozenset[str]) -> Team:
        """Return this team with ``rep_ids`` marked unavailable (absent, or skipped on reassign)."""
        return replace(self, members=tuple(replace(member, available=False) if member.rep_id in rep_ids
                                           else member for member in self.members))


@dataclass(frozen=True)
class HandoffRules:
    keep_existing_owner: bool
    fallback_owner: str | None
    routes: tuple[Route, ...]
    teams: dict[str, Team]
    #: The CRM where a lead with no CRM record is created at its hand-off; None: it stays web-only.
    create_in: str | None = None

    def member(self, rep_id: str | None) -> TeamMember | None:
        """Return the team member entry of ``rep_id`` (for its timezone/country), if listed."""
        return next((member for team in self.teams.values() for member in team.members
                     if member.rep_id == rep_id), None)


@dataclass(frozen=True)
class SlaPolicy:
    escalation: tuple[str, ...]
    max_misses: int
    #: The rep activity types (``call``, ``email``, ``meeting``, ``task``) that meet the SLA.
    actions: tuple[str, ...] = DEFAULT_SLA_ACTIONS


@dataclass(frozen=True)
class RecyclePolicy:
    reason: str
    #: ``nurture`` or ``disqualified``.
    to: str
    cooldown: timedelta
    #: ``none``, ``engagement`` (ignore older signals) or ``penalty`` (subtract ``penalty`` points).
    reset: str
    penalty: int
    track: str | None


@dataclass(frozen=True)
class RecycleRules:
    max_recycles: int
    default_track: str | None
    reasons: dict[str, RecyclePolicy]

    def policy_for(self, reason: str) -> RecyclePolicy:
        """Return the policy of a reason code; a reason the file leaves out goes to nurture plainly."""
        return self.reasons.get(reason) or RecyclePolicy(reason, "nurture", timedelta(0), "none", 0,
                                                         self.default_track)


@dataclass(frozen=True)
class PipelineOutcomes:
    """What the deals of one pipeline mean (the ``outcomes`` section)."""

    #: False: the pipeline's deals are no outcome of a hand-off.
    count: bool = True
    #: stage id -> ``open``/``won``/``lost`` (used when the CRM sent no stage flags) or ``ignore``.
    stages: Mapping[str, str] = dataclass_field(default_factory=dict)


@dataclass(frozen=True)
class CrmOutcomes:
    """One CRM's part of the ``outcomes`` section."""

    pipelines: Mapping[str, PipelineOutcomes] = dataclass_field(default_factory=dict)
    #: ``count`` or ``ignore``: the deals of pipelines not listed.
    other_pipelines: str = "count"


@dataclass(frozen=True)
class LifecycleRules:
    working_hours: WorkingHours
    playbooks: dict[str, Playbook]
    handoff: HandoffRules
    #: Keyed by playbook name, band name or ``default``.
    sla: dict[str, SlaPolicy]
    #: crm -> canonical field name (``lead_status``, ``lifecycle_stage``, or the CRM name of
    #: any other field) -> CRM value -> disposition text.
    feedback: dict[str, dict[str, dict[str, str]]]
    recycle: RecycleRules
    #: crm -> stage -> CRM field name -> value.
    crm_stages: dict[str, dict[str, dict[str, str]]] = dataclass_field(default_factory=dict)
    #: The CRM vocabulary the file was checked against (crm -> CRM field name -> canonical name).
    crm_vocabulary: Mapping[str, Mapping[str, str]] = dataclass_field(default_factory=dict)
    #: crm -> what its deals' pipelines and stages mean (``scoring.lifecycle_outcomes``).
    outcomes: Mapping[str, CrmOutcomes] = dataclass_field(default_factory=dict)

    def sla_for(self, playbook: str | None, band: str | None) -> SlaPolicy:
        """Return the SLA policy of a playbook, else of a band, else ``default``, else built-in."""
        for key in (playbook, band, "default"):
            if key in self.sla:
                return self.sla[key]
        return SlaPolicy(tuple(DEFAULT_SLA["escalation"]), DEFAULT_SLA["max_misses"])


def build(sections: Mapping[str, Any], vocabulary: CrmVocabulary | None = None) -> LifecycleRules:
    """Return the ``LifecycleRules`` for the lifecycle sections of a rules file (raw or loaded).

    ``vocabulary`` names the CRMs the per-CRM sections may list and their feedback fields'
    canonical names; None accepts any CRM name and keeps field names as written. Missing
    sections and entries get the defaults above. Raises marshmallow ``ValidationError`` with
    messages keyed by section, like the loader reports them.
    """
    loaded: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    for key, make_field in LIFECYCLE_SECTIONS.items():
        try:
            loaded[key] = make_field().deserialize(sections.get(key) or {})
        except ValidationError as exc:
            errors[key] = exc.messages
    for key in CRM_SECTIONS:
        unknown = crm_section_errors(sections.get(key) or {}, vocabulary)
        if unknown and isinstance(errors.get(key, {}), dict):
            errors[key] = {**errors.get(key, {}), **unknown}
    create_in = (sections.get("handoff") or {}).get("create_in")
    if vocabulary is not None and isinstance(create_in, str) and create_in not in vocabulary \
            and isinstance(errors.get("handoff", {}), dict):
        known = ", ".join(sorted(vocabulary)) or "none"
        errors["handoff"] = {**errors.get("handoff", {}),
                             "create_in": [f"unknown CRM; the registered CRMs are {known}"]}
    if "feedback" not in errors:
        duplicates = duplicate_feedback_fields(loaded["feedback"], vocabulary or {})
        if duplicates:
            errors["feedback"] = duplicates
    if errors:
        raise ValidationError(errors)
    hours = _working_hours(loaded["working_hours"])
    return LifecycleRules(
        working_hours=hours,
        playbooks=_playbooks(loaded["playbooks"], hours),
        handoff=_handoff(loaded["handoff"]),
        sla={key: SlaPolicy(tuple(value["escalation"]), value["max_misses"], tuple(value["actions"]))
             for key, value in loaded["sla"].items()},
        feedback=_feedback(loaded["feedback"], vocabulary or {}),
        recycle=_recycle_rules(loaded["recycle"]),
        crm_stages=dict(loaded["crm_stages"]),
        crm_vocabulary={crm: dict(names) for crm, names in (vocabulary or {}).items()},
        outcomes=_outcomes(loaded["outcomes"]),
    )


def syntax_warnings(sections: Mapping[str, Any]) -> list[str]:
    """Return ``path: message`` lines for old spellings in the raw lifecycle sections (they still load)."""
    return old_route_syntax_warnings(sections.get("handoff"))


def _working_hours(data: dict[str, Any]) -> WorkingHours:
    return WorkingHours(opens=time.fromisoformat(data["opens"]), closes=time.fromisoformat(data["closes"]),
                        workdays=frozenset(WEEKDAYS.index(day) for day in data["workdays"]),
                        timezone=data["timezone"], country=data["country"])


def _playbooks(data: dict[str, Any], hours: WorkingHours) -> dict[str, Playbook]:
    playbooks = {}
    for name in PLAYBOOKS:
        settings = data.get(name) or PlaybookSchema().load(DEFAULT_PLAYBOOKS[name])
        week = hours.day_length * len(hours.workdays)
        due = parse_duration(settings["due"], day=hours.day_length, week=week)
        playbooks[name] = Playbook(name, settings["task"], due, settings["priority"], settings["type"],
                                   settings["subject"])
    return playbooks


def _handoff(data: dict[str, Any]) -> HandoffRules:
    teams = {name: Team(name, tuple(TeamMember(member["id"], member["weight"], member["available"],
                                               member["timezone"], member["country"])
                                    for member in team["members"]))
             for name, team in data["teams"].items()}
    routes = tuple(Route(route["name"], tuple(RouteCondition.of(condition) for condition in route["when_all"]),
                         route["team"], route["owner"]) for route in data["routes"])
    return HandoffRules(data["keep_existing_owner"], data["fallback_owner"], routes, teams, data["create_in"])


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _feedback(data: dict[str, Any], vocabulary: CrmVocabulary) -> dict[str, dict[str, dict[str, str]]]:
    return {crm: {canonical_field(vocabulary, crm, name): dict(table) for name, table in tables.items()}
            for crm, tables in data.items()}


def _recycle_rules(data: dict[str, Any]) -> RecycleRules:
    reasons = {
        reason: RecyclePolicy(reason, policy["to"],
                              parse_duration(policy["cooldown"]) if policy["cooldown"] else timedelta(0),
                              policy["reset"], policy["penalty"] or 0,
                              policy["track"] or data["default_track"])
        for reason, policy in data["reasons"].items()
    }
    return RecycleRules(data["max_recycles"], data["default_track"], reasons)


def _outcomes(data: dict[str, Any]) -> dict[str, CrmOutcomes]:
    return {crm: CrmOutcomes({pipeline: PipelineOutcomes(settings["count"], dict(settings["stages"]))
                              for pipeline, settings in section["pipelines"].items()},
                             section["other_pipelines"])
            for crm, section in data.items()}

"""Schemas of the lifecycle sections of the rules file, and the lifecycle vocabulary.

``scoring.lifecycle_rules`` lists them in ``LIFECYCLE_SECTIONS`` and builds the typed rules
object from what they load. Loaded sections keep the shape of the file (durations and clock
times stay text), so loading twice gives the same result. Errors are keyed by the names in the
file (no marshmallow ``key``/``value`` levels), so the loader can print paths such as
``recycle.reasons.not_ready.cooldown: must be a duration like "30d"``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import yaml
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from scoring.business_time import holiday_dates, zone_for
from scoring.rules_fields import Text
from scoring.rules_schema import NOT_FIELD_KEYS, FieldCheckSchema

# --- vocabulary ------------------------------------------------------------------------------

STAGES = ("new", "nurture", "mql", "accepted", "sql", "won", "lost", "recycled", "disqualified")
PLAYBOOKS = ("nurture_only", "automated_follow_up", "individual_follow_up", "call_now")
BANDS = ("cold", "cool", "warm", "hot")
REJECT_REASONS = ("not_ready", "no_response", "wrong_person", "bad_data", "competitor", "student")
DISPOSITION_KINDS = ("accepted", "qualified", "won", "lost", "rejected")
ESCALATION_STEPS = ("remind", "reassign", "recycle")
#: What a rep's logged activity is, as the connectors name it (a Salesforce to-do Task is ``task``).
REP_ACTIVITY_TYPES = ("call", "email", "meeting", "task")
#: The activity that meets a hand-off's SLA when an ``sla`` policy does not say (``actions``).
DEFAULT_SLA_ACTIONS = ("call", "email", "meeting")
#: What a deal stage means in the ``outcomes`` section (``ignore``: the deal is no outcome).
STAGE_OUTCOMES = ("open", "won", "lost", "ignore")
#: What happens to deals in pipelines the ``outcomes`` section does not list.
OTHER_PIPELINES = ("count", "ignore")
#: The operators of the old route syntax ``{field, op, value}``, and the operator of the rules file's
#: one condition language each is rewritten to (``eq`` with a number or true/false: ``in``, see
#: ``rewrite_old_route_condition``). Routes now use the one language, like fit and ``when_any``.
OLD_ROUTE_OPS: dict[str, str] = {"eq": "equals", "ne": "not_in", "in": "in", "not_in": "not_in", "gt": "above",
                                 "gte": "min", "lt": "below", "lte": "max", "exists": "present"}
RESET_KINDS = ("none", "engagement", "penalty")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Placeholders a task subject may use (``plan_task`` fills them; unknown ones are an error).
SUBJECT_PLACEHOLDERS = frozenset({"name", "company", "email", "score", "band", "grade", "playbook",
                                  "summary"})
#: CRM name -> {the CRM's field name -> canonical lead field name} for the fields that carry
#: sales feedback. Scoring knows no CRM: the caller passes its connectors' (integration passes
#: ``connectors.status_fields()``); the ``feedback`` section accepts either name of a field.
CrmVocabulary = Mapping[str, Mapping[str, str]]

_DURATION_TEXT = re.compile(r"^\s*(?:\d+\s*[wdhm]\s*)+$")
_DURATION_PART = re.compile(r"(\d+)\s*([wdhm])")
_CLOCK_TEXT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DURATION_ERROR = 'must be a duration like "30d"'


def parse_duration(text: str, *, day: timedelta = timedelta(days=1),
                   week: timedelta | None = None) -> timedelta:
    """Return the ``timedelta`` for ``"90m"``, ``"4h"``, ``"30d"``, ``"2w"`` or ``"1d4h"``.

    ``day``/``week`` give the length of a ``d``/``w`` unit (calendar by default; pass the
    working-day length for working time). Raises ``ValueError`` for anything else.
    """
    if not isinstance(text, str) or not _DURATION_TEXT.match(text):
        raise ValueError(DURATION_ERROR)
    units = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": day, "w": week or day * 7}
    return sum((int(amount) * units[unit] for amount, unit in _DURATION_PART.findall(text)), timedelta(0))


def canonical_field(vocabulary: CrmVocabulary, crm: str, name: str) -> str:
    """Return the canonical lead field name for a CRM field name (unknown names unchanged)."""
    return vocabulary.get(crm, {}).get(name, name)


def crm_section_errors(section: Mapping[str, Any], vocabulary: CrmVocabulary | None) -> dict[str, list[str]]:
    """Errors keyed by CRM name for the CRMs a per-CRM section names that are not registered."""
    if vocabulary is None or not isinstance(section, Mapping):
        return {}
    known = ", ".join(sorted(vocabulary)) or "none"
    return {str(crm): [f"unknown CRM; the registered CRMs are {known}"] for crm in section if crm not in vocabulary}


def duplicate_feedback_fields(feedback: Mapping[str, Mapping[str, Any]], vocabulary: CrmVocabulary
                              ) -> dict[str, dict[str, list[str]]]:
    """Errors for a feedback field listed under both its CRM name and its canonical name."""
    errors: dict[str, dict[str, list[str]]] = {}
    for crm, tables in feedback.items():
        first_name: dict[str, str] = {}
        for name in tables:
            canonical = canonical_field(vocabulary, crm, name)
            if canonical in first_name:
                errors.setdefault(crm, {})[name] = [f"is the same field as {first_name[canonical]}; "
                                                    "list its values once"]
            first_name.setdefault(canonical, name)
    return errors


def parse_disposition(text: str) -> tuple[str, str | None]:
    """Return ``(kind, reason)`` for ``"accepted"`` or ``"rejected:not_ready"``; raises ValueError."""
    kind, _, reason = str(text).partition(":")
    if kind not in DISPOSITION_KINDS:
        raise ValueError(f"must be one of {', '.join(DISPOSITION_KINDS[:-1])} or rejected:<reason>")
    if kind == "rejected":
        if reason not in REJECT_REASONS:
            raise ValueError(f"rejected needs a reason, one of {', '.join(REJECT_REASONS)}"
                             " (e.g. rejected:not_ready)")
        return kind, reason
    if reason:
        raise ValueError(f"only rejected takes a reason, not {kind}")
    return kind, None


# --- fields ----------------------------------------------------------------------------------

class DurationText(fields.String):
    """A duration such as ``"30d"``; stays text when loaded."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        try:
            parse_duration(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        return value.strip()


class ClockText(fields.String):
    """A local time of day such as ``"09:00"``; stays text when loaded."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or not _CLOCK_TEXT.match(value):
            raise ValidationError('must be a time like "09:00"')
        return value


class TimezoneText(fields.String):
    """An IANA timezone name such as ``"Europe/Berlin"``."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        try:
            zone_for(str(value))
        except ValueError as exc:
            raise ValidationError('must be a timezone like "Europe/Berlin"') from exc
        return str(value)


class CountryText(fields.String):
    """An ISO country code (optionally ``-subdivision``) with a public holiday calendar."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        try:
            holiday_dates(str(value), 2026)
        except ValueError as exc:
            raise ValidationError('must be a country code like "DE" or "US-CA"') from exc
        return str(value).upper()


class SubjectTemplate(fields.String):
    """A task subject with ``{placeholders}`` from ``SUBJECT_PLACEHOLDERS``."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("must be text")
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValidationError(f"is not a valid template: {exc}") from exc
        unknown = sorted(names - SUBJECT_PLACEHOLDERS)
        if unknown:
            allowed = ", ".join(sorted(SUBJECT_PLACEHOLDERS))
            raise ValidationError(f"unknown placeholder {{{unknown[0]}}}; use {allowed}")
        return value


class NamedMap(fields.Field):
    """A mapping of names to values loaded by ``value_field``; errors are keyed by the name."""

    def __init__(self, value_field: fields.Field, *, names: tuple[str, ...] | None = None,
                 what: str = "name", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.value_field = value_field
        self.names = names
        self.what = what

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ValidationError(f"must be a mapping of {self.what} to settings")
        loaded: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for key, item in value.items():
            if self.names is not None and key not in self.names:
                errors[str(key)] = [f"unknown {self.what}; use one of {', '.join(self.names)}"]
                continue
            try:
                loaded[str(key)] = self.value_field.deserialize(item)
            except ValidationError as exc:
                errors[str(key)] = exc.messages
        if errors:
            raise ValidationError(errors)
        return loaded


class TextMap(fields.Field):
    """A flat mapping of text to text (numbers and booleans in YAML are turned into text)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise ValidationError("must be a mapping of CRM field names to values")
        bad = [str(key) for key, item in value.items() if isinstance(item, Mapping | list) or item is None]
        if bad:
            raise ValidationError({key: ["must be a single value"] for key in bad})
        return {str(key): str(item) for key, item in value.items()}


class DispositionMap(fields.Field):
    """CRM value -> disposition text such as ``accepted`` or ``rejected:not_ready``."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise ValidationError("must be a mapping of CRM values to dispositions")
        errors: dict[str, list[str]] = {}
        for key, item in value.items():
            try:
                parse_disposition(item)
            except ValueError as exc:
                errors[str(key)] = [str(exc)]
        if errors:
            raise ValidationError(errors)
        return {str(key): str(item) for key, item in value.items()}


def _one_of(choices: tuple[str, ...]) -> validate.OneOf:
    return validate.OneOf(choices, error=f"must be one of {', '.join(choices)}")


def _at_least(minimum: int) -> validate.Range:
    return validate.Range(min=minimum, error=f"must be {minimum} or more")


# --- schemas ---------------------------------------------------------------------------------

class WorkingHoursSchema(Schema):
    opens = ClockText(load_default="09:00")
    closes = ClockText(load_default="17:00")
    workdays = fields.List(fields.String(validate=_one_of(WEEKDAYS)), load_default=lambda: list(WEEKDAYS[:5]),
                           validate=validate.Length(min=1, error="needs at least one day"))
    timezone = TimezoneText(load_default="UTC")
    country = CountryText(load_default=None, allow_none=True)

    @validates_schema
    def _opens_before_closes(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["opens"] >= data["closes"]:
            raise ValidationError("must be after opens", field_name="closes")


class PlaybookSchema(Schema):
    task = fields.Boolean(load_default=True)
    due = DurationText(load_default="1d")
    priority = fields.String(load_default="normal", validate=_one_of(("high", "normal", "low")))
    type = fields.String(load_default="todo", validate=_one_of(("call", "email", "todo")))
    subject = SubjectTemplate(load_default="Follow up with {name} ({band} lead, score {score})")


PlaybooksSchema = Schema.from_dict({name: fields.Nested(PlaybookSchema) for name in PLAYBOOKS},
                                   name="PlaybooksSchema")


# --- route conditions: the one condition language, and the old route syntax -------------------

class RouteConditionSchema(FieldCheckSchema):
    """A route condition: a check on one lead field, written as in fit (``{field: country, in: [DE]}``)."""

    field = Text(required=True)

    def unknown_message(self, key: str, original: Mapping[str, Any]) -> str:
        if key in NOT_FIELD_KEYS:
            return f'"{key}" cannot be used in a route (routes look at lead fields only)'
        return super().unknown_message(key, original)


class OldRouteConditionSchema(Schema):
    """The old route syntax ``{field, op, value}``: still loads, translated into the one language."""

    field = fields.String(required=True)
    op = fields.String(required=True, validate=_one_of(tuple(OLD_ROUTE_OPS)))
    value = fields.Raw(required=True, allow_none=True)

    @validates_schema
    def _value_fits_op(self, data: dict[str, Any], **kwargs: Any) -> None:
        op, value = data["op"], data["value"]
        if op in ("in", "not_in") and not isinstance(value, list):
            raise ValidationError(f"must be a list for {op}", field_name="value")
        if op in ("in", "not_in") and not (value and all(_is_scalar(item) for item in value)):
            raise ValidationError(f"must list at least one value (text, numbers, true/false) for {op}",
                                  field_name="value")
        if op in ("eq", "ne") and not _is_scalar(value):
            raise ValidationError(f"must be one value (text, a number or true/false) for {op}", field_name="value")
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if op in ("gt", "gte", "lt", "lte") and not is_number:
            raise ValidationError(f"must be a number for {op}", field_name="value")
        if op == "exists" and not isinstance(value, bool):
            raise ValidationError("must be true or false for exists", field_name="value")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def is_old_route_condition(condition: Any) -> bool:
    """Return True for a condition written in the old route syntax (it has ``op`` or ``value``)."""
    return isinstance(condition, Mapping) and ("op" in condition or "value" in condition)


def rewrite_old_route_condition(old: Mapping[str, Any]) -> dict[str, Any]:
    """Return the one-language form of a valid old route condition; it holds for exactly the same leads.

    ``eq`` becomes ``equals`` for text, but ``in: [value]`` for a number or true/false: ``in``
    compares them as text, as ``eq`` did, while ``equals: 1000`` would also accept "1,000" and
    ``equals: true`` also "yes". ``ne`` becomes ``not_in: [value]``; ``gt``/``lt`` become
    ``above``/``below``, ``gte``/``lte`` ``min``/``max``, ``exists`` ``present``.
    """
    field_name, op, value = old["field"], old["op"], old["value"]
    if op == "eq" and not (isinstance(value, str) and value.strip()):
        return {"field": field_name, "in": [value]}
    if op == "ne":
        return {"field": field_name, "not_in": [value]}
    return {"field": field_name, OLD_ROUTE_OPS[op]: value}


class RouteConditionField(fields.Field):
    """One route condition in the one condition language; the old ``{field, op, value}`` is translated."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, Any]:
        if is_old_route_condition(value):
            value = rewrite_old_route_condition(OldRouteConditionSchema().load(value))
        return RouteConditionSchema().load(value)


def flow_yaml(value: Any) -> str:
    """Return a value as one line of YAML flow style, as a condition is written in the file."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, allow_unicode=True,
                          width=1_000_000).strip()


def old_route_syntax_warnings(handoff: Any) -> list[str]:
    """Return a ``path: message`` line for each use of the old route syntax in a raw handoff section.

    The file still loads (the old syntax is translated); each line says what to write instead.
    """
    routes = handoff.get("routes") if isinstance(handoff, Mapping) else None
    lines = []
    for i, route in enumerate(routes if isinstance(routes, list) else []):
        if not isinstance(route, Mapping):
            continue
        if "when" in route:
            lines.append(f"handoff.routes[{i}].when: old name; write when_all (every condition must hold)")
        for key in ("when_all", "when"):
            conditions = route.get(key)
            for j, condition in enumerate(conditions if isinstance(conditions, list) else []):
                if not is_old_route_condition(condition):
                    continue
                try:
                    rewrite = rewrite_old_route_condition(OldRouteConditionSchema().load(condition))
                except ValidationError:
                    continue  # a mistake, reported as such
                lines.append(f"handoff.routes[{i}].{key}[{j}]: old route syntax {flow_yaml(dict(condition))}; "
                             f"write {flow_yaml(rewrite)}")
    return lines


class RouteSchema(Schema):
    name = fields.String(required=True)
    #: Conditions that must ALL hold; none: the route matches every lead.
    when_all = fields.List(RouteConditionField(), load_default=None)
    #: The old name of ``when_all``; still loads.
    when = fields.List(RouteConditionField(), load_default=None)
    team = fields.String(load_default=None)
    owner = fields.String(load_default=None)

    @validates_schema
    def _team_or_owner(self, data: dict[str, Any], **kwargs: Any) -> None:
        if (data["team"] is None) == (data["owner"] is None):
            raise ValidationError("give either team or owner", field_name="team")

    @validates_schema
    def _one_condition_list(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("when") is not None and data.get("when_all") is not None:
            raise ValidationError("is the old name of when_all; give only when_all", field_name="when")

    @post_load
    def _when_all(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        when = data.pop("when", None)
        if data.get("when_all") is None:
            data["when_all"] = when or []
        return data


class MemberSchema(Schema):
    id = fields.String(required=True)
    weight = fields.Integer(load_default=1, strict=True, validate=_at_least(1))
    available = fields.Boolean(load_default=True)
    timezone = TimezoneText(load_default=None, allow_none=True)
    country = CountryText(load_default=None, allow_none=True)


class TeamSchema(Schema):
    members = fields.List(fields.Nested(MemberSchema), required=True,
                          validate=validate.Length(min=1, error="needs at least one member"))

    @validates_schema
    def _unique_members(self, data: dict[str, Any], **kwargs: Any) -> None:
        ids = [member["id"] for member in data["members"]]
        if len(ids) != len(set(ids)):
            raise ValidationError("lists a rep twice", field_name="members")


class HandoffSchema(Schema):
    keep_existing_owner = fields.Boolean(load_default=False)
    fallback_owner = fields.String(load_default=None, allow_none=True)
    #: The CRM a lead without a CRM record (web-only) is created in at its hand-off; checked
    #: against the caller's CRM vocabulary in ``scoring.lifecycle_rules.build``.
    create_in = fields.String(load_default=None, allow_none=True)
    routes = fields.List(fields.Nested(RouteSchema), load_default=list)
    teams = NamedMap(fields.Nested(TeamSchema), what="team names", load_default=dict)

    @validates_schema
    def _routes_name_known_teams(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors = {index: {"team": [f"unknown team {route['team']!r}; teams are: "
                                   f"{', '.join(data['teams']) or 'none'}"]}
                  for index, route in enumerate(data["routes"])
                  if route["team"] is not None and route["team"] not in data["teams"]}
        if errors:
            raise ValidationError(errors, field_name="routes")


class SlaPolicySchema(Schema):
    escalation = fields.List(fields.String(validate=_one_of(ESCALATION_STEPS)), required=True,
                             validate=validate.Length(min=1, error="needs at least one step"))
    max_misses = fields.Integer(required=True, strict=True, validate=_at_least(1))
    #: The rep activities logged in the CRM (by the lead's owner, after the hand-off) that meet it.
    actions = fields.List(fields.String(validate=_one_of(REP_ACTIVITY_TYPES)),
                          load_default=lambda: list(DEFAULT_SLA_ACTIONS))


SlaSchema = Schema.from_dict(
    {name: fields.Nested(SlaPolicySchema) for name in (*PLAYBOOKS, *BANDS, "default")}, name="SlaSchema")


class RecyclePolicySchema(Schema):
    to = fields.String(load_default="nurture", validate=_one_of(("nurture", "disqualified")))
    cooldown = DurationText(load_default=None, allow_none=True)
    reset = fields.String(load_default="none", validate=_one_of(RESET_KINDS))
    penalty = fields.Integer(load_default=None, allow_none=True, strict=True, validate=_at_least(1))
    track = fields.String(load_default=None, allow_none=True)

    @validates_schema
    def _penalty_with_reset(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["reset"] == "penalty" and data["penalty"] is None:
            raise ValidationError("is required when reset is penalty", field_name="penalty")


RecycleReasonsSchema = Schema.from_dict({name: fields.Nested(RecyclePolicySchema) for name in REJECT_REASONS},
                                        name="RecycleReasonsSchema")


class RecycleSchema(Schema):
    max_recycles = fields.Integer(load_default=3, strict=True, validate=_at_least(0))
    default_track = fields.String(load_default=None, allow_none=True)
    reasons = fields.Nested(RecycleReasonsSchema, load_default=dict)


def feedback_field() -> NamedMap:
    """The ``feedback`` section: CRM name -> field name (CRM or canonical) -> value -> disposition.
    The CRM names are checked against the caller's vocabulary in ``lifecycle_rules.build``."""
    return NamedMap(NamedMap(DispositionMap(), what="CRM fields"), what="CRM names")


def crm_stages_field() -> NamedMap:
    """The ``crm_stages`` section: CRM name -> stage -> CRM field name -> value."""
    return NamedMap(NamedMap(TextMap(), names=STAGES, what="stage"), what="CRM names")


class StageOutcomeMap(fields.Field):
    """Stage id -> ``open``, ``won``, ``lost`` or ``ignore`` (numeric ids in YAML become text)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise ValidationError("must be a mapping of stage ids to open, won, lost or ignore")
        errors = {str(key): [f"must be one of {', '.join(STAGE_OUTCOMES)}"]
                  for key, item in value.items() if item not in STAGE_OUTCOMES}
        if errors:
            raise ValidationError(errors)
        return {str(key): str(item) for key, item in value.items()}


class PipelineOutcomesSchema(Schema):
    #: false: deals in this pipeline are no outcome (renewals, partner deals ...).
    count = fields.Boolean(load_default=True)
    stages = StageOutcomeMap(load_default=dict)


class CrmOutcomesSchema(Schema):
    pipelines = NamedMap(fields.Nested(PipelineOutcomesSchema), what="pipeline ids", load_default=dict)
    other_pipelines = fields.String(load_default="count", validate=_one_of(OTHER_PIPELINES))


def outcomes_field() -> NamedMap:
    """The ``outcomes`` section: CRM name -> ``pipelines`` (pipeline id -> ``count``, ``stages``) and
    ``other_pipelines``. The CRM names are checked against the caller's vocabulary in ``build``."""
    return NamedMap(fields.Nested(CrmOutcomesSchema), what="CRM names")

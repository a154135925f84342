"""Marshmallow schemas of the rules file. ``scoring.rules`` loads with them and reports errors.

Messages are written for the marketing-ops person editing the file; ``scoring.rules`` turns
marshmallow's nested error dicts into ``path: message`` lines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validates_schema

from scoring.rules_fields import (
    Duration,
    MappingOf,
    Names,
    Number,
    Regex,
    Scalar,
    Scalars,
    Text,
    one_of,
    unknown_key_message,
)

BAND_NAMES: tuple[str, ...] = ("cold", "cool", "warm", "hot")
GRADE_NAMES: tuple[str, ...] = ("A", "B", "C", "D")
#: Next-step playbook per band when the file names none (lifecycle turns them into tasks).
DEFAULT_PLAYBOOKS: Mapping[str, str] = {
    "cold": "nurture_only", "cool": "automated_follow_up",
    "warm": "individual_follow_up", "hot": "call_now",
}
#: The one condition language on a lead field (fit, ``when_any``, routes); ``scoring.matchers.field_test``
#: implements it. A condition has one operator, except that a lower bound (min or above) and an
#: upper bound (max or below) may go together.
FIELD_OPERATORS: tuple[str, ...] = ("equals", "in", "not_in", "contains", "regex", "min", "max", "above", "below",
                                    "present")
LOWER_BOUNDS: tuple[str, ...] = ("min", "above")
UPPER_BOUNDS: tuple[str, ...] = ("max", "below")
SIGNAL_KEYS: tuple[str, ...] = ("kind", "asset", "intent", "tag", "url", "property", "within")
#: What a condition can check; "signal" means any of ``SIGNAL_KEYS``.
CONDITION_SUBJECTS: tuple[str, ...] = ("field", "signal", "negative", "score_below", "grade", "disqualified")
NOT_FIELD_KEYS: frozenset[str] = frozenset(SIGNAL_KEYS) | frozenset(CONDITION_SUBJECTS) - {"field"}
#: Negative signals: name -> where its points count ("fit": who they are, else "engagement").
NEGATIVE_SIGNALS: Mapping[str, str] = {
    "free_mail": "fit", "disposable": "fit", "gibberish": "fit", "missing_phone": "fit",
    "invalid_phone": "fit", "student": "fit", "competitor": "fit",
    "bounce": "engagement", "unsubscribe": "engagement",
}
_PLAYBOOK = re.compile(r"^[a-z][a-z0-9_]*$")


class StrictSchema(Schema):
    """A schema that reports every unknown key with a did-you-mean hint."""

    class Meta:
        unknown = EXCLUDE

    def unknown_message(self, key: str, original: Mapping[str, Any]) -> str:
        return unknown_key_message(key, [f.data_key or n for n, f in self.fields.items()])

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _reject_unknown_keys(self, data: Any, original_data: Any, **kwargs: Any) -> None:
        if not isinstance(original_data, Mapping):
            return
        known = {f.data_key or n for n, f in self.fields.items()}
        errors = {str(k): [self.unknown_message(str(k), original_data)]
                  for k in original_data if k not in known}
        if errors:
            raise ValidationError(errors)


class Conditions(fields.List):
    """A non-empty list of conditions, any of which may hold."""

    def __init__(self, **kwargs: Any):
        super().__init__(fields.Nested(ConditionSchema), required=True, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[Any]:
        if isinstance(value, list) and not value:
            raise ValidationError("must list at least one condition")
        return super()._deserialize(value, attr, data, **kwargs)


class FieldCheckSchema(StrictSchema):
    """A check on one lead field with one operator (min and max may go together)."""

    field = Text()
    equals = Scalar()
    in_ = Scalars(data_key="in", attribute="in")
    not_in = Scalars()
    contains = Names()
    regex = Regex()
    min_ = Number(data_key="min", attribute="min")
    max_ = Number(data_key="max", attribute="max")
    above = Number()
    below = Number()
    present = fields.Boolean()

    def unknown_message(self, key: str, original: Mapping[str, Any]) -> str:
        if "field" not in original or key in NOT_FIELD_KEYS:
            return super().unknown_message(key, original)
        message = unknown_key_message(key, list(FIELD_OPERATORS), "operator")
        return message if "did you mean" in message else f"{message} (use {one_of(FIELD_OPERATORS)})"

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _one_operator(self, data: Any, original: Any, **kwargs: Any) -> None:
        if not isinstance(original, Mapping):
            return
        operators = [op for op in FIELD_OPERATORS if op in original]
        if "field" not in original:
            if operators:
                raise ValidationError(f"{operators[0]} only works together with field")
            return
        if not operators:
            known = {f.data_key or n for n, f in self.fields.items()}
            if all(key in known for key in original):  # else the unknown key is the mistake
                raise ValidationError(f"needs an operator: {one_of(FIELD_OPERATORS)}")
            return
        lower = [op for op in operators if op in LOWER_BOUNDS]
        upper = [op for op in operators if op in UPPER_BOUNDS]
        if len(operators) > 1 and not (len(lower) == 1 and len(upper) == 1 and len(operators) == 2):
            raise ValidationError(f"use one operator per condition, found {' and '.join(operators)}")
        if len(operators) == 2 and lower[0] in data and upper[0] in data:
            (low_op, low), (high_op, high) = (lower[0], data[lower[0]]), (upper[0], data[upper[0]])
            if (low_op, high_op) == ("min", "max"):
                if low > high:
                    raise ValidationError({"max": ["must not be below min"]})
            elif low >= high:
                raise ValidationError({high_op: [f"no number fits {low_op}: {low:g} and {high_op}: {high:g}"]})


class ConditionSchema(FieldCheckSchema):
    """One check: a lead field, a signal, a negative signal, the score, grade or disqualified."""

    kind = Names(what="event kind")
    asset = Names()
    intent = Names(choices=BAND_NAMES, what="intent")
    tag = Names()
    url = Names()
    property_ = MappingOf(Scalars(), data_key="property", attribute="property")
    within = Duration()
    negative = Text(choices=tuple(NEGATIVE_SIGNALS), what="negative signal")
    score_below = Number()
    grade = Names(choices=GRADE_NAMES, what="grade")
    disqualified = fields.Boolean()

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _one_subject(self, data: Any, original: Any, **kwargs: Any) -> None:
        if not isinstance(original, Mapping):
            return
        found = [s for s in CONDITION_SUBJECTS if (s == "signal" and any(k in original for k in SIGNAL_KEYS))
                 or (s != "signal" and s in original)]
        if not found:
            if not any(op in original for op in FIELD_OPERATORS):
                raise ValidationError(f"must say what to check: {one_of(CONDITION_SUBJECTS)} "
                                      f"(a signal is checked with {one_of(SIGNAL_KEYS)})")
        elif len(found) > 1:
            raise ValidationError(f"checks {' and '.join(found)} at once; write separate conditions")
        elif "within" in original and found != ["signal"]:
            raise ValidationError({"within": ["only works for signal checks (kind, asset, ...)"]})


class FitRuleSchema(FieldCheckSchema):
    """A fit rule: a check on a lead field worth points."""

    id = Text(required=True)
    field = Text(required=True)
    points = Number(required=True)
    text = Text()

    def unknown_message(self, key: str, original: Mapping[str, Any]) -> str:
        if key in NOT_FIELD_KEYS:
            return f'"{key}" cannot be used in a fit rule (fit looks at lead fields only)'
        return super().unknown_message(key, original)


class DecaySchema(StrictSchema):
    half_life = Duration()
    lifespan = Duration()

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _exactly_one(self, data: Any, original: Any, **kwargs: Any) -> None:
        if isinstance(original, Mapping) and ("half_life" in original) == ("lifespan" in original):
            raise ValidationError("give either half_life or lifespan")


class LimitSchema(StrictSchema):
    count = Number(required=True, whole=True, at_least=1, message="must be 1 or more")
    per = Duration()


class EngagementRuleSchema(StrictSchema):
    id = Text(required=True)
    kind = Names(required=True, what="event kind")
    asset = Names()
    intent = Names(choices=BAND_NAMES, what="intent")
    tag = Names()
    url = Names()
    property_ = MappingOf(Scalars(), data_key="property", attribute="property")
    points = Number(required=True)
    group = Text()
    decay = fields.Nested(DecaySchema)
    limit = fields.Nested(LimitSchema)
    text = Text()


class EngagementCapsSchema(StrictSchema):
    total = Number(at_least=0, message="must be zero or more")
    groups = MappingOf(Number(at_least=0, message="must be zero or more"))


class AssetSchema(StrictSchema):
    name = Text(required=True)
    intent = Text(required=True, choices=BAND_NAMES, what="intent")
    tags = Names()
    urls = Names()


class NegativeSignalSchema(StrictSchema):
    enabled = fields.Boolean(load_default=True)
    points = Number(required=True)
    text = Text()

    @validates_schema(skip_on_field_errors=True)
    def _lowers(self, data: Any, **kwargs: Any) -> None:
        if data.get("points", 0) > 0:
            raise ValidationError({"points": ["must be zero or less (negative signals lower the score)"]})


class DomainListSignalSchema(NegativeSignalSchema):
    extra_domains = Names()


class StudentSignalSchema(NegativeSignalSchema):
    domains = Names()
    job_titles = Names()


class CompetitorSignalSchema(NegativeSignalSchema):
    domains = Names(required=True)


class PhoneSignalSchema(NegativeSignalSchema):
    default_region = Text()


class NegativeSchema(StrictSchema):
    free_mail = fields.Nested(DomainListSignalSchema)
    disposable = fields.Nested(DomainListSignalSchema)
    gibberish = fields.Nested(NegativeSignalSchema)
    missing_phone = fields.Nested(NegativeSignalSchema)
    invalid_phone = fields.Nested(PhoneSignalSchema)
    student = fields.Nested(StudentSignalSchema)
    competitor = fields.Nested(CompetitorSignalSchema)
    bounce = fields.Nested(NegativeSignalSchema)
    unsubscribe = fields.Nested(NegativeSignalSchema)


class GradesSchema(StrictSchema):
    A = Number(required=True)
    B = Number(required=True)
    C = Number(required=True)

    @validates_schema(skip_on_field_errors=True)
    def _descending(self, data: Any, **kwargs: Any) -> None:
        for higher, lower in (("A", "B"), ("B", "C")):
            if data[lower] >= data[higher]:
                raise ValidationError({lower: [f"must be lower than {higher} ({data[higher]:g})"]})


class BandSchema(StrictSchema):
    from_ = Number(data_key="from", attribute="from")
    playbook = Text()

    @validates_schema(skip_on_field_errors=True)
    def _playbook_name(self, data: Any, **kwargs: Any) -> None:
        if "playbook" in data and not _PLAYBOOK.match(data["playbook"]):
            raise ValidationError({"playbook": ["must be a name like call_now (lower case and _)"]})


class BandsSchema(StrictSchema):
    cold = fields.Nested(BandSchema, required=True)
    cool = fields.Nested(BandSchema, required=True)
    warm = fields.Nested(BandSchema, required=True)
    hot = fields.Nested(BandSchema, required=True)

    @validates_schema(skip_on_field_errors=False)
    def _thresholds(self, data: Any, **kwargs: Any) -> None:
        errors: dict[str, Any] = {}
        if "from" in data.get("cold", {}):
            errors["cold"] = {"from": ["cold is everything below cool; remove this key"]}
        previous = None
        for band in BAND_NAMES[1:]:
            if band not in data:
                continue
            if "from" not in data[band]:
                errors[band] = {"from": ["required (the lowest score of this band)"]}
                continue
            if previous and data[band]["from"] <= data[previous]["from"]:
                errors[band] = {"from": [f"must be higher than bands.{previous}.from "
                                         f"({data[previous]['from']:g})"]}
            previous = band
        if errors:
            raise ValidationError(errors)

    @post_load
    def _default_playbooks(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        for band, playbook in DEFAULT_PLAYBOOKS.items():
            data[band].setdefault("playbook", playbook)
        return data


class OverrideSchema(StrictSchema):
    id = Text(required=True)
    when_any = Conditions()
    force = Text(choices=BAND_NAMES, what="band")
    at_least = Text(choices=BAND_NAMES, what="band")
    unless_disqualified = fields.Boolean(load_default=True)
    text = Text()

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _one_effect(self, data: Any, original: Any, **kwargs: Any) -> None:
        if isinstance(original, Mapping) and ("force" in original) == ("at_least" in original):
            raise ValidationError("give either force or at_least (a band)")


class DisqualifySchema(StrictSchema):
    id = Text(required=True)
    when_any = Conditions()
    reason = Text(required=True)


class PriorityRuleSchema(StrictSchema):
    id = Text(required=True)
    when_any = Conditions()
    priority = Text(required=True, choices=("high", "low"), what="priority")
    text = Text()


class MqlSchema(StrictSchema):
    bands = Names(required=True, choices=BAND_NAMES, what="band")
    grades = Names(choices=GRADE_NAMES, what="grade", load_default=lambda: list(GRADE_NAMES))
    min_score = Number()


class RescoreSchema(StrictSchema):
    """When a time-driven change is worth a rescore (``scoring.timeline.next_change``)."""

    score_step = Number(whole=True, at_least=1, message="must be 1 or more (points of the written score)")


class RulesFileSchema(StrictSchema):
    """The whole rules file; ``scoring.rules`` adds the lifecycle sections."""

    name = Text()
    description = Text()
    activity_kinds = Names(load_default=list)
    assets = MappingOf(fields.Nested(AssetSchema), load_default=dict)
    fit = fields.List(fields.Nested(FitRuleSchema), load_default=list)
    grades = fields.Nested(GradesSchema, required=True)
    engagement = fields.List(fields.Nested(EngagementRuleSchema), load_default=list)
    engagement_caps = fields.Nested(EngagementCapsSchema, load_default=dict)
    negative = fields.Nested(NegativeSchema, load_default=dict)
    bands = fields.Nested(BandsSchema, required=True)
    overrides = fields.List(fields.Nested(OverrideSchema), load_default=list)
    priority = fields.List(fields.Nested(PriorityRuleSchema), load_default=list)
    disqualify = fields.List(fields.Nested(DisqualifySchema), load_default=list)
    mql = fields.Nested(MqlSchema, required=True)
    # No default: a file without the section keeps its version (next_change uses score_step 5).
    rescore = fields.Nested(RescoreSchema)

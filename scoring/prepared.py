"""The rules file prepared once at load into matchers the engine runs per lead.

Everything that can be decided when the file loads is decided here: regexes and URL globs are
compiled, decay turned into rate constants, signal checks indexed by event kind, domain
lists frozen, so scoring a lead does no parsing and little allocation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as _field
from functools import lru_cache
from typing import Any

from scoring.model import Reason
from scoring.rules_fields import duration_seconds
from scoring.rules_schema import BAND_NAMES, NEGATIVE_SIGNALS

from .checks import DISPOSABLE_DOMAINS, FREE_MAIL_DOMAINS, domain_matches, suffix_matcher
from .matchers import (
    TARGET_CONDITION,
    TARGET_NEGATIVE,
    TARGET_RULE,
    Asset,
    SignalMatcher,
    SignalRouter,
    asset_for_url,
    field_test,
    signal_matcher,
)
from .wording import KIND_FALLBACK_OBJECTS, KIND_PHRASES, NEGATIVE_TEXTS, describe_decay, format_points

BAND_RANK: Mapping[str, int] = {band: rank for rank, band in enumerate(BAND_NAMES)}

#: A reason while scoring, laid out so that plain tuple sorting puts overrides first, then the
#: largest absolute points: (0 override / 1 other, -|points|, kind rank, rule id, full text,
#: points, short text for the summary, kind, the finished ``Reason``). The ``Reason`` is made of
#: the fields before it, so two drafts that tie up to it are equal and their order is moot.
#: Leads share most reasons, so rules keep drafts by what the text depends on and reuse them.
Draft = tuple[int, float, int, str, str, float, str, str, Reason]

#: Entries per reason cache before it starts over; the texts depend on few distinct values.
MAX_CACHED_REASONS = 4096


def draft(group: int, weight: float, rank: int, rule: str, text: str, points: float, short: str,
          kind: str) -> Draft:
    """Return the draft of a reason (see ``Draft``)."""
    # tuple.__new__ builds the Reason NamedTuple in one step (its fields in order), as ``_make`` does.
    reason = tuple.__new__(Reason, (float(points), text, rule, kind))
    return group, weight, rank, rule, text, points, short, kind, reason


def remember(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    """Store ``value`` under ``key`` in a bounded cache and return it."""
    if len(cache) >= MAX_CACHED_REASONS:
        cache.clear()
    cache[key] = value
    return value


@dataclass(slots=True)
class EngagementRule:
    id: str
    points: float
    matcher: SignalMatcher
    group: str | None
    #: ln 2 / half-life in seconds, 0.0 without half-life decay.
    decay_rate: float
    #: Seconds after which a signal stops counting (math.inf: never).
    lifespan: float
    #: At most this many signals count (0: no limit) ...
    limit_count: int
    #: ... within any window of this many seconds (math.inf: ever).
    limit_window: float
    limit_note: str
    decay_note: str
    text: str
    fallback_object: str
    #: Reason words per asset label, filled while scoring (labels are few: asset names).
    words: dict[str, str] = _field(default_factory=dict)
    #: Reasons by (label, points, count, age in days or age text, signals not counted), filled
    #: while scoring.
    reasons: dict[tuple[str, float, int, int | str, int], Draft] = _field(default_factory=dict)
    #: ``-decay_rate``, what the engine multiplies ages by.
    negative_rate: float = _field(init=False)

    def __post_init__(self) -> None:
        self.negative_rate = -self.decay_rate


@dataclass(slots=True)
class Condition:
    """One compiled ``when_any`` entry; ``subject`` says which attribute applies."""

    subject: str
    label: str
    field: str = ""
    test: Callable[[Any], bool] | None = None
    signal_index: int = -1
    negative: str = ""
    threshold: float = 0.0
    grades: frozenset[str] = frozenset()
    disqualified: bool = False


@dataclass(slots=True)
class ConditionRule:
    """An override, priority or disqualify rule: any condition holding makes it apply."""

    id: str
    conditions: tuple[Condition, ...]
    text: str
    force: str | None = None
    at_least: str | None = None
    unless_disqualified: bool = True
    priority: str = ""
    #: Reasons by (prefix, condition subject and label, asset name, age text), filled while scoring.
    reasons: dict[tuple[str, str, str, str, str], Draft] = _field(default_factory=dict)


@dataclass(slots=True)
class NegativeRule:
    name: str
    points: float
    text: str
    basis: str
    #: Reasons by detail (the domain, the number, the age ...), filled while scoring.
    reasons: dict[str, Draft] = _field(default_factory=dict)


@dataclass(slots=True)
class FitRule:
    id: str
    field: str
    points: float
    test: Callable[[Any], bool]
    text: str
    #: The reason when the rule has its own text (it then does not depend on the value).
    fixed: Draft | None
    #: ``test`` results and reasons for text values, filled while scoring (leads share values).
    results: dict[str, bool] = _field(default_factory=dict)
    reasons: dict[str, Draft] = _field(default_factory=dict)


def _fit_rule(spec: Mapping[str, Any]) -> FitRule:
    text, points = spec.get("text", ""), spec["points"]
    fixed = None
    if text:
        words = f"{format_points(points)} {text}"
        fixed = draft(1, -abs(points), 1, spec["id"], words, points, words, "fit")
    return FitRule(spec["id"], spec["field"], points, field_test(spec), text, fixed)


@dataclass
class PreparedRules:
    assets: dict[str, Asset]
    router: SignalRouter
    fit: list[FitRule]
    grades: tuple[tuple[float, str], ...]
    engagement: list[EngagementRule]
    signal_windows: list[float]
    group_caps: dict[str, float]
    total_cap: float
    negatives: dict[str, NegativeRule]
    domain_flags: Callable[[str], tuple[str, ...]]
    student_title: re.Pattern[str] | None
    default_region: str | None
    bands: tuple[tuple[float, str], ...]
    playbooks: dict[str, str]
    overrides: list[ConditionRule]
    priority: list[ConditionRule]
    disqualify: list[ConditionRule]
    mql_bands: frozenset[str]
    mql_grades: frozenset[str]
    mql_min_score: float
    signal_labels: list[str] = _field(default_factory=list)
    #: Whether a job title matches ``student_title``, filled while scoring.
    student_titles: dict[str, bool] = _field(default_factory=dict)


def _engagement_rule(spec: Mapping[str, Any]) -> EngagementRule:
    decay = spec.get("decay", {})
    limit = spec.get("limit", {})
    half_life = duration_seconds(decay["half_life"]) if "half_life" in decay else 0
    kind = spec["kind"][0]
    return EngagementRule(
        id=spec["id"], points=spec["points"], matcher=signal_matcher(spec), group=spec.get("group"),
        decay_rate=math.log(2) / half_life if half_life else 0.0,
        lifespan=duration_seconds(decay["lifespan"]) if "lifespan" in decay else math.inf,
        limit_count=limit.get("count", 0),
        limit_window=duration_seconds(limit["per"]) if "per" in limit else math.inf,
        limit_note=(f"max {limit['count']} per {limit['per']}" if "per" in limit
                    else f"max {limit['count']}") if limit else "",
        decay_note=(", " + describe_decay(decay)) if decay else "",
        text=spec.get("text") or KIND_PHRASES.get(kind, kind.replace("_", " ") + " {asset}"),
        fallback_object=KIND_FALLBACK_OBJECTS.get(kind, "it"),
    )


class _Indexer:
    """Collects signal matchers by event kind while rules and conditions compile."""

    def __init__(self, assets: Mapping[str, Asset]):
        self.by_kind: dict[str, list[tuple[int, Any, SignalMatcher]]] = {}
        self.any_kind: list[tuple[int, Any, SignalMatcher]] = []
        self.windows: list[float] = []
        self.labels: list[str] = []
        self.assets = assets

    def add(self, code: int, target: Any, spec: Mapping[str, Any]) -> None:
        entry = (code, target, signal_matcher(spec))
        for kind in spec.get("kind") or ():
            self.by_kind.setdefault(kind, []).append(entry)
        if not spec.get("kind"):
            self.any_kind.append(entry)

    def condition(self, spec: Mapping[str, Any]) -> Condition:
        if "field" in spec:
            return Condition("field", _field_label(spec), field=spec["field"], test=field_test(spec))
        if "negative" in spec:
            return Condition("negative", NEGATIVE_TEXTS[spec["negative"]].split(" (")[0],
                             negative=spec["negative"])
        if "score_below" in spec:
            return Condition("score_below", f"score below {spec['score_below']:g}",
                             threshold=spec["score_below"])
        if "grade" in spec:
            return Condition("grade", "grade " + "/".join(spec["grade"]), grades=frozenset(spec["grade"]))
        if "disqualified" in spec:
            return Condition("disqualified", "disqualified", disqualified=spec["disqualified"])
        index = len(self.windows)
        self.windows.append(duration_seconds(spec["within"]) if "within" in spec else math.inf)
        self.labels.append(_signal_label(spec, self.assets))
        self.add(TARGET_CONDITION, index, spec)
        return Condition("signal", self.labels[-1], signal_index=index)

    def rule(self, spec: Mapping[str, Any], **extra: Any) -> ConditionRule:
        conditions = tuple(self.condition(c) for c in spec["when_any"])
        return ConditionRule(spec["id"], conditions, spec.get("text") or spec.get("reason") or "", **extra)


def _field_label(spec: Mapping[str, Any]) -> str:
    label = spec["field"].replace("_", " ")
    if "present" in spec:
        return ("has " if spec["present"] else "no ") + label
    for op, verb in (("equals", "is"), ("in", "is"), ("not_in", "is not"), ("contains", "matches"),
                     ("regex", "matches")):
        if op in spec:
            value = spec[op]
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            return f"{label} {verb} {shown}"
    if "above" in spec or "below" in spec:
        bounds = [f"{word} {spec[key]}" for key, word in
                  (("min", "at least"), ("above", "above"), ("max", "at most"), ("below", "below")) if key in spec]
        return f"{label} {' and '.join(bounds)}"
    return f"{label} {spec.get('min', '')}–{spec.get('max', '')}".rstrip("–")


def _signal_label(spec: Mapping[str, Any], assets: Mapping[str, Asset]) -> str:
    parts = [" or ".join(k.replace("_", " ") for k in spec.get("kind", []))]
    parts += [assets[a].name if a in assets else a for a in spec.get("asset", [])]
    parts += [f"{t} content" for t in spec.get("tag", [])] + [f"{i} content" for i in spec.get("intent", [])]
    return " ".join(p for p in parts if p) or "activity"


def _domain_flags(free: frozenset[str], disposable: frozenset[str], students: frozenset[str],
                  competitors: frozenset[str]) -> Callable[[str], tuple[str, ...]]:
    @lru_cache(maxsize=65536)
    def flags(domain: str) -> tuple[str, ...]:
        found = []
        if domain_matches(domain, disposable):
            found.append("disposable")
        elif domain_matches(domain, free):
            found.append("free_mail")
        if domain_matches(domain, students):
            found.append("student")
        if domain_matches(domain, competitors):
            found.append("competitor")
        return tuple(found)

    return flags


def prepare_rules(data: Mapping[str, Any]) -> PreparedRules:
    """Return the prepared form of validated rules data (``Rules.data``)."""
    assets = {asset_id: Asset(asset_id, spec["name"], spec["intent"], frozenset(spec.get("tags", ())))
              for asset_id, spec in data["assets"].items()}
    index = _Indexer(assets)
    engagement = [_engagement_rule(spec) for spec in data["engagement"]]
    for position, spec in enumerate(data["engagement"]):
        index.add(TARGET_RULE, position, spec)
    negative = {name: spec for name, spec in data["negative"].items() if spec.get("enabled", True)}
    negatives = {name: NegativeRule(name, spec["points"], spec.get("text") or NEGATIVE_TEXTS[name],
                                    NEGATIVE_SIGNALS[name]) for name, spec in negative.items()}
    for kind in ("bounce", "unsubscribe"):
        if kind in negatives:
            index.add(TARGET_NEGATIVE, kind, {"kind": [kind]})

    def domains(name: str, key: str) -> frozenset[str]:
        return suffix_matcher(negative.get(name, {}).get(key, ()))

    titles = negative.get("student", {}).get("job_titles", ())
    overrides = [index.rule(s, force=s.get("force"), at_least=s.get("at_least"),
                            unless_disqualified=s["unless_disqualified"]) for s in data["overrides"]]
    priority = [index.rule(s, priority=s["priority"]) for s in data["priority"]]
    disqualify = [index.rule(s) for s in data["disqualify"]]
    bands = data["bands"]
    return PreparedRules(
        assets=assets,
        fit=[_fit_rule(spec) for spec in data["fit"]],
        grades=tuple((data["grades"][g], g) for g in ("A", "B", "C")),
        engagement=engagement,
        signal_windows=index.windows, signal_labels=index.labels,
        group_caps=dict(data["engagement_caps"].get("groups", {})),
        total_cap=data["engagement_caps"].get("total", math.inf),
        negatives=negatives,
        domain_flags=_domain_flags(
            (FREE_MAIL_DOMAINS | domains("free_mail", "extra_domains")) if "free_mail" in negative
            else frozenset(),
            (DISPOSABLE_DOMAINS | domains("disposable", "extra_domains")) if "disposable" in negative
            else frozenset(),
            domains("student", "domains"), domains("competitor", "domains")),
        student_title=re.compile(r"\b(?:" + "|".join(re.escape(t) for t in titles) + r")\b", re.IGNORECASE)
        if titles else None,
        default_region=negative.get("invalid_phone", {}).get("default_region"),
        bands=tuple((bands[b]["from"], b) for b in reversed(BAND_NAMES[1:])),
        playbooks={b: bands[b]["playbook"] for b in BAND_NAMES},
        overrides=overrides, priority=priority, disqualify=disqualify,
        router=SignalRouter(index.by_kind, index.any_kind, assets, asset_for_url(assets, data["assets"])),
        mql_bands=frozenset(data["mql"]["bands"]), mql_grades=frozenset(data["mql"]["grades"]),
        mql_min_score=data["mql"].get("min_score", -math.inf),
    )

"""When a lead's visible verdict next changes on its own: ``next_change``.

Pure, like the engine: the answer depends only on the profile, the signals, the rules and
``as_of``. The verdict is what the CRM shows (``scoring.model.NextChange``); times are whole
microseconds after ``as_of``, as ``datetime`` counts them. Exact, without sampling:

- **The lead's own instants.** A signal dated after ``as_of`` starts counting at its time; a
  ``lifespan`` ends when a counted signal's age reaches it; a ``within`` window closes when the
  newest signal holding the condition gets older than it. Each is an exact instant. Between two
  of them the lead is one ``scoring.segment.Segment``; at each, it is laid out again and its
  verdict taken.
- **Decay within a segment** (``Segment.search``): each decaying term's steps are solved in closed
  form and confirmed with the engine's arithmetic; the score, a monotone function of the terms,
  is searched for the first instant it crosses a threshold. Rules whose negative points decay
  (a rising score, or one that falls and rises) are searched the same way, with bounds.
- **Limits** (``limit: {count, per}``) compare the lead's signals with each other, not with the
  clock: a signal a limit drops stays dropped as time passes, so no window "opens" by itself.
  Point caps (``engagement_caps``) are part of the score: when decay takes a group under its cap
  the score starts to fall, which the search finds like any other change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from scoring.model import LeadProfile, NextChange, Signal

# The fit, the negative signals and the lead's values come from the engine's own code.
from .engine import _fit, _lead_values, _profile_negatives, round1
from .prepared import PreparedRules
from .segment import MICRO, Segment, Verdict, first_age_reaching

if TYPE_CHECKING:  # the rules module imports scoring.native, which imports this module
    from scoring.rules import Rules

#: ``rescore.score_step`` when the rules file has none: the written score moved by 5 points.
DEFAULT_SCORE_STEP = 5
_INF = math.inf
_ONE_MICROSECOND = timedelta(microseconds=1)
_VERDICT_FIELDS = ("band", "disqualified", "mql", "priority")


def next_change(profile: LeadProfile, signals: Iterable[Signal], rules: Rules, as_of: datetime, *,
                penalty: float = 0) -> NextChange | None:
    """Return when ``score_lead`` with these arguments first gives another visible verdict, or None.

    None: nothing changes with time alone (no decaying points, windows or lifespans left that
    would move it). Pass what ``score_lead`` got (the same signals and ``penalty``); the written
    score compared against is ``round`` of the score at ``as_of``. Raises ValueError as
    ``score_lead`` does.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    if not 0 <= penalty < _INF:
        raise ValueError(f"penalty must be a finite number of points >= 0, not {penalty!r}")
    lead = _Lead(profile, list(signals), rules, as_of, float(penalty))
    segment, instants = lead.layout(0)
    start = 0
    score = segment.score(segment.values(0))
    first = segment.verdict(score)
    written = round(score)
    lead.add_step_thresholds(written)
    cell = segment.cell(score)
    while True:
        end = min((instant for instant, _ in instants), default=-1)
        stop = lead.limit if end < 0 else min(end - 1, lead.limit)
        stop = min(stop, segment.horizon(start))
        at = start
        while stop > at:
            found = segment.search(at, stop, score, cell)
            if found is None:
                break
            at, score = found
            reason = _reason(first, written, segment.verdict(score), score, lead.score_step)
            if reason:
                return NextChange(as_of + timedelta(microseconds=at), reason, "decay")
            cell = segment.cell(score)
        if end < 0 or end > lead.limit:
            return None
        causes = ", ".join(sorted({cause for instant, cause in instants if instant == end}))
        segment, instants = lead.layout(end)
        score = segment.score(segment.values(end))
        reason = _reason(first, written, segment.verdict(score), score, lead.score_step)
        if reason:
            return NextChange(as_of + timedelta(microseconds=end), reason, causes)
        start, cell = end, segment.cell(score)


def _reason(first: Verdict, written: int, verdict: Verdict, score: float, step: int) -> str:
    """Return ``FIELD OLD->NEW`` for the first field of ``verdict`` that differs, else ``""``."""
    for index in range(len(_VERDICT_FIELDS)):
        old, new = first[index], verdict[index]
        if old != new:
            return f"{_VERDICT_FIELDS[index]} {_word(old)}->{_word(new)}"
    now = round(score)
    return f"score {written}->{now}" if abs(now - written) >= step else ""


def _word(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _round_at_least(whole: int) -> float:
    """Return the least float ``x`` with ``round(x) >= whole`` (``round`` takes halves to even)."""
    half = whole - 0.5
    return half if whole % 2 == 0 else math.nextafter(half, _INF)


class _RulesTimes:
    """What the search needs from the rules, worked out once per prepared rules."""

    def __init__(self, compiled: PreparedRules):
        #: Scores at which the verdict may change: band thresholds, mql.min_score, score_below.
        self.thresholds: list[float] = [threshold for threshold, _ in compiled.bands]
        if compiled.mql_min_score > -_INF:
            self.thresholds.append(compiled.mql_min_score)
        #: Per signal condition: what ends when its window closes, and the age that closes it (-1: none).
        self.ends = [""] * len(compiled.signal_windows)
        self.window_ends = [first_age_reaching(window, True) if window < _INF else -1
                            for window in compiled.signal_windows]
        for section, condition_rules in (("override", compiled.overrides), ("priority", compiled.priority),
                                         ("disqualify", compiled.disqualify)):
            for rule in condition_rules:
                for condition in rule.conditions:
                    if condition.subject == "score_below":
                        self.thresholds.append(condition.threshold)
                    elif condition.subject == "signal":
                        self.ends[condition.signal_index] = f"{section} {rule.id} ends"
        cap_groups = list(compiled.group_caps)
        self.caps: list[float] = [compiled.group_caps[group] for group in cap_groups]
        #: Per engagement rule: its cap group's position in ``caps`` (-1: none), the age its lifespan ends.
        self.groups = [cap_groups.index(rule.group) if rule.group in cap_groups else -1
                       for rule in compiled.engagement]
        self.lifespan_ends = [first_age_reaching(rule.lifespan, False) if rule.lifespan < _INF else -1
                              for rule in compiled.engagement]


#: ``_RulesTimes`` by ``id`` of the prepared rules (kept with them, so the id is theirs).
_RULES_TIMES: dict[int, tuple[PreparedRules, _RulesTimes]] = {}


def _rules_times(compiled: PreparedRules) -> _RulesTimes:
    found = _RULES_TIMES.get(id(compiled))
    if found is not None and found[0] is compiled:
        return found[1]
    if len(_RULES_TIMES) >= 16:
        _RULES_TIMES.clear()
    times = _RulesTimes(compiled)
    _RULES_TIMES[id(compiled)] = (compiled, times)
    return times


class _Routed:
    """One signal that feeds something, and what it feeds once its properties are checked."""

    def __init__(self, age: int, kind: str, key: str, rules: tuple[int, ...], conditions: tuple[int, ...],
                 negatives: tuple[str, ...], label: str, condition_label: str):
        #: Age at ``as_of`` in microseconds (negative: dated after it).
        self.age, self.kind, self.key = age, kind, key
        self.rules, self.conditions, self.negatives = rules, conditions, negatives
        self.label, self.condition_label = label, condition_label


class _Lead:
    """What does not change with time: routed signals, fit points, grade, thresholds."""

    def __init__(self, profile: LeadProfile, signals: list[Signal], rules: Rules, as_of: datetime,
                 penalty: float):
        compiled: PreparedRules = rules.prepared  # type: ignore[assignment]
        self.compiled, self.penalty = compiled, penalty
        self.times = _rules_times(compiled)
        self.thresholds = list(self.times.thresholds)
        self.score_step: int = rules.data.get("rescore", {}).get("score_step", DEFAULT_SCORE_STEP)
        self.values, local, domain = _lead_values(profile.fields)
        fit = _fit(self.values, compiled, [])
        self.fired = _profile_negatives(self.values, local, domain, compiled)
        for name in self.fired:
            negative = compiled.negatives[name]
            if negative.points and negative.basis == "fit":
                fit += negative.points
        self.fit = round1(fit)
        self.grade = "D"
        for threshold, grade in compiled.grades:
            if self.fit >= threshold:
                self.grade = grade
                break
        self.signals = _route(signals, as_of, compiled)
        #: The latest offset whose datetime exists (changes after the year 9999 are not reported).
        self.limit: int = (datetime(9999, 12, 30, tzinfo=UTC) - as_of) // _ONE_MICROSECOND

    def add_step_thresholds(self, written: int) -> None:
        """Add the scores at which ``round(score)`` is ``score_step`` away from ``written``."""
        self.thresholds.extend([_round_at_least(written + self.score_step),
                                _round_at_least(written - self.score_step + 1)])
        self.thresholds.sort()  # in place: the segments share the list

    def layout(self, delta: int) -> tuple[Segment, list[tuple[int, str]]]:
        """Return the lead ``delta`` microseconds after ``as_of`` (as the engine walks its signals then),
        and its instants after that: (offset, what happens)."""
        compiled, times = self.compiled, self.times
        windows = compiled.signal_windows
        matched: list[list[tuple[int, str]] | None] = [None] * len(compiled.engagement)
        hit_ages = [_INF] * len(windows)
        hit_labels = [""] * len(windows)
        hit_signals = [0] * len(windows)
        negative_hits: dict[str, int] = {}
        instants: list[tuple[int, str]] = []
        seen: set[tuple[str, str]] = set()
        for signal in self.signals:
            age = signal.age + delta
            if age < 0:
                instants.append((-signal.age, f"signal {signal.kind} arrives"))
                continue
            if signal.key:
                dedupe = (signal.kind, signal.key)
                if dedupe in seen:
                    continue
                seen.add(dedupe)
            for index in signal.rules:
                records = matched[index]
                if records is None:
                    matched[index] = [(signal.age, signal.label)]
                else:
                    records.append((signal.age, signal.label))
            if signal.conditions:
                seconds = age / MICRO
                for index in signal.conditions:
                    if seconds <= windows[index] and seconds < hit_ages[index]:
                        hit_ages[index], hit_signals[index] = seconds, signal.age
                        hit_labels[index] = signal.condition_label
            for name in signal.negatives:
                if age < negative_hits.get(name, age + 1):
                    negative_hits[name] = age
        for index in range(len(windows)):
            if hit_ages[index] < _INF and times.window_ends[index] >= 0:
                instants.append((times.window_ends[index] - hit_signals[index], times.ends[index]))
        fired = self.fired
        negative_points: list[float] = []
        if negative_hits:
            fired = dict(fired)
            for name in negative_hits:
                fired[name] = ""
                negative = compiled.negatives[name]
                if negative.points:  # bounce and unsubscribe count as engagement
                    negative_points.append(negative.points)
        segment = Segment(compiled, self.thresholds, times.caps, self.fit, self.grade, self.values, fired,
                          hit_ages, hit_labels, negative_points, self.penalty)
        for index in range(len(matched)):
            records = matched[index]
            if records is not None:
                segment.add_rule(compiled.engagement[index], times.groups[index], records, delta,
                                 times.lifespan_ends[index], instants)
        return segment, instants


def _route(signals: list[Signal], as_of: datetime, compiled: PreparedRules) -> list[_Routed]:
    """Return the signals that feed a rule, condition or negative signal, routed as the engine does."""
    router = compiled.router
    by_asset, by_url, route = router.by_asset, router.by_url, router.route
    routed: list[_Routed] = []
    for signal in signals:
        kind = signal.kind
        given = signal.properties
        properties: dict[str, Any] = given if isinstance(given, dict) else dict(given)
        asset_id = properties.get("asset")
        url = properties.get("url") if asset_id is None else None
        if asset_id is not None:
            known, where = by_asset.get(kind), asset_id
        else:
            known, where = by_url.get(kind), url
        found = known.get(where) if known is not None else None
        if found is None:
            if known is not None and where in known:
                continue
            found = route(kind, asset_id, url)
            if found is None:
                continue
        rules, checked, condition_targets, negative_targets, label, condition_label = found
        if checked:
            rules = rules + tuple(index for index, checker in checked if checker.matches_properties(properties))
        conditions = tuple(index for index, matcher in condition_targets
                           if matcher is None or matcher.matches_properties(properties)) if condition_targets else ()
        negatives = tuple(name for name, matcher in negative_targets
                          if matcher is None or matcher.matches_properties(properties)) if negative_targets else ()
        age = (as_of - signal.occurred_at) // _ONE_MICROSECOND
        routed.append(_Routed(age, kind, signal.key, rules, conditions, negatives, label, condition_label))
    return routed

"""A lead between two of its own instants, where only decay moves the score (``scoring.timeline``).

The score is a function of the decaying terms: per engagement rule and asset label,
``round1(points * sum(exp(-rate * age)))``, summed, capped, plus negative signals and penalty, as
the engine does it, operation for operation (``score_lead`` gives the same floats). Each term is a
monotone step function of time. When it steps is solved in closed form and confirmed to the
microsecond with that same arithmetic (``step``); ``search`` finds the first instant at which the
score leaves its *cell*: the stretch between two thresholds where the verdict cannot change
(bands, ``mql.min_score``, ``score_below``, and the scores ``score_step`` away from the written one).
"""

from __future__ import annotations

import math
from typing import Any

from .engine import _band, _first_holding, _priority, _State, round1
from .prepared import EngagementRule, PreparedRules

#: Microseconds in a second: times are whole microseconds after ``as_of``, as ``datetime`` counts.
MICRO = 1_000_000
#: Term steps in an interval that are taken one by one rather than halving the interval again.
WALK_STEPS = 6
#: (band, disqualified, mql, priority).
Verdict = tuple[str, bool, bool, str]


def first_age_reaching(seconds: float, strictly: bool) -> int:
    """Return the least age in microseconds whose age in seconds, computed as the engine computes it
    (``microseconds / 1e6``), is ``>= seconds`` (``> seconds`` when ``strictly``)."""
    age = int(seconds * MICRO)
    while (age - 1) / MICRO > seconds or (not strictly and (age - 1) / MICRO == seconds):
        age -= 1
    while age / MICRO < seconds or (strictly and age / MICRO == seconds):
        age += 1
    return age


class Segment:
    """The lead from one of its instants to the next: terms, score, verdict and the search."""

    def __init__(self, compiled: PreparedRules, thresholds: list[float], caps: list[float], fit: float,
                 grade: str, values: dict[str, Any], fired: dict[str, str], hit_ages: list[float],
                 hit_labels: list[str], negative_points: list[float], penalty: float):
        self.compiled, self.thresholds, self.caps = compiled, thresholds, caps
        self.fit, self.grade, self.lead_values, self.fired = fit, grade, values, fired
        self.hit_ages, self.hit_labels = hit_ages, hit_labels
        self.negative_points, self.penalty = negative_points, penalty
        # Terms: one per (engagement rule, asset label), summed as the engine sums them.
        self.bases: list[float] = []
        self.rates: list[float] = []
        self.ages: list[list[int]] = []
        self.fixed: list[float] = []
        # Engagement rules with counted signals, in the engine's order: cap group (-1: none), terms.
        self.groups: list[int] = []
        self.bounds: list[int] = [0]
        #: Whether a term rises with time (negative points that decay); else the score only falls.
        self.rising = False

    def add_rule(self, rule: EngagementRule, group: int, records: list[tuple[int, str]], delta: int,
                 lifespan_end: int, instants: list[tuple[int, str]]) -> None:
        """Add an engagement rule's signals (age at ``as_of``, label), with its lifespan and limit
        applied as the engine does ``delta`` microseconds after ``as_of``; add to ``instants`` when
        each counted signal outlives the lifespan (``lifespan_end``: that age, -1: no lifespan)."""
        lifespan = rule.lifespan
        if len(records) == 1:  # the usual case: nothing to sort or limit
            if (records[0][0] + delta) / MICRO >= lifespan:
                return
            kept = records
        else:
            records.sort()
            ages = [(age + delta) / MICRO for age, _ in records]
            indices = [i for i in range(len(records)) if ages[i] < lifespan]
            if rule.limit_count and len(indices) > rule.limit_count:
                chosen: list[int] = []
                start, window, limit = 0, rule.limit_window, rule.limit_count
                for i in indices:
                    while start < len(chosen) and ages[i] - ages[chosen[start]] >= window:
                        start += 1
                    if len(chosen) - start < limit:
                        chosen.append(i)
                indices = chosen
            if not indices:
                return
            kept = [records[i] for i in indices]
        labels: dict[str, int] = {}
        for age, label in kept:
            if lifespan_end >= 0:
                instants.append((lifespan_end - age, f"engagement {rule.id} ends"))
            term = labels.get(label, -1)
            if term < 0:
                labels[label] = len(self.bases)
                self.bases.append(rule.points)
                self.rates.append(rule.negative_rate)
                self.ages.append([age])
                self.fixed.append(0.0)
                if rule.points < 0 and rule.negative_rate:
                    self.rising = True
            else:
                self.ages[term].append(age)
        for term in labels.values():
            if not self.rates[term]:
                self.fixed[term] = round1(self.raw(term, delta))
        self.groups.append(group)
        self.bounds.append(len(self.bases))

    def raw(self, term: int, delta: int) -> float:
        """Return a term's points before rounding, ``delta`` microseconds after ``as_of``."""
        base, rate = self.bases[term], self.rates[term]
        total = 0.0
        first = True
        for age in self.ages[term]:
            # The engine's ages are microseconds / 1e6 (timedelta.total_seconds), its points these.
            points = base * math.exp(rate * ((age + delta) / MICRO)) if rate else base
            if first:
                total, first = points, False
            else:
                total += points
        return total

    def value(self, term: int, delta: int) -> float:
        return round1(self.raw(term, delta)) if self.rates[term] else self.fixed[term]

    def values(self, delta: int) -> list[float]:
        values = list(self.fixed)
        for term in range(len(values)):
            if self.rates[term]:
                values[term] = round1(self.raw(term, delta))
        return values

    def score(self, values: list[float]) -> float:
        """Return the score for these term values: the engine's sums, caps, negatives and penalty."""
        total = 0.0
        groups = [0.0] * len(self.caps)
        for rule in range(len(self.groups)):
            points = 0.0
            for term in range(self.bounds[rule], self.bounds[rule + 1]):
                points += values[term]
            total += points
            group = self.groups[rule]
            if group >= 0:
                groups[group] += points
        for group in range(len(self.caps)):
            excess = round1(groups[group] - self.caps[group])
            if excess > 0:
                total -= excess
        excess = round1(total - self.compiled.total_cap)
        if excess > 0:
            total -= excess
        for points in self.negative_points:
            total += points
        if self.penalty > 0:
            total -= self.penalty
        return round1(self.fit + round1(total))

    def cell(self, score: float) -> int:
        """Return how many thresholds ``score`` reaches: the verdict depends on the score only through this."""
        count = 0
        for threshold in self.thresholds:
            if score >= threshold:
                count += 1
        return count

    def verdict(self, score: float) -> Verdict:
        """Return (band, disqualified, mql, priority) at this score, decided by the engine's own code."""
        compiled = self.compiled
        state = _State(self.lead_values, self.fired, self.hit_ages, self.hit_labels, score, self.grade)
        disqualified = False
        for rule in compiled.disqualify:
            if _first_holding(rule, state) is not None:
                disqualified = True
                break
        state.disqualified = disqualified
        band = _band(score, compiled, state, [])
        priority = _priority(compiled, state, [])
        mql = (not disqualified and band in compiled.mql_bands and self.grade in compiled.mql_grades
               and score >= compiled.mql_min_score)
        return band, disqualified, mql, priority

    def horizon(self, start: int) -> int:
        """Return an offset (at least ``start``) after which every term has decayed to 0."""
        horizon = start
        for term in range(len(self.bases)):
            rate = self.rates[term]
            if rate:
                raw = abs(self.raw(term, start))
                if raw >= 0.04:  # 0.04, not 0.05: it rounds to 0 whatever the last bits of the arithmetic
                    horizon = max(horizon, start + math.ceil(math.log(raw / 0.04) / -rate * MICRO) + 1)
        return horizon

    def search(self, start: int, stop: int, score: float, cell: int) -> tuple[int, float] | None:
        """Return (offset, score) of the first instant in (start, stop] whose score leaves ``cell``.

        ``score`` is the score at ``start``, in ``cell``. When every term falls, so does the score:
        Newton steps on it (the terms' decay, linearised, which never overshoots a sum of decaying
        exponentials) reach past the exit, and ``first_exit`` pins it down between the last two.
        """
        values = self.values(start)
        if self.rising:
            high = self.values(stop)
            return self.first_exit(start, stop, values, high, self.score(high), cell)
        if cell == 0:
            return None  # nothing below to fall to
        floor = self.thresholds[cell - 1]
        boost = 1.0
        while True:
            speed = 0.0  # points per second
            for term in range(len(values)):
                speed -= values[term] * self.rates[term]
            probe = stop
            if speed > 0:
                probe = min(stop, start + max(1, math.ceil((score - floor + 0.05) / speed * boost * MICRO)))
            after = self.values(probe)
            probe_score = self.score(after)
            if self.cell(probe_score) != cell:
                return self.first_exit(start, probe, values, after, probe_score, cell)
            if probe == stop:
                return None
            boost = boost * 2 if probe_score == score else 1.0  # a cap holds the score: look further
            start, values, score = probe, after, probe_score

    def first_exit(self, start: int, stop: int, low: list[float], high: list[float], high_score: float,
                   cell: int) -> tuple[int, float] | None:
        """Return what ``search`` does, given the term values at ``start`` (``low``) and ``stop`` (``high``).

        Each term is monotone, so in between it lies between those two values, and the score between
        the scores of the terms' lower and upper ends: when both are in ``cell`` the score is too.
        """
        if self.rising:
            least = self.score([min(a, b) for a, b in zip(low, high, strict=True)])
            most = self.score([max(a, b) for a, b in zip(low, high, strict=True)])
            if self.cell(least) == cell and self.cell(most) == cell:
                return None
        elif self.cell(high_score) == cell:  # falling terms only: the least is at stop
            return None
        steps = 0
        for a, b in zip(low, high, strict=True):
            steps += round(abs(a - b) * 10)
        if steps <= WALK_STEPS or stop - start <= 1:
            return self.walk(start, stop, low, high, cell)
        middle = (start + stop) // 2
        values = self.values(middle)
        middle_score = self.score(values)
        found = self.first_exit(start, middle, low, values, middle_score, cell)
        return found if found is not None else self.first_exit(middle, stop, values, high, high_score, cell)

    def walk(self, start: int, stop: int, low: list[float], high: list[float], cell: int) -> tuple[int, float] | None:
        """Take the term steps in (start, stop] in order; return the first that leaves ``cell``."""
        values = list(low)
        due = [self.step(term, start, stop, values[term]) if values[term] != high[term] else -1
               for term in range(len(values))]
        while True:
            at = min((instant for instant in due if instant >= 0), default=-1)
            if at < 0:
                return None
            for term in range(len(values)):
                if due[term] == at:
                    values[term] = self.value(term, at)
                    due[term] = self.step(term, at, stop, values[term]) if values[term] != high[term] else -1
            score = self.score(values)
            if self.cell(score) != cell:
                return at, score

    def step(self, term: int, start: int, stop: int, value: float) -> int:
        """Return the first offset in (start, stop] where the term is no longer ``value`` (as at ``start``;
        at ``stop`` it is not).

        In closed form, ``y(start) * exp(-rate * t)`` meets the rounding boundary next to ``value`` at
        ``t = ln(y(start) / boundary) / rate``; the engine's arithmetic then confirms the microsecond
        (searching outwards from there, then halving, should its last bits disagree).
        """
        raw = self.raw(term, start)
        boundary = value - 0.05 if raw > 0 else value + 0.05
        guess = start + 1
        if raw / boundary > 0:
            guess = start + math.ceil(math.log(raw / boundary) / -self.rates[term] * MICRO)
        guess = min(max(guess, start + 1), stop)
        low, high = start, stop  # the term is still ``value`` at low, not at high
        width = 1
        if self.value(term, guess) != value:
            high = guess
            while high - width > low and self.value(term, high - width) != value:
                high -= width
                width *= 2
            low = max(low, high - width)
        else:
            low = guess
            while low + width < high and self.value(term, low + width) == value:
                low += width
                width *= 2
            high = min(high, low + width)
        while high - low > 1:
            middle = (low + high) // 2
            if self.value(term, middle) != value:
                high = middle
            else:
                low = middle
        return high

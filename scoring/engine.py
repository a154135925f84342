"""Score one lead: fit, engagement, negative signals, bands, overrides, MQL, reasons.

Pure: the result depends only on the profile, the signals, the rules and ``as_of``; nothing
here reads the clock, a file or the network. The rules were prepared at load
(``scoring.prepared``), so this module only walks signals and adds numbers.

Speed (``bench/scoring.py``): leads share most values (titles, domains, pages, reason texts),
so test results, routes and finished ``Reason`` objects are kept on the prepared rules and
reused; what stays per lead is walking its signals, the decay arithmetic and the sorting.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from scoring.model import LeadProfile, ScoreResult, Signal

from .checks import PHONE_INVALID, PHONE_VALID, looks_gibberish, phone_status
from .fields import condition_values, is_present, split_email, website_domain
from .prepared import (
    BAND_RANK,
    Condition,
    ConditionRule,
    Draft,
    EngagementRule,
    PreparedRules,
    draft,
    remember,
)
from .wording import build_summary, describe_age, fill_asset, format_points

if TYPE_CHECKING:  # the rules module imports scoring.native, which imports this module
    from scoring.rules import Rules

PENALTY_RULE = "recycle_penalty"

#: ``tuple.__new__(Record, values)`` is what ``NamedTuple._make`` does, minus its Python frame.
_record = tuple.__new__
_INF = math.inf


def score_lead(profile: LeadProfile, signals: Iterable[Signal], rules: Rules, as_of: datetime, *,
               penalty: float = 0, penalty_reason: str = "") -> ScoreResult:
    """Return the ``ScoreResult`` of a lead with these signals under ``rules`` at ``as_of``.

    Signals after ``as_of`` are ignored, signals repeating an earlier (kind, key) count once.
    ``penalty`` points (e.g. after a recycle) come off the engagement points like a negative
    signal, with a ``recycle_penalty`` reason worded ``−10 {penalty_reason}``.
    Raises ValueError if ``as_of`` is naive or ``penalty`` is negative or not finite.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    if not 0 <= penalty < _INF:
        raise ValueError(f"penalty must be a finite number of points >= 0, not {penalty!r}")
    # The compiled twin (scoring.native) gets its own PreparedRules, from its own prepare_rules.
    compiled: PreparedRules = rules.prepared  # type: ignore[assignment]
    values, local, domain = _lead_values(profile.fields)
    drafts: list[Draft] = []
    fit_points = _fit(values, compiled, drafts)
    fired = _profile_negatives(values, local, domain, compiled)
    hits, hit_labels, negative_hits, engagement_points = _engagement(signals, as_of, compiled, drafts)
    for kind, age in negative_hits.items():
        fired[kind] = describe_age(age)
    negatives = compiled.negatives
    for name, detail in fired.items():
        negative = negatives[name]
        if negative.points:
            found = negative.reasons.get(detail)
            if found is None:
                words = negative.text.replace("{detail}", detail)
                signed = format_points(negative.points)
                found = remember(negative.reasons, detail, draft(
                    1, -abs(negative.points), 3, name, f"{signed} {words}", negative.points,
                    f"{signed} {words.split(' (')[0]}", "negative"))
            drafts.append(found)
            if negative.basis == "fit":
                fit_points += negative.points
            else:
                engagement_points += negative.points
    if penalty > 0:
        engagement_points -= penalty
        drafts.append(_penalty_reason(penalty, penalty_reason))
    fit_points, engagement_points = round1(fit_points), round1(engagement_points)
    score = round1(fit_points + engagement_points)
    grade = "D"
    for threshold, name in compiled.grades:
        if fit_points >= threshold:
            grade = name
            break
    state = _State(values, fired, hits, hit_labels, score, grade)

    disqualify_reason = disqualified_by = None
    for rule in compiled.disqualify:
        condition = _first_holding(rule, state)
        if condition is not None:
            disqualify_reason, disqualified_by = rule.text, rule.id
            _override(drafts, rule, "disqualified", condition, state)
            break
    state.disqualified = disqualified = disqualify_reason is not None
    band = _band(score, compiled, state, drafts)
    priority = _priority(compiled, state, drafts)
    mql = (not disqualified and band in compiled.mql_bands and grade in compiled.mql_grades
           and score >= compiled.mql_min_score)

    drafts.sort()
    head = f"{band} {score:g}, grade {grade}" + (", MQL" if mql else "")
    if disqualified:
        head += f", disqualified: {disqualify_reason}"
    # The fields in ScoreResult's order (a NamedTuple built in one step).
    return _record(ScoreResult, (
        fit_points, engagement_points, score, grade, band, mql, disqualified, disqualify_reason, priority,
        compiled.playbooks[band], tuple([d[8] for d in drafts]),
        build_summary(head, [d[6] for d in drafts if d[3] != disqualified_by]), rules.version, as_of))


class _State:
    """What conditions look at once points are known."""

    __slots__ = ("values", "fired", "hits", "hit_labels", "score", "grade", "disqualified")

    def __init__(self, values: Mapping[str, Any], fired: Mapping[str, str], hits: list[float],
                 hit_labels: list[str], score: float, grade: str):
        self.values, self.fired, self.hits, self.hit_labels = values, fired, hits, hit_labels
        self.score, self.grade, self.disqualified = score, grade, False


def round1(x: float) -> float:
    """Return ``round(x, 1)``, skipping its exact decimal conversion when the answer is clear.

    ``round`` converts through a correctly rounded decimal string (slow). Unless ``10 * x`` lies
    within 1e-7 of a half, rounding it to a whole number and dividing by ten gives the same float
    (the quotient is correctly rounded, like the string's conversion back); near halves and for
    large or non-finite ``x`` this asks ``round``. The sign of a zero result is kept, as ``round`` does.
    """
    if -1e6 < x < 1e6:
        tenths = x * 10.0
        whole = math.floor(tenths)
        fraction = tenths - whole
        if fraction < 0.4999999:
            return math.copysign(whole / 10.0, x) if whole == 0 else whole / 10.0
        if fraction > 0.5000001:
            return math.copysign(0.0, x) if whole == -1 else (whole + 1) / 10.0
    return round(x, 1)


def _penalty_reason(penalty: float, penalty_reason: str) -> Draft:
    signed = format_points(-penalty)
    words = penalty_reason or "recycle penalty"
    return draft(1, -penalty, 3, PENALTY_RULE, f"{signed} {words}", -penalty,
                  f"{signed} {words.split(' (')[0]}", "negative")


def _lead_values(fields: Mapping[str, Any]) -> tuple[dict[str, Any], str, str]:
    """The values rules test (``fields.condition_values``) and the email's two parts."""
    values = condition_values(fields)
    local, domain = split_email(values.get("email"))
    return values, local, domain


def _fit(values: Mapping[str, Any], compiled: PreparedRules, drafts: list[Draft]) -> float:
    total = 0.0
    for rule in compiled.fit:
        value = values.get(rule.field)
        if value.__class__ is str:  # only exact str: 1, 1.0 and True are equal keys but test differently
            holds = rule.results.get(value)
            if holds is None:
                holds = remember(rule.results, value, rule.test(value))
        else:
            holds = rule.test(value)
        if not holds:
            continue
        total += rule.points
        found = rule.fixed
        if found is None:
            found = rule.reasons.get(value) if value.__class__ is str else None
            if found is None:
                points = rule.points
                words = f"{format_points(points)} {rule.field.replace('_', ' ') + ': ' + str(value).strip()}"
                found = draft(1, -abs(points), 1, rule.id, words, points, words, "fit")
                if value.__class__ is str:
                    remember(rule.reasons, value, found)
        drafts.append(found)
    return total


def _profile_negatives(values: Mapping[str, Any], local: str, domain: str,
                       compiled: PreparedRules) -> dict[str, str]:
    negatives = compiled.negatives
    fired: dict[str, str] = {}
    if domain:
        for name in compiled.domain_flags(domain):
            if name in negatives:
                fired[name] = domain
    if "competitor" in negatives and "competitor" not in fired:
        site = website_domain(values.get("website"))
        if site and "competitor" in compiled.domain_flags(site):
            fired["competitor"] = site
    if "student" in negatives and "student" not in fired and compiled.student_title is not None:
        title = values.get("job_title")
        if isinstance(title, str):
            student = compiled.student_titles.get(title)
            if student is None:
                student = remember(compiled.student_titles, title,
                                   compiled.student_title.search(title) is not None)
            if student:
                fired["student"] = f'job title "{title.strip()}"'
    if "gibberish" in negatives and local and looks_gibberish(local):
        fired["gibberish"] = local + "@"
    if "missing_phone" in negatives or "invalid_phone" in negatives:
        numbers = [str(n) for n in (values.get("phone"), values.get("mobile_phone")) if is_present(n)]
        if not numbers:
            if "missing_phone" in negatives:
                fired["missing_phone"] = ""
        elif "invalid_phone" in negatives:
            country = values.get("country")
            region = country if isinstance(country, str) and len(country) == 2 else compiled.default_region
            statuses = [phone_status(number, region) for number in numbers]
            if PHONE_VALID not in statuses and PHONE_INVALID in statuses:
                fired["invalid_phone"] = numbers[0] + (f", {region}" if region else "")
    return fired


def _engagement(signals: Iterable[Signal], as_of: datetime, compiled: PreparedRules,
                drafts: list[Draft]) -> tuple[list[float], list[str], dict[str, float], float]:
    """Walk the signals once; return condition hit ages and labels, bounce/unsubscribe ages, points."""
    router = compiled.router
    by_asset, by_url, route = router.by_asset, router.by_url, router.route
    windows = compiled.signal_windows
    hits = [_INF] * len(windows)
    hit_labels = [""] * len(windows)
    negative_hits: dict[str, float] = {}
    engagement = compiled.engagement
    # Per engagement rule, the (age, label) of each signal it counts (None: none yet).
    matched: list[list[tuple[float, str]] | None] = [None] * len(engagement)
    seen: set[tuple[str, str]] = set()
    for signal in signals:
        kind = signal.kind
        # Callers pass dicts; typed as one, the compiled twin looks keys up directly.
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
            if known is not None and where in known:  # known to feed nothing
                continue
            found = route(kind, asset_id, url)
            if found is None:
                continue
        delta = as_of - signal.occurred_at
        # ``total_seconds()`` goes through Python ints; whole seconds (the usual case) are exact as a float.
        age = float(delta.days * 86400 + delta.seconds) if not delta.microseconds else delta.total_seconds()
        if age < 0:
            continue
        event_key = signal.key
        if event_key:
            dedupe = (kind, event_key)
            if dedupe in seen:
                continue
            seen.add(dedupe)
        plain, checked, condition_targets, negative_targets, label, condition_label = found
        record = (age, label)
        if checked:  # rules that also check properties (rare): add those this signal passes
            plain = plain + tuple(index for index, checker in checked if checker.matches_properties(properties))
        for index in plain:
            records = matched[index]
            if records is None:
                matched[index] = [record]
            else:
                records.append(record)
        if condition_targets:
            for index, matcher in condition_targets:
                if matcher is not None and not matcher.matches_properties(properties):
                    continue
                if age <= windows[index] and age < hits[index]:
                    hits[index] = age
                    hit_labels[index] = condition_label
        if negative_targets:
            for name, matcher in negative_targets:
                if matcher is not None and not matcher.matches_properties(properties):
                    continue
                if age < negative_hits.get(name, _INF):
                    negative_hits[name] = age
    total = 0.0
    group_totals: dict[str, float] = {}
    for rule, records in zip(engagement, matched, strict=True):
        if records is None:
            continue
        if len(records) == 1:
            age, label = records[0]
            if age >= rule.lifespan:
                continue
            rate = rule.negative_rate
            points = round1(rule.points * math.exp(rate * age) if rate else rule.points)
            if not points:
                continue
            # The age text of reasons older than two days is "N days ago": N stands in for it.
            key = (label, points, 1, int(age // 86400.0) if age >= 172800 else describe_age(age), 0)
            reason = rule.reasons.get(key)
            if reason is None:
                reason = _engagement_reason(rule, key, age)
            drafts.append(reason)
        else:
            points = _rule_points(rule, records, drafts)
        total += points
        if rule.group is not None:
            group_totals[rule.group] = group_totals.get(rule.group, 0.0) + points
    if not group_totals and total <= compiled.total_cap:
        return hits, hit_labels, negative_hits, total
    for group, cap in compiled.group_caps.items():
        excess = round1(group_totals.get(group, 0.0) - cap)
        if excess > 0:
            total -= excess
            text = f"{format_points(-excess)} {group} activity counts at most {cap:g}"
            drafts.append(draft(1, -excess, 2, f"engagement_caps.groups.{group}", text, -excess, text, "engagement"))
    excess = round1(total - compiled.total_cap)
    if excess > 0:
        total -= excess
        text = f"{format_points(-excess)} activity counts at most {compiled.total_cap:g} in all"
        drafts.append(draft(1, -excess, 2, "engagement_caps.total", text, -excess, text, "engagement"))
    return hits, hit_labels, negative_hits, total


def _rule_points(rule: EngagementRule, records: list[tuple[float, str]], drafts: list[Draft]) -> float:
    """Add the reasons of one engagement rule; return its points after decay and limit."""
    if len(records) > 1:
        records.sort()  # newest first: with a limit, the recent signals are the ones that count
    if records[-1][0] >= rule.lifespan:
        records = [r for r in records if r[0] < rule.lifespan]
        if not records:
            return 0.0
    dropped = 0
    if rule.limit_count and len(records) > rule.limit_count:
        kept: list[tuple[float, str]] = []
        start, window, limit = 0, rule.limit_window, rule.limit_count
        for record in records:
            while start < len(kept) and record[0] - kept[start][0] >= window:
                start += 1
            if len(kept) - start < limit:
                kept.append(record)
        dropped, records = len(records) - len(kept), kept
    # ``-rate * age`` is ``(-rate) * age``, so the negated rate gives bit-identical points.
    rate, base, cache = rule.negative_rate, rule.points, rule.reasons
    if len(records) == 1:
        age, label = records[0]
        points = round1(base * math.exp(rate * age) if rate else base)
        if not points:
            return 0.0
        # The age text of reasons older than two days is "N days ago": N stands in for it.
        key = (label, points, 1, int(age // 86400.0) if age >= 172800 else describe_age(age), dropped)
        found = cache.get(key)
        if found is None:
            found = _engagement_reason(rule, key, age)
        drafts.append(found)
        return points
    by_label: dict[str, list[Any]] = {}
    for age, label in records:
        points = base * math.exp(rate * age) if rate else base
        entry = by_label.get(label)
        if entry is None:
            by_label[label] = [points, 1, age]
        else:
            entry[0] += points
            entry[1] += 1
    total = 0.0
    for label, (points, count, newest) in by_label.items():
        points = round1(points)
        if not points:
            continue
        total += points
        key = (label, points, count, int(newest // 86400.0) if newest >= 172800 else describe_age(newest), dropped)
        found = cache.get(key)
        if found is None:
            found = _engagement_reason(rule, key, newest)
        drafts.append(found)
        dropped = 0
    return total


def _engagement_reason(rule: EngagementRule, key: tuple[str, float, int, int | str, int], newest: float) -> Draft:
    """Build, keep and return the reason of ``key``: (label, points, count, age, not counted)."""
    label, points, count, _, dropped = key
    words = rule.words.get(label) or rule.words.setdefault(label, fill_asset(rule.text, label or rule.fallback_object))
    age = describe_age(newest)
    when = age if count == 1 else f"{count}×, last {age}"
    if dropped:
        when += f", {dropped} more not counted: {rule.limit_note}"
    short = f"{format_points(points)} {words}"
    return remember(rule.reasons, key, draft(
        1, -abs(points), 2, rule.id, f"{short} ({when}{rule.decay_note})", points, short, "engagement"))


def _holds(condition: Condition, state: _State) -> bool:
    subject = condition.subject
    if subject == "signal":
        return state.hits[condition.signal_index] != _INF
    if subject == "field":
        return condition.test(state.values.get(condition.field))  # type: ignore[misc]
    if subject == "negative":
        return condition.negative in state.fired
    if subject == "score_below":
        return state.score < condition.threshold
    if subject == "grade":
        return state.grade in condition.grades
    return state.disqualified == condition.disqualified


def _first_holding(rule: ConditionRule, state: _State) -> Condition | None:
    for condition in rule.conditions:
        if _holds(condition, state):
            return condition
    return None


def _override(drafts: list[Draft], rule: ConditionRule, prefix: str, condition: Condition,
              state: _State) -> None:
    """Add a 0-point reason: ``prefix: rule text (what held, when)``."""
    asset = age = ""
    if condition.subject == "signal":
        index = condition.signal_index
        asset, age = state.hit_labels[index], describe_age(state.hits[index])
    key = (prefix, condition.subject, condition.label, asset, age)
    found = rule.reasons.get(key)
    if found is None:
        short = f"{prefix}: {rule.text or condition.label}"
        details = [condition.label] if rule.text else []
        if condition.subject == "signal":
            if asset and details:
                details[0] = asset
            details.append(age)
        full = f"{short} ({', '.join(details)})" if details else short
        found = remember(rule.reasons, key, draft(0, 0.0, 0, rule.id, full, 0.0, short, "override"))
    drafts.append(found)


def _band(score: float, compiled: PreparedRules, state: _State, drafts: list[Draft]) -> str:
    band = "cold"
    for threshold, name in compiled.bands:
        if score >= threshold:
            band = name
            break
    forced: tuple[int, ConditionRule, Condition] | None = None
    for rule in compiled.overrides:
        if rule.force is None and (state.disqualified and rule.unless_disqualified):
            continue
        condition = _first_holding(rule, state)
        if condition is None:
            continue
        if rule.force is not None:
            rank = BAND_RANK[rule.force]
            if forced is None or rank < forced[0]:
                forced = (rank, rule, condition)
        elif BAND_RANK[rule.at_least] > BAND_RANK[band]:  # type: ignore[index]
            band = rule.at_least  # type: ignore[assignment]
            _override(drafts, rule, f"raised to {band}", condition, state)
    if forced is not None:
        _, rule, condition = forced
        band = rule.force  # type: ignore[assignment]
        _override(drafts, rule, f"forced {band}", condition, state)
    return band


def _priority(compiled: PreparedRules, state: _State, drafts: list[Draft]) -> str:
    for level in ("high", "low"):
        for rule in compiled.priority:
            if rule.priority != level:
                continue
            condition = _first_holding(rule, state)
            if condition is not None:
                _override(drafts, rule, f"{level} priority", condition, state)
                return level
    return "normal"

"""Score one lead: fit, engagement, negative signals, bands, overrides, MQL, reasons.

Pure: the result depends only on the profile, the signals, the rules and ``as_of``; nothing
here reads the clock, a file or the network. The rules were compiled at load
(``scoring.compiled``), so this module only walks signals and adds numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from scoring.checks import PHONE_INVALID, PHONE_VALID, looks_gibberish, phone_status
from scoring.compiled import BAND_RANK, CompiledRules, Condition, ConditionRule, EngagementRule
from scoring.fields import country_code, is_present, split_email, website_domain
from scoring.matchers import TARGET_CONDITION, TARGET_RULE
from scoring.model import LeadProfile, Reason, ScoreResult, Signal
from scoring.rules import Rules
from scoring.wording import (
    build_summary,
    describe_age,
    fill_asset,
    format_points,
)

# A reason while scoring, laid out so that plain tuple sorting puts overrides first, then the
# largest absolute points: (0 override / 1 other, -|points|, kind rank, rule id, full text,
# points, short text for the summary, kind).
_Draft = tuple[int, float, int, str, str, float, str, str]


def score_lead(profile: LeadProfile, signals: Iterable[Signal], rules: Rules, as_of: datetime) -> ScoreResult:
    """Return the ``ScoreResult`` of a lead with these signals under ``rules`` at ``as_of``.

    Signals after ``as_of`` are ignored, signals repeating an earlier (kind, key) count once.
    Raises ValueError if ``as_of`` is naive.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    compiled = rules.compiled
    values, local, domain = _lead_values(profile.fields)
    drafts: list[_Draft] = []
    fit_points = _fit(values, compiled, drafts)
    fired = _profile_negatives(values, local, domain, compiled)
    (hits, hit_labels), negative_hits, engagement_points = _engagement(signals, as_of, compiled, drafts)
    for kind, age in negative_hits.items():
        fired[kind] = describe_age(age)
    for name, detail in fired.items():
        rule = compiled.negatives[name]
        if rule.points:
            words = rule.text.replace("{detail}", detail)
            signed = format_points(rule.points)
            drafts.append((1, -abs(rule.points), 3, name, f"{signed} {words}", rule.points,
                           f"{signed} {words.split(' (')[0]}", "negative"))
            if rule.basis == "fit":
                fit_points += rule.points
            else:
                engagement_points += rule.points
    fit_points, engagement_points = round(fit_points, 1), round(engagement_points, 1)
    score = round(fit_points + engagement_points, 1)
    grade = next((g for threshold, g in compiled.grades if fit_points >= threshold), "D")
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
    return ScoreResult(
        fit_points=fit_points, engagement_points=engagement_points, score=score, grade=grade,
        band=band, mql=mql, disqualified=disqualified, disqualify_reason=disqualify_reason,
        priority=priority, playbook=compiled.playbooks[band],
        reasons=tuple([Reason(float(d[5]), d[4], d[3], d[7]) for d in drafts]),
        summary=build_summary(head, [d[6] for d in drafts if d[3] != disqualified_by]),
        rules_version=rules.version, as_of=as_of,
    )


class _State:
    """What conditions look at once points are known."""

    __slots__ = ("values", "fired", "hits", "hit_labels", "score", "grade", "disqualified")

    def __init__(self, values: Mapping[str, Any], fired: Mapping[str, str], hits: list[float],
                 hit_labels: list[str], score: float, grade: str):
        self.values, self.fired, self.hits, self.hit_labels = values, fired, hits, hit_labels
        self.score, self.grade, self.disqualified = score, grade, False


def _lead_values(fields: Mapping[str, Any]) -> tuple[dict[str, Any], str, str]:
    values = dict(fields)
    country = values.get("country")
    if isinstance(country, str) and country.strip():
        values["country"] = country_code(country) or country.strip()
    local, domain = split_email(values.get("email"))
    values.setdefault("email_domain", domain or None)
    return values, local, domain


def _fit(values: Mapping[str, Any], compiled: CompiledRules, drafts: list[_Draft]) -> float:
    total = 0.0
    for rule_id, field, points, test, text in compiled.fit:
        value = values.get(field)
        if test(value):
            total += points
            words = f"{format_points(points)} {text or field.replace('_', ' ') + ': ' + str(value).strip()}"
            drafts.append((1, -abs(points), 1, rule_id, words, points, words, "fit"))
    return total


def _profile_negatives(values: Mapping[str, Any], local: str, domain: str,
                       compiled: CompiledRules) -> dict[str, str]:
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
        if isinstance(title, str) and compiled.student_title.search(title):
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


def _engagement(signals: Iterable[Signal], as_of: datetime, compiled: CompiledRules,
                drafts: list[_Draft]) -> tuple[tuple[list[float], list[str]], dict[str, float], float]:
    """Walk the signals once; return condition hit ages, bounce/unsubscribe ages, points."""
    router = compiled.router
    routes, route = router.cache, router.route
    windows = compiled.signal_windows
    hits = [math.inf] * len(windows)
    hit_labels = [""] * len(windows)
    negative_hits: dict[str, float] = {}
    matched: dict[int, list[tuple[float, str]]] = {}
    seen: set[tuple[str, str]] = set()
    for signal in signals:
        kind = signal.kind
        properties = signal.properties
        asset_id = properties.get("asset")
        url = properties.get("url") if asset_id is None else None
        found = routes.get((kind, asset_id, url)) or route(kind, asset_id, url)
        targets, asset = found
        if not targets:
            continue
        age = (as_of - signal.occurred_at).total_seconds()
        if age < 0:
            continue
        if signal.key:
            dedupe = (kind, signal.key)
            if dedupe in seen:
                continue
            seen.add(dedupe)
        for code, target, property_matcher in targets:
            if property_matcher is not None and not property_matcher.matches_properties(properties):
                continue
            if code == TARGET_RULE:
                label = asset.name if asset is not None else (asset_id if isinstance(asset_id, str) else "")
                records = matched.get(target)
                if records is None:
                    matched[target] = [(age, label)]
                else:
                    records.append((age, label))
            elif code == TARGET_CONDITION:
                if age <= windows[target] and age < hits[target]:
                    hits[target] = age
                    hit_labels[target] = asset.name if asset is not None else ""
            elif age < negative_hits.get(target, math.inf):
                negative_hits[target] = age
    group_totals: dict[str, float] = {}
    total = 0.0
    for index, records in sorted(matched.items()):
        rule = compiled.engagement[index]
        points = _rule_points(rule, records, drafts)
        total += points
        if rule.group is not None:
            group_totals[rule.group] = group_totals.get(rule.group, 0.0) + points
    for group, cap in compiled.group_caps.items():
        excess = round(group_totals.get(group, 0.0) - cap, 1)
        if excess > 0:
            total -= excess
            text = f"{format_points(-excess)} {group} activity counts at most {cap:g}"
            drafts.append((1, -excess, 2, f"engagement_caps.groups.{group}", text, -excess, text, "engagement"))
    excess = round(total - compiled.total_cap, 1)
    if excess > 0:
        total -= excess
        text = f"{format_points(-excess)} activity counts at most {compiled.total_cap:g} in all"
        drafts.append((1, -excess, 2, "engagement_caps.total", text, -excess, text, "engagement"))
    return (hits, hit_labels), negative_hits, total


def _rule_points(rule: EngagementRule, records: list[tuple[float, str]], drafts: list[_Draft]) -> float:
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
    rate, base = rule.decay_rate, rule.points
    if len(records) == 1:
        age, label = records[0]
        by_label = {label: [base * math.exp(-rate * age) if rate else base, 1, age]}
    else:
        by_label = {}
        for age, label in records:
            points = base * math.exp(-rate * age) if rate else base
            entry = by_label.get(label)
            if entry is None:
                by_label[label] = [points, 1, age]
            else:
                entry[0] += points
                entry[1] += 1
    total = 0.0
    for label, (points, count, newest) in by_label.items():
        points = round(points, 1)
        if not points:
            continue
        total += points
        words = rule.words.get(label) or rule.words.setdefault(
            label, fill_asset(rule.text, label or rule.fallback_object))
        when = describe_age(newest) if count == 1 else f"{count}×, last {describe_age(newest)}"
        if dropped:
            when += f", {dropped} more not counted: {rule.limit_note}"
            dropped = 0
        short = f"{format_points(points)} {words}"
        drafts.append((1, -abs(points), 2, rule.id, f"{short} ({when}{rule.decay_note})", points, short,
                       "engagement"))
    return total


def _holds(condition: Condition, state: _State) -> bool:
    subject = condition.subject
    if subject == "signal":
        return state.hits[condition.signal_index] != math.inf
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


def _override(drafts: list[_Draft], rule: ConditionRule, prefix: str, condition: Condition,
              state: _State) -> None:
    """Add a 0-point reason: ``prefix: rule text (what held, when)``."""
    short = f"{prefix}: {rule.text or condition.label}"
    details = [condition.label] if rule.text else []
    if condition.subject == "signal":
        index = condition.signal_index
        if state.hit_labels[index] and details:
            details[0] = state.hit_labels[index]
        details.append(describe_age(state.hits[index]))
    full = f"{short} ({', '.join(details)})" if details else short
    drafts.append((0, 0.0, 0, rule.id, full, 0.0, short, "override"))


def _band(score: float, compiled: CompiledRules, state: _State, drafts: list[_Draft]) -> str:
    band = next((b for threshold, b in compiled.bands if score >= threshold), "cold")
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


def _priority(compiled: CompiledRules, state: _State, drafts: list[_Draft]) -> str:
    for level in ("high", "low"):
        for rule in compiled.priority:
            if rule.priority != level:
                continue
            condition = _first_holding(rule, state)
            if condition is not None:
                _override(drafts, rule, f"{level} priority", condition, state)
                return level
    return "normal"

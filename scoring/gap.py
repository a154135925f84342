"""What would change a verdict: the fewest new activities that would make a lead an MQL.

``leadloop explain`` says "14 points short of MQL: +10 viewed Pricing page, +20 requested a
demo". Pure, like the engine: each engagement rule of the file that does not count for the lead
yet is tried as one fresh activity at ``as_of`` (a signal the rule itself describes: its kind,
an asset it names or one of its intent or tag, a page of its urls, its property values), scored
with ``score_lead`` together with the lead's own signals, so caps, overrides and the MQL
definition decide exactly as they would. Sets of one, then two, then three such activities are
tried; the first size that reaches MQL wins, and within it the fewest points.

    gap = mql_gap(profile, signals, rules, as_of)
    gap.short   # 14.0 (points below the MQL threshold; 0 for an MQL)
    gap.steps   # (Step(rule="view-hot-page", points=10.0, text="+10 viewed Pricing page"), ...)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from scoring.model import LeadProfile, ScoreResult, Signal
from scoring.wording import format_points

if TYPE_CHECKING:  # the rules module imports scoring.native, which imports the engine
    from scoring.rules import Rules

#: The most new activities a suggestion asks for.
MAX_STEPS = 3
#: The key of the activities tried (signals with the same kind and key count once).
PROBE_KEY = "what-would-change-it"


@dataclass(frozen=True, slots=True)
class Step:
    """One activity that would add points now: the engagement rule it feeds and its words."""

    rule: str
    #: How much the lead's score rises with this activity alone (caps included).
    points: float
    #: The rule's reason as the lead would get it: ``+10 viewed Pricing page``.
    text: str

    def to_dict(self) -> dict[str, Any]:
        """Return the step as a JSON-able dict."""
        return {"rule": self.rule, "points": self.points, "text": self.text}


@dataclass(frozen=True, slots=True)
class Gap:
    """How far a lead is from MQL, and the smallest set of activities that would close it."""

    mql: bool
    #: Points below the MQL threshold (``mql_threshold``); 0 when the score reaches it.
    short: float
    #: Fewest activities first, then fewest points; empty when none within ``MAX_STEPS`` does it.
    steps: tuple[Step, ...]
    #: Why no activity can make the lead an MQL (disqualified, a fit grade MQL does not take).
    blocker: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the gap as a JSON-able dict."""
        return {"mql": self.mql, "points_short": self.short, "steps": [s.to_dict() for s in self.steps],
                "blocker": self.blocker}

    def describe(self) -> str:
        """One line: ``14 points short of MQL: +10 viewed Pricing page, +20 requested a demo``."""
        if self.mql:
            return "an MQL"
        head = f"{self.short:g} points short of MQL" if self.short > 0 else "not an MQL"
        if self.blocker:
            return f"{head}; {self.blocker}"
        if not self.steps:
            return f"{head}; no {MAX_STEPS} new activities would make it one"
        return f"{head}: " + ", ".join(step.text for step in self.steps)


def mql_threshold(rules: Rules) -> float:
    """The lowest score that can be an MQL: the coldest MQL band's ``from`` (and ``mql.min_score``)."""
    bands, mql = rules.data["bands"], rules.data["mql"]
    lowest = min(float(bands[name].get("from", -math.inf)) for name in mql["bands"])
    return max(lowest, float(mql.get("min_score", -math.inf)))


def mql_gap(profile: LeadProfile, signals: Iterable[Signal], rules: Rules, as_of: datetime, *,
            penalty: float = 0) -> Gap:
    """Return how far the lead is from MQL at ``as_of`` and which new activities would close the gap."""
    from scoring import score_lead  # the compiled or the pure engine, as scoring.native chose

    own = list(signals)
    result = score_lead(profile, own, rules, as_of, penalty=penalty)
    short = max(0.0, round(mql_threshold(rules) - result.score, 1))
    if result.mql:
        return Gap(True, 0.0, ())
    blocker = _blocker(result, rules)
    if blocker:
        return Gap(False, short, (), blocker)
    fired = {reason.rule for reason in result.reasons}
    candidates: list[tuple[Step, Signal]] = []
    for rule in rules.data["engagement"]:
        if rule["points"] <= 0 or rule["id"] in fired:
            continue
        signal = probe_signal(rule, rules.data.get("assets") or {}, as_of)
        if signal is None:
            continue
        tried = score_lead(profile, [*own, signal], rules, as_of, penalty=penalty)
        reason = next((r for r in tried.reasons if r.rule == rule["id"]), None)
        gain = round(tried.score - result.score, 1)
        if reason is not None and (gain > 0 or tried.mql):
            words = reason.text.split(" (")[0]
            if gain != reason.points:  # the activity meets other rules too (or a cap takes some)
                words += f" ({format_points(gain)} in all)"
            candidates.append((Step(rule["id"], gain, words), signal))
    for size in range(1, MAX_STEPS + 1):
        found = []
        for combo in itertools.combinations(candidates, size):
            tried = score_lead(profile, [*own, *(signal for _, signal in combo)], rules, as_of, penalty=penalty)
            if tried.mql:
                found.append((sum(step.points for step, _ in combo), [step for step, _ in combo]))
        if found:
            _, steps = min(found, key=lambda item: (item[0], [s.rule for s in item[1]]))
            return Gap(False, short, tuple(sorted(steps, key=lambda s: (s.points, s.rule))))
    return Gap(False, short, ())


def _blocker(result: ScoreResult, rules: Rules) -> str | None:
    if result.disqualified:
        return f"disqualified ({result.disqualify_reason}): no activity makes it an MQL"
    grades = rules.data["mql"]["grades"]
    if result.grade not in grades:
        return (f"fit grade {result.grade}: MQL takes grades {', '.join(grades)}, "
                "and activity does not change fit")
    return None


def probe_signal(rule: Mapping[str, Any], assets: Mapping[str, Mapping[str, Any]], at: datetime) -> Signal | None:
    """A signal at ``at`` that the engagement ``rule`` counts, built from what the rule names; None
    if the rule names nothing a signal can carry (an asset of an intent or tag no asset has)."""
    properties: dict[str, Any] = {}
    wanted = rule.get("asset") or [name for name, asset in assets.items()
                                   if (not rule.get("intent") or asset.get("intent") in rule["intent"])
                                   and (not rule.get("tag") or set(asset.get("tags") or ()) & set(rule["tag"]))]
    if rule.get("asset") or rule.get("intent") or rule.get("tag"):
        if not wanted:
            return None
        properties["asset"] = sorted(wanted)[0]
    if rule.get("url"):
        properties["url"] = "https://example.invalid" + _path_of(rule["url"][0])
    for name, values in (rule.get("property") or {}).items():
        properties[name] = values[0] if isinstance(values, list) else values
    return Signal(kind=rule["kind"][0], occurred_at=at, properties=properties, key=f"{PROBE_KEY}:{rule['id']}")


def _path_of(pattern: str) -> str:
    path = pattern.replace("*", "x")
    return path if path.startswith("/") or "://" in path else "/" + path

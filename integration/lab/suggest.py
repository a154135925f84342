"""``leadloop rules suggest``: point values learned from the outcome history, as a rules file.

One row per lead whose outcome is known (won or not; accepted or not), taken at its decision
time: its first MQL under the live rules, else the time its outcome became known. Its
features, as of then (``integration.lab.history.Replay``): which of the live file's fit,
engagement and negative rules fired, and candidate rules: a categorical field's values with
enough support, a numeric field's quantile ranges, the assets it touched and how often it
showed each kind of activity. scikit-learn's regularised logistic regression is fitted on them; its
coefficients become whole points, scaled so the MQL threshold keeps its meaning (a lead reaches
it when it is at least as likely to reach the target as today's MQLs were), near-zero ones
dropped. The proposal is a rules file a person reads and edits (each rule with its support and
lift in a comment) that ``leadloop rules check`` accepts; nothing changes until a person makes
it the live file.

Stratified k-fold cross-validation reports, for the live rules and for the proposal, the AUC
and the precision at the MQL threshold (the proposal's score there is the sum of its whole
points over the row's features).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml
from sqlalchemy.orm import Session

from integration.lab.history import LeadHistory, Replay, stream_histories
from scoring import Rules, load_rules
from scoring.fields import condition_values
from scoring.gap import mql_threshold

#: Without this much history a fit says nothing: rows (leads with a known outcome), positives.
MIN_ROWS, MIN_POSITIVES = 200, 20
#: A field value or asset becomes a candidate rule when this many rows (and this share) have it.
MIN_SUPPORT, MIN_SHARE = 20, 0.01
#: Fields with more distinct text values are identifiers or free text, not categories.
MAX_CATEGORIES = 40
#: Quantile ranges per numeric field.
BINS = 4
#: Whole points smaller than this are dropped (the rule does not earn its place).
MIN_POINTS = 2
#: Learned points are kept within this (no single rule should decide alone).
MAX_POINTS = 100
#: An activity kind counts at most this many times (the proposed rule's ``limit``).
KIND_COUNT_CAP = 3
#: Inverse regularisation strength of the logistic regression.
REGULARISATION_C = 0.5
#: Fields that say who the person is or what sales did: never candidate rules.
NOT_FEATURES = frozenset({"email", "first_name", "last_name", "name", "phone", "mobile_phone", "company",
                          "website", "owner_id", "email_domain", "city", "state", "lead_status",
                          "lifecycle_stage", "do_not_contact"})


class NotEnoughHistory(Exception):
    """Too few leads with a known outcome; the message says how many more are needed."""


@dataclass
class Row:
    """One lead at its decision time."""

    ref: str
    label: int
    live_score: float
    live_mql: bool
    #: Live rules that fired (``rule:ID``) and the raw material of candidate features.
    fired: set[str]
    values: dict[str, Any]
    assets: Counter
    #: activity kind -> how many times it happened by the decision time
    kinds: Counter


@dataclass
class Candidate:
    """A feature that can become a rule: its id and what to write in the file."""

    id: str
    #: ``fit``, ``engagement`` or ``negative``: where it goes in the rules file.
    section: str
    rule: dict[str, Any]
    text: str


@dataclass
class Suggestion:
    """The proposal and how it compares with the live rules."""

    target: str
    rows: int
    positives: int
    folds: int
    live: dict[str, float | None]
    proposed: dict[str, float | None]
    points: dict[str, int]
    support: dict[str, tuple[int, float | None]]
    text: str
    out: str | None = None
    candidates: dict[str, Candidate] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: ``live``, ``proposed`` (``auc``, ``precision_at_mql``), ``folds``, ``rows``, ``out``."""
        return {"target": self.target, "rows": self.rows, "positives": self.positives, "folds": self.folds,
                "live": self.live, "proposed": self.proposed, "out": self.out,
                "points": [{"feature": key, "points": value, "support": self.support[key][0],
                            "lift": self.support[key][1]} for key, value in self.points.items()]}


# --- the rows ------------------------------------------------------------------------------------

def decision_rows(session: Session, live: Rules, target: str, now: datetime) -> list[Row]:
    """One row per lead with a known outcome for ``target``, as of its decision time."""
    rows = []
    for history in stream_histories(session):
        label = history.outcomes.known(target)
        if label is None:
            continue
        rows.append(_row(history, live, target, int(label), now))
    return rows


def _row(history: LeadHistory, live: Rules, target: str, label: int, now: datetime) -> Row:
    replay = Replay(history, live)
    decided = history.outcomes.decided_at(target) or now
    first = replay.first_mql(decided)
    state = first if first is not None else replay.at(decided)
    fired = {f"rule:{reason.rule}" for reason in state.result.reasons if reason.kind != "override" and reason.points}
    values = {name: value for name, value in condition_values(state.profile.fields).items()
              if name not in NOT_FEATURES and value not in (None, "")}
    assets: Counter = Counter()
    kinds: Counter = Counter()
    for event in history.events:
        if event.occurred_at > state.at:
            break
        if event.kind in live.activity_kinds:
            kinds[event.kind] += 1
            if event.properties.get("asset"):
                assets[(str(event.properties["asset"]), event.kind)] += 1
    return Row(history.ref, label, state.result.score, state.result.mql, fired, values, assets, kinds)


# --- candidate features --------------------------------------------------------------------------

def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            parsed = float(value.replace(",", "").strip())
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def _slug(text: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40] or "x"


def candidates(rows: list[Row], live: Rules) -> dict[str, Candidate]:
    """The features: live rules that fired for some row, and the candidate rules with enough support."""
    found: dict[str, Candidate] = {}
    sections = {f"rule:{rule['id']}": ("fit", rule) for rule in live.data["fit"]}
    sections |= {f"rule:{rule['id']}": ("engagement", rule) for rule in live.data["engagement"]}
    sections |= {f"rule:{name}": ("negative", {"name": name}) for name in live.data.get("negative") or {}}
    fired = Counter(key for row in rows for key in row.fired)
    for key in sorted(fired):
        section, rule = sections.get(key, ("other", {}))
        if section != "other":
            found[key] = Candidate(key, section, dict(rule), rule.get("text") or key[5:])
    needed = max(MIN_SUPPORT, math.ceil(MIN_SHARE * len(rows)))
    by_field: dict[str, Counter] = {}
    numbers: dict[str, list[float]] = {}
    for row in rows:
        for name, value in row.values.items():
            number = _number(value)
            if number is not None and not isinstance(value, str):
                numbers.setdefault(name, []).append(number)
            elif isinstance(value, str | bool) or number is not None:
                by_field.setdefault(name, Counter())[value if isinstance(value, bool) else str(value).strip()] += 1
    for name, counts in sorted(by_field.items()):
        if len(counts) > MAX_CATEGORIES:
            numeric = [_number(v) for v in counts.elements()]
            if all(n is not None for n in numeric):
                numbers.setdefault(name, []).extend(n for n in numeric if n is not None)
            continue
        for value, count in sorted(counts.items(), key=lambda item: (-item[1], str(item[0]))):
            if count < needed or count == len(rows):
                continue
            key = f"field:{name}={value}"
            words = f"{name.replace('_', ' ')} is {value}"
            found[key] = Candidate(key, "fit", {"id": f"{_slug(name)}-{_slug(value)}", "text": words,
                                                "field": name, "equals": value}, words)
    for name, values in sorted(numbers.items()):
        for low, high in _quantile_ranges(values):
            key = f"range:{name}:{low:g}:{'' if high is None else f'{high:g}'}"
            upper = "up" if high is None else _slug(f"{high:g}")
            rule: dict[str, Any] = {"id": f"{_slug(name)}-{_slug(f'{low:g}')}-{upper}", "field": name,
                                    "min": _plain(low)}
            if high is not None:
                rule["below"] = _plain(high)
            words = f"{name.replace('_', ' ')} {low:g} or more" + (f", below {high:g}" if high is not None else "")
            rule["text"] = words
            found[key] = Candidate(key, "fit", rule, words)
    asset_kinds: dict[str, Counter] = {}
    for row in rows:
        for (asset, kind), count in row.assets.items():
            asset_kinds.setdefault(asset, Counter())[kind] += count
    known_assets = live.data.get("assets") or {}
    for asset, kinds in sorted(asset_kinds.items()):
        kind = kinds.most_common(1)[0][0]
        key = f"asset:{asset}"
        name = (known_assets.get(asset) or {}).get("name", asset)
        found[key] = Candidate(key, "engagement", {"id": f"asset-{_slug(asset)}", "kind": kind,
                                                   "asset": asset, "decay": {"half_life": "30d"},
                                                   "text": f"{kind.replace('_', ' ')}: {name}"},
                               f"{kind.replace('_', ' ')}: {name}")
    for kind in sorted({kind for row in rows for kind in row.kinds}):
        key = f"kind:{kind}"
        words = f"each {kind.replace('_', ' ')} (at most {KIND_COUNT_CAP})"
        found[key] = Candidate(key, "engagement", {"id": f"each-{_slug(kind)}", "kind": kind,
                                                   "decay": {"half_life": "30d"}, "limit": {"count": KIND_COUNT_CAP},
                                                   "text": words}, words)
    return found


def _plain(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 4)


def _quantile_ranges(values: list[float]) -> list[tuple[float, float | None]]:
    """Quantile ranges ``[low, high)`` (the last open-ended) with distinct edges."""
    import numpy

    if len(set(values)) < 3:
        return []
    edges = sorted({float(e) for e in numpy.quantile(values, [i / BINS for i in range(1, BINS)])})
    lows = [min(values), *edges]
    ranges: list[tuple[float, float | None]] = []
    for index, low in enumerate(lows):
        high = lows[index + 1] if index + 1 < len(lows) else None
        if high is None or high > low:
            ranges.append((low, high))
    return ranges


def feature_matrix(rows: list[Row], found: Mapping[str, Candidate]) -> tuple[Any, list[str]]:
    """The matrix of ``rows`` by features: 1 when a rule fired or a field rule holds (tested by the
    engine itself, so exactly when the proposed rule would fire), for activity kinds how many times
    (at most ``KIND_COUNT_CAP``, as the proposed rule's limit counts them)."""
    import numpy

    from scoring import LeadProfile, score_lead

    keys = list(found)
    index = {key: i for i, key in enumerate(keys)}
    probe, probe_keys = _probe_rules(found)
    matrix = numpy.zeros((len(rows), len(keys)), dtype=numpy.float64)
    for r, row in enumerate(rows):
        names = set(row.fired) | {f"asset:{asset}" for asset, _ in row.assets}
        if probe is not None:
            result = score_lead(LeadProfile(row.values), [], probe, FIT_MOMENT)
            names |= {probe_keys[reason.rule] for reason in result.reasons if reason.rule in probe_keys}
        for name in names:
            if name in index:
                matrix[r, index[name]] = 1.0
        for kind, count in row.kinds.items():
            if f"kind:{kind}" in index:
                matrix[r, index[f"kind:{kind}"]] = min(count, KIND_COUNT_CAP)
    return matrix, keys


#: Fit rules need no clock; the engine still takes a time.
FIT_MOMENT = datetime(2000, 1, 1, tzinfo=UTC)


def _probe_rules(found: Mapping[str, Candidate]) -> tuple[Rules | None, dict[str, str]]:
    """A rules file whose fit rules are the candidate field rules (1 point each), and rule id -> feature."""
    fit, keys = [], {}
    for number, (key, candidate) in enumerate(found.items()):
        if candidate.section == "fit" and not key.startswith("rule:"):
            keys[f"probe-{number}"] = key
            fit.append({**{k: v for k, v in candidate.rule.items() if k not in ("id", "text")},
                        "id": f"probe-{number}", "points": 1})
    if not fit:
        return None, keys
    bands = {"cold": {"playbook": "nurture_only"}, "cool": {"from": 1000, "playbook": "nurture_only"},
             "warm": {"from": 1001, "playbook": "nurture_only"}, "hot": {"from": 1002, "playbook": "nurture_only"}}
    data = {"fit": fit, "grades": {"A": 1000, "B": 999, "C": 998}, "bands": bands, "mql": {"bands": ["hot"]}}
    return load_rules(yaml.safe_dump(data, allow_unicode=True), "<candidate field rules>"), keys


# --- fitting -------------------------------------------------------------------------------------

def _fit(matrix: Any, labels: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=REGULARISATION_C, max_iter=2000)
    model.fit(matrix, labels)
    return model


def whole_points(model: Any, keys: list[str], threshold: float, matrix: Any, live_mql: Any, offset: float = 0
                 ) -> dict[str, int]:
    """Coefficients as whole points, scaled so the MQL threshold keeps its meaning: it flags as many
    of the rows as the live rules made MQLs (the same sales effort), so what changes is which leads
    they are. Without live MQLs to match, a lead twice as likely as average to reach the target
    reaches it. ``offset``: the points every row gets anyway (live rules every lead meets, kept as
    they are)."""
    import numpy

    weights = numpy.asarray(model.coef_[0], dtype=float)
    share = float(numpy.mean(live_mql)) if len(live_mql) else 0.0
    linear = matrix @ weights
    scale = 0.0
    if 0 < share < 1:
        edge = float(numpy.quantile(linear, 1 - share))
        scale = (threshold - offset) / edge if edge > 0 else 0.0
    if scale <= 0:
        intercept = float(model.intercept_[0])
        base = float(numpy.mean(1 / (1 + numpy.exp(-(linear + intercept)))))
        wanted = _logit(min(0.95, 2 * base)) - intercept
        scale = (threshold - offset) / wanted if wanted > 0 and threshold > offset else 10.0
    points = {}
    for key, weight in zip(keys, weights, strict=True):
        value = int(round(max(-MAX_POINTS, min(MAX_POINTS, weight * scale))))
        if abs(value) >= MIN_POINTS:
            points[key] = value
    return points


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def suggest(session: Session, live: Rules, live_text: str, *, target: str, folds: int, now: datetime
            ) -> Suggestion:
    """Learn points from the history; return the proposal and its cross-validated comparison.

    Raises ``NotEnoughHistory`` when there are fewer than ``MIN_ROWS`` rows or ``MIN_POSITIVES``
    positives (or fewer of either class than ``folds``).
    """
    import numpy
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    rows = decision_rows(session, live, target, now)
    labels = numpy.array([row.label for row in rows])
    positives = int(labels.sum()) if len(rows) else 0
    _enough(len(rows), positives, target, folds)
    found = candidates(rows, live)
    matrix, keys = feature_matrix(rows, found)
    base_rate = positives / len(rows)
    support = {}
    for column, key in enumerate(keys):
        has = matrix[:, column] > 0
        count = int(has.sum())
        support[key] = (count, round(float(labels[has].mean()) / base_rate, 2) if count else None)
    # A feature every row has (or none) says nothing about the outcome: it stays out of the fit.
    varying = [column for column, key in enumerate(keys) if 0 < support[key][0] < len(rows)]
    # ... but the live rules every lead meets are kept as they are, so their points count for all.
    offset = sum(_live_points(found[key], live) for key in keys if support[key][0] == len(rows))
    matrix, keys = matrix[:, varying], [keys[column] for column in varying]
    threshold = mql_threshold(live)
    live_scores = numpy.array([row.live_score for row in rows])
    live_mql = numpy.array([row.live_mql for row in rows])
    results: dict[str, list[float]] = {"live_auc": [], "proposed_auc": []}
    flagged = {"live": [0, 0], "proposed": [0, 0]}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    for train, test in splitter.split(matrix, labels):
        model = _fit(matrix[train], labels[train])
        points = whole_points(model, keys, threshold, matrix[train], live_mql[train], offset)
        weights = numpy.array([points.get(key, 0) for key in keys], dtype=float)
        proposed = matrix[test] @ weights + offset
        results["live_auc"].append(roc_auc_score(labels[test], live_scores[test]))
        results["proposed_auc"].append(roc_auc_score(labels[test], proposed))
        for name, chosen in (("live", live_mql[test]), ("proposed", proposed >= threshold)):
            flagged[name][0] += int(chosen.sum())
            flagged[name][1] += int(labels[test][chosen].sum())
    model = _fit(matrix, labels)
    points = whole_points(model, keys, threshold, matrix, live_mql, offset)
    suggestion = Suggestion(
        target, len(rows), positives, folds,
        {"auc": round(float(numpy.mean(results["live_auc"])), 4), "precision_at_mql": _share(flagged["live"])},
        {"auc": round(float(numpy.mean(results["proposed_auc"])), 4),
         "precision_at_mql": _share(flagged["proposed"])},
        points, support, "", candidates=found)
    suggestion.text = proposal_text(suggestion, live, live_text, now)
    return suggestion


def _live_points(candidate: Candidate, live: Rules) -> float:
    """The points a live rule gives (a negative signal's from its settings)."""
    if candidate.section == "negative":
        return float((live.data.get("negative") or {}).get(candidate.rule["name"], {}).get("points", 0))
    return float(candidate.rule.get("points", 0))


def _share(counts: list[int]) -> float | None:
    flagged, hits = counts
    return round(hits / flagged, 4) if flagged else None


def _enough(rows: int, positives: int, target: str, folds: int) -> None:
    needed_rows, needed_positives = max(MIN_ROWS, folds), max(MIN_POSITIVES, folds)
    negatives = rows - positives
    if rows >= needed_rows and positives >= needed_positives and negatives >= folds:
        return
    missing = []
    if rows < needed_rows:
        missing.append(f"{needed_rows - rows} more leads with a known outcome")
    if positives < needed_positives:
        missing.append(f"{needed_positives - positives} more {target}")
    if negatives < folds:
        missing.append(f"{folds - negatives} more that did not reach {target}")
    raise NotEnoughHistory(
        f"not enough history to learn from: {rows} leads with a known outcome, {positives} {target}; "
        f"it needs at least {needed_rows} leads and {needed_positives} {target} "
        f"({' and '.join(missing)}). Import past leads with `leadloop import csv`.")


# --- the proposed file ---------------------------------------------------------------------------

def proposal_text(suggestion: Suggestion, live: Rules, live_text: str, now: datetime) -> str:
    """The proposed rules file: the live file with learned points, new rules, and why in comments."""
    raw = yaml.safe_load(live_text)
    points, support, found = suggestion.points, suggestion.support, suggestion.candidates

    def note(key: str, was: Any = None) -> str:
        count, lift = support.get(key, (0, None))
        share = f"{100 * count / suggestion.rows:.0f}%" if suggestion.rows else "-"
        times = "-" if lift is None else f"{lift:g}"
        words = f"# {count} leads ({share}) had it; {suggestion.target} {times}x as often"
        return words + (f"; was {was:g} points" if isinstance(was, int | float) else "")

    def unchanged(key: str) -> str:
        count = support.get(key, (0, None))[0]
        if count and count == suggestion.rows:
            return "# every lead with an outcome had it, so the history cannot tell its worth: kept as it was"
        return "# no lead with an outcome had it: kept as it was"

    def near_zero(key: str) -> bool:
        return key in found and 0 < support.get(key, (0, None))[0] < suggestion.rows

    fit_lines, engagement_lines = [], []
    kept_groups = set()
    for rule in raw.get("fit") or []:
        key = f"rule:{rule['id']}"
        if key in points:
            fit_lines.append(_item(note(key, rule["points"]), {**rule, "points": points[key]}))
        elif near_zero(key):
            fit_lines.append(f"  # dropped {rule['id']} (was {rule['points']:g} points): near zero in the fit")
        else:
            fit_lines.append(_item(unchanged(key), rule))
    for key, value in points.items():
        candidate = found[key]
        if candidate.section == "fit" and not key.startswith("rule:"):
            fit_lines.append(_item(note(key) + " (new)", {**candidate.rule, "points": value}))
    for rule in raw.get("engagement") or []:
        key = f"rule:{rule['id']}"
        if key in points:
            engagement_lines.append(_item(note(key, rule["points"]), {**rule, "points": points[key]}))
            kept_groups.add(rule.get("group"))
        elif near_zero(key):
            engagement_lines.append(f"  # dropped {rule['id']} (was {rule['points']:g} points): near zero in the fit")
        else:
            engagement_lines.append(_item(unchanged(key), rule))
            kept_groups.add(rule.get("group"))
    for key, value in points.items():
        candidate = found[key]
        if candidate.section == "engagement" and not key.startswith("rule:"):
            engagement_lines.append(_item(note(key) + " (new)", {**candidate.rule, "points": value}))
    negative = dict(raw.get("negative") or {})
    negative_notes = {}
    for name, settings in negative.items():
        key = f"rule:{name}"
        if near_zero(key) and isinstance(settings, dict):
            learned = min(0, points.get(key, 0))
            negative[name] = {**settings, "points": learned}
            negative_notes[name] = note(key, settings.get("points")) + (
                "" if learned == points.get(key, 0) else "; learned as a plus: switched to 0 (still detected)")
    caps = raw.get("engagement_caps")
    if isinstance(caps, dict) and isinstance(caps.get("groups"), dict):
        caps = {**caps, "groups": {g: v for g, v in caps["groups"].items() if g in kept_groups}}
    raw = {**raw, "name": f"{raw.get('name') or 'rules'} (suggested)", "engagement_caps": caps}
    if caps is None:
        raw.pop("engagement_caps")
    header = [
        f"# Suggested by `leadloop rules suggest --target {suggestion.target}` on {now:%Y-%m-%d} from "
        f"{suggestion.rows} leads with a known outcome ({suggestion.positives} {suggestion.target}),",
        f"# starting from the live rules {live.version}. Cross-validated ({suggestion.folds} folds): "
        f"AUC {suggestion.live['auc']} live -> {suggestion.proposed['auc']} proposed; precision at the MQL",
        f"# threshold {_pct(suggestion.live['precision_at_mql'])} live -> "
        f"{_pct(suggestion.proposed['precision_at_mql'])} proposed.",
        "# Points are whole numbers scaled so the MQL threshold keeps its meaning. Read it, edit it, try it:",
        "#   leadloop rules check THIS_FILE && leadloop rules compare THIS_FILE",
        "# and make it live by pointing LEADLOOP_RULES at it (then `leadloop rescore`). Nothing changed on its own.",
        "",
    ]
    lines = list(header)
    for key, value in raw.items():
        if key == "fit":
            lines += ["fit:", *fit_lines] if fit_lines else ["fit: []"]
        elif key == "engagement":
            lines += ["engagement:", *engagement_lines] if engagement_lines else ["engagement: []"]
        elif key == "negative":
            lines.append("negative:")
            for name, settings in negative.items():
                if name in negative_notes:
                    lines.append(f"  {negative_notes[name]}")
                lines += ["  " + line for line in _dump({name: settings}).splitlines()]
        else:
            lines += _dump({key: value}).splitlines()
        lines.append("")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=110)


def _item(comment: str, rule: dict[str, Any]) -> str:
    body = _dump([rule]).splitlines()
    return "\n".join([f"  {comment}"] + ["  " + line for line in body])


"""``leadloop explain``: one lead's verdict now or at a past time, and everything behind it.

The lead's history is replayed to the moment asked (``integration.lab.history.Replay``: its
fields as they were then, its activity until then, decay as of then) and scored under the live
rules. Each reason comes with the events behind it: an engagement reason with the activities
it counts and each one's points at the time it happened and at the moment asked (its decay),
a fit reason with the event that set the field, a negative signal with what set it off. Then
when the verdict next changes on its own (``scoring.next_change``) and what would change it
(``scoring.gap``: the fewest new activities that would make it an MQL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.lab.history import HistoryEvent, Replay, stream_histories
from integration.pipeline.processing import FIELD_KINDS
from integration.store.models import Lead, Transition
from scoring import Reason, Rules, Signal, next_change, score_lead
from scoring.gap import mql_gap

#: Events listed per reason, newest first.
EVENTS_SHOWN = 10


def explain(session: Session, lead: Lead, rules: Rules, moment: datetime) -> dict[str, Any]:
    """Everything that explains ``lead``'s verdict at ``moment``, as JSON-able data (times ISO 8601)."""
    history = next(stream_histories(session, until=moment, lead_ids=[lead.id]))
    replay = Replay(history, rules)
    profile = replay.profile_at(moment)
    reset = lead.engagement_reset_at if lead.engagement_reset_at and lead.engagement_reset_at <= moment else None
    signals = [s for s in replay.signals_at(moment) if reset is None or s.occurred_at >= reset]
    recycled = lead.recycled_at is not None and lead.recycled_at <= moment
    penalty = float(lead.score_penalty or 0) if recycled else 0.0
    reason_words = f"recycled by sales ({lead.recycle_reason})" if penalty else ""
    result = score_lead(profile, signals, rules, moment, penalty=penalty, penalty_reason=reason_words)
    change = next_change(profile, signals, rules, moment, penalty=penalty)
    gap = mql_gap(profile, signals, rules, moment, penalty=penalty)
    behind = _signal_points(profile, signals, rules, moment)
    stage = session.scalars(select(Transition.to_stage).where(Transition.lead_id == lead.id, Transition.at <= moment)
                            .order_by(Transition.at.desc(), Transition.id.desc()).limit(1)).first() or "new"
    return {
        "lead": history.ref, "at": moment.isoformat(), "rules_version": rules.version, "stage": stage,
        "score": result.score, "fit_points": result.fit_points, "engagement_points": result.engagement_points,
        "band": result.band, "grade": result.grade, "mql": result.mql, "disqualified": result.disqualified,
        "disqualify_reason": result.disqualify_reason, "priority": result.priority,
        "reasons": [{**reason.to_dict(), "events": _events_behind(reason, history.events, behind, rules, moment)}
                    for reason in result.reasons],
        "next_change": change.to_dict() if change is not None else None,
        "what_would_change_it": {**gap.to_dict(), "text": gap.describe()},
    }


def _words(text: str) -> str:
    """A reason's words without its points and its age: ``viewed Pricing page``."""
    return text.split(" ", 1)[-1].split(" (")[0]


def _signal_points(profile: Any, signals: list[Signal], rules: Rules, moment: datetime
                   ) -> list[tuple[Signal, dict[tuple[str, str], tuple[float, float]]]]:
    """Per signal: (rule, words) -> (points when it happened, points at ``moment``), each alone."""
    found = []
    for signal in signals:
        then = {(r.rule, _words(r.text)): r.points for r in score_lead(profile, [signal], rules, signal.occurred_at)
                .reasons if r.kind in ("engagement", "negative") and r.points}
        now = {(r.rule, _words(r.text)): r.points for r in score_lead(profile, [signal], rules, moment).reasons
               if r.kind in ("engagement", "negative") and r.points}
        found.append((signal, {key: (points, now.get(key, 0.0)) for key, points in then.items()}))
    return found


def _events_behind(reason: Reason, events: list[HistoryEvent], behind: list[Any], rules: Rules,
                   moment: datetime) -> list[dict[str, Any]]:
    key = (reason.rule, _words(reason.text))
    listed = []
    if reason.kind in ("engagement", "negative"):
        for signal, points in behind:
            if key in points:
                then, now = points[key]
                listed.append({"kind": signal.kind, "at": signal.occurred_at.isoformat(),
                               "what": signal.properties.get("asset") or signal.properties.get("url")
                               or signal.properties.get("form"), "points_then": then, "points_now": now})
    if reason.kind in ("fit", "negative") and not listed:
        names = _fields_of(reason, rules)
        for event in events:
            if event.occurred_at <= moment and event.kind in FIELD_KINDS and names & set(event.fields):
                listed.append({"kind": event.kind, "at": event.occurred_at.isoformat(),
                               "fields": {name: event.fields[name] for name in sorted(names & set(event.fields))}})
    return listed[::-1][:EVENTS_SHOWN]


def _fields_of(reason: Reason, rules: Rules) -> set[str]:
    """The lead fields a fit rule or a profile-based negative signal looks at."""
    for rule in rules.data["fit"]:
        if rule["id"] == reason.rule:
            return {rule["field"]}
    return {"student": {"email", "job_title"}, "competitor": {"email", "website"},
            "missing_phone": {"phone", "mobile_phone"}, "invalid_phone": {"phone", "mobile_phone", "country"}
            }.get(reason.rule, {"email"})


def render(report: dict[str, Any]) -> list[str]:
    """The explanation as lines for a person."""
    verdict = f"{report['band']} {report['score']:g}, grade {report['grade']}" + (", MQL" if report["mql"] else "")
    if report["disqualified"]:
        verdict += f", disqualified: {report['disqualify_reason']}"
    lines = [f"{report['lead']} as of {report['at'][:16]} UTC (rules {report['rules_version']}): {verdict}",
             f"stage: {report['stage']}; priority: {report['priority']}", "reasons:"]
    for reason in report["reasons"]:
        lines.append(f"  {reason['text']}")
        for event in reason["events"]:
            what = f" {event['what']}" if event.get("what") else ""
            if "points_then" in event:
                lines.append(f"      {event['kind']}{what} {event['at'][:16]}: {event['points_then']:+g} then, "
                             f"{event['points_now']:+g} now")
            else:
                fields = ", ".join(f"{k}={v}" for k, v in event["fields"].items())
                lines.append(f"      {event['kind']} {event['at'][:16]} set {fields}")
    if not report["reasons"]:
        lines.append("  (none)")
    change = report["next_change"]
    lines.append("next change on its own: " + (f"{change['at'][:16]} UTC: {change['reason']} ({change['cause']})"
                                               if change else "none (nothing left to fade or expire)"))
    lines.append(f"what would change it: {report['what_would_change_it']['text']}")
    return lines

"""What goes into scoring (a lead profile and its signals) and what comes out (a result)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

#: Order of reason kinds when two reasons weigh the same.
REASON_KINDS: tuple[str, ...] = ("override", "fit", "engagement", "negative")


@dataclass(frozen=True, slots=True)
class LeadProfile:
    """The lead's current field values under canonical names (``scoring.fields.LEAD_FIELDS``).

    Fields a connector does not map keep their CRM name so rules can reference them too.
    """

    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Signal:
    """One activity of the lead: a page view, a download, an unsubscribe ..."""

    #: A built-in activity kind (``scoring.fields.BUILTIN_ACTIVITY_KINDS``) or one the file declares.
    kind: str
    #: When it happened, timezone-aware; signals after the scoring time are ignored.
    occurred_at: datetime
    #: What describes it: ``asset`` (asset id), ``url``, ``form``, ``reason``, ``campaign`` ...
    properties: Mapping[str, Any] = field(default_factory=dict)
    #: The event's idempotency key; signals with the same kind and key count once.
    key: str = ""


class Reason(NamedTuple):
    """One rule that shaped the result, in plain words with its signed points.

    Results are immutable records (``NamedTuple``: built in one step, which matters at tens of
    thousands of results a second).
    """

    #: Signed points this rule added (0 for overrides, disqualification and priority).
    points: float
    #: Plain words starting with the signed points: ``+25 downloaded Coverage map (3 days ago)``.
    text: str
    #: The rule's id in the rules file (negative signals: their name, caps: ``engagement_caps...``).
    rule: str
    #: ``"fit"``, ``"engagement"``, ``"negative"`` or ``"override"``.
    kind: str

    def to_dict(self) -> dict[str, Any]:
        """Return the reason as a JSON-able dict."""
        return {"points": self.points, "text": self.text, "rule": self.rule, "kind": self.kind}


class ScoreResult(NamedTuple):
    """The verdict on one lead at one time under one rules version (an immutable record)."""

    #: Points for who they are: fit rules plus profile-based negative signals.
    fit_points: float
    #: Points for what they did, after caps, plus bounce/unsubscribe penalties.
    engagement_points: float
    #: ``fit_points + engagement_points``; equals the sum of the reasons' points.
    score: float
    #: ``"A"`` to ``"D"`` from ``fit_points`` and the file's grade thresholds.
    grade: str
    #: ``"cold"``, ``"cool"``, ``"warm"`` or ``"hot"``: thresholds, then overrides.
    band: str
    #: True when the lead meets the file's MQL definition (never when disqualified).
    mql: bool
    disqualified: bool
    #: The first matching disqualify rule's reason, else None.
    disqualify_reason: str | None
    #: Priority within the band: ``"high"``, ``"normal"`` or ``"low"`` (from ``priority`` rules).
    priority: str
    #: The band's next-step playbook (``nurture_only`` ... ``call_now``).
    playbook: str
    #: Overrides first, then by absolute points, largest first.
    reasons: tuple[Reason, ...]
    #: One line of at most 255 characters for a CRM text field.
    summary: str
    #: ``Rules.version`` of the rules that produced this result.
    rules_version: str
    #: The time the lead was scored as of (signals after it were ignored).
    as_of: datetime

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-able dict (``as_of`` as an ISO 8601 string)."""
        return {
            "fit_points": self.fit_points, "engagement_points": self.engagement_points,
            "score": self.score, "grade": self.grade, "band": self.band, "mql": self.mql,
            "disqualified": self.disqualified, "disqualify_reason": self.disqualify_reason,
            "priority": self.priority, "playbook": self.playbook,
            "reasons": [reason.to_dict() for reason in self.reasons],
            "summary": self.summary, "rules_version": self.rules_version,
            "as_of": self.as_of.isoformat(),
        }


class NextChange(NamedTuple):
    """When a lead's visible verdict changes next with no new event, and what changes then.

    The visible verdict is what the CRM shows: band, disqualified, MQL, priority, and the score as
    written (``round(score)``) once it has moved by the rules' ``rescore.score_step``. Reasons are
    not part of it (their ages, "3 days ago", change daily), nor the grade (fit needs no clock).
    """

    #: The first instant, to the microsecond, at which ``score_lead`` gives another verdict.
    at: datetime
    #: What changes, ``FIELD OLD->NEW`` for the first field that does, in this order:
    #: ``band hot->warm``, ``disqualified false->true``, ``mql true->false``, ``priority high->normal``,
    #: ``score 52->47`` (the written score moved by the step).
    reason: str
    #: Why: ``decay`` (points fading), ``override ID ends`` / ``priority ID ends`` /
    #: ``disqualify ID ends`` (a ``within`` window of that rule closed), ``engagement ID ends``
    #: (a ``lifespan`` ran out), ``signal KIND arrives`` (a signal dated after ``as_of``); several
    #: at the same instant are joined with ``", "``.
    cause: str

    def to_dict(self) -> dict[str, Any]:
        """Return the change as a JSON-able dict (``at`` as an ISO 8601 string)."""
        return {"at": self.at.isoformat(), "reason": self.reason, "cause": self.cause}

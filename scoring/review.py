"""When the pipeline should look at a lead again although nothing new happened: ``next_review``.

Two things change a lead with time alone: its score (``scoring.timeline.next_change``: decay,
closing windows, lifespans) and its recycle cooldown (``LeadState.cooldown_until``: at its end
``scoring.lifecycle.decide`` moves a recycled lead back to nurture, and an MQL the cooldown held
back may be handed off). The pipeline stores the earlier of the two and rescores the lead then::

    result = score_lead(profile, signals, rules, now, penalty=...)
    decision = decide(lead_state, result, None, rules.lifecycle, now)
    review = next_review(next_change(profile, signals, rules, now, penalty=...), decision.state, now)
"""

from __future__ import annotations

from datetime import datetime

from scoring.lifecycle import MARKETING_STAGES, LeadState
from scoring.model import NextChange

#: ``NextChange.cause`` of a review for the end of a recycle cooldown.
COOLDOWN_ENDS = "recycle cooldown ends"


def next_review(change: NextChange | None, lead: LeadState, now: datetime) -> NextChange | None:
    """Return the earlier of the score's next ``change`` and the end of the lead's cooldown, or None.

    The cooldown counts when it ends after ``now`` while the lead is on marketing's side of the
    loop (new, nurture, recycled): a recycled lead then goes back to nurture (reason
    ``stage recycled->nurture``), any other only stops being held back from a hand-off (reason
    ``cooldown ends``); the cause is ``recycle cooldown ends``. On a tie ``change`` is returned.
    Raises ValueError for a naive ``now``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    until = lead.cooldown_until
    if until is None or until <= now or lead.stage not in MARKETING_STAGES:
        return change
    if change is not None and change.at <= until:
        return change
    reason = "stage recycled->nurture" if lead.stage == "recycled" else "cooldown ends"
    return NextChange(until, reason, COOLDOWN_ENDS)

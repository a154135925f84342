"""``leadloop rules compare``: what a candidate rules file would change, on the stored history.

Every lead is scored under the live rules and the candidate at the same moment: for a lead
sales has seen, the moment it was first handed off (would the candidate have handed it off
too, on what was known then?); for the rest, now. The report counts MQLs added and removed,
band moves, and how many leads sales eventually won or rejected each rules file would have
caught. Nothing is written.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from integration.pipeline.processing import signals_of
from integration.store.models import Lead, Transition
from scoring import LeadProfile, Rules, score_lead

BANDS = ("cold", "cool", "warm", "hot")
WON_STAGES = frozenset({"sql", "won"})


@dataclass
class Comparison:
    leads: int = 0
    live_mql: int = 0
    candidate_mql: int = 0
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    bands: Counter = field(default_factory=Counter)
    #: outcome -> (count, caught by live, caught by candidate)
    outcomes: dict[str, list[int]] = field(default_factory=lambda: {"won": [0, 0, 0], "rejected": [0, 0, 0]})


def compare(session: Session, live: Rules, candidate: Rules, now: datetime) -> Comparison:
    """Score every live lead under both rules files as of ``now``; return the differences."""
    first_mql = dict(session.execute(select(Transition.lead_id, func.min(Transition.at))
                                     .where(Transition.to_stage == "mql").group_by(Transition.lead_id)).all())
    rejected = set(session.scalars(select(Transition.lead_id).where(
        Transition.cause.in_(("disposition", "sla")), Transition.to_stage.in_(("recycled", "disqualified", "lost")))))
    kinds = live.activity_kinds | candidate.activity_kinds
    report = Comparison()
    leads = session.scalars(select(Lead).where(Lead.merged_into_id.is_(None), Lead.erased_at.is_(None))
                            .order_by(Lead.id))
    for lead in leads:
        as_of = first_mql.get(lead.id) or now
        profile = LeadProfile({**(lead.fields or {}), "email": lead.email})
        signals = signals_of(session, lead, kinds)
        old = score_lead(profile, [s for s in signals if s.kind in live.activity_kinds], live, as_of)
        new = score_lead(profile, [s for s in signals if s.kind in candidate.activity_kinds], candidate, as_of)
        report.leads += 1
        report.live_mql += old.mql
        report.candidate_mql += new.mql
        report.bands[(old.band, new.band)] += 1
        if new.mql and not old.mql:
            report.added.append(lead.ref)
        elif old.mql and not new.mql:
            report.removed.append(lead.ref)
        outcome = "won" if lead.stage in WON_STAGES else "rejected" if lead.id in rejected else None
        if outcome:
            counts = report.outcomes[outcome]
            counts[0] += 1
            counts[1] += old.mql
            counts[2] += new.mql
    return report


def render(report: Comparison, live: Rules, candidate: Rules) -> str:
    """The report marketing ops reads before rolling a rules change out."""
    lines = [f"compared on {report.leads} leads: live rules {live.version} vs candidate {candidate.version}",
             f"MQLs: {report.live_mql} live -> {report.candidate_mql} candidate "
             f"(+{len(report.added)} added, -{len(report.removed)} removed)"]
    won, rej = report.outcomes["won"], report.outcomes["rejected"]
    lines.append(f"leads sales won or qualified: {won[0]}; live caught {won[1]}, candidate would catch {won[2]}")
    lines.append(f"leads sales rejected: {rej[0]}; live passed on {rej[1]}, candidate would pass on {rej[2]}")
    lines.append("bands (rows live, columns candidate):")
    lines.append("          " + "".join(f"{b:>7}" for b in BANDS))
    for old in BANDS:
        lines.append(f"  {old:<8}" + "".join(f"{report.bands[(old, new)]:>7}" for new in BANDS))
    for title, refs in (("added", report.added), ("removed", report.removed)):
        if refs:
            shown = ", ".join(refs[:10]) + (f" and {len(refs) - 10} more" if len(refs) > 10 else "")
            lines.append(f"MQL {title}: {shown}")
    return "\n".join(lines)

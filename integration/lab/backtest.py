"""``leadloop rules compare``: a rules change replayed on the stored history, against known outcomes.

Every live lead's history is replayed under both rules files (``integration.lab.history``): each
version's first MQL (the hand-off), and its band at the end of the window. Outcomes come from
the stage changes (won, lost, accepted, rejected by sales) and the deals. The report answers
what decides a roll-out: how many MQLs, which leads move band, how well each band predicts a
won (or an accepted) lead, how many of the leads sales eventually won each version hands off and
how many days earlier or later, how many MQLs sales works per won deal, and which leads would
newly become or stop being MQLs, with their reasons. Nothing is written.

The live file replayed against itself reproduces the stored live decisions: ``stored`` counts
the leads whose stored MQL (made under that rules version) the replay finds at the same instant.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from integration.lab.history import LeadHistory, Replay, stream_histories
from scoring import Rules

BANDS = ("cold", "cool", "warm", "hot")
TARGETS = ("won", "accepted")
#: Reasons listed per lead that would newly become or stop being an MQL.
REASONS_SHOWN = 3


@dataclass
class Side:
    """One rules file's results over the history."""

    version: str
    mql: int = 0
    bands: Counter = field(default_factory=Counter)
    #: target -> band -> leads in that band at the window's end that reached the target
    hits: dict[str, Counter] = field(default_factory=lambda: {t: Counter() for t in TARGETS})
    #: target -> leads this version hands off (MQL in the window, by the outcome) that reached it
    handed_off: Counter = field(default_factory=Counter)
    #: target -> leads that reached it among this version's MQLs (precision of MQL)
    mql_hits: Counter = field(default_factory=Counter)
    won_deals: set[int] = field(default_factory=set)
    won_leads_without_deal: int = 0


@dataclass
class Backtest:
    """The comparison of two rules files on the stored history."""

    live: Side
    candidate: Side
    since: datetime | None
    until: datetime
    leads: int = 0
    #: target -> leads that reached it; plus ``lost`` and ``rejected``
    outcomes: Counter = field(default_factory=Counter)
    matrix: Counter = field(default_factory=Counter)
    #: won leads both hand off: days the candidate is earlier (positive) or later (negative)
    days_earlier: list[float] = field(default_factory=list)
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    #: stored MQL decisions made under the live file's version, and those the replay matches
    stored: int = 0
    stored_matched: int = 0
    stored_mismatched: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able data (times ISO 8601)."""
        sides = {"live": self.live, "candidate": self.candidate}
        return {
            "window": {"since": self.since.isoformat() if self.since else None, "until": self.until.isoformat()},
            "leads": self.leads,
            "outcomes": {name: self.outcomes[name] for name in ("won", "accepted", "lost", "rejected")},
            **{name: _side_dict(side, self) for name, side in sides.items()},
            "band_matrix": {old: {new: self.matrix[(old, new)] for new in BANDS} for old in BANDS},
            "won_timing": self.timing(),
            "added": self.added,
            "removed": self.removed,
            "stored_check": {"stored_mqls": self.stored, "matched": self.stored_matched,
                             "mismatched": self.stored_mismatched},
        }

    def timing(self) -> dict[str, Any]:
        """How much earlier the candidate hands off the won leads both hand off (median days)."""
        days = self.days_earlier
        return {"both": len(days), "earlier": sum(d > 0 for d in days), "later": sum(d < 0 for d in days),
                "same": sum(d == 0 for d in days),
                "median_days_earlier": round(statistics.median(days), 1) if days else None}


def _side_dict(side: Side, report: Backtest) -> dict[str, Any]:
    by_band: dict[str, Any] = {}
    for target in TARGETS:
        total = report.outcomes[target]
        base = total / report.leads if report.leads else 0.0
        rows = {}
        for band in BANDS:
            rows[band] = _rates(side.bands[band], side.hits[target][band], total, base)
        rows["mql"] = _rates(side.mql, side.mql_hits[target], total, base)
        by_band[target] = rows
    won_deals = len(side.won_deals) + side.won_leads_without_deal
    return {"rules": side.version, "mqls": side.mql, "bands": {band: side.bands[band] for band in BANDS},
            "handed_off": {target: side.handed_off[target] for target in TARGETS},
            "mqls_per_won_deal": round(side.mql / won_deals, 2) if won_deals else None,
            "by_band": by_band}


def _rates(leads: int, hits: int, total: int, base: float) -> dict[str, Any]:
    precision = hits / leads if leads else None
    return {"leads": leads, "hits": hits, "precision": _round(precision),
            "recall": _round(hits / total if total else None),
            "lift": _round(precision / base if precision is not None and base else None)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def backtest(session: Session, live: Rules, candidate: Rules, *, since: datetime | None, until: datetime
             ) -> Backtest:
    """Replay every live lead's history up to ``until`` under ``live`` and ``candidate``."""
    report = Backtest(Side(live.version), Side(candidate.version), since, until)
    for history in stream_histories(session, until=until):
        _one_lead(report, history, live, candidate)
    return report


def _in_window(at: datetime | None, since: datetime | None, until: datetime) -> bool:
    return at is not None and (since is None or at >= since) and at <= until


def _one_lead(report: Backtest, history: LeadHistory, live: Rules, candidate: Rules) -> None:
    if not history.events:
        return
    report.leads += 1
    found = history.outcomes
    reached = {target: found.reached(target) for target in TARGETS}
    for target, at in reached.items():
        report.outcomes[target] += at is not None
    report.outcomes["lost"] += found.lost_at is not None and reached["won"] is None
    report.outcomes["rejected"] += found.rejected_at is not None
    firsts, bands = [], []
    for side, rules in ((report.live, live), (report.candidate, candidate)):
        replay = Replay(history, rules)
        first = replay.first_mql(report.until)
        end = replay.at(report.until).result
        band = end.band
        side.bands[band] += 1
        mql = first is not None and _in_window(first.at, report.since, report.until)
        side.mql += mql
        for target, at in reached.items():
            side.hits[target][band] += at is not None
            if mql and at is not None:
                side.mql_hits[target] += 1
                if first is not None and first.at <= at:
                    side.handed_off[target] += 1
        if mql and reached["won"] is not None:
            if found.won_deals:
                side.won_deals |= found.won_deals
            else:
                side.won_leads_without_deal += 1
        firsts.append(first if mql else None)
        bands.append(band)
    report.matrix[tuple(bands)] += 1
    old, new = firsts
    won_at = reached["won"]
    if won_at is not None and old is not None and new is not None and old.at <= won_at and new.at <= won_at:
        report.days_earlier.append(round((old.at - new.at).total_seconds() / 86400, 2))
    if new is not None and old is None:
        report.added.append(_entry(history, new.at, new.result.reasons))
    elif old is not None and new is None:
        report.removed.append(_entry(history, old.at, old.result.reasons))
    if found.stored_mql_at is not None and found.stored_mql_version == live.version:
        report.stored += 1
        if old is not None and old.at == found.stored_mql_at:
            report.stored_matched += 1
        else:
            report.stored_mismatched.append({"lead": history.ref, "stored": found.stored_mql_at.isoformat(),
                                             "replayed": old.at.isoformat() if old is not None else None})


def _entry(history: LeadHistory, at: datetime, reasons: Any) -> dict[str, Any]:
    return {"lead": history.ref, "at": at.isoformat(), "outcome": _outcome_word(history),
            "reasons": [reason.text for reason in reasons[:REASONS_SHOWN]]}


def _outcome_word(history: LeadHistory) -> str | None:
    found = history.outcomes
    if found.won_at is not None:
        return "won"
    if found.lost_at is not None:
        return "lost"
    if found.rejected_at is not None:
        return "rejected"
    if found.accepted_at is not None:
        return "accepted"
    return None


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def render(report: Backtest, live: Rules, candidate: Rules) -> str:
    """The report marketing ops reads before rolling a rules change out."""
    data = report.to_dict()
    old, new = data["live"], data["candidate"]
    window = f"from {report.since:%Y-%m-%d} " if report.since else ""
    lines = [f"compared on {report.leads} leads: live rules {live.version} vs candidate {candidate.version} "
             f"(history {window}to {report.until:%Y-%m-%d %H:%M} UTC, replayed event by event)",
             f"MQLs: {old['mqls']} live -> {new['mqls']} candidate "
             f"(+{len(report.added)} added, -{len(report.removed)} removed)"]
    outcomes = data["outcomes"]
    lines.append(f"outcomes known: {outcomes['won']} won, {outcomes['accepted']} accepted by sales, "
                 f"{outcomes['lost']} lost, {outcomes['rejected']} rejected")
    lines.append(f"eventually-won leads handed off: live {old['handed_off']['won']}, "
                 f"candidate {new['handed_off']['won']} of {outcomes['won']}")
    timing = data["won_timing"]
    if timing["both"]:
        median = timing["median_days_earlier"]
        when = (f"a median {median:g} days earlier" if median > 0 else
                f"a median {-median:g} days later" if median < 0 else "at the same time (median)")
        lines.append(f"  of the {timing['both']} both hand off, the candidate hands them off {when} "
                     f"({timing['earlier']} earlier, {timing['later']} later, {timing['same']} at the same time)")
    lines.append(f"MQLs per won deal (sales effort): live {_number(old['mqls_per_won_deal'])}, "
                 f"candidate {_number(new['mqls_per_won_deal'])}")
    for target in TARGETS:
        lines.append(f"by band at the end, against {target} (precision / recall / lift):")
        lines.append(f"  {'':<6}{'live':>26}{'candidate':>26}")
        columns = f"{'leads':>5} {'prec':>5} {'rec':>5} {'lift':>6}"
        lines.append(f"  {'band':<6}{columns:>26}{columns:>26}")
        for band in (*BANDS, "mql"):
            cells = []
            for side in (old, new):
                rates = side["by_band"][target][band]
                lift = "-" if rates["lift"] is None else f"{rates['lift']:.2f}"
                cells.append(f"{rates['leads']:>5} {_percent(rates['precision']):>5} "
                             f"{_percent(rates['recall']):>5} {lift:>6}")
            lines.append(f"  {band.upper() if band == 'mql' else band:<6}" + "".join(f"{c:>26}" for c in cells))
    lines.append("bands at the end (rows live, columns candidate):")
    lines.append("          " + "".join(f"{b:>7}" for b in BANDS))
    for row in BANDS:
        lines.append(f"  {row:<8}" + "".join(f"{report.matrix[(row, col)]:>7}" for col in BANDS))
    for title, entries in (("added", report.added), ("removed", report.removed)):
        if entries:
            refs = [entry["lead"] for entry in entries]
            shown = ", ".join(refs[:10]) + (f" and {len(refs) - 10} more" if len(refs) > 10 else "")
            lines.append(f"MQL {title}: {shown}")
            for entry in entries[:10]:
                outcome = f" [{entry['outcome']}]" if entry["outcome"] else ""
                lines.append(f"  {entry['lead']}{outcome} {entry['at'][:16]}: {'; '.join(entry['reasons'])}")
    if report.stored:
        lines.append(f"replay of the live rules matches {report.stored_matched} of {report.stored} stored MQL "
                     "decisions made under them")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"

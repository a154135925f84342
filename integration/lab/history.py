"""The stored history, lead by lead, and its replay under any rules file.

``stream_histories`` reads leads in chunks (a chunk's leads, their events, stage changes and
deals in four queries), so memory stays bounded however long the history. ``Replay`` scores one
lead as the pipeline does: its events take effect in ``occurred_at`` order, the score is taken as
of each event's time (decay as of that moment, not as of now) on the fields as they were then:
the ``fields`` of its field events applied in time order over the fields no event ever set.
``first_mql`` is the moment the lifecycle would hand the lead off: the first score that is an
MQL (a disqualifying score first ends the search, as the lifecycle disqualifies the lead).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.pipeline.processing import FIELD_KINDS
from integration.store.models import Deal, DealLead, Event, Lead, Transition
from scoring import LeadProfile, Rules, ScoreResult, Signal, next_change, score_lead

#: Leads read per chunk.
CHUNK = 500
#: Stages that say sales took the lead on (accepted, or further along).
ACCEPTED_STAGES = frozenset({"accepted", "sql", "won"})
#: Checks of time-driven changes (a window closing) between two events, at most.
MAX_TIME_STEPS = 20
#: Negative signals set off by activity (they fade); the others (free mail, no phone ...) last.
SIGNAL_NEGATIVES = frozenset({"bounce", "unsubscribe"})


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One stored event, as the replay needs it."""

    kind: str
    occurred_at: datetime
    fields: dict[str, Any]
    properties: dict[str, Any]
    key: str


@dataclass
class Outcomes:
    """What became of a lead, from its stage changes and its deals (times are business times)."""

    won_at: datetime | None = None
    lost_at: datetime | None = None
    accepted_at: datetime | None = None
    rejected_at: datetime | None = None
    #: The first stored MQL transition (the live decision, for the replay's check).
    stored_mql_at: datetime | None = None
    stored_mql_version: str | None = None
    #: Ids of the won deals the lead belongs to.
    won_deals: set[int] = field(default_factory=set)

    def reached(self, target: str) -> datetime | None:
        """When the lead reached ``won`` or ``accepted``, or None."""
        return self.won_at if target == "won" else self.accepted_at

    def known(self, target: str) -> bool | None:
        """Whether the lead reached ``target`` (True), surely did not (False), or it is not known (None)."""
        if self.reached(target) is not None:
            return True
        if self.lost_at is not None or self.rejected_at is not None:
            return False
        return None

    def decided_at(self, target: str) -> datetime | None:
        """The time the outcome for ``target`` became known."""
        times = [self.reached(target), self.lost_at, self.rejected_at]
        return min((t for t in times if t is not None), default=None)


@dataclass
class LeadHistory:
    """One lead: who it is today, everything that happened to it, and what became of it."""

    id: int
    ref: str
    email: str | None
    fields: dict[str, Any]
    events: list[HistoryEvent] = field(default_factory=list)
    outcomes: Outcomes = field(default_factory=Outcomes)


def _earliest(current: datetime | None, new: datetime | None) -> datetime | None:
    if new is None:
        return current
    return new if current is None or new < current else current


def stream_histories(session: Session, *, until: datetime | None = None, chunk: int = CHUNK,
                     lead_ids: Sequence[int] | None = None) -> Iterator[LeadHistory]:
    """Yield every live lead's history (events up to ``until``), ``chunk`` leads per read, by id."""
    after = 0
    while True:
        stmt = (select(Lead.id, Lead.crm, Lead.crm_id, Lead.email, Lead.fields)
                .where(Lead.merged_into_id.is_(None), Lead.erased_at.is_(None), Lead.id > after)
                .order_by(Lead.id).limit(chunk))
        if lead_ids is not None:
            stmt = stmt.where(Lead.id.in_(list(lead_ids)))
        rows = session.execute(stmt).all()
        if not rows:
            return
        after = rows[-1].id
        histories = {row.id: LeadHistory(row.id, f"{row.crm}:{row.crm_id}" if row.crm else f"email:{row.email}",
                                         row.email, dict(row.fields or {})) for row in rows}
        ids = list(histories)
        events = (select(Event.lead_id, Event.kind, Event.occurred_at, Event.fields, Event.properties, Event.event_key)
                  .where(Event.lead_id.in_(ids)).order_by(Event.lead_id, Event.occurred_at, Event.id))
        if until is not None:
            events = events.where(Event.occurred_at <= until)
        for lead_id, kind, at, fields, properties, key in session.execute(events):
            histories[lead_id].events.append(HistoryEvent(kind, at, fields or {}, properties or {}, key))
        for lead_id, to_stage, cause, at, version in session.execute(
                select(Transition.lead_id, Transition.to_stage, Transition.cause, Transition.at,
                       Transition.rules_version).where(Transition.lead_id.in_(ids))
                .order_by(Transition.at, Transition.id)):
            _note_transition(histories[lead_id].outcomes, to_stage, cause, at, version)
        for lead_id, deal_id, outcome, closed_at, linked_at in session.execute(
                select(DealLead.lead_id, Deal.id, Deal.outcome, Deal.closed_at, DealLead.linked_at)
                .join(Deal, Deal.id == DealLead.deal_id)
                .where(DealLead.lead_id.in_(ids), Deal.deleted_at.is_(None), Deal.merged_into_id.is_(None))):
            found = histories[lead_id].outcomes
            if outcome == "won":
                found.won_deals.add(deal_id)
                found.won_at = _earliest(found.won_at, closed_at or linked_at)
                found.accepted_at = _earliest(found.accepted_at, closed_at or linked_at)
            elif outcome == "lost":
                found.lost_at = _earliest(found.lost_at, closed_at or linked_at)
        yield from histories.values()


def _note_transition(found: Outcomes, to_stage: str, cause: str, at: datetime, version: str | None) -> None:
    if to_stage == "mql" and found.stored_mql_at is None:
        found.stored_mql_at, found.stored_mql_version = at, version
    if to_stage == "won":
        found.won_at = _earliest(found.won_at, at)
    if to_stage == "lost":
        found.lost_at = _earliest(found.lost_at, at)
    if to_stage in ACCEPTED_STAGES:
        found.accepted_at = _earliest(found.accepted_at, at)
    if cause in ("disposition", "sla") and to_stage in ("recycled", "disqualified"):
        found.rejected_at = _earliest(found.rejected_at, at)


@dataclass(frozen=True, slots=True)
class Moment:
    """The lead at one moment of its history: what it was, and its score then."""

    at: datetime
    profile: LeadProfile
    signals: tuple[Signal, ...]
    result: ScoreResult


class Replay:
    """One lead's history replayed under one rules file."""

    def __init__(self, history: LeadHistory, rules: Rules):
        self.history, self.rules = history, rules
        set_by_events = {name for e in history.events if e.kind in FIELD_KINDS for name in e.fields}
        self._base = {name: value for name, value in history.fields.items() if name not in set_by_events}
        self._signals = [Signal(kind=e.kind, occurred_at=e.occurred_at, properties=e.properties, key=e.key)
                         for e in history.events if e.kind in rules.activity_kinds]

    def profile_at(self, at: datetime) -> LeadProfile:
        """The lead's fields as they were at ``at``."""
        fields = dict(self._base)
        for event in self.history.events:
            if event.occurred_at > at:
                break
            if event.kind in FIELD_KINDS and event.fields:
                fields.update(event.fields)
        email = fields.get("email") or self.history.email
        return LeadProfile({**fields, "email": str(email).lower() if email else email})

    def signals_at(self, at: datetime) -> tuple[Signal, ...]:
        """The lead's activity up to ``at``, oldest first."""
        return tuple(s for s in self._signals if s.occurred_at <= at)

    def at(self, moment: datetime) -> Moment:
        """Score the lead as of ``moment`` on what was known then."""
        profile, signals = self.profile_at(moment), self.signals_at(moment)
        return Moment(moment, profile, signals, score_lead(profile, signals, self.rules, moment))

    def moments(self, until: datetime | None = None) -> Iterator[Moment]:
        """The lead scored at each distinct event time up to ``until``, in time order."""
        times = sorted({e.occurred_at for e in self.history.events if until is None or e.occurred_at <= until})
        for moment in times:
            yield self.at(moment)

    def first_mql(self, until: datetime | None = None) -> Moment | None:
        """The first moment the lead is an MQL (at an event, or when a window closes between two),
        up to ``until``; None if never, or if a disqualifying score comes first."""
        times = sorted({e.occurred_at for e in self.history.events if until is None or e.occurred_at <= until})
        for index, moment in enumerate(times):
            state = self.at(moment)
            if state.result.disqualified:
                return None
            if state.result.mql:
                return state
            following = times[index + 1] if index + 1 < len(times) else until
            found = self._mql_on_its_own(state, following)
            if found is not None:
                return found
        return None

    def _mql_on_its_own(self, state: Moment, before: datetime | None) -> Moment | None:
        """Between two events the verdict changes only with time (a window closing, decay): follow
        ``scoring.next_change`` until ``before`` and return the moment it becomes an MQL, if it does."""
        for _ in range(MAX_TIME_STEPS):
            if not _may_rise(state.result):
                return None
            change = next_change(state.profile, state.signals, self.rules, state.at)
            if before is None or change is None or change.at >= before:
                return None
            result = score_lead(state.profile, state.signals, self.rules, change.at)
            state = Moment(change.at, state.profile, state.signals, result)
            if result.disqualified:
                return None
            if result.mql:
                return state
        return None


def _may_rise(result: ScoreResult) -> bool:
    """Whether time alone can bring the verdict up: only minus points (fading, or whose window or
    lifespan ends) or a band forced down can lift; plus points only fade and ``at least`` windows
    only close. A disqualified lead is out for good (the lifecycle disqualified it)."""
    return not result.disqualified and any(
        (reason.points < 0 and (reason.kind == "engagement" or reason.rule in SIGNAL_NEGATIVES))
        or (reason.kind == "override" and reason.text.startswith("forced ")) for reason in result.reasons)

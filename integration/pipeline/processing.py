"""One lead's transaction: its pending events, fields, score, stage, hand-off and CRM writes.

Runs inside one transaction per lead, holding the lead's row lock (``FOR UPDATE`` on
PostgreSQL; SQLite transactions are ``BEGIN IMMEDIATE``), so two workers never process the
same lead at once and a killed worker's transaction rolls back whole: its events stay
unprocessed and the retried job applies them exactly once.

The order inside the transaction: the lead's pending events take effect in business time
(``occurred_at``, then id), as they would have delivered one by one (``BatchWalk``): each event's
fields, merges, erasure and conversions are applied; a CRM status change becomes a sales
disposition and a deal change an outcome, at that event's time; and where the score or stage can
change, the lead is scored as of that time and the lifecycle (``scoring.lifecycle``) decides at
that time. Then a final scoring as of now (decay up to now) is recorded, the hand-off the final
stage still calls for is made, and the CRM writes are queued, one update per batch. What the
decisions write into the CRM's own fields travels in one ``CrmChanges`` record.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connectors import registry
from connectors.base import CrmError
from integration.pipeline.failures import clear_failures
from integration.pipeline.handoff import hand_off, latest_activity_line
from integration.pipeline.outbox import NOT_READ, CrmChanges, latest_sent_task_id, latest_updates, queue_update
from integration.pipeline.outcomes import convert_lead, lead_deal_outcome
from integration.pipeline.rep_activity import rep_acted
from integration.services import Services
from integration.store.deals import move_deal_links
from integration.store.models import Event, Lead, OutboxWrite, ScoreRecord, Transition
from scoring import LeadProfile, ScoreResult, Signal, next_change, score_lead
from scoring.lifecycle import Decision, LeadState, decide, disposition_for, score_may_move
from scoring.lifecycle_follow_up import SlaDecision, on_sla_due
from scoring.lifecycle_outcomes import outcome_decision
from scoring.review import next_review
from scoring.routing import Handoff

log = logging.getLogger(__name__)

#: Event kinds whose ``fields`` update the lead record.
FIELD_KINDS = frozenset({"lead_created", "field_change", "record_snapshot", "form_submit"})
#: CRM record events: they matter only through the fields they change.
CRM_RECORD_KINDS = frozenset({"lead_created", "field_change", "record_snapshot", "association_change",
                              "ignored", "deletion", "privacy_deletion", "rep_activity"})
#: Lead columns that make up the pure lifecycle's ``LeadState``.
STATE_COLUMNS = ("stage", "owner_id", "team", "recycle_count", "recycle_reason", "recycled_at", "cooldown_until",
                 "engagement_reset_at", "score_penalty", "last_engagement_at", "sla_misses", "last_handoff_at",
                 "handoff_playbook", "handoff_band", "stage_changed_at")


@dataclass
class LeadOutcome:
    scored: bool = False
    crm_writes: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A CRM status field (sales feedback) that changed in this batch of events."""

    field: str
    value: Any
    occurred_at: datetime


# --- the lead record -------------------------------------------------------------------------

def lock_lead(session: Session, lead_id: int) -> Lead | None:
    stmt = select(Lead).where(Lead.id == lead_id)
    if session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def apply_fields(lead: Lead, values: dict[str, Any], at: datetime) -> bool:
    """Set each field unless a newer value is already stored; return whether anything changed."""
    changed = False
    fields, times = dict(lead.fields or {}), dict(lead.field_times or {})
    stamp = at.isoformat()
    for name, value in values.items():
        if name in times and times[name] > stamp:
            continue  # an older state arriving late never overwrites a newer one
        times[name] = stamp
        if fields.get(name) != value:
            fields[name] = value
            changed = True
    if "email" in values and values["email"] and times.get("email") == stamp:
        lead.email = str(values["email"]).lower()
    lead.fields, lead.field_times = fields, times
    return changed


def merge_into(session: Session, survivor: Lead, merged: Lead) -> None:
    """Move ``merged``'s history onto ``survivor``; fill survivor's missing fields from it."""
    if merged.id == survivor.id or merged.merged_into_id == survivor.id:
        return
    for model in (Event, ScoreRecord, Transition, OutboxWrite):
        session.execute(update(model).where(model.lead_id == merged.id).values(lead_id=survivor.id))
    move_deal_links(session, survivor.id, merged.id)
    session.execute(update(OutboxWrite).where(OutboxWrite.lead_id == survivor.id,
                                              OutboxWrite.crm_id == merged.crm_id,
                                              OutboxWrite.status == "pending").values(status="superseded"))
    fields, times = dict(survivor.fields or {}), dict(survivor.field_times or {})
    for name, value in (merged.fields or {}).items():
        fields.setdefault(name, value)
        times.setdefault(name, (merged.field_times or {}).get(name, ""))
    survivor.fields, survivor.field_times = fields, times
    survivor.email = survivor.email or merged.email
    merged.merged_into_id = survivor.id
    merged.email = None  # free the address for the survivor
    session.flush()


def erase_personal_data(session: Session, lead: Lead, at: datetime) -> None:
    """Privacy deletion: forget who the person is, keep anonymous counts (kinds, times, scores)."""
    lead.email, lead.fields, lead.field_times, lead.erased_at = None, {}, {}, at
    session.execute(update(Event).where(Event.lead_id == lead.id)
                    .values(fields={}, properties={}, raw=None))
    session.execute(update(OutboxWrite).where(OutboxWrite.lead_id == lead.id,
                                              OutboxWrite.status == "pending").values(status="superseded"))
    session.execute(update(OutboxWrite).where(OutboxWrite.lead_id == lead.id).values(payload={}))
    # Reason texts can quote the person's data (a title, a company): keep only the numbers.
    session.execute(update(ScoreRecord).where(ScoreRecord.lead_id == lead.id)
                    .values(summary="", result={"erased": True}))


class Prefetched:
    """What a batch of leads' transactions read, loaded in a few statements for the whole batch
    (``load``) instead of a few per lead: the leads, locked together (``FOR UPDATE`` ordered by
    id on PostgreSQL, so two workers lock in the same order), their pending events, their
    activity signals and their latest CRM update.

    Each lead's share is handed out once (``take_*`` return None when it was not loaded or was
    taken already: the caller reads it itself, as after a merge brought another lead's rows).
    The rows stay in the batch's session, so what an earlier lead's transaction changed (a merge
    moving events, events marked processed) is what a later one sees.
    """

    def __init__(self) -> None:
        self._leads: dict[int, Lead] = {}  # held here: the session's identity map is weak
        self._pending: dict[int, list[Event]] = {}
        self._signals: dict[int, list[Signal]] = {}
        self._updates: dict[int, dict[str | None, OutboxWrite]] = {}

    def load(self, session: Session, svc: Services, lead_ids: list[int]) -> None:
        """Lock and read the leads ``lead_ids`` and what processing them reads (four statements).
        Until it returns, nothing is handed out (a failed load leaves each lead to read its own)."""
        self._leads, self._pending, self._signals, self._updates = {}, {}, {}, {}
        stmt = select(Lead).where(Lead.id.in_(lead_ids)).order_by(Lead.id)
        if session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        pending: dict[int, list[Event]] = {lead_id: [] for lead_id in lead_ids}
        signals: dict[int, list[Signal]] = {lead_id: [] for lead_id in lead_ids}
        updates: dict[int, dict[str | None, OutboxWrite]] = {lead_id: {} for lead_id in lead_ids}
        with session.no_autoflush:
            leads = {lead.id: lead for lead in session.scalars(stmt)}
            for event in session.scalars(select(Event).where(Event.lead_id.in_(lead_ids), Event.processed_at.is_(None))
                                         .order_by(Event.lead_id, Event.occurred_at, Event.id)):
                pending[event.lead_id].append(event)
            for lead_id, kind, at, props, key in session.execute(
                    select(Event.lead_id, Event.kind, Event.occurred_at, Event.properties, Event.event_key)
                    .where(Event.lead_id.in_(lead_ids), Event.kind.in_(list(svc.rules.activity_kinds)))
                    .order_by(Event.lead_id, Event.occurred_at, Event.id)):
                signals[lead_id].append(Signal(kind=kind, occurred_at=at, properties=props or {}, key=key))
            for (lead_id, crm_id), write in latest_updates(session, lead_ids).items():
                updates[lead_id][crm_id] = write
        self._leads, self._pending, self._signals, self._updates = leads, pending, signals, updates

    def take_lead(self, session: Session, lead_id: int) -> Lead | None:
        """The lead, locked (``lock_lead``)."""
        lead = self._leads.pop(lead_id, None)
        return lead if lead is not None else lock_lead(session, lead_id)

    def take_pending(self, lead_id: int) -> list[Event] | None:
        """The lead's events still unprocessed, oldest first."""
        events = self._pending.pop(lead_id, None)
        if events is None:
            return None
        return [event for event in events if event.lead_id == lead_id and event.processed_at is None]

    def take_signals(self, lead_id: int) -> list[Signal] | None:
        """All the lead's activity signals, oldest first (``signals_of`` with ``since_reset=False``)."""
        return self._signals.pop(lead_id, None)

    def take_update(self, lead: Lead) -> OutboxWrite | None:
        """The lead's ``latest_update`` (``NOT_READ`` if not loaded)."""
        updates = self._updates.pop(lead.id, None)
        if updates is None:
            return NOT_READ
        return updates.get(lead.crm_id) if lead.crm_id is not None else None


# --- events ----------------------------------------------------------------------------------

def apply_event(session: Session, lead: Lead, event: Event, now: datetime) -> bool:
    """Apply one event to the lead; return whether it can change the lead's score or stage."""
    changed = event.kind not in CRM_RECORD_KINDS  # activity (and a deal change) always counts
    if event.kind in FIELD_KINDS and event.fields:
        changed = apply_fields(lead, event.fields, event.occurred_at) or changed
    if event.kind == "record_snapshot" and (event.properties or {}).get("converted_contact_id"):
        contact_lead = convert_lead(session, lead, event, now)
        if contact_lead is not None:
            merge_into(session, lead, contact_lead)
    if event.kind == "merge":
        for crm_id in event.properties.get("merged_ids", []):
            other = session.scalars(select(Lead).where(Lead.crm == lead.crm, Lead.crm_id == str(crm_id))).first()
            if other is not None:
                merge_into(session, lead, other)
    elif event.kind == "privacy_deletion":
        erase_personal_data(session, lead, event.occurred_at)
    elif event.kind == "deletion":
        lead.deleted_at = event.occurred_at
    elif event.kind == "restore":
        lead.deleted_at = None
    return changed or event.kind in ("merge", "restore")


# --- scoring ---------------------------------------------------------------------------------

def signals_of(session: Session, lead: Lead, activity_kinds: Iterable[str], *, since_reset: bool = True
               ) -> list[Signal]:
    """Return the lead's activity as scoring signals, oldest first.

    Signals before the lead's engagement reset (a recycle policy) no longer count, unless
    ``since_reset`` is False (the caller filters: ``signals_between``).
    """
    stmt = (select(Event.kind, Event.occurred_at, Event.properties, Event.event_key)
            .where(Event.lead_id == lead.id, Event.kind.in_(list(activity_kinds)))
            .order_by(Event.occurred_at, Event.id))
    if since_reset and lead.engagement_reset_at is not None:
        stmt = stmt.where(Event.occurred_at >= lead.engagement_reset_at)
    return [Signal(kind=kind, occurred_at=at, properties=props or {}, key=key)
            for kind, at, props, key in session.execute(stmt)]


def signals_between(signals: list[Signal], times: list[datetime], since: datetime | None, until: datetime | None
                    ) -> list[Signal]:
    """The signals (oldest first; ``times`` their ``occurred_at``) that occurred at or after ``since``
    and at or before ``until`` (None: no bound), found by bisection: a batch's steps filter one
    list loaded once."""
    first = 0 if since is None else bisect_left(times, since)
    last = len(signals) if until is None else bisect_right(times, until)
    return signals[first:last]


@dataclass(frozen=True)
class ScoringInputs:
    """What scoring a lead reads: its profile, its activity, its recycle penalty."""

    profile: LeadProfile
    signals: list[Signal]
    penalty: float
    penalty_reason: str


def scoring_inputs(session: Session, svc: Services, lead: Lead) -> ScoringInputs:
    """The lead's stored fields and activity, as scoring takes them."""
    penalty = float(lead.score_penalty or 0)
    return ScoringInputs(LeadProfile(fields={**(lead.fields or {}), "email": lead.email}),
                         signals_of(session, lead, svc.rules.activity_kinds), penalty,
                         f"recycled by sales ({lead.recycle_reason})" if penalty else "")


def score_now(session: Session, svc: Services, lead: Lead, now: datetime,
              inputs: ScoringInputs | None = None) -> ScoreResult:
    """Score the lead on its stored fields and activity as of ``now``."""
    inputs = inputs or scoring_inputs(session, svc, lead)
    return score_lead(inputs.profile, inputs.signals, svc.rules, now, penalty=inputs.penalty,
                      penalty_reason=inputs.penalty_reason)


def plan_review(svc: Services, lead: Lead, inputs: ScoringInputs, now: datetime) -> None:
    """Note when the lead's visible verdict next changes with no new event (``scoring.next_change``,
    and the end of a recycle cooldown: ``scoring.review.next_review``), for the on-time rescoring."""
    change = next_change(inputs.profile, inputs.signals, svc.rules, now, penalty=inputs.penalty)
    review = next_review(change, lead_state(lead), now)
    lead.next_review_at = review.at if review is not None else None
    lead.next_review_reason = f"{review.reason} ({review.cause})"[:160] if review is not None else None


def record_score(session: Session, lead: Lead, result: ScoreResult, now: datetime, seen: int,
                 cause: str | None = None) -> None:
    """Record the result (``cause``: why a lead was rescored with no new event) and keep it on the lead."""
    data = result.to_dict()
    if cause:
        data["cause"] = cause
    session.add(ScoreRecord(
        lead_id=lead.id, computed_at=now, as_of=result.as_of, rules_version=result.rules_version,
        score=result.score, fit_points=result.fit_points, engagement_points=result.engagement_points,
        band=result.band, grade=result.grade, mql=result.mql, disqualified=result.disqualified,
        summary=result.summary, result=data, events_seen=seen,
    ))
    lead.score, lead.fit_points, lead.engagement_points = result.score, result.fit_points, result.engagement_points
    lead.band, lead.grade, lead.mql = result.band, result.grade, result.mql
    lead.disqualified = result.disqualified
    lead.rules_version, lead.scored_at, lead.updated_at = result.rules_version, now, now


# --- the lifecycle ---------------------------------------------------------------------------

def lead_state(lead: Lead) -> LeadState:
    """The lead's place in the loop, as the pure lifecycle sees it."""
    fields = dict(lead.fields or {})
    values = {name: getattr(lead, name) for name in STATE_COLUMNS}
    values["owner_id"] = values["owner_id"] or fields.get("owner_id") or None
    values["score_penalty"] = int(values["score_penalty"] or 0)
    return LeadState(crm=lead.crm, fields={**fields, "email": lead.email}, **values)


def record_decision(session: Session, lead: Lead, decision: Decision | SlaDecision, rules_version: str | None,
                    changes: CrmChanges) -> None:
    """Store a lifecycle decision: its transitions (with the rules version), the new state, the
    CRM status fields it sets, the recycle's nurture track."""
    for transition in decision.transitions:
        session.add(Transition(lead_id=lead.id, from_stage=transition.from_stage, to_stage=transition.to_stage,
                               cause=transition.cause, detail=_jsonable(transition.detail),
                               rules_version=rules_version, at=transition.at))
    for name in STATE_COLUMNS:
        setattr(lead, name, getattr(decision.state, name))
    if decision.transitions:  # the CRM shows the stage the lead ends in, not one it passed through
        changes.crm_fields = dict(decision.crm_fields)
    if decision.recycle is not None:
        lead.nurture_track = decision.recycle.nurture_track
    for note in decision.notes:
        log.debug("lead %s: %s", lead.id, note)


def _jsonable(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _jsonable(v) for k, v in detail.items()}
    if isinstance(detail, (list, tuple)):
        return [_jsonable(v) for v in detail]
    if isinstance(detail, datetime):
        return detail.isoformat()
    return detail


def apply_score(session: Session, svc: Services, lead: Lead, result: ScoreResult, now: datetime,
                changes: CrmChanges) -> None:
    """Apply the score: nurture, hand-off (owner + task + SLA), disqualification."""
    decision = decide(lead_state(lead), result, None, svc.rules.lifecycle, now)
    record_decision(session, lead, decision, result.rules_version, changes)
    if decision.handoff is not None:
        hand_off(session, svc, lead, decision.handoff, decision.playbook or result.playbook, result,
                 latest_activity_line(session, lead), now, changes)


@dataclass(frozen=True, slots=True)
class PendingHandoff:
    """A hand-off the lifecycle decided at ``at`` (business time), made at the batch's end if the
    lead is still an MQL then."""

    handoff: Handoff
    playbook: str
    result: ScoreResult
    at: datetime


class BatchWalk:
    """One lead's pending events taking effect in business-time order, as live delivery would
    have applied them one by one.

    ``take`` applies each event (oldest first) and, at its own ``occurred_at``: a CRM status
    change as a sales disposition, a deal change as an outcome (each after the score steps before
    it), then a score step where the score or stage can change: the lead scored as of that time
    (its signals up to then, its fields as they are after the event) and the lifecycle deciding at
    that time. Events sharing a time share one score step; an event that changed nothing (a CRM
    echo) and a lead sales owns (``scoring.lifecycle.score_may_move``) take none. The activity is
    loaded once (again only after a merge brought more). Hand-offs are only noted (``handoff``):
    ``finish`` makes the last one if the final stage still calls for it.
    """

    def __init__(self, session: Session, svc: Services, lead: Lead, now: datetime,
                 signals: list[Signal] | None = None) -> None:
        self.session, self.svc, self.lead, self.now = session, svc, lead, now
        self.changes = CrmChanges()
        #: Whether any event can change the score or stage (else: CRM echoes only).
        self.changed = False
        #: Whether a merge (or a conversion) moved another lead's rows onto this one.
        self.merged = False
        self.handoff: PendingHandoff | None = None
        self._signals = signals  # all the lead's activity (``signals_of``), if read already
        self._signal_times = [signal.occurred_at for signal in signals or ()]
        self._step_at: datetime | None = None  # a score step owed at this business time

    def take(self, events: list[Event]) -> None:
        """Apply ``events`` (ordered by ``occurred_at``, then id) with their decisions."""
        lead, feedback_fields = self.lead, self.svc.feedback_fields
        for event in events:
            at = event.occurred_at
            fields = event.fields or {}
            is_feedback = event.kind == "deal_change" or any(name in fields for name in feedback_fields)
            if self._step_at is not None and (at > self._step_at or is_feedback):
                self.score_step()
            before = {name: (lead.fields or {}).get(name) for name in feedback_fields}
            changed = apply_event(self.session, lead, event, self.now)
            if event.kind in self.svc.rules.activity_kinds and (
                    lead.last_engagement_at is None or at > lead.last_engagement_at):
                lead.last_engagement_at = at
            if event.kind == "merge" or (event.properties or {}).get("converted_contact_id"):
                self._signals = None  # a merge may have brought the other lead's activity
                self.merged = True
            if changed:
                self.changed = True
            elif lead.scored_at is not None:
                continue
            # else a lead never scored: its first event (a CRM record's creation, which carries no
            # fields) still sets the business time of its first decision, not the processing time
            if self.gone:
                self._step_at = None
                continue
            for name, old in before.items():
                new = (lead.fields or {}).get(name)
                if new != old and new not in (None, ""):
                    self._apply_disposition(StatusChange(name, new, at))
            if event.kind == "deal_change":
                self._apply_deal_outcome(event)
            self._step_at = at

    def when(self, at: datetime) -> datetime:
        """The business time a decision caused at ``at`` takes: ``at``, or the lead's last stage
        change if that is later (an event delivered after newer ones: history never runs back)."""
        changed_at = self.lead.stage_changed_at
        return changed_at if changed_at is not None and changed_at > at else at

    @property
    def gone(self) -> bool:
        """Merged away, erased or deleted: the lead is no longer scored."""
        lead = self.lead
        return lead.merged_into_id is not None or lead.erased_at is not None or lead.deleted_at is not None

    def signals(self) -> list[Signal]:
        """All the lead's activity signals, oldest first (loaded once; ``signals_of``)."""
        if self._signals is None:
            self._signals = signals_of(self.session, self.lead, self.svc.rules.activity_kinds, since_reset=False)
            self._signal_times = [signal.occurred_at for signal in self._signals]
        return self._signals

    def inputs(self, until: datetime | None) -> ScoringInputs:
        """What scoring reads, with the activity up to ``until`` since the engagement reset."""
        lead = self.lead
        penalty = float(lead.score_penalty or 0)
        return ScoringInputs(LeadProfile(fields={**(lead.fields or {}), "email": lead.email}),
                             signals_between(self.signals(), self._signal_times, lead.engagement_reset_at, until),
                             penalty,
                             f"recycled by sales ({lead.recycle_reason})" if penalty else "")

    def score(self, at: datetime, inputs: ScoringInputs) -> ScoreResult:
        with self.svc.telemetry.timed("leadloop_scoring_seconds"):
            return score_now(self.session, self.svc, self.lead, at, inputs)

    def score_step(self) -> None:
        """The owed score step: score as of its time and let the lifecycle decide then."""
        at, self._step_at = self._step_at, None
        if at is None or self.gone or not score_may_move(self.lead.stage):
            return
        at = self.when(at)
        result = self.score(at, self.inputs(at))
        self.decide(result, at)

    def decide(self, result: ScoreResult, at: datetime) -> None:
        """The lifecycle's decision on ``result`` at ``at``; a hand-off is noted for ``finish``."""
        decision = decide(lead_state(self.lead), result, None, self.svc.rules.lifecycle, at)
        record_decision(self.session, self.lead, decision, result.rules_version, self.changes)
        if decision.handoff is not None:
            self.handoff = PendingHandoff(decision.handoff, decision.playbook or result.playbook, result, at)

    def _apply_disposition(self, change: StatusChange) -> None:
        rules = self.svc.rules.lifecycle
        disposition = disposition_for(self.lead.crm or "", change.field, str(change.value), rules,
                                      occurred_at=change.occurred_at)
        if disposition is not None:
            decision = decide(lead_state(self.lead), None, disposition, rules, self.when(change.occurred_at))
            record_decision(self.session, self.lead, decision, self.svc.rules.version, self.changes)

    def _apply_deal_outcome(self, event: Event) -> None:
        found = lead_deal_outcome(self.session, self.lead, event)
        if found is not None:
            outcome, detail = found
            decision = outcome_decision(lead_state(self.lead), outcome, self.svc.rules.lifecycle,
                                        self.when(event.occurred_at), detail)
            record_decision(self.session, self.lead, decision, self.svc.rules.version, self.changes)

    def finish(self, seen: int) -> ScoreResult:
        """The last score step, then the final scoring as of now: recorded on the lead, decided on,
        and the hand-off made if the lead is still an MQL (a lead sales already took on in this
        batch gets no task). Returns the final result, for the CRM update."""
        if self._step_at is not None and self._step_at < self.now:
            self.score_step()
        self._step_at = None
        inputs = self.inputs(None)
        result = self.score(self.now, inputs)
        record_score(self.session, self.lead, result, self.now, seen)
        self.decide(result, self.now)
        pending = self.handoff
        if pending is not None and self.lead.stage == "mql":
            hand_off(self.session, self.svc, self.lead, pending.handoff, pending.playbook, pending.result,
                     latest_activity_line(self.session, self.lead), self.now, self.changes, at=pending.at)
        plan_review(self.svc, self.lead, inputs, self.now)
        return result


# --- the transactions ------------------------------------------------------------------------

def process_lead(session: Session, svc: Services, lead_id: int, now: datetime,
                 prefetched: Prefetched | None = None) -> LeadOutcome:
    """Apply and score one lead's pending events inside the caller's transaction, in business-time
    order (``BatchWalk``). ``prefetched``: what the job read for its leads at once (``Prefetched``)."""
    outcome = LeadOutcome()
    prefetched = prefetched or Prefetched()
    lead = prefetched.take_lead(session, lead_id)
    if lead is None or lead.quarantined_at is not None:
        return outcome  # a quarantined lead waits for `leadloop dead-letters --retry`
    scored_before = lead.scored_at is not None
    walk = BatchWalk(session, svc, lead, now, prefetched.take_signals(lead_id))
    seen = 0
    first = prefetched.take_pending(lead_id)
    # A merge moves the merged lead's still-unprocessed events onto this lead: drain again.
    for _ in range(5):
        pending = first if first is not None else list(session.scalars(
            select(Event).where(Event.lead_id == lead_id, Event.processed_at.is_(None))
            .order_by(Event.occurred_at, Event.id)
        ))
        first = None
        if not pending:
            break
        seen += len(pending)
        walk.take(pending)
        # One statement marks them processed (rather than an UPDATE per event when flushing);
        # the lead's row is written once, at the savepoint's end, not flushed here too.
        with session.no_autoflush:
            session.execute(update(Event).where(Event.id.in_([event.id for event in pending]))
                            .values(processed_at=now))
        if not any(event.kind == "merge" or (event.properties or {}).get("converted_contact_id") for event in pending):
            break  # no merge: nothing more can have arrived on this lead (spares a query per lead)
    if not seen:
        return outcome
    clear_failures(lead)  # rolled back with everything else if this run fails too
    if walk.gone:
        return outcome
    if not walk.changed and scored_before:
        # Only CRM echoes that changed nothing (e.g. our own write-back coming back as an
        # outbound message): rescoring would write the same values and trigger the echo again.
        return outcome
    result = walk.finish(seen)
    outcome.scored = True
    changes = walk.changes
    last = NOT_READ if walk.merged else prefetched.take_update(lead)  # a merge moves outbox rows
    if lead.crm and (queue_update(session, lead, result, now, changes, last) or changes.task_queued):
        outcome.crm_writes.add(lead.crm)
    if changes.record_crm:  # a web-only lead's record is being created there
        outcome.crm_writes.add(changes.record_crm)
    return outcome


def check_sla(session: Session, svc: Services, lead_id: int, due_at: datetime, now: datetime) -> dict[str, Any]:
    """At a hand-off's due time: if sales did not act, escalate (remind, reassign, recycle).

    Returns ``{"action", "sla_misses"}`` and, when a CRM write was queued, ``"crm"``.
    """
    lead = lock_lead(session, lead_id)
    if lead is None or lead.sla_due_at is None or lead.sla_due_at.isoformat() != \
            due_at.astimezone(lead.sla_due_at.tzinfo).isoformat():
        return {"action": "stale"}
    if now < lead.sla_due_at:
        return {"action": "not yet due"}
    decision = on_sla_due(lead_state(lead), crm_shows_action(session, svc, lead), svc.rules.lifecycle, now)
    stage_before = lead.stage
    changes = CrmChanges()
    record_decision(session, lead, decision, svc.rules.version, changes)
    if decision.action in ("remind", "reassign"):
        session.add(Transition(lead_id=lead.id, from_stage=stage_before, to_stage=stage_before, cause="sla",
                               detail={"action": decision.action, "sla_misses": decision.sla_misses},
                               rules_version=svc.rules.version, at=now))
    lead.sla_due_at = None
    result = current_result(session, svc, lead, now)
    if decision.action in ("remind", "reassign") and decision.playbook and result is not None:
        handoff = decision.handoff or Handoff(route="keep_existing_owner", owner_id=lead.owner_id)
        hand_off(session, svc, lead, handoff, decision.playbook, result, None, now, changes)
    report: dict[str, Any] = {"action": decision.action, "sla_misses": decision.sla_misses}
    queued = result is not None and lead.crm is not None and queue_update(session, lead, result, now, changes)
    if lead.crm is not None and (queued or changes.task_queued):
        report["crm"] = lead.crm
    elif changes.record_crm:
        report["crm"] = changes.record_crm
    return report


def crm_shows_action(session: Session, svc: Services, lead: Lead) -> bool:
    """Did sales act since the hand-off? The lead status changed in the CRM, the owner logged a
    call, email or meeting the SLA counts (``integration.pipeline.rep_activity``), or (live mode)
    the rep completed the hand-off's task. If the CRM cannot say, the rest decides."""
    if (lead.fields or {}).get("lead_status") != lead.handoff_status:
        return True
    if rep_acted(session, lead, lead_state(lead), svc.rules.lifecycle) is not None:
        return True
    task_id = latest_sent_task_id(session, lead.id)
    if not (svc.live_writes and lead.crm and task_id):
        return False
    try:
        return not svc.crm_client(lead.crm).task_is_open(task_id)
    except CrmError as exc:
        log.warning("lead %s: could not read task %s (%s); judging the SLA by status", lead.id, task_id, exc)
        return False


def current_result(session: Session, svc: Services, lead: Lead, now: datetime) -> ScoreResult | None:
    """The lead's current result (recomputed: scoring is pure and cheap), or None if erased."""
    if lead.erased_at is not None or lead.merged_into_id is not None:
        return None
    return score_now(session, svc, lead, now)


def rescore_lead(session: Session, svc: Services, lead_id: int, now: datetime, cause: str | None = None
                 ) -> LeadOutcome:
    """Score a lead again as of ``now`` with no new event (a rules roll-out, a time-driven change).

    The verdict is recorded under the live rules and the lifecycle applies it as it would any
    score (a hand-off follows the same rules); the CRM gets an update only when what the rep sees
    changed. Leads that are merged away, erased, deleted, quarantined or never scored are left.
    A lead imported from a source no connector serves (``leadloop import csv``) is history: its
    score is kept current for the reports, but it never moves stage, is never handed off and has
    no CRM to write to.
    """
    outcome = LeadOutcome()
    lead = lock_lead(session, lead_id)
    if lead is None or lead.scored_at is None or lead.quarantined_at is not None or \
            lead.merged_into_id is not None or lead.erased_at is not None or lead.deleted_at is not None:
        return outcome
    changes = CrmChanges()
    inputs = scoring_inputs(session, svc, lead)
    result = score_now(session, svc, lead, now, inputs)
    record_score(session, lead, result, now, 0, cause)
    outcome.scored = True
    if lead.crm is not None and lead.crm not in registry():
        plan_review(svc, lead, inputs, now)
        return outcome
    apply_score(session, svc, lead, result, now, changes)
    plan_review(svc, lead, inputs, now)
    if lead.crm and (queue_update(session, lead, result, now, changes) or changes.task_queued):
        outcome.crm_writes.add(lead.crm)
    return outcome

"""The lead lifecycle: which stage a lead is in, and what a score or a sales disposition changes.

::

    new -> nurture -> mql -> accepted (SAL) -> sql -> won | lost
             ^         |  rejected / SLA missed
             +- recycled (cooldown) <-+          (bad data, competitor, too many recycles: disqualified)

Pure: ``decide`` takes the lead's stored state, at most one score result and one disposition,
the rules and the current time, and returns a ``Decision``; the queue job stores
``Decision.state``, records ``Decision.transitions`` with the rules version, routes the
hand-off (``scoring.routing``), plans the task (``scoring.lifecycle_follow_up``) and queues the CRM write.

Rules that always hold: a lead sales owns (accepted, sql, won, lost) is never re-routed or moved
back by a score; a disposition never moves a lead backwards (``accepted`` after ``won`` is
ignored, and a rejection older than the last stage change is ignored); a lead in cooldown does
not become an MQL, and after a recycle it needs an engagement signal newer than the recycle;
the same inputs always give the same decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from scoring.lifecycle_rules import LifecycleRules
from scoring.lifecycle_schemas import (
    DISPOSITION_KINDS,
    REJECT_REASONS,
    STAGES,
    canonical_field,
    parse_disposition,
)
from scoring.routing import Handoff, route_lead

if TYPE_CHECKING:
    from scoring import ScoreResult

#: How far along the loop a stage is; a disposition only ever moves a lead to a higher rank
#: (``won`` may follow ``lost``: a reopened deal). Rejections are the one way back.
STAGE_RANK: dict[str, int] = {
    "new": 0, "nurture": 1, "recycled": 1, "mql": 2, "accepted": 3, "sql": 4,
    "lost": 5, "disqualified": 5, "won": 6,
}
#: Stages where a score may still move the lead (marketing's side of the loop, plus mql).
MARKETING_STAGES = frozenset({"new", "nurture", "recycled"})
#: Stages sales owns: scores never move or re-route these.
SALES_STAGES = frozenset({"accepted", "sql", "won", "lost"})
TERMINAL_STAGES = frozenset({"won", "lost", "disqualified"})
#: Stages a rejection recycles from (the lead is with sales).
REJECTABLE_STAGES = frozenset({"mql", "accepted", "sql"})
#: Disposition kind -> the stage it moves the lead to (``rejected`` follows the recycle policy).
DISPOSITION_STAGES: dict[str, str] = {
    "accepted": "accepted", "qualified": "sql", "won": "won", "lost": "lost",
}


@dataclass(frozen=True)
class StageTransition:
    """One stage change; the caller records it with the rules version."""

    from_stage: str
    to_stage: str
    #: ``score``, ``disposition``, ``sla``, ``recycle``, ``cooldown_expired`` or ``merge``.
    cause: str
    detail: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True)
class Disposition:
    """What sales said about a lead, translated from a CRM status (see ``disposition_for``)."""

    #: ``accepted``, ``qualified``, ``won``, ``lost`` or ``rejected``.
    kind: str
    #: The reason code of a rejection (``not_ready``, ``no_response``, ``bad_data`` ...).
    reason: str | None = None
    #: When the CRM value changed, if known; a rejection older than the lead's last stage
    #: change is ignored.
    occurred_at: datetime | None = None
    #: Where it came from, for the audit trail: ``hubspot hs_lead_status=BAD_TIMING``.
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in DISPOSITION_KINDS:
            raise ValueError(f"unknown disposition {self.kind!r}")
        if (self.kind == "rejected") != (self.reason in REJECT_REASONS):
            raise ValueError(f"bad reason {self.reason!r} for disposition {self.kind!r}")


@dataclass(frozen=True)
class LeadState:
    """What the database keeps about a lead's place in the loop (input and output of ``decide``)."""

    stage: str = "new"
    #: ``hubspot`` / ``salesforce`` (None for a web-only lead): picks the CRM stage fields.
    crm: str | None = None
    owner_id: str | None = None
    #: The owner's timezone and holiday country, if known (else the team entry / working hours).
    owner_tz: str | None = None
    owner_country: str | None = None
    #: The team the lead was routed to at its last hand-off.
    team: str | None = None
    #: Canonical lead fields (routing conditions and the task subject read them).
    fields: Mapping[str, Any] = field(default_factory=dict)
    recycle_count: int = 0
    recycle_reason: str | None = None
    #: When the lead was last recycled: the cooldown start; MQL again needs newer engagement.
    recycled_at: datetime | None = None
    cooldown_until: datetime | None = None
    #: The scorer ignores engagement signals before this time.
    engagement_reset_at: datetime | None = None
    #: Points the scorer subtracts (recycle policy ``reset: penalty``), cumulative.
    score_penalty: int = 0
    #: ``occurred_at`` of the newest engagement signal (activity event) of the lead.
    last_engagement_at: datetime | None = None
    sla_misses: int = 0
    last_handoff_at: datetime | None = None
    #: The playbook and band of the last hand-off (they pick the SLA policy).
    handoff_playbook: str | None = None
    handoff_band: str | None = None
    stage_changed_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}")


@dataclass(frozen=True)
class RecycleInfo:
    """What a recycle set; the CRM write shows ``reason`` and ``nurture_track``."""

    reason: str
    recycle_count: int
    cooldown_until: datetime | None
    nurture_track: str | None
    #: Set when the policy resets engagement: signals before it no longer count.
    engagement_reset_at: datetime | None = None
    #: Points the policy takes off future scores (0: none).
    score_penalty: int = 0


@dataclass(frozen=True)
class Decision:
    """Everything ``decide`` concluded; ``state`` is what to store."""

    stage: str
    state: LeadState
    transitions: tuple[StageTransition, ...] = ()
    #: Set when the lead was handed to sales: route it (``scoring.routing.assign_owner``).
    handoff: Handoff | None = None
    #: The hand-off's playbook: plan its task with ``scoring.lifecycle_follow_up.plan_task``.
    playbook: str | None = None
    #: CRM fields for the new stage (``crm_stages``); empty when the stage did not change.
    crm_fields: Mapping[str, str] = field(default_factory=dict)
    recycle: RecycleInfo | None = None
    disqualified: bool = False
    disqualify_reason: str | None = None
    #: Why nothing happened, in plain words (``in cooldown until ...``), for the audit trail.
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """True if the stage changed."""
        return bool(self.transitions)


def disposition_for(crm: str, field_name: str, value: str, rules: LifecycleRules, *,
                    occurred_at: datetime | None = None) -> Disposition | None:
    """Return the disposition a CRM field value means, or None if the ``feedback`` section has none.

    ``field_name`` may be the CRM's name (``hs_lead_status``, ``lifecyclestage``, ``Status``) or
    the canonical one (``lead_status``, ``lifecycle_stage``). Values compare exactly. Pass the
    change's ``occurred_at`` so a late, older rejection can be told apart.
    """
    name = canonical_field(rules.crm_vocabulary, crm, field_name)
    text = rules.feedback.get(crm, {}).get(name, {}).get(str(value))
    if text is None:
        return None
    kind, reason = parse_disposition(text)
    return Disposition(kind, reason, occurred_at, source=f"{crm} {field_name}={value}")


def may_move_forward(stage: str, target: str) -> bool:
    """Whether sales' word (a disposition, a deal) may move a lead from ``stage`` to ``target``:
    only further along the loop and never out of a terminal stage, except to ``won`` (a deal
    reopened and won after all)."""
    if target == "won":
        return stage != "won"
    return stage not in TERMINAL_STAGES and STAGE_RANK[target] > STAGE_RANK[stage]


def score_may_move(stage: str) -> bool:
    """Whether a score can change anything for a lead in ``stage`` (``decide``): not once sales
    owns the lead or it is disqualified (an expired cooldown needs the recycled stage)."""
    return stage not in SALES_STAGES and stage != "disqualified"


def crm_fields_for(crm: str | None, stage: str, rules: LifecycleRules) -> dict[str, str]:
    """Return the CRM fields to write for a stage (``crm_stages``); empty if none are mapped."""
    return dict(rules.crm_stages.get(crm or "", {}).get(stage, {}))


class _Draft:
    """The decision being built: the evolving state plus what was concluded so far."""

    def __init__(self, lead: LeadState, rules: LifecycleRules, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.lead, self.rules, self.now = lead, rules, now
        self.state = lead
        self.transitions: list[StageTransition] = []
        self.notes: list[str] = []
        self.handoff: Handoff | None = None
        self.playbook: str | None = None
        self.recycle: RecycleInfo | None = None
        self.disqualify_reason: str | None = None

    def move(self, to_stage: str, cause: str, detail: Mapping[str, Any]) -> None:
        self.transitions.append(StageTransition(self.state.stage, to_stage, cause, dict(detail), self.now))
        self.state = replace(self.state, stage=to_stage, stage_changed_at=self.now)

    def disqualify(self, reason: str, cause: str, detail: Mapping[str, Any]) -> None:
        self.move("disqualified", cause, {**detail, "disqualify_reason": reason})
        self.disqualify_reason = reason

    def decision(self) -> Decision:
        stage = self.state.stage
        return Decision(
            stage=stage, state=self.state, transitions=tuple(self.transitions), handoff=self.handoff,
            playbook=self.playbook,
            crm_fields=crm_fields_for(self.state.crm, stage, self.rules) if self.transitions else {},
            recycle=self.recycle, disqualified=stage == "disqualified" and self.lead.stage != stage,
            disqualify_reason=self.disqualify_reason, notes=tuple(self.notes))


def decide(lead: LeadState, result: ScoreResult | None, disposition: Disposition | None,
           rules: LifecycleRules, now: datetime) -> Decision:
    """Return what a new score result and/or a sales disposition does to a lead at ``now``.

    Order: an expired cooldown first (recycled -> nurture), then the disposition, then the
    score. Either input may be None (both None only ends an expired cooldown). Raises
    ``ValueError`` for a naive ``now``.
    """
    draft = _Draft(lead, rules, now)
    if lead.stage == "recycled" and (lead.cooldown_until is None or now >= lead.cooldown_until):
        draft.move("nurture", "cooldown_expired", {"cooldown_until": lead.cooldown_until})
    if disposition is not None:
        _apply_disposition(draft, disposition)
    if result is not None:
        _apply_score(draft, result)
    return draft.decision()


def recycle_lead(lead: LeadState, reason: str, *, cause: str, rules: LifecycleRules, now: datetime,
                 detail: Mapping[str, Any] | None = None, clear_owner: bool = False) -> Decision:
    """Return the decision of sending a lead back to marketing for ``reason`` (a reason code).

    Follows the reason's recycle policy: disqualify (bad data ...), or recycle with a cooldown,
    an engagement reset or a point penalty, and a nurture track; past ``max_recycles`` the lead
    is disqualified instead. ``clear_owner`` drops the owner so the next hand-off routes anew.
    """
    draft = _Draft(lead, rules, now)
    _apply_recycle_policy(draft, reason, cause, detail or {}, clear_owner=clear_owner)
    return draft.decision()


def merge_leads(survivor: LeadState, absorbed: LeadState, rules: LifecycleRules, now: datetime) -> Decision:
    """Return the survivor's decision after a CRM merge: it takes the further-along stage.

    The survivor keeps its own fields; the absorbed lead's stage, owner and hand-off come along
    if it was further along. Counters and times take the larger value, so a merge never
    shortens a cooldown or forgives a recycle.
    """
    draft = _Draft(survivor, rules, now)
    draft.state = replace(
        survivor,
        recycle_count=max(survivor.recycle_count, absorbed.recycle_count),
        recycled_at=_latest(survivor.recycled_at, absorbed.recycled_at),
        cooldown_until=_latest(survivor.cooldown_until, absorbed.cooldown_until),
        engagement_reset_at=_latest(survivor.engagement_reset_at, absorbed.engagement_reset_at),
        last_engagement_at=_latest(survivor.last_engagement_at, absorbed.last_engagement_at),
        score_penalty=max(survivor.score_penalty, absorbed.score_penalty),
    )
    if STAGE_RANK[absorbed.stage] > STAGE_RANK[survivor.stage]:
        draft.state = replace(draft.state, owner_id=absorbed.owner_id, owner_tz=absorbed.owner_tz,
                              owner_country=absorbed.owner_country, team=absorbed.team,
                              last_handoff_at=absorbed.last_handoff_at, sla_misses=absorbed.sla_misses,
                              handoff_playbook=absorbed.handoff_playbook, handoff_band=absorbed.handoff_band,
                              recycle_reason=absorbed.recycle_reason)
        draft.move(absorbed.stage, "merge", {"merged_stage": absorbed.stage})
    return draft.decision()


def _latest(first: datetime | None, second: datetime | None) -> datetime | None:
    return max((value for value in (first, second) if value is not None), default=None)


def _apply_disposition(draft: _Draft, disposition: Disposition) -> None:
    stage = draft.state.stage
    detail = {"disposition": disposition.kind, "reason": disposition.reason, "source": disposition.source}
    if disposition.kind == "rejected":
        _apply_rejection(draft, disposition, detail)
        return
    if may_move_forward(stage, DISPOSITION_STAGES[disposition.kind]):
        draft.move(DISPOSITION_STAGES[disposition.kind], "disposition", detail)
    else:
        draft.notes.append(f"ignored {disposition.kind}: the lead is already {stage}")


def _apply_rejection(draft: _Draft, disposition: Disposition, detail: Mapping[str, Any]) -> None:
    stage, reason = draft.state.stage, disposition.reason or ""
    changed_at = draft.lead.stage_changed_at
    if stage in TERMINAL_STAGES:
        draft.notes.append(f"ignored rejected:{reason}: the lead is already {stage}")
    elif disposition.occurred_at and changed_at and disposition.occurred_at < changed_at:
        draft.notes.append(f"ignored rejected:{reason}: older than the last stage change")
    elif stage in REJECTABLE_STAGES or draft.rules.recycle.policy_for(reason).to == "disqualified":
        _apply_recycle_policy(draft, reason, "disposition", detail, clear_owner=False)
    else:
        draft.notes.append(f"ignored rejected:{reason}: the lead is already with marketing ({stage})")


def _apply_recycle_policy(draft: _Draft, reason: str, cause: str, detail: Mapping[str, Any], *,
                          clear_owner: bool) -> None:
    """Recycle the lead (cooldown, reset, track) or disqualify it, as the reason's policy says."""
    state, now = draft.state, draft.now
    policy = draft.rules.recycle.policy_for(reason)
    detail = {**detail, "reason": reason}
    if policy.to == "disqualified":
        draft.disqualify(reason, cause, detail)
        return
    count = state.recycle_count + 1
    if count > draft.rules.recycle.max_recycles:
        draft.disqualify("max_recycles", cause, {**detail, "recycle_count": state.recycle_count})
        return
    cooldown_until = now + policy.cooldown if policy.cooldown else None
    reset_at = now if policy.reset == "engagement" else None
    penalty = policy.penalty if policy.reset == "penalty" else 0
    draft.recycle = RecycleInfo(reason, count, cooldown_until, policy.track, reset_at, penalty)
    draft.move("recycled", cause, {**detail, "recycle_count": count})
    draft.state = replace(
        draft.state, recycle_count=count, recycle_reason=reason, recycled_at=now,
        cooldown_until=cooldown_until, engagement_reset_at=reset_at or state.engagement_reset_at,
        score_penalty=state.score_penalty + penalty, sla_misses=0,
        owner_id=None if clear_owner else state.owner_id)
    if cooldown_until is None:
        draft.move("nurture", "recycle", {"reason": reason})


def _score_detail(result: ScoreResult) -> dict[str, Any]:
    return {"score": result.score, "band": result.band, "grade": result.grade, "mql": result.mql,
            "playbook": result.playbook, "rules_version": result.rules_version}


def _mql_blocker(state: LeadState, now: datetime) -> str | None:
    """Return why a lead that meets the MQL definition may not become one now, or None."""
    if state.cooldown_until is not None and now < state.cooldown_until:
        return f"in cooldown until {state.cooldown_until.isoformat()}"
    if state.recycled_at is not None and (state.last_engagement_at is None
                                          or state.last_engagement_at <= state.recycled_at):
        return f"needs engagement after the recycle at {state.recycled_at.isoformat()}"
    return None


def _apply_score(draft: _Draft, result: ScoreResult) -> None:
    stage = draft.state.stage
    if stage in SALES_STAGES or stage == "disqualified":
        draft.notes.append(f"score ignored: the lead is {stage}")
        return
    detail = _score_detail(result)
    if result.disqualified:
        draft.disqualify(result.disqualify_reason or "score", "score", detail)
        return
    if stage == "mql":
        return  # already with sales; the SLA decides what happens next
    if result.mql:
        blocker = _mql_blocker(draft.state, draft.now)
        if blocker is None:
            _hand_off(draft, result, detail)
            return
        draft.notes.append(f"not an MQL yet: {blocker}")
    if stage == "new":
        draft.move("nurture", "score", detail)


def _hand_off(draft: _Draft, result: ScoreResult, detail: Mapping[str, Any]) -> None:
    state, handoff_rules = draft.state, draft.rules.handoff
    if handoff_rules.keep_existing_owner and state.owner_id:
        handoff = Handoff(route="keep_existing_owner", owner_id=state.owner_id)
    else:
        handoff = route_lead(state.fields, handoff_rules)
    draft.move("mql", "score", {**detail, "route": handoff.route})
    draft.handoff, draft.playbook = handoff, result.playbook
    draft.state = replace(draft.state, last_handoff_at=draft.now, sla_misses=0, team=handoff.team,
                          handoff_playbook=result.playbook, handoff_band=result.band)

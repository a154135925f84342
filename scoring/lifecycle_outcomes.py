"""Deals as outcomes: what a deal's stage means (open, won, lost), what a lead's deals make of
it, and the stage that moves it to.

Pure. Whether a stage is won, lost or still open comes from the stage's own flags, which every
CRM keeps on the stage and sends with the deal (HubSpot ``hs_is_closed``/``hs_is_closed_won``,
from the pipeline stage's ``isClosed`` and probability; Salesforce ``IsClosed``/``IsWon``, from
``OpportunityStage``), never from the stage's id or label. The rules file's ``outcomes`` section
says, per CRM and pipeline, which deals count at all and what a stage means when the CRM sent no
flags (``DealStage`` with ``is_closed``/``is_won`` None):

1. a pipeline with ``count: false`` (or not listed, with ``other_pipelines: ignore``), or a stage
   listed as ``ignore``: no outcome;
2. the stage's flags: won -> ``won``, closed and not won -> ``lost``, not closed -> ``open``;
3. without flags, the stage's entry in the pipeline's ``stages``; else ``open`` (a deal exists).

A lead with several deals takes the best outcome (won, else open, else lost): a lost deal does not
make a lead whose other deal is open ``lost``. The outcome moves the lead forward only
(``scoring.lifecycle.may_move_forward``): open -> ``sql``, won -> ``won``, lost -> ``lost``; a
late or older deal event never moves it back, and ``won`` may follow ``lost`` (a reopened deal).
The transition is recorded at the business time of the deal change that caused it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from scoring.lifecycle import Decision, LeadState, StageTransition, crm_fields_for, may_move_forward
from scoring.lifecycle_rules import CrmOutcomes, LifecycleRules

#: A deal without a pipeline (Salesforce opportunities without a record type) is in this one.
DEFAULT_PIPELINE = "default"
#: Deal outcome -> the lead stage it moves the lead to.
OUTCOME_STAGES: dict[str, str] = {"open": "sql", "won": "won", "lost": "lost"}
#: Best first: a lead's outcome is the best of its deals'.
OUTCOME_ORDER = ("won", "open", "lost")


@dataclass(frozen=True)
class DealStage:
    """Where a deal is, as the connector reported it (None: the CRM did not say)."""

    pipeline: str | None = None
    stage: str | None = None
    #: The stage's own flags.
    is_closed: bool | None = None
    is_won: bool | None = None


def deal_outcome(crm: str, deal: DealStage, rules: LifecycleRules) -> str | None:
    """Return ``open``, ``won`` or ``lost`` for a deal, or None when it is no outcome (see the module)."""
    crm_rules = rules.outcomes.get(crm) or CrmOutcomes()
    pipeline = crm_rules.pipelines.get(deal.pipeline or DEFAULT_PIPELINE)
    if pipeline is None and crm_rules.other_pipelines == "ignore":
        return None
    if pipeline is not None and not pipeline.count:
        return None
    listed = pipeline.stages.get(deal.stage) if pipeline is not None and deal.stage is not None else None
    if listed == "ignore":
        return None
    if deal.is_won:
        return "won"
    if deal.is_closed is not None:
        return "lost" if deal.is_closed else "open"
    return listed or "open"


def lead_outcome(outcomes: Iterable[str | None]) -> str | None:
    """Return the best of a lead's deal outcomes (won, else open, else lost), or None for none."""
    found = set(outcomes)
    return next((outcome for outcome in OUTCOME_ORDER if outcome in found), None)


def outcome_decision(lead: LeadState, outcome: str, rules: LifecycleRules, at: datetime,
                     detail: Mapping[str, Any] | None = None) -> Decision:
    """Return what a lead's deal outcome does to it; ``at`` is the business time of the deal change.

    Moves the lead to ``OUTCOME_STAGES[outcome]`` when that is forward (cause ``deal``, with
    ``detail`` such as the deal id, stage and amount); otherwise changes nothing and says why.
    Raises ``KeyError`` for an unknown outcome and ``ValueError`` for a naive ``at``.
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    target, stage = OUTCOME_STAGES[outcome], lead.stage
    if not may_move_forward(stage, target):
        return Decision(stage=stage, state=lead, notes=(f"deal {outcome} ignored: the lead is already {stage}",))
    transition = StageTransition(stage, target, "deal", dict(detail or {}, outcome=outcome), at)
    # A late deal change is recorded at its own time, but the stage's time never goes back.
    changed_at = max(at, lead.stage_changed_at) if lead.stage_changed_at else at
    state = replace(lead, stage=target, stage_changed_at=changed_at)
    return Decision(stage=target, state=state, transitions=(transition,),
                    crm_fields=crm_fields_for(lead.crm, target, rules))

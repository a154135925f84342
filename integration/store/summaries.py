"""Report summaries: per lead its first touch, its entries into each stage and its touches of each
call to action, kept up to date from the events and transitions the pipeline writes.

``refresh`` folds in only the rows added since the last refresh (ids above the watermark), with
``INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE`` (the same on PostgreSQL and SQLite),
moves the watermark and commits, in one transaction. The pipeline's cron refreshes every minute
(``integration.pipeline.jobs.cron_jobs``) and every report refreshes before it reads, so a report
is always current and its refresh is only the last minute's rows.

The rules that keep the summaries equal to a full rebuild:

- Events are read at insertion (business time ``occurred_at``; processing them later changes
  nothing here), transitions when written.
- A merge moves the merged lead's events and transitions to the survivor: a lead merged away
  that still has summary rows has them deleted, and its survivor's (the end of the
  ``merged_into_id`` chain) are rebuilt from all its rows.
- An erasure empties the lead's event properties (the names of the calls to action): an erased
  lead that still has content rows has its summaries rebuilt from its rows.
- On PostgreSQL the refresh first takes ``SHARE ROW EXCLUSIVE`` locks on events and transitions:
  it waits for the transactions writing them to commit (so no row with an id under the new
  watermark is still invisible), holds writers off only for the refresh itself, and two refreshes
  (the cron's and a report's) run one after the other, the second from the first's watermark.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, case, delete, func, literal, or_, select, text, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from integration.store.models import Event, Lead, LeadContentSummary, LeadSummary, SummaryWatermark, Transition

#: The event kinds that are a conversion on the asset, form or campaign they name.
CONVERSIONS = ("form_submit", "content_download", "trial_signup", "event_attended", "contact_request")
#: The kinds of call to action: each is an event property naming one.
CALLS_TO_ACTION = ("asset", "form", "campaign")
#: PostgreSQL settings for a refresh's transaction (a full one groups millions of rows): as the
#: reports' (``integration.reports.sql.REPORT_SETTINGS``), JIT off and sorts and hashes in memory.
REFRESH_SETTINGS = {"jit": "off", "work_mem": "'256MB'"}
#: The stages a lead enters by a transition: ``LeadSummary`` has a first and last entry and a count of each.
ENTERED_STAGES = ("nurture", "mql", "accepted", "sql", "won", "lost", "recycled", "disqualified")
SUMMARIES = (LeadSummary, LeadContentSummary)
#: Their tables' names (and the watermark's).
SUMMARY_TABLES = tuple(model.__tablename__ for model in (*SUMMARIES, SummaryWatermark))


def refresh(session: Session) -> dict[str, int]:
    """Fold the events and transitions added since the last refresh into the summaries, rebuild
    the leads a merge or an erasure changed, move the watermark and commit. Returns how many
    events and transitions were read and how many leads were rebuilt."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("LOCK TABLE events, transitions IN SHARE ROW EXCLUSIVE MODE"))
        for name, value in REFRESH_SETTINGS.items():
            session.execute(text(f"SET LOCAL {name} = {value}"))
    mark = session.get(SummaryWatermark, 1)
    if mark is None:
        mark = SummaryWatermark(id=1, transition_id=0, event_id=0)
        session.add(mark)
    last_event = session.scalar(select(func.coalesce(func.max(Event.id), 0)))
    last_transition = session.scalar(select(func.coalesce(func.max(Transition.id), 0)))
    rebuilt = _leads_to_rebuild(session)
    if rebuilt:
        for summary in SUMMARIES:
            session.execute(delete(summary).where(summary.lead_id.in_(rebuilt)))
    events = [Event.lead_id.is_not(None), Event.id <= last_event,
              or_(Event.id > mark.event_id, Event.lead_id.in_(rebuilt))]
    transitions = [Transition.id <= last_transition,
                   or_(Transition.id > mark.transition_id, Transition.lead_id.in_(rebuilt))]
    _fold_touches(session, events, postgres)
    _fold_content(session, events, postgres)
    _fold_stages(session, transitions, postgres)
    counts = {"events": last_event - mark.event_id, "transitions": last_transition - mark.transition_id,
              "rebuilt": len(rebuilt)}
    mark.event_id, mark.transition_id, mark.refreshed_at = last_event, last_transition, datetime.now(UTC)
    session.commit()
    return counts


def rebuild(session: Session) -> dict[str, int]:
    """Empty the summaries and fold in every event and transition (a full refresh)."""
    for summary in (*SUMMARIES, SummaryWatermark):
        session.execute(delete(summary))
    return refresh(session)


def _leads_to_rebuild(session: Session) -> list[int]:
    """The leads merged away or erased that still have summary rows, and their survivors."""
    has_rows = or_(*(select(summary.lead_id).where(summary.lead_id == Lead.id).exists() for summary in SUMMARIES))
    merged = dict(session.execute(select(Lead.id, Lead.merged_into_id)
                                  .where(Lead.merged_into_id.is_not(None), has_rows)).all())
    erased = session.scalars(select(Lead.id).where(
        Lead.erased_at.is_not(None),
        select(LeadContentSummary.lead_id).where(LeadContentSummary.lead_id == Lead.id).exists())).all()
    leads = set(merged) | set(erased)
    for lead_id in merged:
        leads.add(_survivor(session, lead_id))
    return sorted(leads)


def _survivor(session: Session, lead_id: int) -> int:
    """The end of ``lead_id``'s merge chain: the live lead its rows now belong to."""
    seen = {lead_id}
    while (next_id := session.scalar(select(Lead.merged_into_id).where(Lead.id == lead_id))) is not None:
        if next_id in seen:  # a cycle never written by merge_into: stop rather than loop
            break
        seen.add(next_id)
        lead_id = next_id
    return lead_id


def _upsert(session: Session, model: Any, rows: Any, columns: Sequence[str], keys: Sequence[str],
            postgres: bool, merge: dict[str, Any]) -> None:
    """``INSERT INTO model (columns) SELECT ... ON CONFLICT (keys) DO UPDATE SET merge(...)``."""
    dialect_insert = postgresql.insert if postgres else sqlite.insert
    stmt = dialect_insert(model).from_select(list(columns), rows)
    table = model.__table__
    updates = {name: combine(table.c[name], stmt.excluded[name]) for name, combine in merge.items()}
    session.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates))


def _earliest(current: Any, new: Any) -> Any:
    """The earlier of two stamps, either of which may be NULL."""
    return case((current.is_(None), new), (new.is_(None), current), (new < current, new), else_=current)


def latest(current: Any, new: Any) -> Any:
    """The later of two stamps, either of which may be NULL."""
    return case((current.is_(None), new), (new.is_(None), current), (new > current, new), else_=current)


def _plus(current: Any, new: Any) -> Any:
    return current + new


def _named() -> dict[str, Any]:
    """Per kind of call to action, the event property naming it."""
    return {kind: Event.properties[kind].as_string() for kind in CALLS_TO_ACTION}


def _fold_touches(session: Session, events: list[Any], postgres: bool) -> None:
    converts = Event.kind.in_(CONVERSIONS) & or_(*(value.is_not(None) for value in _named().values()))
    entries = [f"{stage}_entries" for stage in ENTERED_STAGES]
    rows = (select(Event.lead_id, func.min(Event.occurred_at), func.min(case((converts, Event.occurred_at))),
                   *(literal(0) for _ in entries))
            .where(*events).group_by(Event.lead_id))
    _upsert(session, LeadSummary, rows, ["lead_id", "first_touch_at", "first_conversion_at", *entries], ["lead_id"],
            postgres, {"first_touch_at": _earliest, "first_conversion_at": _earliest})


def _fold_stages(session: Session, transitions: list[Any], postgres: bool) -> None:
    into = {stage: Transition.to_stage == stage for stage in ENTERED_STAGES}
    rows = (select(Transition.lead_id,
                   *(func.min(case((hit, Transition.at))) for hit in into.values()),
                   *(func.max(case((hit, Transition.at))) for hit in into.values()),
                   *(func.sum(case((hit, 1), else_=0)).cast(Integer) for hit in into.values()))
            .where(Transition.to_stage != Transition.from_stage, *transitions)
            .group_by(Transition.lead_id))
    columns = {**{f"{stage}_first_at": _earliest for stage in into}, **{f"{stage}_last_at": latest for stage in into},
               **{f"{stage}_entries": _plus for stage in into}}
    _upsert(session, LeadSummary, rows, ["lead_id", *columns], ["lead_id"], postgres, columns)


def _fold_content(session: Session, events: list[Any], postgres: bool) -> None:
    named = _named()
    tagged = (select(Event.lead_id, Event.occurred_at.label("at"),
                     case((Event.kind.in_(CONVERSIONS), 1), else_=0).label("converts"),
                     *(value.label(kind) for kind, value in named.items()))
              .where(*events, or_(*(value.is_not(None) for value in named.values()))).cte("tagged"))
    touches = union_all(*(select(tagged.c.lead_id, literal(kind).label("kind"), tagged.c[kind].label("name"),
                                 tagged.c.at, tagged.c.converts).where(tagged.c[kind].is_not(None))
                          for kind in CALLS_TO_ACTION)).subquery("touches")
    rows = (select(touches.c.lead_id, touches.c.kind, touches.c.name, func.min(touches.c.at), func.max(touches.c.at),
                   func.min(case((touches.c.converts == 1, touches.c.at))),
                   func.sum(touches.c.converts).cast(Integer))
            .where(touches.c.lead_id.is_not(None))
            .group_by(touches.c.lead_id, touches.c.kind, touches.c.name))
    _upsert(session, LeadContentSummary, rows,
            ["lead_id", "kind", "name", "first_at", "last_at", "first_conversion_at", "conversions"],
            ["lead_id", "kind", "name"], postgres,
            {"first_at": _earliest, "last_at": latest, "first_conversion_at": _earliest, "conversions": _plus})

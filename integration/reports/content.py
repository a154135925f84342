"""``content``: which calls to action and passive content bring good leads: per asset, form and
campaign named by the events of the window.

Per group, type (``asset``, ``form``, ``campaign``) and name: ``leads_touched`` (leads with an
event naming it in the window), ``first_touches`` (leads whose first touch ever was on it),
``conversions`` (form submissions, downloads, trials, event attendances and contact requests
naming it), ``converters`` (the people behind them) split into ``new_converters`` and
``repeat_converters`` (people who had already converted on another call to action: the
dilution), ``repeat_share``, and of the leads that touched it before their first MQL
(``touched_before_mql``), the shares that became an MQL, were accepted by sales and were won.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, and_, case, func, literal, or_, select, true, union_all
from sqlalchemy.orm import Session

from integration.reports.handoffs import stage_marks
from integration.reports.report import Report
from integration.reports.sql import count_if, first_touches, in_window, lead_groups, prepare, share
from integration.reports.window import ReportQuery
from integration.store.models import Event, Transition

#: The event kinds that are a conversion on the asset, form or campaign they name.
CONVERSIONS = ("form_submit", "content_download", "trial_signup", "event_attended", "contact_request")
TYPES = ("asset", "form", "campaign")
COLUMNS = ["group", "type", "name", "leads_touched", "first_touches", "conversions", "converters", "new_converters",
           "repeat_converters", "repeat_share", "touched_before_mql", "mql_rate", "accepted_rate", "won_rate"]

def build(session: Session, query: ReportQuery) -> Report:
    """Return the content report of the window, one row per group and call to action."""
    prepare(session)
    joined = _joined(session, query).subquery("content_leads")
    before = joined.c.first_mql.is_(None) | (joined.c.first_at < joined.c.first_mql)
    converted = joined.c.conversions > 0
    counted = session.execute(
        select(joined.c.grp, joined.c.type, joined.c.name, func.count().label("leads"),
               count_if(joined.c.first_touch == joined.c.first_at).label("first_touches"),
               func.sum(joined.c.conversions).label("conversions"),
               count_if(converted).label("converters"),
               count_if(converted & (joined.c.earliest_conversion < joined.c.first_conversion)).label("repeat"),
               count_if(before).label("before"),
               count_if(before & joined.c.first_mql.is_not(None)).label("mql"),
               count_if(before & joined.c.accepted_at.is_not(None)).label("accepted"),
               count_if(before & joined.c.won_at.is_not(None)).label("won"))
        .group_by(joined.c.grp, joined.c.type, joined.c.name)
        .order_by(joined.c.grp, joined.c.type, func.count().desc(), joined.c.name)).mappings().all()
    rows = []
    for row in counted:
        converters, repeat = int(row["converters"]), int(row["repeat"])
        rows.append({"group": row["grp"], "type": row["type"], "name": row["name"], "leads_touched": row["leads"],
                     "first_touches": int(row["first_touches"]), "conversions": int(row["conversions"] or 0),
                     "converters": converters, "new_converters": converters - repeat, "repeat_converters": repeat,
                     "repeat_share": share(repeat, converters), "touched_before_mql": int(row["before"]),
                     "mql_rate": share(row["mql"], row["before"]),
                     "accepted_rate": share(row["accepted"], row["before"]),
                     "won_rate": share(row["won"], row["before"])})
    return Report("content", rows, list(COLUMNS))

def _joined(session: Session, query: ReportQuery) -> Any:
    """Per lead and call to action touched in the window: the lead's group, its first touch of it
    in the window and its first touch ever, its conversions on it in the window, its first
    conversion on it and on any call to action (ever), and the lead's first MQL, acceptance and win."""
    props = Event.properties
    named = {kind: props[kind].as_string() for kind in TYPES}
    tagged = (select(Event.lead_id, Event.occurred_at.label("at"),
                     case((Event.kind.in_(CONVERSIONS), 1), else_=0).label("converts"),
                     *(value.label(kind) for kind, value in named.items()))
              .where(Event.lead_id.is_not(None), or_(*(value.is_not(None) for value in named.values())))
              .cte("tagged"))
    touches = union_all(*(select(tagged.c.lead_id, tagged.c.at, tagged.c.converts, literal(kind).label("type"),
                                 tagged.c[kind].label("name")).where(tagged.c[kind].is_not(None)) for kind in TYPES)
                        ).subquery("touches")
    earliest = (select(touches.c.lead_id, func.min(touches.c.at).label("earliest_conversion"))
                .where(touches.c.converts == 1).group_by(touches.c.lead_id).subquery("earliest_conversions"))
    window = and_(true(), *in_window(touches.c.at, query))
    converts = touches.c.converts == 1
    per_lead = (select(touches.c.type, touches.c.name, touches.c.lead_id,
                       func.min(case((window, touches.c.at))).label("first_at"),
                       func.min(case((converts, touches.c.at))).label("first_conversion"),
                       func.sum(case((window & converts, 1), else_=0)).cast(Integer).label("conversions"))
                .group_by(touches.c.type, touches.c.name, touches.c.lead_id)
                .having(func.min(case((window, touches.c.at))).is_not(None)).subquery("per_lead"))
    first_mql = (select(Transition.lead_id, func.min(Transition.at).label("first_mql"))
                 .where(Transition.to_stage == "mql", Transition.from_stage != "mql")
                 .group_by(Transition.lead_id).subquery("first_mqls"))
    accepted = stage_marks("accepted", "sql", "won", "lost").subquery("accepted_marks")
    won = stage_marks("won").subquery("won_marks")
    first = first_touches().subquery("first_touches")
    groups = lead_groups(session, query.by).subquery("groups")
    return (select(groups.c.grp, per_lead.c.type, per_lead.c.name, per_lead.c.first_at, per_lead.c.first_conversion,
                   per_lead.c.conversions, earliest.c.earliest_conversion, first.c.first_at.label("first_touch"),
                   first_mql.c.first_mql, accepted.c.last_at.label("accepted_at"), won.c.last_at.label("won_at"))
            .select_from(per_lead).join(groups, groups.c.lead_id == per_lead.c.lead_id)
            .outerjoin(earliest, earliest.c.lead_id == per_lead.c.lead_id)
            .outerjoin(first, first.c.lead_id == per_lead.c.lead_id)
            .outerjoin(first_mql, first_mql.c.lead_id == per_lead.c.lead_id)
            .outerjoin(accepted, accepted.c.lead_id == per_lead.c.lead_id)
            .outerjoin(won, won.c.lead_id == per_lead.c.lead_id))

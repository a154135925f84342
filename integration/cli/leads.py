"""``leadloop lead show``: one lead's record, score, reasons, deals, tasks, activity and timeline.

The text and the ``--json`` views are rendered from the same report (``lead_report``), so they
always tell the same facts.
"""

from __future__ import annotations

from datetime import tzinfo
from decimal import Decimal
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.events import CRM_KINDS
from integration.cli.describe import lead_zone, money_text, timeline_text
from integration.cli.errors import FAILURE, OK
from integration.cli.output import dumps, iso, minute, note, number, out, table, zone_name
from integration.cli.runtime import Runtime, pass_runtime
from integration.store.models import Event, Lead, OutboxWrite, ScoreRecord
from scoring import Rules


@click.group(short_help="One lead: lead show REF.")
def lead() -> None:
    """One lead."""


@lead.command("show", short_help="A lead's record, reasons, tasks and timeline.")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object (fields, score, reasons, deals, tasks, activities, timeline) "
                   "and nothing else.")
@pass_runtime
def show(runtime: Runtime, ref: str, as_json: bool) -> int:
    """Show a lead: its fields, score and reasons, its deals, its tasks and its whole timeline.

    The timeline lists events (rep activity and deal changes among them), scores, stage changes
    and CRM writes, oldest first. Times are
    shown to the minute in the lead's zone, else its owner's, else UTC.

    REF is crm:id (hubspot:123, salesforce:00Q...), email:address, a bare address, or leadloop's id.
    """
    from integration.store.leads import find_lead

    rules = runtime.rules()
    with runtime.sessions()() as session:
        found = find_lead(session, ref)
        if found is None:
            note(f"no lead {ref}")
            return FAILURE
        report, zone = lead_report(session, found, rules)
    if as_json:
        out(dumps(report, indent=2))
    else:
        for line in render_lead(report, zone):
            out(line)
    return OK


def lead_report(session: Session, lead: Lead, rules: Rules | None) -> tuple[dict[str, Any], tzinfo]:
    """Return everything known about ``lead`` as JSON-able data (times ISO 8601), and its zone."""
    from integration.store.deals import deal_summary, lead_deals
    from integration.store.leads import lead_timeline

    zone, zone_source = lead_zone(lead, rules)
    latest = session.scalars(select(ScoreRecord).where(ScoreRecord.lead_id == lead.id)
                             .order_by(ScoreRecord.id.desc()).limit(1)).first()
    reasons = [{"points": r.get("points"), "text": r.get("text"), "rule": r.get("rule"), "kind": r.get("kind")}
               for r in ((latest.result or {}).get("reasons") or [] if latest else [])]
    tasks = []
    for write in session.scalars(select(OutboxWrite).where(OutboxWrite.lead_id == lead.id, OutboxWrite.kind == "task")
                                 .order_by(OutboxWrite.id)):
        task = (write.payload or {}).get("task") or {}
        tasks.append({"subject": task.get("subject"), "due_at": iso(task.get("due_at")), "status": write.status,
                      "external_id": write.external_id, "priority": task.get("priority"), "type": task.get("type"),
                      "owner_id": task.get("owner_id"), "created_at": iso(write.created_at),
                      "sent_at": iso(write.sent_at), "error": write.last_error})
    activities = []
    for event in session.scalars(select(Event).where(Event.lead_id == lead.id, Event.kind.not_in(CRM_KINDS))
                                 .order_by(Event.occurred_at, Event.id)):
        properties = event.properties or {}
        activities.append({"kind": event.kind, "source": event.source, "occurred_at": iso(event.occurred_at),
                           "asset": properties.get("asset"), "url": properties.get("url"),
                           "form": properties.get("form"), "campaign": properties.get("campaign")})
    deals = []
    for deal in lead_deals(session, lead.id):
        summary = deal_summary(deal)
        deals.append({"id": summary["deal_id"], "stage": summary["stage"], "amount": _money(deal.amount),
                      "currency": summary["currency"], "created_at": summary["created_at"],
                      "closed_at": summary["closed_at"], "outcome": summary["outcome"]})
    timeline = [{"at": iso(when), "what": what, "text": timeline_text(what, detail, zone), **detail}
                for when, what, detail in lead_timeline(session, lead.id)]
    report = {
        "id": lead.id, "ref": lead.ref, "crm": lead.crm, "crm_id": lead.crm_id, "email": lead.email,
        "fields": lead.fields or {}, "stage": lead.stage, "band": lead.band, "score": lead.score,
        "fit_points": lead.fit_points, "engagement_points": lead.engagement_points, "grade": lead.grade,
        "mql": bool(lead.mql), "owner": lead.owner_id, "team": lead.team, "rules_version": lead.rules_version,
        "scored_at": iso(lead.scored_at), "merged_into_id": lead.merged_into_id,
        "zone": zone_name(zone), "zone_source": zone_source,
        "reasons": reasons,
        "deals": deals,
        "tasks": tasks, "activities": activities, "timeline": timeline,
    }
    return report, zone


def _money(amount: Decimal | None) -> int | float | None:
    """A deal amount as a JSON number (whole amounts without a fraction)."""
    if amount is None:
        return None
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def render_lead(report: dict[str, Any], zone: tzinfo) -> list[str]:
    """The text view of a ``lead_report``."""
    lines = [f"lead {report['id']} {report['ref']}  email={report['email'] or '-'}  stage={report['stage']}  "
             f"owner={report['owner'] or '-'}",
             f"  score={number(report['score'])} (fit {number(report['fit_points'])}, "
             f"engagement {number(report['engagement_points'])})  band={report['band'] or '-'}  "
             f"grade={report['grade'] or '-'}  mql={'yes' if report['mql'] else 'no'}  "
             f"rules={report['rules_version'] or '-'}"]
    if report["fields"]:
        lines.append("  fields: " + ", ".join(f"{k}={v}" for k, v in sorted(report["fields"].items())))
    lines.append(f"  times in {report['zone']} ({report['zone_source']})")
    if report["reasons"]:
        lines += ["", "reasons (latest score):"] + [f"  {reason['text']}" for reason in report["reasons"]]
    if report["deals"]:
        lines += ["", "deals:"] + table(
            ("DEAL", "STAGE", "OUTCOME", "AMOUNT", "CREATED", "CLOSED"),
            [(d["id"], d["stage"] or "-", d["outcome"] or "-", money_text(d["amount"], d["currency"]),
              minute(d["created_at"], zone, named=False), minute(d["closed_at"], zone, named=False))
             for d in report["deals"]], indent="  ")
    if report["tasks"]:
        lines += ["", "tasks:"] + table(
            ("DUE", "STATUS", "CRM TASK ID", "SUBJECT"),
            [(minute(t["due_at"], zone, named=False), t["status"], t["external_id"] or "-", t["subject"] or "-")
             for t in report["tasks"]], indent="  ")
    lines += ["", "timeline:"] + table(
        ("WHEN", "WHAT", "DETAIL"),
        [(minute(entry["at"], zone, named=False), entry["what"], entry["text"]) for entry in report["timeline"]],
        indent="  ")
    return lines

"""Plain words for what the store holds: a lead's time zone, a CRM write, a timeline entry."""

from __future__ import annotations

from datetime import UTC, tzinfo
from typing import Any

from integration.cli.output import dumps, minute, zone_named
from integration.store.models import Lead
from scoring import Rules


def lead_zone(lead: Lead, rules: Rules | None) -> tuple[tzinfo, str]:
    """Return the zone to show a lead's times in, and where it came from.

    The lead's own ``timezone`` field when it names a real zone, else its owner's (the rules
    file's team entry, else its working hours: the zone task due times were planned in), else UTC.
    """
    own = zone_named((lead.fields or {}).get("timezone"))
    if own is not None:
        return own, "the lead's zone"
    if lead.owner_id and rules is not None and rules.lifecycle is not None:
        from scoring.lifecycle_follow_up import owner_calendar

        name, _country = owner_calendar(lead.owner_id, rules.lifecycle)
        owner_zone = zone_named(name)
        if owner_zone is not None:
            return owner_zone, f"the zone of owner {lead.owner_id}"
    return UTC, "no zone known for the lead or its owner"


def write_summary(kind: str, payload: dict[str, Any], zone: tzinfo) -> str:
    """One line saying what a CRM write sets: the score fields, owner and status (of a new record
    for a ``create``), or the task."""
    if not payload:
        return "(erased)"
    if kind == "task":
        task = payload.get("task") or {}
        details = [f"due {minute(task.get('due_at'), zone)}"]
        details += [str(task[key]) for key in ("priority", "type") if task.get(key)]
        if task.get("owner_id"):
            details.append(f"owner {task['owner_id']}")
        return f"{task.get('subject') or 'task'} ({', '.join(details)})"
    fields = payload.get("fields") or {}
    parts = [f"score {fields['score']:g}" if isinstance(fields.get("score"), int | float) else None,
             f"band {fields['band']}" if fields.get("band") else None,
             f"grade {fields['grade']}" if fields.get("grade") else None,
             f"mql {'yes' if fields.get('mql') else 'no'}" if "mql" in fields else None,
             f"stage {fields['stage']}" if fields.get("stage") else None,
             f"recycled: {fields['recycle_reason']}" if fields.get("recycle_reason") else None,
             f"nurture {fields['nurture_track']}" if fields.get("nurture_track") else None,
             f"owner {payload['owner_id']}" if payload.get("owner_id") else None]
    parts += [f"{name}={value}" for name, value in (payload.get("crm_fields") or {}).items()]
    text = ", ".join(part for part in parts if part)
    return f"new record: {text}" if kind == "create" else text


def money_text(amount: Any, currency: str | None) -> str:
    """``12,000.00 EUR``; ``-`` without an amount."""
    if amount in (None, ""):
        return "-"
    try:
        return f"{float(amount):,.2f} {currency or ''}".rstrip()
    except (TypeError, ValueError):
        return str(amount)


def _record_text(kind: str, properties: dict[str, Any], zone: tzinfo) -> str:
    """A deal change or a rep activity in words."""
    if kind == "deal_change":
        parts = [f"deal {properties.get('deal_id')}", properties.get("stage") or "stage unknown",
                 properties.get("outcome") or "no outcome"]
        if properties.get("amount") is not None:
            parts.append(money_text(properties["amount"], properties.get("currency")))
        if properties.get("deleted"):
            parts.append("(deleted)")
        return " ".join(parts)
    parts = [str(properties.get("activity_type") or "activity"), str(properties.get("activity_id") or "")]
    if properties.get("owner_id"):
        parts.append(f"by {properties['owner_id']}")
    facts = [properties[key] for key in ("direction", "status") if properties.get(key)]
    if properties.get("activity_at"):
        facts.append(f"at {minute(properties['activity_at'], zone)}")
    return " ".join(parts) + (f" ({', '.join(facts)})" if facts else "")


def timeline_text(what: str, detail: dict[str, Any], zone: tzinfo) -> str:
    """The text ``leadloop lead show`` prints for one timeline entry."""
    if what == "event" and detail["kind"] in ("deal_change", "rep_activity"):
        record = _record_text(detail["kind"], detail.get("properties") or {}, zone)
        return f"{detail['source']}/{detail['kind']} {record}"
    if what == "event":
        properties = detail.get("properties") or {}
        extra = properties.get("asset") or properties.get("url") or properties.get("form") or ""
        # Sorted: PostgreSQL's JSONB keeps no key order, and the text must read the same on every store.
        fields = ", ".join(f"{k}={v}" for k, v in sorted((detail.get("fields") or {}).items()))
        return f"{detail['source']}/{detail['kind']} {extra} {fields}".rstrip()
    if what == "score":
        cause = f"{detail['cause']}: " if detail.get("cause") else ""
        return (f"{cause}{detail['score']:g} {detail['band']} {detail['grade']} mql={detail['mql']} "
                f"[{detail['rules_version']}] {detail['summary']}")
    if what == "stage":
        cause = f"{detail['from']} -> {detail['to']} ({detail['cause']})"
        facts = ", ".join(f"{k}={_plain(v)}" for k, v in sorted((detail.get("detail") or {}).items()))
        return f"{cause} {facts}".rstrip()
    what_it_sets = write_summary(detail["kind"], detail["payload"], zone)
    line = f"{detail['crm']} {detail['kind']} {detail['status']}: {what_it_sets}"
    return line + (f" error={detail['error']}" if detail.get("error") else "")


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else dumps(value)

"""``leadloop import hubspot|salesforce``: a CRM's records with their history, before day one.

The connector reads the CRM page by page (``connectors.<crm>.backfill``: plain records with their
status history and deals); this module turns each record into an ``ImportedLead`` and stores a page
per transaction with the import's new cursor (``integration.imports.progress``), so a rerun resumes
after the last stored page. Each new lead is scored once, quietly, with its page, as after a CSV
import.

A record's stage changes come from its status history read through the live rules file, as the
pipeline reads a live change: a value the ``feedback`` section maps is that disposition's stage
(``accepted``, ``qualified`` -> sql, ``won``, ``lost``, ``rejected`` -> recycled), and a value the
``crm_stages`` section writes for exactly one stage is that stage (HubSpot's
``lifecyclestage: marketingqualifiedlead`` -> mql). Its deals (HubSpot deals, the opportunity a
Salesforce lead was converted into) count by the ``outcomes`` section: a counted deal makes it an
SQL when the deal was created, and the best outcome (won, else lost) ends it when the deal closed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.base import CrmAuthError, CrmError, CrmRateLimited
from integration.imports.history import (
    ImportedLead,
    refresh_statistics,
    score_quietly,
    store_deals,
    store_leads,
)
from integration.imports.progress import advance, finish, start_import
from integration.services import Services
from integration.telemetry import counted_call
from scoring.lifecycle import DISPOSITION_STAGES, disposition_for
from scoring.lifecycle_outcomes import DealStage, deal_outcome, lead_outcome
from scoring.lifecycle_rules import LifecycleRules
from scoring.lifecycle_schemas import canonical_field

log = logging.getLogger(__name__)

#: Rate-limit waits in a row before giving up (the import resumes when run again).
MAX_WAITS = 20


class BackfillFailed(Exception):
    """The CRM kept refusing (rate limits): the import stopped where it was; run it again to resume."""


@dataclass
class CrmBackfill:
    """What a backfill run did (``counts`` are the import's totals over every run)."""

    key: str
    already_done: bool = False
    resumed_at: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)


# --- the CRMs' pages -------------------------------------------------------------------------

def _hubspot_page(client: Any, since: datetime | None, cursor: str | None) -> tuple[list[Any], str | None]:
    from connectors.hubspot.backfill import read_contact_page

    page = read_contact_page(client, cursor)
    # The list endpoint has no date filter (and search stops at 10,000 results): skip the older ones here.
    records = [c for c in page.contacts if since is None or (c.updated_at or c.created_at) >= since]
    return records, page.after


def _salesforce_page(client: Any, since: datetime | None, cursor: str | None) -> tuple[list[Any], str | None]:
    from connectors.salesforce.backfill import read_lead_page

    page = read_lead_page(client, since, cursor)
    return page.leads, page.next_url


#: CRM -> reads one page from a cursor (None: the first), returning its records and the next cursor.
PAGE_READERS: dict[str, Callable[[Any, datetime | None, str | None], tuple[list[Any], str | None]]] = {
    "hubspot": _hubspot_page,
    "salesforce": _salesforce_page,
}


# --- records into leads ----------------------------------------------------------------------

def written_stages(crm: str, rules: LifecycleRules) -> dict[tuple[str, str], str]:
    """``(canonical field, value) -> stage`` for each CRM value the ``crm_stages`` section writes for
    exactly one stage (a value two stages write tells nothing)."""
    seen: dict[tuple[str, str], set[str]] = {}
    for stage, values in (rules.crm_stages.get(crm) or {}).items():
        for name, value in values.items():
            seen.setdefault((canonical_field(rules.crm_vocabulary, crm, name), str(value)), set()).add(stage)
    return {key: next(iter(stages)) for key, stages in seen.items() if len(stages) == 1}


def history_stages(crm: str, history: dict[str, list[tuple[str, datetime]]], rules: LifecycleRules
                   ) -> list[tuple[str, datetime]]:
    """The stages a record's status history means, with when it entered each."""
    written = written_stages(crm, rules)
    stages = []
    for name, changes in history.items():
        for value, at in changes:
            disposition = disposition_for(crm, name, value, rules, occurred_at=at)
            if disposition is not None:
                stage = "recycled" if disposition.kind == "rejected" else DISPOSITION_STAGES.get(disposition.kind)
            else:
                stage = written.get((name, value))
            if stage:
                stages.append((stage, at))
    return stages


def deal_stages(crm: str, deals: list[dict[str, Any]], rules: LifecycleRules) -> list[tuple[str, datetime]]:
    """SQL when each counted deal was created, then the lead's best closed outcome when its deal closed."""
    stages, closed = [], {}
    outcomes = []
    for deal in deals:
        outcome = deal_outcome(crm, DealStage(deal.get("pipeline"), deal.get("stage"), deal.get("is_closed"),
                                              deal.get("is_won")), rules)
        if outcome is None:
            continue
        outcomes.append(outcome)
        if deal.get("created_at"):
            stages.append(("sql", datetime.fromisoformat(deal["created_at"])))
        if outcome in ("won", "lost") and deal.get("closed_at"):
            at = datetime.fromisoformat(deal["closed_at"])
            closed[outcome] = max(closed.get(outcome, at), at)
    best = lead_outcome(outcomes)
    if best in closed:
        stages.append((best, closed[best]))
    return stages


def imported_lead(crm: str, record: Any, rules: LifecycleRules) -> ImportedLead:
    """The ``ImportedLead`` of a connector's record (``ContactRecord``, ``LeadRecord``)."""
    stages = history_stages(crm, record.history, rules) + deal_stages(crm, record.deals, rules)
    fields = {name: value for name, value in record.fields.items() if name != "email"}
    email = record.fields.get("email")
    return ImportedLead(record.id, str(email).lower() if email else None, record.created_at, fields,
                        sorted(stages, key=lambda stage: stage[1]), None)


# --- the run ---------------------------------------------------------------------------------

def backfill(svc: Services, crm: str, since: datetime | None, *, sleep: Callable[[float], None] = time.sleep,
             on_page: Callable[[int], None] | None = None) -> CrmBackfill:
    """Import the CRM's records (modified since ``since``) with their history; return what was done.

    Resumes an interrupted backfill of the same CRM and start where its last page ended; a
    finished one does nothing. A rate limit is waited out (``sleep``) and the same page asked
    again. Raises ``BackfillFailed`` after ``MAX_WAITS`` waits in a row, ``CrmError`` and its
    subclasses for other CRM failures, ``KeyError`` for a CRM without a backfill.
    """
    read_page = PAGE_READERS[crm]
    client = svc.crm_client(crm).client  # the connector's own client; its calls are counted below
    now = svc.now()
    report = CrmBackfill(f"since:{since.date().isoformat()}" if since else "all")
    rules = svc.rules.lifecycle
    with svc.sessions() as session:
        progress = start_import(session, crm, report.key, crm, now)
        report.resumed_at = dict(progress.position or {})
        if progress.finished_at is not None:
            report.already_done, report.counts = True, dict(progress.counts or {})
            return report
        position = progress.position or {}
        cursor, pages_done = position.get("cursor"), bool(position.get("pages_done"))
        resumed_cursor, waits = cursor, 0
        while not pages_done:
            try:
                records, next_cursor = counted_call(svc.telemetry, crm, "backfill_page",
                                                    lambda at=cursor: read_page(client, since, at))
            except CrmRateLimited as limited:
                waits += 1
                if waits > MAX_WAITS:
                    raise BackfillFailed(f"{crm} kept answering with rate limits ({limited}); stopped after "
                                         f"{report.counts.get('rows', 0)} records: run it again to resume") from None
                wait = max(float(limited.retry_after or 1.0), 0.0)
                report.waits.append(wait)
                log.info("%s rate limit: waiting %.0f s before asking for the page again", crm, wait)
                sleep(wait)
                continue
            except CrmAuthError:
                raise
            except CrmError as failed:
                if cursor is None or cursor != resumed_cursor:
                    raise
                # A stored cursor the CRM no longer knows (an expired Salesforce query locator):
                # start over; the leads already in are left as they are.
                log.warning("%s refused the stored page cursor (%s): starting from the first page", crm, failed)
                cursor = resumed_cursor = None
                continue
            waits = 0
            leads = [imported_lead(crm, record, rules) for record in records]
            stored = store_leads(session, crm, crm, leads, now)
            scored = score_quietly(session, svc, stored.new_leads, now, with_activity=False)
            deals = store_deals(session, crm, {record.id: record.deals for record in records}, stored.created,
                                rules, now)
            pages_done = next_cursor is None
            advance(progress, "cursor", next_cursor, now, rows=len(records), leads=stored.leads, events=stored.events,
                    transitions=stored.transitions, deals=deals, pages=1, scored=scored)
            advance(progress, "pages_done", pages_done, now)
            session.commit()
            cursor = next_cursor
            if on_page is not None:
                on_page(len(records))
        refresh_statistics(session)
        finish(session, progress, svc.now())
        report.counts = dict(progress.counts or {})
    return report

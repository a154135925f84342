"""The lead search (e-mail, band, stage, owner; paginated) and a lead's page (its score with the
reasons, its deals, and its timeline: events, scores, stage changes and CRM writes)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, render_template, url_for
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from integration.store.deals import deal_summary, lead_deals
from integration.store.leads import lead_timeline
from integration.store.models import Lead, ScoreRecord
from integration.web.dashboard.common import (
    choice_param,
    csv_response,
    page_param,
    services,
    text_param,
)
from scoring.lifecycle_schemas import BANDS, STAGES

PAGE_SIZE = 50
WHOLE_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
#: The largest id the leads table's integer key holds (PostgreSQL would refuse a larger one).
MAX_ID = 2**31 - 1
#: Most rows one CSV download of a search holds.
CSV_LIMIT = 10_000
COLUMNS = ("id", "email", "crm", "crm_id", "stage", "band", "score", "grade", "owner", "team", "scored_at")


@dataclass(frozen=True)
class LeadSearch:
    """What the search form asked for: an e-mail address (or its start), band, stage, owner."""

    email: str | None
    band: str | None
    stage: str | None
    owner: str | None

    @property
    def whole_address(self) -> bool:
        """Whether the e-mail asked for looks like a whole address (``name@domain.tld``)."""
        return bool(self.email) and WHOLE_ADDRESS.fullmatch(self.email) is not None

    def statement(self, *, as_start: bool = False) -> Select[tuple[Lead]]:
        """Live leads matching every given criterion, newest first (the id order: an index scan).
        A whole address is looked up as it is (the email index), unless ``as_start``; anything
        else is the start of an address."""
        stmt = select(Lead).where(Lead.merged_into_id.is_(None), Lead.deleted_at.is_(None))
        if self.email:
            wanted = self.email.lower()
            if self.whole_address and not as_start:
                stmt = stmt.where(Lead.email == wanted)
            else:
                escaped = wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                stmt = stmt.where(Lead.email.like(f"{escaped}%", escape="\\"))
        if self.band:
            stmt = stmt.where(Lead.band == self.band)
        if self.stage:
            stmt = stmt.where(Lead.stage == self.stage)
        if self.owner:
            stmt = stmt.where(Lead.owner_id == self.owner)
        return stmt.order_by(Lead.id.desc())

    def params(self) -> dict[str, str]:
        return {name: value for name, value in vars(self).items() if value}


def search_params() -> LeadSearch:
    return LeadSearch(email=text_param("email"), band=choice_param("band", BANDS),
                      stage=choice_param("stage", STAGES), owner=text_param("owner", 64))


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/leads", "leads", leads)
    bp.add_url_rule("/leads.csv", "leads_csv", leads_csv)
    bp.add_url_rule("/leads/<int:lead_id>", "lead", lead_page)


def leads() -> Any:
    """The search form and one page of results (no total count: a count of a million leads
    costs more than the page; "next" shows when there is more)."""
    search = search_params()
    page = page_param()
    with services().sessions() as session:
        found = session.scalars(search.statement().offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
        if not found and search.whole_address:  # "ada@acme.co" is also the start of "ada@acme.com"
            found = session.scalars(search.statement(as_start=True).offset((page - 1) * PAGE_SIZE)
                                    .limit(PAGE_SIZE + 1)).all()
    more = len(found) > PAGE_SIZE
    return render_template("dashboard/leads.html", search=search, leads=found[:PAGE_SIZE], page=page, more=more,
                           bands=BANDS, stages=STAGES, page_size=PAGE_SIZE,
                           csv_url=url_for("dashboard.leads_csv", **search.params()))


def leads_csv() -> Any:
    search = search_params()
    with services().sessions() as session:
        found = session.scalars(search.statement().limit(CSV_LIMIT)).all()
        if not found and search.whole_address:
            found = session.scalars(search.statement(as_start=True).limit(CSV_LIMIT)).all()
    rows = [(lead.id, lead.email, lead.crm, lead.crm_id, lead.stage, lead.band, lead.score, lead.grade,
             lead.owner_id, lead.team, lead.scored_at.isoformat() if lead.scored_at else None) for lead in found]
    return csv_response(COLUMNS, rows, "leads.csv")


def lead_page(lead_id: int) -> Any:
    if lead_id > MAX_ID:
        abort(404, description=f"no lead {lead_id}")
    with services().sessions() as session:
        lead = session.get(Lead, lead_id)
        if lead is None or lead.deleted_at is not None:
            abort(404, description=f"no lead {lead_id}")
        return render_template("dashboard/lead.html", lead=lead, reasons=latest_reasons(session, lead.id),
                               deals=[deal_summary(deal) for deal in lead_deals(session, lead.id)],
                               timeline=[timeline_entry(when, what, detail)
                                         for when, what, detail in lead_timeline(session, lead.id)])


def latest_reasons(session: Session, lead_id: int) -> list[dict[str, Any]]:
    """The reasons of the lead's latest score, as its result lists them (points, text, rule)."""
    latest = session.scalars(select(ScoreRecord).where(ScoreRecord.lead_id == lead_id)
                             .order_by(ScoreRecord.id.desc()).limit(1)).first()
    return list((latest.result or {}).get("reasons") or []) if latest else []


def timeline_entry(when: Any, what: str, detail: dict[str, Any]) -> dict[str, Any]:
    """One row of the lead page's timeline: when, what kind, and a short description."""
    if what == "event":
        properties = detail.get("properties") or {}
        about = properties.get("asset") or properties.get("url") or properties.get("form") or \
            properties.get("stage") or ""
        text = f"{detail['source']} {detail['kind']} {about}".rstrip()
    elif what == "score":
        cause = f" ({detail['cause']})" if detail.get("cause") else ""
        text = f"{detail['score']:g} {detail['band']} grade {detail['grade']}{cause}: {detail['summary']}"
    elif what == "stage":
        text = f"{detail['from']} → {detail['to']} ({detail['cause']})"
    else:
        text = f"{detail['crm']} {detail['kind']} {detail['status']}"
    return {"at": when, "what": what, "text": text}

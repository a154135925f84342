"""Hand-built histories for the report tests: leads with events, transitions, scores and deals
written straight into the store (the reports only read it), with business times the tests choose."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from integration.store.models import Deal, DealLead, Event, Lead, ScoreRecord, Transition

_keys = itertools.count(1)


def at(day: str, hour: int = 0) -> datetime:
    """``at("03-05")``: 2026-03-05 00:00 UTC; ``at("2026-03-05", 9)`` too, at 09:00."""
    text = day if day.count("-") == 2 else f"2026-{day}"
    return datetime.fromisoformat(text).replace(tzinfo=UTC) + timedelta(hours=hour)


@pytest.fixture
def session(config: dict[str, Any], migrated_engine: Any) -> Iterator[Session]:
    """A session on the emptied test database (``config`` empties it)."""
    with Session(migrated_engine) as session:
        yield session


class History:
    """Writes one lead's history: ``History(session).lead(...).event(...).move(...)``."""

    def __init__(self, session: Session):
        self.session = session

    def lead(self, created: datetime, **columns: Any) -> Lead:
        fields = columns.pop("fields", {})
        lead = Lead(created_at=created, updated_at=created, fields=fields, field_times={}, **columns)
        self.session.add(lead)
        self.session.flush()
        return lead

    def event(self, lead: Lead | None, kind: str, when: datetime, source: str = "web", **properties: Any) -> Event:
        event = Event(source=source, event_key=f"k{next(_keys)}", lead_id=lead.id if lead else None, kind=kind,
                      occurred_at=when, received_at=when, fields={}, properties=properties, processed_at=when)
        self.session.add(event)
        return event

    def move(self, lead: Lead, path: str, *when: datetime, cause: str = "score", **detail: Any) -> None:
        """``move(lead, "new nurture mql", t1, t2)``: one transition per step, at the given times."""
        stages = path.split()
        assert len(stages) == len(when) + 1, "one time per step"
        for (start, to), moment in zip(itertools.pairwise(stages), when, strict=True):
            self.session.add(Transition(lead_id=lead.id, from_stage=start, to_stage=to, cause=cause,
                                        detail=dict(detail), at=moment))
            lead.stage = to

    def score(self, lead: Lead, when: datetime, band: str, mql: bool, rules: list[str], score: float = 50,
              minus: tuple[str, ...] = ()) -> None:
        """A score record whose reasons name ``rules`` (each with 10 points) and ``minus`` (-20 each)."""
        reasons = [{"points": 10, "text": f"{rule} matched", "rule": rule, "kind": "fit"} for rule in rules]
        reasons += [{"points": -20, "text": f"{rule} matched", "rule": rule, "kind": "negative"} for rule in minus]
        self.session.add(ScoreRecord(lead_id=lead.id, computed_at=when, as_of=when, rules_version="v1", score=score,
                                     fit_points=score, engagement_points=0, band=band, grade="A", mql=mql,
                                     disqualified=False, summary="", result={"band": band, "mql": mql,
                                                                             "reasons": reasons}))

    def deal(self, leads: list[Lead], outcome: str, amount: str | None, created: datetime,
             closed: datetime | None, crm: str = "hubspot") -> Deal:
        deal = Deal(crm=crm, crm_id=f"d{next(_keys)}", stage=outcome, outcome=outcome,
                    is_won=outcome == "won", is_closed=outcome != "open",
                    amount=Decimal(amount) if amount is not None else None, currency="EUR",
                    created_at=created, closed_at=closed, field_times={}, updated_at=created)
        self.session.add(deal)
        self.session.flush()
        for lead in leads:
            self.session.add(DealLead(deal_id=deal.id, lead_id=lead.id, linked_at=created))
        return deal

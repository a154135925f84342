"""Record events (a deal, a rep activity): what a LeadEvent about a non-lead record must name, and
how the store keeps it: once, unprocessed, without creating a lead."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from connectors.events import LeadEvent
from integration.store.events import store_events
from integration.store.models import Event, Lead

AT = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def deal_event(key: str = "62515:0-3:7891023:creation:1", **overrides) -> LeadEvent:
    values = {"source": "hubspot", "kind": "deal_change", "event_key": key, "occurred_at": AT, "crm": "hubspot",
              "record_id": "7891023", "properties": {"change": "creation"}}
    return LeadEvent(**{**values, **overrides})


@pytest.mark.parametrize(("overrides", "message"), [
    ({"record_id": None}, "name a record_id"),
    ({"kind": "field_change"}, "name a record_id"),
    ({"crm_id": "100"}, "not a lead"),
    ({"email": "ada@example.com"}, "not a lead"),
    ({"crm": None}, "not a lead"),
])
def test_a_record_event_names_its_record_and_no_lead(overrides, message):
    with pytest.raises(ValueError, match=message):
        deal_event(**overrides)


def test_record_events_wait_unprocessed_and_create_no_lead(svc):
    with svc.sessions.begin() as session:
        result = store_events(session, [deal_event(), deal_event(), deal_event("62515:0-3:7891023:deletion:2")], AT)
    assert (result.accepted, result.duplicates, result.ignored) == (2, 1, 0)
    assert (result.lead_ids, result.record_crms) == (frozenset(), frozenset({"hubspot"}))
    with svc.sessions() as session:
        rows = session.scalars(select(Event).order_by(Event.id)).all()
        assert [(row.lead_id, row.record_id, row.processed_at) for row in rows] == [(None, "7891023", None)] * 2
        assert session.scalar(select(func.count()).select_from(Lead)) == 0
    with svc.sessions.begin() as session:
        again = store_events(session, [deal_event()], AT)
    assert (again.accepted, again.duplicates, again.record_crms) == (0, 1, frozenset())

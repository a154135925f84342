"""Reading from the CRM the fields a webhook did not carry (a HubSpot creation event is only an id)."""

from __future__ import annotations

import logging

from sqlalchemy import select

from connectors.base import CrmError
from integration.pipeline.processing import apply_fields, lock_lead
from integration.services import Services
from integration.store.models import Event, Lead

log = logging.getLogger(__name__)


def hydrate_from_crm(svc: Services, lead_ids: list[int]) -> None:
    """Fetch the fields of the leads the CRM just created, before they are scored.

    Leads of a CRM whose read credentials are not configured are scored on the fields we have.
    A CRM outage raises ``CrmError`` after logging: the job is retried by RQ, the events stay
    stored.
    """
    with svc.sessions() as session:
        rows = session.execute(
            select(Lead.id, Lead.crm, Lead.crm_id).join(Event, Event.lead_id == Lead.id)
            .where(Lead.id.in_(lead_ids), Event.processed_at.is_(None), Event.kind == "lead_created",
                   Event.source == Lead.crm)
            .group_by(Lead.id, Lead.crm, Lead.crm_id)
        ).all()
    by_crm: dict[str, dict[str, int]] = {}
    for lead_id, crm, crm_id in rows:
        by_crm.setdefault(crm, {})[crm_id] = lead_id
    for crm, ids in by_crm.items():
        if not svc.can_read(crm):
            continue
        try:
            found = svc.crm_client(crm).fetch_fields(list(ids))
        except CrmError:
            log.warning("could not read %d %s record(s); retrying the job", len(ids), crm)
            raise
        fetched_at = svc.now()
        with svc.sessions.begin() as session:
            for crm_id, values in found.items():
                lead = lock_lead(session, ids[crm_id])
                if lead is not None:
                    apply_fields(lead, values, fetched_at)

"""Reading a Salesforce org's history for ``leadloop import salesforce``: Leads page by page.

Each page is one SOQL ``query`` page of Leads (their fields, ``CreatedDate``, ``Status`` and
conversion), followed by the page's ``LeadHistory`` of ``Status`` and the Opportunities the
converted ones became. Further pages follow ``nextRecordsUrl`` until ``done``; the caller keeps
that URL to resume (a query locator expires after a while: then the caller starts over, which
the idempotent import allows). The client raises ``CrmRateLimited`` when the org's API limit is
spent (403 ``REQUEST_LIMIT_EXCEEDED``); the caller waits and asks for the same page again.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_leadhistory.htm
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.salesforce.client import SOQL_BATCH, SOQL_FIELDS, SalesforceClient
from connectors.salesforce.records import OPPORTUNITY_FIELDS
from connectors.salesforce.values import SALESFORCE_ID, parse_datetime, to_bool
from connectors.salesforce.webhook import map_fields

#: Lead fields read besides those leadloop maps: when it was created and what it was converted into.
LEAD_HISTORY_FIELDS = ("CreatedDate", "IsConverted", "ConvertedDate", "ConvertedOpportunityId")
#: Opportunity fields read for a converted lead's outcome.
OPPORTUNITY_SOQL_FIELDS = ("Id", "StageName", "IsWon", "IsClosed", "Amount", "CloseDate", "CreatedDate")


@dataclass(frozen=True)
class LeadRecord:
    """One Lead with its history, under leadloop's names."""

    id: str
    created_at: datetime
    fields: dict[str, Any]
    #: ``{"lead_status": [(value, when it was set)]}`` oldest first (``LeadHistory``; the creation's
    #: own value when the history has none).
    history: dict[str, list[tuple[str, datetime]]]
    #: The opportunity it was converted into, as ``deal_change`` properties.
    deals: list[dict[str, Any]] = field(default_factory=list)
    converted_at: datetime | None = None


@dataclass(frozen=True)
class LeadPage:
    leads: list[LeadRecord]
    #: ``nextRecordsUrl`` of the next page; None after the last one.
    next_url: str | None


def leads_query(since: datetime | None) -> str:
    """The SOQL of the Leads to import (modified since ``since`` when given), oldest first."""
    soql = f"SELECT {', '.join(SOQL_FIELDS['Lead'] + LEAD_HISTORY_FIELDS)} FROM Lead"
    if since is not None:
        soql += f" WHERE LastModifiedDate >= {since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return soql + " ORDER BY CreatedDate, Id"


def read_lead_page(client: SalesforceClient, since: datetime | None = None, next_url: str | None = None
                   ) -> LeadPage:
    """Return one page of Leads with their status history and opportunities.

    ``next_url`` (a previous page's) continues the query; None starts it. Raises ``CrmRateLimited``,
    ``CrmAuthError`` and ``CrmError``.
    """
    page = client.call("GET", next_url) if next_url else client.call("GET", "/query",
                                                                        params={"q": leads_query(since)})
    records = page.get("records", [])
    ids = [record["Id"] for record in records]
    history = status_history(client, ids)
    opportunity_ids = [record["ConvertedOpportunityId"] for record in records if record.get("ConvertedOpportunityId")]
    opportunities = read_opportunities(client, opportunity_ids)
    leads = []
    for record in records:
        where = f"Lead {record['Id']}"
        created = parse_datetime(record["CreatedDate"], f"{where}.CreatedDate")
        changes = history.get(record["Id"]) or ([(str(record["Status"]), created)] if record.get("Status") else [])
        converted = record.get("ConvertedDate") if to_bool(record.get("IsConverted") or False) else None
        opportunity = opportunities.get(record.get("ConvertedOpportunityId") or "")
        leads.append(LeadRecord(
            record["Id"], created, map_fields({k: v for k, v in record.items() if k not in LEAD_HISTORY_FIELDS},
                                              where),
            {"lead_status": changes}, [opportunity] if opportunity else [],
            parse_datetime(converted, f"{where}.ConvertedDate") if converted else None))
    next_page = None if page.get("done", True) else page.get("nextRecordsUrl")
    return LeadPage(leads, next_page)


def _all_pages(client: SalesforceClient, soql: str) -> list[dict[str, Any]]:
    page = client.call("GET", "/query", params={"q": soql})
    records = list(page.get("records", []))
    while not page.get("done", True) and page.get("nextRecordsUrl"):
        page = client.call("GET", page["nextRecordsUrl"])
        records.extend(page.get("records", []))
    return records


def _quoted(ids: list[str]) -> str:
    # Ids are checked against SALESFORCE_ID, so quoting them cannot inject SOQL.
    return ", ".join(f"'{record_id}'" for record_id in ids if SALESFORCE_ID.match(record_id))


def status_history(client: SalesforceClient, lead_ids: list[str]) -> dict[str, list[tuple[str, datetime]]]:
    """Return ``{lead id: [(Status value, when)]}`` from ``LeadHistory``, oldest first."""
    found: dict[str, list[tuple[str, datetime]]] = {}
    for start in range(0, len(lead_ids), SOQL_BATCH):
        quoted = _quoted(lead_ids[start:start + SOQL_BATCH])
        if not quoted:
            continue
        soql = ("SELECT LeadId, Field, OldValue, NewValue, CreatedDate FROM LeadHistory "
                f"WHERE Field = 'Status' AND LeadId IN ({quoted}) ORDER BY CreatedDate")
        for row in _all_pages(client, soql):
            if row.get("NewValue") not in (None, ""):
                at = parse_datetime(row["CreatedDate"], f"LeadHistory of {row['LeadId']}.CreatedDate")
                found.setdefault(row["LeadId"], []).append((str(row["NewValue"]), at))
    return {lead: sorted(changes, key=lambda change: change[1]) for lead, changes in found.items()}


def read_opportunities(client: SalesforceClient, opportunity_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Return ``{opportunity id: deal_change properties}`` (stage, is_won, is_closed, amount, closed_at ...)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(opportunity_ids), SOQL_BATCH):
        quoted = _quoted(opportunity_ids[start:start + SOQL_BATCH])
        if not quoted:
            continue
        soql = f"SELECT {', '.join(OPPORTUNITY_SOQL_FIELDS)} FROM Opportunity WHERE Id IN ({quoted})"
        for row in _all_pages(client, soql):
            where = f"Opportunity {row['Id']}"
            deal: dict[str, Any] = {"id": row["Id"]}
            for api_name, name in OPPORTUNITY_FIELDS.items():
                value = row.get(api_name)
                if value is None:
                    continue
                if name in ("created_at", "closed_at"):
                    value = parse_datetime(value, f"{where}.{api_name}").isoformat()
                elif name in ("is_won", "is_closed"):
                    value = to_bool(value)
                elif name == "amount":
                    value = str(value)
                deal[name] = value
            found[row["Id"]] = deal
    return found

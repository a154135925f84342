"""Reading HubSpot deals and associations in batches (for deal outcomes on leads).

A deal notification (``object.*`` with objectTypeId "0-3") names the deal; these reads fetch what
it alone does not say: the deal's stage, amount and dates, and the contacts it is associated with
(``connectors.hubspot.records`` turns them into ``deal_change`` properties). Won/lost is read from the stage's own flags
(``hs_is_closed_won``/``hs_is_closed``), never from the stage id's text.
https://developers.hubspot.com/docs/api/crm/deals
https://developers.hubspot.com/docs/api/crm/associations
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.base import CrmError
from connectors.hubspot.client import HubSpotClient, error_message
from connectors.hubspot.paths import api_path

#: Deal properties read with every deal.
DEAL_PROPERTIES = ("dealname", "pipeline", "dealstage", "amount", "deal_currency_code", "createdate",
                   "closedate", "hs_is_closed", "hs_is_closed_won", "hubspot_owner_id")
#: Batch read takes at most 100 records; association batch reads at most 1,000 ids.
DEAL_BATCH = 100
ASSOCIATION_BATCH = 1000


def read_deals(client: HubSpotClient, deal_ids: Sequence[str],
               properties: Sequence[str] = DEAL_PROPERTIES) -> dict[str, dict[str, Any]]:
    """Return ``{deal id: {property: value}}``; deals HubSpot does not return are left out.

    Raises ``CrmError`` (and subclasses) when a whole call fails.
    """
    ids = list(dict.fromkeys(str(i) for i in deal_ids))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), DEAL_BATCH):
        body = {"properties": list(properties), "propertiesWithHistory": [],
                "inputs": [{"id": i} for i in ids[start:start + DEAL_BATCH]]}
        response = client.request("POST", api_path("deals.batch_read"), json=body)
        if response.status_code not in (200, 207):
            raise CrmError(f"HubSpot deal batch read -> {response.status_code}: {error_message(response)}")
        for result in response.json().get("results", []):
            found[str(result["id"])] = dict(result.get("properties") or {})
    return found


def associated_ids(client: HubSpotClient, from_type: str, to_type: str,
                   ids: Sequence[str]) -> dict[str, list[str]]:
    """Return ``{id: [associated ids]}`` (e.g. deals -> contacts), following each id's paging.

    ``from_type``/``to_type`` are object type names or ids (``deals``, ``contacts``, ``0-3``).
    Ids with no associations map to ``[]``. Raises ``CrmError`` when a whole call fails.
    """
    pending = [{"id": i} for i in dict.fromkeys(str(i) for i in ids)]
    found: dict[str, list[str]] = {item["id"]: [] for item in pending}
    path = api_path("associations.batch_read", from_type=from_type, to_type=to_type)
    while pending:
        batch, pending = pending[:ASSOCIATION_BATCH], pending[ASSOCIATION_BATCH:]
        response = client.request("POST", path, json={"inputs": batch})
        if response.status_code not in (200, 207):
            raise CrmError(f"HubSpot association batch read -> {response.status_code}: {error_message(response)}")
        for result in response.json().get("results", []):
            source = str(result["from"]["id"])
            found.setdefault(source, []).extend(str(to["toObjectId"]) for to in result.get("to", []))
            after = ((result.get("paging") or {}).get("next") or {}).get("after")
            if after:
                # More associations than one page: ask again for this id from the cursor.
                pending.append({"id": source, "after": str(after)})
    return {source: list(dict.fromkeys(targets)) for source, targets in found.items()}

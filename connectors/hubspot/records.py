"""The HubSpot ``RecordReader``: deals and rep activity (calls, emails, meetings) read back by id.

A deal notification names the deal and at most one changed property; its stage flags
(``hs_is_closed``/``hs_is_closed_won``), amount and people come from a batch read of the deal and
of its contact associations (``connectors.hubspot.deals``). A call, email or meeting notification
names the activity only: its owner, times and direction come from the objects' batch read.
https://developers.hubspot.com/docs/api/crm/calls
Every call goes through the client's shared rate limiter; a batch is 100 records (associations
1,000 ids), so a burst of notifications costs a few calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.base import CrmError
from connectors.hubspot.client import HubSpotClient, error_message, make_client
from connectors.hubspot.deals import DEAL_BATCH, associated_ids, read_deals
from connectors.hubspot.fields import ACTIVITY_PROPERTY_FIELDS, DEAL_PROPERTY_FIELDS, record_value
from connectors.hubspot.paths import api_path

#: Activity type -> the object's name in paths and association reads.
ACTIVITY_OBJECTS: dict[str, str] = {"call": "calls", "email": "emails", "meeting": "meetings"}


class HubSpotRecordReader:
    """``RecordReader`` on a ``HubSpotClient``."""

    def __init__(self, client: HubSpotClient):
        self.client = client

    def read_deals(self, deal_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return ``{deal id: deal_change properties + contact_ids}``. Raises ``CrmError``.

        A value HubSpot sends that does not read as its kind (an amount that is no number) is
        left out rather than failing the batch: the stage flags still decide the outcome.
        """
        found = read_deals(self.client, deal_ids)
        people = associated_ids(self.client, "deals", "contacts", list(found)) if found else {}
        return {deal_id: {**_named(properties, DEAL_PROPERTY_FIELDS), "contact_ids": people.get(deal_id, [])}
                for deal_id, properties in found.items()}

    def read_rep_activities(self, activity_types: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """Return ``{activity id: rep_activity properties + contact_ids}``. Raises ``CrmError``."""
        found: dict[str, dict[str, Any]] = {}
        for activity_type, object_name in ACTIVITY_OBJECTS.items():
            ids = [i for i, kind in activity_types.items() if kind == activity_type]
            if not ids:
                continue
            table = ACTIVITY_PROPERTY_FIELDS[activity_type]
            read = _batch_read(self.client, object_name, ids, list(table))
            people = associated_ids(self.client, object_name, "contacts", list(read)) if read else {}
            for activity_id, properties in read.items():
                found[activity_id] = {**_named(properties, table), "activity_type": activity_type,
                                      "contact_ids": people.get(activity_id, [])}
        return found


def make_record_reader(config: Mapping[str, Any], redis: Any) -> HubSpotRecordReader:
    """Build the reader on its own client (the rate limit is shared through Redis)."""
    return HubSpotRecordReader(make_client(config, redis))


def _batch_read(client: HubSpotClient, object_name: str, ids: Sequence[str],
                properties: Sequence[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    unique = list(dict.fromkeys(str(i) for i in ids))
    for start in range(0, len(unique), DEAL_BATCH):
        # propertiesWithHistory is required by the OpenAPI schema; none keeps the batch at 100.
        body = {"properties": list(properties), "propertiesWithHistory": [],
                "inputs": [{"id": i} for i in unique[start:start + DEAL_BATCH]]}
        response = client.request("POST", api_path(f"{object_name}.batch_read"), json=body)
        if response.status_code not in (200, 207):
            raise CrmError(f"HubSpot {object_name} batch read -> {response.status_code}: {error_message(response)}")
        for result in response.json().get("results", []):
            found[str(result["id"])] = dict(result.get("properties") or {})
    return found


def _named(properties: Mapping[str, Any], table: Mapping[str, str]) -> dict[str, Any]:
    named: dict[str, Any] = {}
    for hubspot_name, name in table.items():
        if hubspot_name not in properties:
            continue
        try:
            named[name] = record_value(name, properties[hubspot_name])
        except ValueError:
            continue
    return named

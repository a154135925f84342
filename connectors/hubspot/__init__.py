"""HubSpot connector: Webhooks API + workflow webhooks in, CRM contacts/tasks/owners out, deals and rep
activity read back (date-versioned API)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Connector, Endpoint
from connectors.hubspot import project, records, setup
from connectors.hubspot.client import BATCH_SIZE, make_client
from connectors.hubspot.contact_upsert import BATCH_SIZE as CREATE_BATCH_SIZE
from connectors.hubspot.webhook import parse_webhook, parse_workflow, verify_webhook, verify_workflow

#: Every environment variable the connector reads (docs/hubspot.md, "Environment").
SETTINGS = {
    "HUBSPOT_CLIENT_SECRETS": "the app's client secret(s): HubSpot signs webhooks with it (v1/v2/v3); "
                              "comma-separated during a rotation",
    "HUBSPOT_ACCESS_TOKEN": "the app's access token (`pat-…`), sent as `Authorization: Bearer`",
    "HUBSPOT_API_BASE": "default `https://api.hubapi.com`",
    "HUBSPOT_RATE_LIMIT_PER_10S": "your app's burst limit per 10 s (default 100; leadloop stays under 90 % of it, "
                                  "shared by all workers through Redis)",
    "HUBSPOT_WORKFLOW_API_KEYS": "accepted API keys for workflow \"Send a webhook\" calls, comma-separated",
    "HUBSPOT_WORKFLOW_API_KEY_HEADER": "the workflow API-key header's name (default `X-Leadloop-Api-Key`)",
    "HUBSPOT_APP_ID": "optional: lets `leadloop setup hubspot` create a public app's webhook subscriptions",
    "HUBSPOT_DEVELOPER_API_KEY": "optional: with `HUBSPOT_APP_ID`, the developer account's API key",
}


def check_config(config: Mapping[str, Any]) -> list[str]:
    """The mistakes in the HubSpot settings, each naming its variable."""
    mistakes = []
    limit = str(config.get("HUBSPOT_RATE_LIMIT_PER_10S") or "").strip()
    if limit and not (limit.isdigit() and int(limit) > 0):
        mistakes.append(f"HUBSPOT_RATE_LIMIT_PER_10S: must be a whole number above 0 (got {limit!r})")
    base = str(config.get("HUBSPOT_API_BASE") or "").strip()
    if base and not base.startswith(("https://", "http://")):
        mistakes.append(f"HUBSPOT_API_BASE: must be an http(s) URL (got {base!r})")
    return mistakes


def can_read(config: Mapping[str, Any]) -> bool:
    return bool(str(config.get("HUBSPOT_ACCESS_TOKEN") or "").strip())


connector = Connector(
    name="hubspot",
    endpoints=[
        # Webhooks API: at most 100 small events per request.
        Endpoint(rule="/hubspot", name="hubspot", verify=verify_webhook, parse=parse_webhook),
        # Workflow "Send a webhook": one contact; "all properties" bodies can be large.
        Endpoint(rule="/hubspot/workflow", name="hubspot_workflow", verify=verify_workflow,
                 parse=parse_workflow, max_body=2_000_000),
    ],
    make_client=make_client,
    settings=SETTINGS,
    check_config=check_config,
    can_read=can_read,
    status_fields={"hs_lead_status": "lead_status", "lifecyclestage": "lifecycle_stage"},
    credentials=(("app access token", ("HUBSPOT_ACCESS_TOKEN",)),),
    run_setup=setup.run_setup,
    run_doctor=setup.run_doctor,
    write_project=project.write_project,
    max_update_batch=BATCH_SIZE,
    max_create_batch=CREATE_BATCH_SIZE,
    make_record_reader=records.make_record_reader,
)

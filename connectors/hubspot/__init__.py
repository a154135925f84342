"""HubSpot connector: Webhooks API + workflow webhooks in, CRM contacts/tasks/owners out (date-versioned API)."""

from __future__ import annotations

from connectors.base import Connector, Endpoint
from connectors.hubspot.client import BATCH_SIZE, make_client
from connectors.hubspot.webhook import parse_webhook, parse_workflow, verify_webhook, verify_workflow

#: Every environment variable the connector reads (see the README, "HubSpot setup").
CONFIG_KEYS = (
    "HUBSPOT_CLIENT_SECRETS",
    "HUBSPOT_WORKFLOW_API_KEYS",
    "HUBSPOT_WORKFLOW_API_KEY_HEADER",
    "HUBSPOT_ACCESS_TOKEN",
    "HUBSPOT_API_BASE",
    "HUBSPOT_RATE_LIMIT_PER_10S",
    "HUBSPOT_APP_ID",
    "HUBSPOT_DEVELOPER_API_KEY",
    "PUBLIC_BASE_URL",
)

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
    config_keys=CONFIG_KEYS,
    max_update_batch=BATCH_SIZE,
)

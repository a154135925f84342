"""Salesforce connector: Outbound Messages and Flow callouts in, REST (scores, tasks) out."""

from __future__ import annotations

from connectors.base import Connector, Endpoint
from connectors.salesforce import webhook
from connectors.salesforce.client import MAX_BATCH, make_client

connector = Connector(
    name="salesforce",
    endpoints=[
        # The path token is checked by verify; the org id inside the payload by parse.
        Endpoint(
            rule="/salesforce/<token>",
            name="salesforce",
            verify=webhook.verify_token,
            parse=webhook.parse_outbound_message,
            ok_response=webhook.ok_response,
            error_response=webhook.error_response,
        ),
        Endpoint(
            rule="/salesforce/<token>/flow",
            name="salesforce_flow",
            verify=webhook.verify_token,
            parse=webhook.parse_flow_callout,
        ),
    ],
    make_client=make_client,
    config_keys=[
        "SALESFORCE_WEBHOOK_TOKENS",
        "SALESFORCE_ORG_ID",
        "SALESFORCE_CLIENT_ID",
        "SALESFORCE_USERNAME",
        "SALESFORCE_PRIVATE_KEY_FILE",
        "SALESFORCE_PRIVATE_KEY",
        "SALESFORCE_REFRESH_TOKEN",
        "SALESFORCE_CLIENT_SECRET",
        "SALESFORCE_LOGIN_URL",
        "SALESFORCE_API_VERSION",
        "SALESFORCE_TOKEN_TTL",
    ],
    max_update_batch=MAX_BATCH,
)

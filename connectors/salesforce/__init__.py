"""Salesforce connector: Outbound Messages and Flow callouts in, REST (scores, Leads, tasks) out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Connector, Endpoint
from connectors.salesforce import setup, webhook
from connectors.salesforce.client import MAX_BATCH, make_client

#: Every environment variable the connector reads (docs/salesforce.md, "Environment").
SETTINGS = {
    "SALESFORCE_WEBHOOK_TOKENS": "secret path token(s) of `/webhooks/salesforce/<token>`, comma-separated",
    "SALESFORCE_ORG_ID": "your org's 15- or 18-character id; outbound messages from any other org are refused",
    "SALESFORCE_CLIENT_ID": "the connected app's consumer key",
    "SALESFORCE_USERNAME": "JWT bearer flow: the integration user",
    "SALESFORCE_PRIVATE_KEY_FILE": "JWT bearer flow: path of the PEM key whose certificate is on the connected app",
    "SALESFORCE_PRIVATE_KEY": "JWT bearer flow: the PEM text instead of a file (`\\n` escapes accepted)",
    "SALESFORCE_REFRESH_TOKEN": "refresh-token flow instead of JWT",
    "SALESFORCE_CLIENT_SECRET": "refresh-token flow: the connected app's consumer secret",
    "SALESFORCE_LOGIN_URL": "default `https://login.salesforce.com`; `https://test.salesforce.com` for a sandbox",
    "SALESFORCE_API_VERSION": "REST API version, default `62.0`",
    "SALESFORCE_TOKEN_TTL": "seconds an access token is cached in Redis (default 3600)",
}


def check_config(config: Mapping[str, Any]) -> list[str]:
    """The mistakes in the Salesforce settings, each naming its variable."""
    mistakes = []
    org = str(config.get("SALESFORCE_ORG_ID") or "").strip()
    if org and not (len(org) in (15, 18) and org.isalnum()):
        mistakes.append(f"SALESFORCE_ORG_ID: must be the 15- or 18-character org id (got {org!r})")
    ttl = str(config.get("SALESFORCE_TOKEN_TTL") or "").strip()
    if ttl and not (ttl.isdigit() and int(ttl) > 0):
        mistakes.append(f"SALESFORCE_TOKEN_TTL: must be a whole number of seconds above 0 (got {ttl!r})")
    login = str(config.get("SALESFORCE_LOGIN_URL") or "").strip()
    if login and not login.startswith(("https://", "http://")):
        mistakes.append(f"SALESFORCE_LOGIN_URL: must be an http(s) URL (got {login!r})")
    return mistakes


def can_read(config: Mapping[str, Any]) -> bool:
    return bool(str(config.get("SALESFORCE_CLIENT_ID") or "").strip())


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
    settings=SETTINGS,
    check_config=check_config,
    can_read=can_read,
    normalise_id=webhook.id18,
    status_fields={"Status": "lead_status"},
    credentials=(
        ("JWT bearer flow", ("SALESFORCE_CLIENT_ID", "SALESFORCE_USERNAME",
                             "SALESFORCE_PRIVATE_KEY_FILE|SALESFORCE_PRIVATE_KEY")),
        ("refresh-token flow", ("SALESFORCE_CLIENT_ID", "SALESFORCE_REFRESH_TOKEN")),
    ),
    run_setup=setup.run_setup,
    run_doctor=setup.run_doctor,
    max_update_batch=MAX_BATCH,
)

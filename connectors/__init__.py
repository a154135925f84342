"""The CRM connectors, registered in one explicit table (no discovery)."""

from __future__ import annotations

from connectors.base import Connector


def registry() -> dict[str, Connector]:
    """Return the connectors by name. Adding a CRM is one line here."""
    from connectors import hubspot, salesforce

    return {
        hubspot.connector.name: hubspot.connector,
        salesforce.connector.name: salesforce.connector,
    }

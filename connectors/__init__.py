"""The CRM connectors, registered in one explicit table (no discovery).

Adding a CRM is one folder (see ``connectors.base``) and one line in ``CONNECTOR_MODULES``;
config, pipeline, CLI, the generic intake and the rules file read everything CRM-specific
through ``registry()``.
"""

from __future__ import annotations

import importlib

from connectors.base import Connector

#: The modules whose ``connector`` attribute is a registered CRM connector.
CONNECTOR_MODULES: tuple[str, ...] = ("connectors.hubspot", "connectors.salesforce")


def registry() -> dict[str, Connector]:
    """Return the registered connectors by name."""
    found: dict[str, Connector] = {}
    for module_name in CONNECTOR_MODULES:
        connector = importlib.import_module(module_name).connector
        found[connector.name] = connector
    return found


def status_fields() -> dict[str, dict[str, str]]:
    """Each CRM's feedback fields: CRM field name -> canonical lead field name."""
    return {name: dict(connector.status_fields) for name, connector in registry().items()}


def feedback_field_names() -> tuple[str, ...]:
    """The canonical lead fields that carry sales feedback in any registered CRM."""
    return tuple(sorted({field for connector in registry().values() for field in connector.status_fields.values()}))

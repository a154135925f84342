"""Every HubSpot API path leadloop calls, in one table (the client and setup read it).

HubSpot's REST APIs are date-versioned since March 2026 (``/crm/objects/2026-03/...``); the
numbered versions (v1-v3) go unsupported in September 2027 and v4 on 2027-03-30, and HubSpot
asks to move straight to the dated paths, not through v3/v4.
https://developers.hubspot.com/docs/api-reference/latest/overview
https://developers.hubspot.com/changelog/legacy-apis-and-legacy-apps-whats-going-unsupported-and-when

We pin ``2026-03``: its OpenAPI documents define every operation below with the same request
schemas as v3 (``tests/fixtures/hubspot/openapi``). ``2026-09`` also enforces the portal's
admin-configured property validation rules on every CRM write, which could reject score writes;
moving to it is a separate, tested change of ``API_VERSION``.
https://developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis
"""

from __future__ import annotations

API_VERSION = "2026-03"

#: Operation -> path template (``{name}`` placeholders are filled by ``api_path``).
PATHS: dict[str, str] = {
    # Contacts (scopes crm.objects.contacts.read / .write)
    "contacts.list": f"/crm/objects/{API_VERSION}/contacts",
    "contacts.batch_read": f"/crm/objects/{API_VERSION}/contacts/batch/read",
    "contacts.batch_update": f"/crm/objects/{API_VERSION}/contacts/batch/update",
    # Create or update by email (web-only leads reaching MQL), at most 100 inputs a call
    "contacts.batch_upsert": f"/crm/objects/{API_VERSION}/contacts/batch/upsert",
    # Tasks (the spec's scope for tasks is crm.objects.contacts.write / .read)
    "tasks.create": f"/crm/objects/{API_VERSION}/tasks",
    "tasks.read": f"/crm/objects/{API_VERSION}/tasks/{{task_id}}",  # also by a unique property: ?idProperty=
    # Deals are addressed by objectTypeId in the 2026-03 document (scope crm.objects.deals.read)
    "deals.batch_read": f"/crm/objects/{API_VERSION}/0-3/batch/read",
    # Calls, emails and meetings: rep activity (the spec's scope is crm.objects.contacts.read)
    "calls.batch_read": f"/crm/objects/{API_VERSION}/calls/batch/read",
    "emails.batch_read": f"/crm/objects/{API_VERSION}/emails/batch/read",
    "meetings.batch_read": f"/crm/objects/{API_VERSION}/meetings/batch/read",
    # Associations, e.g. deals -> contacts, at most 1,000 inputs a call
    "associations.batch_read": f"/crm/associations/{API_VERSION}/{{from_type}}/{{to_type}}/batch/read",
    # Contact properties and property groups (scopes crm.schemas.contacts.read / .write)
    "properties.contacts": f"/crm/properties/{API_VERSION}/contacts",
    "property_groups.contacts": f"/crm/properties/{API_VERSION}/contacts/groups",
    "property_groups.contacts.one": f"/crm/properties/{API_VERSION}/contacts/groups/{{group}}",
    # Task properties and groups: the task key property (HubSpot's OpenAPI names no task-specific
    # schema scope; the contacts schema scopes are among those it accepts)
    "properties.tasks": f"/crm/properties/{API_VERSION}/tasks",
    "property_groups.tasks": f"/crm/properties/{API_VERSION}/tasks/groups",
    "property_groups.tasks.one": f"/crm/properties/{API_VERSION}/tasks/groups/{{group}}",
    # Owners (scope crm.objects.owners.read)
    "owners.list": f"/crm/owners/{API_VERSION}",
    # Webhook subscriptions and settings of a legacy public app, with its developer API key.
    # Developer-platform apps declare theirs in the project instead (connectors.hubspot.project).
    "webhooks.subscriptions": f"/webhooks/{API_VERSION}/{{app_id}}/subscriptions",
    "webhooks.settings": f"/webhooks/{API_VERSION}/{{app_id}}/settings",
    # Private-app token scopes. Not in HubSpot's OpenAPI collection and no dated equivalent is
    # published, so it stays on its own path. https://developers.hubspot.com/docs/api/private-apps
    "token_info": "/oauth/v2/private-apps/get/access-token-info",
}


def api_path(operation: str, **params: str | int) -> str:
    """Return the path of ``operation`` with its placeholders filled; raises ``KeyError`` if unknown."""
    return PATHS[operation].format(**{name: str(value) for name, value in params.items()})

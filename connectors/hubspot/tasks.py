"""HubSpot tasks: the create body, and the unique key that makes a task exactly-once.

Every task leadloop creates carries the outbox row's key in ``leadloop_task_key``, a task
property created by ``leadloop setup hubspot`` with ``hasUniqueValue: true`` ("so that you can't
enter the same value for multiple records"; up to ten such properties per object):
https://developers.hubspot.com/docs/api-reference/crm-properties-v3/guide#create-unique-identifier-properties
Before creating, the client reads the task by that key (``GET .../tasks/{key}?idProperty=``, a
read by a unique property, which HubSpot's tasks OpenAPI document defines): a task found is the
one an earlier attempt created before its worker died, and is used instead of a new one. The
search API is no guard: its index lags ("new or updated records can take a few moments to
appear") and it allows 5 requests per second.
https://developers.hubspot.com/docs/api/crm/tasks
"""

from __future__ import annotations

from typing import Any

from connectors.base import TaskSpec
from connectors.hubspot.fields import format_value

TASK_PRIORITIES = {"high": "HIGH", "normal": "MEDIUM", "low": "LOW"}
TASK_TYPES = {"call": "CALL", "email": "EMAIL", "todo": "TODO"}
#: Task -> contact association (HUBSPOT_DEFINED), from the Tasks guide.
TASK_TO_CONTACT = 204
#: The unique task property holding leadloop's key.
TASK_KEY_PROPERTY = "leadloop_task_key"
#: The task property group setup creates it in.
TASK_PROPERTY_GROUP = "leadloop"


def task_key_property_definition() -> dict[str, Any]:
    """Return the ``POST /crm/properties/{version}/tasks`` body of the unique task key property."""
    return {
        "name": TASK_KEY_PROPERTY, "label": "Leadloop task key",
        "description": "leadloop's key for this task; unique, so a retried write finds the task instead "
                       "of creating another.",
        "groupName": TASK_PROPERTY_GROUP, "type": "string", "fieldType": "text", "displayOrder": -1,
        "hasUniqueValue": True, "hidden": False, "formField": False,
    }


def task_body(task: TaskSpec) -> dict[str, Any]:
    """Return the ``POST /crm/objects/{version}/tasks`` body: the task, its key and its contact.

    Raises ``ValueError`` for a priority or type with no HubSpot value.
    """
    priority, task_type = TASK_PRIORITIES.get(task.priority), TASK_TYPES.get(task.type)
    if priority is None or task_type is None:
        raise ValueError(f"unknown task priority/type {task.priority!r}/{task.type!r}")
    properties = {"hs_timestamp": format_value(task.due_at), "hs_task_body": task.body}
    if task.owner_id:
        properties["hubspot_owner_id"] = str(task.owner_id)
    properties.update(hs_task_subject=task.subject, hs_task_status="NOT_STARTED",
                      hs_task_priority=priority, hs_task_type=task_type)
    properties[TASK_KEY_PROPERTY] = task.key
    return {"properties": properties, "associations": [{
        "to": {"id": task.crm_id},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": TASK_TO_CONTACT}],
    }]}

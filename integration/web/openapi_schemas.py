"""Marshmallow schemas that describe, for ``/openapi.json``, bodies nothing else loads with one.

The generic intake validates with its own ``EventSchema`` (``integration.web.intake``); the CRM
connectors read their payloads with validating accessors (``connectors/*/webhook.py``). These
schemas only *describe* those payloads and leadloop's answers; nothing validates a request with
them. Limits stated here are the ones the parsers and the store enforce.
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

from connectors.hubspot.webhook import MAX_EVENTS as HUBSPOT_MAX_EVENTS
from connectors.salesforce.webhook import MAX_FLOW_EVENTS, SALESFORCE_ID
from integration.store.models import Event
from integration.store.validation import EARLIEST, LATEST, text_limit

#: Epoch milliseconds the store accepts for ``occurredAt`` (``integration.store.validation``).
EPOCH_MS_MIN = int(EARLIEST.timestamp() * 1000)
EPOCH_MS_MAX = int(LATEST.timestamp() * 1000) - 1
#: The years of a date-time the store takes (``EARLIEST``-``LATEST``), with a year's slack for the
#: UTC offset: looser than the exact check, so that whatever breaks the pattern is refused.
STORABLE_YEAR_PATTERN = r"^(?:1969|19[7-9][0-9]|2[01][0-9][0-9]|2200)-"
#: A Flow event id is stored as ``flow:<id>`` in the event key column.
FLOW_ID_MAX = text_limit(Event.event_key) - len("flow:")


# --- answers ---------------------------------------------------------------------------------

class IntakeResultSchema(Schema):
    """What a webhook stored: the answer 200 of every JSON webhook endpoint."""

    accepted = fields.Integer(required=True, metadata={"minimum": 0, "description": "events stored now"})
    duplicates = fields.Integer(required=True, metadata={
        "minimum": 0, "description": "events already stored by an earlier delivery (absorbed)"})
    ignored = fields.Integer(required=True, metadata={
        "minimum": 0, "description": "of the accepted, events of a type leadloop stores but does not score"})


class ErrorSchema(Schema):
    """A refusal (4xx) or a temporary failure (503), with its reason."""

    error = fields.String(required=True, metadata={
        "description": "why; for a batch, every mistake by its position (`[2].occurred_at: ...`)"})


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["alive"]))


class ReadinessSchema(Schema):
    """``GET /readyz``: each check's outcome; the Redis figures only when Redis answered."""

    status = fields.String(required=True, validate=validate.OneOf(["ready", "not ready"]))
    database = fields.String(required=True, metadata={"description": "`ok` or `unreachable: <error type>`"})
    redis = fields.String(required=True, metadata={"description": "`ok` or `unreachable: <error type>`"})
    rules_version = fields.String(required=True)
    write_mode = fields.String(required=True, validate=validate.OneOf(["shadow", "live"]))
    scoring = fields.String(required=True, validate=validate.OneOf(["compiled", "pure Python"]))
    queue_depth = fields.Integer(metadata={"minimum": 0, "description": "jobs waiting in the queue"})
    scheduled = fields.Integer(metadata={"minimum": 0, "description": "jobs scheduled for later"})
    failed_jobs = fields.Integer(metadata={"minimum": 0, "description": "jobs in RQ's failed-job registry"})


# --- HubSpot Webhooks API (POST /webhooks/hubspot) -------------------------------------------
# https://developers.hubspot.com/docs/api/webhooks#webhook-payloads

class HubSpotEventSchema(Schema):
    """One notification of a Webhooks API batch; fields leadloop does not read are kept in raw."""

    class Meta:
        unknown = INCLUDE

    # HubSpot's ids are 64-bit; leadloop takes any integer whose key fits its column (else 400).
    eventId = fields.Integer(required=True, metadata={
        "description": "not unique on its own: the key is portal/subscription/event/time/object"})
    subscriptionId = fields.Integer(required=True)
    portalId = fields.Integer(required=True)
    appId = fields.Raw(metadata={"description": "an integer (not read)"})
    occurredAt = fields.Integer(required=True, metadata={
        "format": "int64", "minimum": EPOCH_MS_MIN, "maximum": EPOCH_MS_MAX,
        "description": "epoch milliseconds"})
    subscriptionType = fields.String(required=True, metadata={
        "description": "`contact.creation`, `contact.propertyChange`, `contact.deletion`, `contact.restore`, "
                       "`contact.privacyDeletion`, `contact.merge`, `contact.associationChange`; other types "
                       "(`company.*`, `deal.*` ...) are stored as ignored. Older deliveries call it `eventType`"})
    objectId = fields.Integer(required=True, metadata={"description": "the contact's (or object's) id"})
    attemptNumber = fields.Integer()
    changeSource = fields.Raw(metadata={"description": "text such as `CRM_UI` (not read)"})
    sourceId = fields.Raw(metadata={"description": "text (not read)"})


class HubSpotOtherEventSchema(HubSpotEventSchema):
    subscriptionType = fields.String(required=True, metadata={
        **HubSpotEventSchema._declared_fields["subscriptionType"].metadata,
        "not": {"enum": ["contact.propertyChange", "contact.merge"]}})


class HubSpotPropertyChangeSchema(HubSpotEventSchema):
    subscriptionType = fields.String(required=True, validate=validate.OneOf(["contact.propertyChange"]))
    propertyName = fields.String(required=True, validate=validate.Length(min=1))
    propertyValue = fields.Raw(allow_none=True, metadata={
        "anyOf": [{"type": "string", "nullable": True}, {"type": "number"}, {"type": "boolean"}],
        "description": "HubSpot sends text (numbers are read as numbers for `numemployees`, `annualrevenue`); "
                       "`REDACTED` for sensitive properties, never stored as the value"})


class HubSpotMergeSchema(HubSpotEventSchema):
    subscriptionType = fields.String(required=True, validate=validate.OneOf(["contact.merge"]))
    primaryObjectId = fields.Integer(metadata={
        "description": "the surviving record unless `newObjectId` says; one of the two is needed"})
    mergedObjectIds = fields.List(fields.Integer(), required=True)
    newObjectId = fields.Integer(metadata={"description": "the surviving record"})
    numberOfPropertiesMoved = fields.Raw(metadata={"description": "an integer (not read)"})


HUBSPOT_BATCH = {
    "type": "array", "maxItems": HUBSPOT_MAX_EVENTS,
    "items": {"anyOf": ["HubSpotPropertyChange", "HubSpotMerge", "HubSpotOtherEvent"]},
}


# --- HubSpot workflow "Send a webhook" (POST /webhooks/hubspot/workflow) ---------------------
# https://knowledge.hubspot.com/workflows/how-do-i-use-webhooks-with-hubspot-workflows

class HubSpotWorkflowBodySchema(Schema):
    """The enrolled contact (its properties flat or under ``properties``), or an activity when
    ``leadloop_event`` names its kind. Needs a contact id or an email."""

    class Meta:
        unknown = INCLUDE

    # Keys of another JSON type than the one described are not refused: the body is then read
    # as if they were absent (a key the workflow does not own is a contact property).
    objectId = fields.Raw(metadata={"description": "the contact id, an integer or text (also read: "
                                                   "`canonical-vid`, `vid`, `hs_object_id`, `id`)"})
    email = fields.Raw(metadata={"description": "the contact's email, text"})
    properties = fields.Raw(metadata={
        "description": "an object of contact properties; legacy bodies nest each as `{\"value\": ...}`"})
    leadloop_event = fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$"), metadata={
        "description": "makes the body an activity of this kind (not a CRM kind such as `field_change`)"})
    occurredAt = fields.Raw(metadata={
        "description": f"epoch milliseconds ({EPOCH_MS_MIN}-{EPOCH_MS_MAX}) or ISO-8601 text (also read: "
                       "`occurred_at`, `updatedAt`, `properties.lastmodifieddate`); default: the time received"})


# --- Salesforce Flow HTTP callout (POST /webhooks/salesforce/{token}/flow) -------------------

class SalesforceFlowEventSchema(Schema):
    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True, validate=validate.Length(min=1, max=FLOW_ID_MAX), metadata={
        "pattern": r"\S", "description": "unique per event and stable across resends"})
    type = fields.String(required=True, metadata={"description": "`record_snapshot` or an activity kind"})
    occurredAt = fields.String(required=True, metadata={
        "format": "date-time", "pattern": STORABLE_YEAR_PATTERN,
        "description": f"ISO-8601 with an offset (`Z` for UTC), {EARLIEST.year}-{LATEST.year}"})
    recordId = fields.String(required=True, validate=validate.Regexp(SALESFORCE_ID.pattern), metadata={
        "description": "a Lead (`00Q`) or Contact (`003`) id, 15 or 18 characters"})
    sobjectType = fields.String(required=True, metadata={
        "description": "`Lead` or `Contact`; other types are stored as ignored"})
    # ``data_key``: an attribute named ``fields`` would hide marshmallow's module in this class body.
    sf_fields = fields.Dict(keys=fields.String(), data_key="fields", allow_none=True, metadata={
        "additionalProperties": {"anyOf": [{"type": "string", "nullable": True}, {"type": "number"},
                                           {"type": "boolean"}]},
        "description": "field API name -> value (`NumberOfEmployees` a whole number, "
                       "`HasOptedOutOfEmail` a boolean)"})
    properties = fields.Dict(keys=fields.String(), allow_none=True, metadata={"description": "what the activity was"})


class SalesforceFlowCalloutSchema(Schema):
    class Meta:
        unknown = INCLUDE

    organizationId = fields.String(required=True, validate=validate.Regexp(r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$"),
                                   metadata={"description": "must be `SALESFORCE_ORG_ID` (else 401)"})
    events = fields.List(fields.Nested(SalesforceFlowEventSchema), required=True,
                         validate=validate.Length(max=MAX_FLOW_EVENTS))

"""The one internal event type every inbound source is normalised to.

Each connector's ``webhook.py`` turns its provider payload into ``LeadEvent`` objects; the
receiver stores them and the queue scores them. Nothing after the connector looks at the
provider's vocabulary again, except through ``raw``, kept untouched for audit and replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Internal event kinds. Website/product activity kinds are the generic intake's ``type``
#: values; CRM kinds describe record changes. A rules file may declare further activity kinds.
ACTIVITY_KINDS = frozenset({
    "page_view", "content_download", "form_submit", "event_attended", "trial_signup",
    "chat_intent", "email_open", "email_click", "unsubscribe", "bounce",
    "contact_request", "do_not_contact",
})
CRM_KINDS = frozenset({
    "lead_created",      # the CRM created the record (fields may be partial: fetch the rest)
    "field_change",      # one or more fields changed; ``fields`` holds the new values
    "record_snapshot",   # the CRM sent the record's latest state (Salesforce outbound message)
    "merge",             # ``properties["merged_ids"]`` were merged into ``crm_id``
    "deletion",          # the record was deleted (may be restored)
    "restore",           # a deleted record came back
    "privacy_deletion",  # GDPR erase: forget the person's personal data
    "association_change",
    "deal_change",       # a deal / opportunity changed (``record_id``; ``properties``: DEAL_PROPERTIES)
    "rep_activity",      # a rep logged a call, email, meeting or task (``record_id``; REP_ACTIVITY_PROPERTIES)
    "ignored",           # a known provider event we store but do not act on
})
#: What a ``deal_change`` says of its deal, each key only when the payload says it:
#: ``change`` (``creation``, ``propertyChange``, ``deletion``, ``restore``, ``merge``,
#: ``associationChange``, ``snapshot`` for a whole record), ``pipeline``, ``stage``, ``amount``
#: (decimal text), ``currency`` (ISO 4217), ``created_at``/``closed_at`` (ISO 8601; ``closed_at``
#: may be the expected close date of an open deal), ``is_closed``/``is_won`` (the stage's own
#: flags, booleans), ``contact_ids``/``removed_contact_ids`` (people associated or no longer),
#: ``merged_ids`` (deals merged into this one), ``property``/``value`` (a change of another property).
DEAL_PROPERTIES = ("change", "pipeline", "stage", "amount", "currency", "created_at", "closed_at", "is_closed",
                   "is_won", "contact_ids", "removed_contact_ids", "merged_ids", "property", "value")
#: What a ``rep_activity`` says of the activity, each key only when the payload says it: ``change``
#: (as for deals), ``activity_type`` (``REP_ACTIVITY_TYPES``), ``owner_id`` (the CRM user who owns
#: it), ``logged_at`` (when it was logged, ISO 8601), ``activity_at`` (when it took place or is
#: due), ``direction`` (``inbound``: the lead wrote or called; ``outbound``), ``status``,
#: ``contact_ids``/``removed_contact_ids``, ``property``/``value``.
REP_ACTIVITY_PROPERTIES = ("change", "activity_type", "owner_id", "logged_at", "activity_at", "direction",
                           "status", "contact_ids", "removed_contact_ids", "property", "value")
#: What a rep's logged activity is (a Salesforce to-do Task is a ``task``).
REP_ACTIVITY_TYPES = ("call", "email", "meeting", "task")
#: Kinds about a CRM record other than the lead: ``record_id`` names it, ``crm_id`` is None, and
#: the people it concerns are its ``contact_ids`` (the pipeline resolves them to leads).
RECORD_KINDS = frozenset({"deal_change", "rep_activity"})


@dataclass(frozen=True, slots=True)
class LeadEvent:
    """One thing that happened to one lead, as any source reports it."""

    #: Where it came from: ``"hubspot"``, ``"salesforce"`` or ``"web"``.
    source: str
    #: One of ``ACTIVITY_KINDS`` / ``CRM_KINDS`` or a kind the rules file declares.
    kind: str
    #: The idempotency key, unique per ``source``: a redelivery carries the same key.
    event_key: str
    #: When it happened, timezone-aware UTC. Ordering uses this, never arrival time.
    occurred_at: datetime
    #: The CRM that owns the lead record (``"hubspot"``/``"salesforce"``), if known.
    crm: str | None = None
    #: The lead's id in that CRM, as a string. None for a record event (``RECORD_KINDS``).
    crm_id: str | None = None
    #: The lead's email, lower-cased; identifies web leads not yet in a CRM.
    email: str | None = None
    #: Lead field values carried by the event, under canonical names (``scoring.fields``);
    #: fields the connector does not map keep their CRM name.
    fields: dict[str, Any] = field(default_factory=dict)
    #: What describes the activity itself: ``asset``, ``url``, ``form``, ``reason`` ...
    properties: dict[str, Any] = field(default_factory=dict)
    #: The untouched provider payload of this one event.
    raw: Any = None
    #: For a record event (``RECORD_KINDS``): the deal's or activity's id in ``crm``.
    record_id: str | None = None

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        if (self.kind in RECORD_KINDS) != (self.record_id is not None):
            raise ValueError(f"{', '.join(sorted(RECORD_KINDS))} events, and only they, name a record_id")
        if self.record_id is not None and (not self.crm or self.crm_id or self.email):
            raise ValueError("a record event names its crm and record_id, not a lead")
        if self.record_id is None and not (self.crm and self.crm_id) and not self.email:
            raise ValueError("an event needs crm + crm_id or an email")


def utc_from_millis(ms: int | float) -> datetime:
    """Return the aware UTC datetime for epoch milliseconds (HubSpot's ``occurredAt``)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)

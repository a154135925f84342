"""The small fixed interface every CRM connector implements.

A connector is one folder (``webhook.py`` verify + parse, ``client.py`` outbound API client,
``setup.py`` setup/doctor, ``__init__.py`` the ``Connector`` object) and one line in
``connectors.CONNECTORS``. The HTTP flow around ``Endpoint.verify``/``Endpoint.parse`` is
written once in ``integration.web.receiver`` and never overridden.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from connectors.events import ACTIVITY_KINDS, LeadEvent

# --- inbound ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class InboundRequest:
    """What a connector may look at: raw bytes first, nothing parsed for it."""

    method: str
    #: The URL the sender called, rebuilt from ``PUBLIC_BASE_URL`` + path + query string
    #: exactly as received (URL-bound signatures are computed over it).
    url: str
    headers: Mapping[str, str]  # case-insensitive (werkzeug Headers)
    body: bytes
    #: Values captured by the route (e.g. ``{"token": ...}``).
    path_params: Mapping[str, str] = field(default_factory=dict)


class WebhookError(Exception):
    """A request we refuse; ``status`` is the HTTP status, the message the reason we send back."""

    status = 400


class SignatureError(WebhookError):
    """Missing, malformed, stale or wrong signature or token: 401."""

    status = 401


class PayloadError(WebhookError):
    """A payload we cannot recognise or that breaks the documented shape: 400."""

    status = 400


@dataclass(frozen=True, slots=True)
class IntakeContext:
    """What an endpoint's ``verify`` and ``parse`` may use besides the request itself."""

    #: The validated settings (``integration.config``), the connector's own among them.
    config: Mapping[str, Any]
    #: The activity kinds the live rules file knows (built-in ones plus those it declares).
    activity_kinds: frozenset[str] = ACTIVITY_KINDS
    #: When the request was received (aware UTC): the services' clock, which tests may move.
    #: Signature freshness is checked against the wall clock, never this.
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What the receiver stored for one request (passed to ``Endpoint.ok_response``)."""

    accepted: int
    duplicates: int
    ignored: int = 0


@dataclass(frozen=True)
class Endpoint:
    """One inbound URL of a connector."""

    #: Flask URL rule below ``/webhooks``, e.g. ``"/hubspot"`` or ``"/salesforce/<token>"``.
    rule: str
    #: Unique endpoint name, used for the Flask endpoint and in logs.
    name: str
    #: Raises ``SignatureError`` unless the request is authentic. Runs before any parsing.
    verify: Callable[[InboundRequest, IntakeContext], None]
    #: Returns the events in the request, or raises ``PayloadError``. Runs after ``verify``.
    parse: Callable[[InboundRequest, IntakeContext], list[LeadEvent]]
    #: Largest body accepted (bytes); larger gets 413 before anything else is read.
    max_body: int = 1_000_000
    #: Builds the success response: ``(body, status, headers)``.
    ok_response: Callable[[IntakeResult], tuple[Any, int, dict[str, str]]] | None = None
    #: Builds a refusal: ``(body, status, headers)`` from the status and the reason.
    error_response: Callable[[int, str], tuple[Any, int, dict[str, str]]] | None = None
    #: ``parse`` already refuses values the store would refuse (with the other mistakes, in one
    #: answer), so the receiver does not check the events again.
    checks_storable: bool = False


# --- outbound --------------------------------------------------------------------------------

#: The fields leadloop writes back, in one table both CRMs' setup commands create from.
#: key -> (label, kind, description). HubSpot names them ``leadloop_<key>``, Salesforce
#: ``Leadloop_<Key>__c`` (see each connector's mapping table).
LEADLOOP_FIELDS: dict[str, tuple[str, str, str]] = {
    "score": ("Leadloop score", "number", "Total lead score (fit + engagement)."),
    "fit_points": ("Leadloop fit points", "number", "Points from who the lead is."),
    "engagement_points": ("Leadloop engagement points", "number", "Points from what the lead did, after decay."),
    "band": ("Leadloop band", "enum:cold,cool,warm,hot", "Temperature band."),
    "grade": ("Leadloop grade", "enum:A,B,C,D", "Fit grade."),
    "mql": ("Leadloop MQL", "bool", "Meets the agreed MQL definition."),
    "reasons": ("Leadloop reasons", "text", "Why the score is what it is, strongest first."),
    "stage": ("Leadloop stage", "enum:new,nurture,mql,accepted,sql,won,lost,recycled,disqualified",
              "Where the lead is in the marketing-sales loop."),
    "rules_version": ("Leadloop rules version", "string", "Version of the rules file that scored it."),
    "scored_at": ("Leadloop scored at", "datetime", "When the score was computed."),
    "recycle_reason": ("Leadloop recycle reason", "string", "Why the lead went back to nurture."),
    "recycle_count": ("Leadloop recycle count", "number", "How often the lead was recycled."),
    "nurture_track": ("Leadloop nurture track", "string", "The nurture track a recycled lead follows."),
}


@dataclass(frozen=True, slots=True)
class RecordUpdate:
    """Write leadloop's fields (and optionally owner and mapped CRM fields) onto one record."""

    #: The outbox row's idempotency key; outcomes are matched back by it.
    key: str
    crm_id: str
    #: Values keyed by ``LEADLOOP_FIELDS`` keys; the connector maps names and formats values.
    fields: Mapping[str, Any]
    #: New owner (HubSpot owner id / Salesforce user id), or None to leave it.
    owner_id: str | None = None
    #: CRM fields by their CRM name, passed through as-is (from the rules file's stage mapping,
    #: e.g. ``{"lifecyclestage": "marketingqualifiedlead"}`` or ``{"Status": "Working"}``).
    crm_fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordCreate:
    """Create the CRM record of a lead leadloop knows only by its email (a web-only MQL).

    The connector fills what the CRM requires from ``lead_fields`` (a documented placeholder
    where nothing is known) and writes ``fields``, ``owner_id`` and ``crm_fields`` in the same
    call, as ``RecordUpdate`` would. Creating the same ``key`` twice must not make two records.
    """

    #: The outbox row's idempotency key; outcomes are matched back by it.
    key: str
    email: str
    #: What is known about the person, under canonical lead field names (``first_name``, ``company`` ...).
    lead_fields: Mapping[str, Any]
    #: Values keyed by ``LEADLOOP_FIELDS`` keys.
    fields: Mapping[str, Any]
    owner_id: str | None = None
    crm_fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A follow-up task for a rep, associated with one lead record."""

    #: The outbox row's idempotency key. The connector stores it on the task in a unique field
    #: and looks for it before creating, so a retried write finds the task instead of making a
    #: second one (docs/hubspot.md and docs/salesforce.md say what each CRM guarantees).
    key: str
    crm_id: str
    subject: str
    body: str
    due_at: datetime  # aware
    priority: str  # "high" | "normal" | "low"
    type: str  # "call" | "email" | "todo"
    owner_id: str | None = None


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """How one write went. ``retryable`` errors stay pending; the others are recorded and dropped."""

    key: str
    ok: bool
    external_id: str | None = None
    error: str | None = None
    retryable: bool = False


class CrmError(Exception):
    """The CRM refused or failed a whole call; the flush job re-raises it so RQ retries."""


class CrmRateLimited(CrmError):
    """The CRM said slow down (HubSpot 429, Salesforce REQUEST_LIMIT_EXCEEDED)."""

    def __init__(self, message: str, retry_after: float = 10.0):
        super().__init__(message)
        self.retry_after = retry_after


class SetupError(Exception):
    """A setup step the CRM admin must fix first (a missing setting, a file that would be replaced)."""


class CrmAuthError(CrmError):
    """Credentials missing, expired or refused."""


class CrmClient(Protocol):
    """Outbound calls a connector makes. No retries inside: the queue retries."""

    #: Most records one update call takes (HubSpot 100, Salesforce 200).
    max_update_batch: int

    def fetch_fields(self, crm_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return the current fields of these records under canonical names, by CRM id."""
        ...

    def update_records(self, updates: Sequence[RecordUpdate]) -> list[WriteOutcome]:
        """Apply updates in batches of at most ``max_update_batch``; one outcome per update."""
        ...

    def create_records(self, creates: Sequence[RecordCreate]) -> list[WriteOutcome]:
        """Create records for web-only leads, one outcome per create; ``external_id`` is the new
        (or matched existing) record's id."""
        ...

    def create_task(self, task: TaskSpec) -> WriteOutcome:
        """Create one task, or find the one created earlier under ``task.key``; ``external_id``
        is the CRM's task id."""
        ...

    def task_is_open(self, task_id: str) -> bool:
        """Return whether a task we created is still open; raises ``CrmError`` if unknown."""
        ...


class RecordReader(Protocol):
    """Reads, in batches, what a CRM's webhooks only name: deals and rep activity by id.

    Values come under the record events' names (``connectors.events.DEAL_PROPERTIES``,
    ``REP_ACTIVITY_PROPERTIES``), with ``contact_ids``: the people the record is associated with
    now. No retries inside: a failed call raises ``CrmError`` and the queue retries.
    """

    def read_deals(self, deal_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return ``{deal id: properties}``; deals the CRM does not return are left out."""
        ...

    def read_rep_activities(self, activity_types: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """Return ``{activity id: properties}`` for ``{activity id: activity type}``; the rest left out."""
        ...


#: ``run_setup(config, redis, dry_run=..., echo=...)`` / ``run_doctor(config, redis, echo=...)``:
#: exit codes (0 = fine), messages through ``echo``.
SetupCommand = Callable[..., int]


def same_id(crm_id: str) -> str:
    """The identity normalisation: the CRM's ids are used as they come."""
    return crm_id


@dataclass(frozen=True)
class Connector:
    """A CRM integration: everything CRM-specific the other layers use."""

    name: str
    endpoints: Sequence[Endpoint]
    #: ``make_client(config, redis)`` -> ``CrmClient``; ``redis`` holds shared rate-limit and
    #: token state across workers.
    make_client: Callable[[Mapping[str, Any], Any], CrmClient]
    #: Settings (environment variables) this connector reads: name -> one-line description.
    #: Only these reach the config; ``check_config`` validates their values at start-up.
    settings: Mapping[str, str] = field(default_factory=dict)
    #: Returns the mistakes in this connector's settings (each naming the variable); [] if none.
    check_config: Callable[[Mapping[str, Any]], list[str]] = lambda _config: []
    #: Whether the settings allow reading records (hydrating fields a webhook did not carry).
    can_read: Callable[[Mapping[str, Any]], bool] = lambda _config: False
    #: One record, one key: the canonical form of a record id (e.g. Salesforce's 18 characters).
    normalise_id: Callable[[str], str] = same_id
    #: CRM field name -> canonical lead field, for the fields that carry sales feedback (the
    #: rules file's ``feedback`` section accepts either name).
    status_fields: Mapping[str, str] = field(default_factory=dict)
    #: The API credential flows the connector supports, as (label, variables); ``"A|B"`` means
    #: either variable. ``setup``/``doctor`` name what is missing before calling the CRM.
    credentials: Sequence[tuple[str, Sequence[str]]] = ()
    #: ``leadloop setup <crm>`` and ``leadloop doctor <crm>``.
    run_setup: SetupCommand | None = None
    run_doctor: SetupCommand | None = None
    #: ``leadloop setup <crm> --project DIR``: writes the app definition the CRM installs from
    #: (HubSpot's developer-platform project); returns the files written. None: not offered.
    write_project: Callable[[str, Mapping[str, Any]], list[Any]] | None = None
    #: Most records one update call takes; shadow mode batches by it without a client.
    max_update_batch: int = 100
    #: Most records one create call takes (``CrmClient.create_records``).
    max_create_batch: int = 1
    #: ``make_record_reader(config, redis)`` -> ``RecordReader``, for a CRM whose webhooks only
    #: name a deal or activity (HubSpot); None when they carry the whole record (Salesforce).
    #: Used only when ``can_read``.
    make_record_reader: Callable[[Mapping[str, Any], Any], RecordReader] | None = None


def secret_list(value: str | Sequence[str] | None) -> list[str]:
    """Return the non-empty entries of a comma-separated setting (several = rotation)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]

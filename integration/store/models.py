"""The system of record: leads, their events, every score and decision, their deals, and the CRM outbox.

A lead's whole timeline is these tables joined on ``lead_id`` (see ``integration.store.leads.lead_timeline``).
Schema changes go through Alembic (``integration/store/migrations``), never ``create_all``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite.
JsonType = JSON().with_variant(JSONB(), "postgresql")


class Stamp(TypeDecorator):
    """An aware UTC datetime on every backend (SQLite would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store aware UTC datetimes only")
        return value.astimezone(UTC) if dialect.name != "sqlite" else value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Lead(Base):
    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The CRM owning the record and its id there; both None for a web-only lead.
    crm: Mapped[str | None] = mapped_column(String(20))
    crm_id: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))
    #: Current field values under canonical names, and when each was last set (ISO strings),
    #: so an older event never overwrites a newer value.
    fields: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    field_times: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    stage: Mapped[str] = mapped_column(String(20), default="new")
    owner_id: Mapped[str | None] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float)
    fit_points: Mapped[float | None] = mapped_column(Float)
    engagement_points: Mapped[float | None] = mapped_column(Float)
    band: Mapped[str | None] = mapped_column(String(10))
    grade: Mapped[str | None] = mapped_column(String(2))
    mql: Mapped[bool] = mapped_column(Boolean, default=False)
    disqualified: Mapped[bool] = mapped_column(Boolean, default=False)
    rules_version: Mapped[str | None] = mapped_column(String(40))
    scored_at: Mapped[datetime | None] = mapped_column(Stamp)
    # Lifecycle state (the pure decisions live in scoring.lifecycle).
    recycle_count: Mapped[int] = mapped_column(Integer, default=0)
    recycle_reason: Mapped[str | None] = mapped_column(String(40))
    cooldown_until: Mapped[datetime | None] = mapped_column(Stamp)
    engagement_reset_at: Mapped[datetime | None] = mapped_column(Stamp)
    last_handoff_at: Mapped[datetime | None] = mapped_column(Stamp)
    sla_due_at: Mapped[datetime | None] = mapped_column(Stamp)
    sla_misses: Mapped[int] = mapped_column(Integer, default=0)
    #: The CRM status value at hand-off, to tell whether sales acted.
    handoff_status: Mapped[str | None] = mapped_column(String(80))
    handoff_playbook: Mapped[str | None] = mapped_column(String(40))
    handoff_band: Mapped[str | None] = mapped_column(String(10))
    recycled_at: Mapped[datetime | None] = mapped_column(Stamp)
    score_penalty: Mapped[float] = mapped_column(Float, default=0)
    nurture_track: Mapped[str | None] = mapped_column(String(80))
    last_engagement_at: Mapped[datetime | None] = mapped_column(Stamp)
    stage_changed_at: Mapped[datetime | None] = mapped_column(Stamp)
    #: Set when the lead was merged into another one; its history moved there.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(Stamp)
    #: Set by a privacy deletion: personal data erased, counts kept.
    erased_at: Mapped[datetime | None] = mapped_column(Stamp)
    created_at: Mapped[datetime] = mapped_column(Stamp, default=_now)
    updated_at: Mapped[datetime] = mapped_column(Stamp, default=_now)
    #: Processing failures in a row (a poison lead); reset by the next success.
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The last failure: the exception's type and where it was raised (never its message:
    #: messages can quote the lead's data).
    last_error: Mapped[str | None] = mapped_column(Text)
    #: When the failing lead is tried again (backoff).
    retry_at: Mapped[datetime | None] = mapped_column(Stamp)
    #: Set after the last retry failed: left alone until ``leadloop dead-letters --retry``.
    quarantined_at: Mapped[datetime | None] = mapped_column(Stamp)
    #: When the lead's visible verdict next changes with no new event (decay, a window or an
    #: override ending, a cooldown ending), and why: the on-time rescoring picks it up then.
    next_review_at: Mapped[datetime | None] = mapped_column(Stamp)
    next_review_reason: Mapped[str | None] = mapped_column(String(160))

    __table_args__ = (
        UniqueConstraint("crm", "crm_id", name="uq_leads_crm_record"),
        Index("ix_leads_failures", "failures"),
        Index("ix_leads_next_review", "next_review_at"),
        Index("ix_leads_email", "email"),
        # The report summaries' refresh looks up the leads merged away or erased (few).
        Index("ix_leads_merged_into", "merged_into_id"),
        Index("ix_leads_erased", "erased_at"),
        # One live web-only lead per address, so concurrent requests cannot fork a lead.
        Index("uq_leads_web_email", "email", unique=True,
              sqlite_where=text("crm IS NULL AND merged_into_id IS NULL"),
              postgresql_where=text("crm IS NULL AND merged_into_id IS NULL")),
    )

    @property
    def ref(self) -> str:
        """``crm:id`` for CRM leads, ``email:address`` for web-only ones."""
        return f"{self.crm}:{self.crm_id}" if self.crm else f"email:{self.email}"


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    #: The sender's idempotency key; a redelivery is absorbed by the unique constraint.
    event_key: Mapped[str] = mapped_column(String(200))
    #: None for ``ignored`` events (a company change we store but do not act on) and for record
    #: events (a deal or rep activity) until the pipeline resolves them to their leads.
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"))
    #: The deal or activity a record event is about (its id in the CRM ``source``).
    record_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(Stamp)
    received_at: Mapped[datetime] = mapped_column(Stamp)
    fields: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    properties: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    raw: Mapped[Any] = mapped_column(JsonType, nullable=True)
    processed_at: Mapped[datetime | None] = mapped_column(Stamp)

    __table_args__ = (
        UniqueConstraint("source", "event_key", name="uq_events_source_key"),
        Index("ix_events_lead_pending", "lead_id", "processed_at"),
        Index("ix_events_pending", "processed_at", "received_at"),
        # A lead's first touch for the reports, read from the index alone (migration 0006).
        Index("ix_events_lead_occurred", "lead_id", "occurred_at"),
    )


class ScoreRecord(Base):
    """One scoring result with everything that explains it."""

    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    computed_at: Mapped[datetime] = mapped_column(Stamp)
    as_of: Mapped[datetime] = mapped_column(Stamp)
    rules_version: Mapped[str] = mapped_column(String(40))
    score: Mapped[float] = mapped_column(Float)
    fit_points: Mapped[float] = mapped_column(Float)
    engagement_points: Mapped[float] = mapped_column(Float)
    band: Mapped[str] = mapped_column(String(10))
    grade: Mapped[str] = mapped_column(String(2))
    mql: Mapped[bool] = mapped_column(Boolean)
    disqualified: Mapped[bool] = mapped_column(Boolean, default=False)
    summary: Mapped[str] = mapped_column(Text)
    #: The full result (reasons with points and rule names, priority, playbook).
    result: Mapped[dict[str, Any]] = mapped_column(JsonType)
    events_seen: Mapped[int] = mapped_column(Integer, default=0)


class Transition(Base):
    """A stage change with its cause (score, disposition, sla, recycle ...)."""

    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    from_stage: Mapped[str] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    cause: Mapped[str] = mapped_column(String(30))
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    rules_version: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(Stamp)


class Deal(Base):
    """A CRM deal (HubSpot deal, Salesforce opportunity): the outcome of its leads' hand-offs.

    Its state is the newest the CRM told (``field_times`` keeps, per field, the business time of
    the value stored, so an older change arriving late never overwrites a newer one).
    """

    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crm: Mapped[str] = mapped_column(String(20))
    #: The deal's id in that CRM.
    crm_id: Mapped[str] = mapped_column(String(64))
    pipeline: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str | None] = mapped_column(String(100))
    #: The stage's own flags, as the CRM sent them (None: not said).
    is_closed: Mapped[bool | None] = mapped_column(Boolean)
    is_won: Mapped[bool | None] = mapped_column(Boolean)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    #: When the deal was created and closed (or is expected to close) in the CRM.
    created_at: Mapped[datetime | None] = mapped_column(Stamp)
    closed_at: Mapped[datetime | None] = mapped_column(Stamp)
    #: ``open``, ``won`` or ``lost`` by the rules' ``outcomes``; None: no outcome (or not known yet).
    outcome: Mapped[str | None] = mapped_column(String(10))
    field_times: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    deleted_at: Mapped[datetime | None] = mapped_column(Stamp)
    #: Set when the CRM merged this deal into another one.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"))
    updated_at: Mapped[datetime] = mapped_column(Stamp, default=_now)

    __table_args__ = (UniqueConstraint("crm", "crm_id", name="uq_deals_crm_record"),)


class DealLead(Base):
    """A deal's lead: the CRM associates the deal with the lead's record (or converted it from it)."""

    __tablename__ = "deal_leads"

    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), primary_key=True, index=True)
    #: The business time of the association.
    linked_at: Mapped[datetime] = mapped_column(Stamp)


class OutboxWrite(Base):
    """A CRM write: queued by scoring, sent (or, in shadow mode, only recorded) by the flush job."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    crm: Mapped[str] = mapped_column(String(20))
    crm_id: Mapped[str] = mapped_column(String(64))
    #: ``update`` (fields, owner, status) or ``task``.
    kind: Mapped[str] = mapped_column(String(10))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    #: pending -> sent | failed | shadow; superseded when a newer update for the lead replaced it.
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(64))
    #: Rows sent (or, in shadow mode, that would have been sent) in one CRM call share this.
    batch_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(Stamp)
    sent_at: Mapped[datetime | None] = mapped_column(Stamp)

    __table_args__ = (Index("ix_outbox_status_crm", "status", "crm"),)


class RotationState(Base):
    """Weighted round-robin state of one team, shared by all workers (row-locked)."""

    __tablename__ = "rotation_state"

    team: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[dict[str, float]] = mapped_column(JsonType, default=dict)
    picks: Mapped[int] = mapped_column(Integer, default=0)


class ImportProgress(Base):
    """One history import (a CSV file, a CRM backfill): how far it got, so a rerun resumes there.

    Keyed by its source and what identifies its input: the files' digest for a CSV import, the CRM
    and the start of its window for a backfill. ``position`` holds each phase's last committed
    place (a line number, a paging cursor, a lead id), written in the same transaction as the
    rows it covers.
    """

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``csv``, ``hubspot`` or ``salesforce``.
    source: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(200))
    #: Where the leads are recorded (the mapping's ``crm``, or the CRM backfilled).
    crm: Mapped[str] = mapped_column(String(20))
    position: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    #: What it did so far: rows read, leads and events created, bad rows, leads scored.
    counts: Mapped[dict[str, int]] = mapped_column(JsonType, default=dict)
    started_at: Mapped[datetime] = mapped_column(Stamp)
    updated_at: Mapped[datetime] = mapped_column(Stamp)
    finished_at: Mapped[datetime | None] = mapped_column(Stamp)

    __table_args__ = (UniqueConstraint("source", "key", name="uq_imports_source_key"),)


# --- report summaries (integration.store.summaries keeps them; the reports read them) ---------


class SummaryWatermark(Base):
    """The one row saying how far the summaries have read: the last transition and event folded in."""

    __tablename__ = "summary_watermark"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transition_id: Mapped[int] = mapped_column(Integer, default=0)
    event_id: Mapped[int] = mapped_column(Integer, default=0)
    refreshed_at: Mapped[datetime | None] = mapped_column(Stamp)


class LeadSummary(Base):
    """One row per lead: its first touch (the business time of its earliest event), its first
    conversion, and per stage it can enter (every stage but ``new``, entered at the first touch)
    its first and last entry (a transition to it from another stage) and how many."""

    __tablename__ = "lead_summary"

    lead_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_touch_at: Mapped[datetime | None] = mapped_column(Stamp)
    #: Its earliest conversion on any call to action (``summaries.CONVERSIONS``), if any.
    first_conversion_at: Mapped[datetime | None] = mapped_column(Stamp)
    nurture_first_at: Mapped[datetime | None] = mapped_column(Stamp)
    nurture_last_at: Mapped[datetime | None] = mapped_column(Stamp)
    nurture_entries: Mapped[int] = mapped_column(Integer, default=0)
    mql_first_at: Mapped[datetime | None] = mapped_column(Stamp)
    mql_last_at: Mapped[datetime | None] = mapped_column(Stamp)
    mql_entries: Mapped[int] = mapped_column(Integer, default=0)
    accepted_first_at: Mapped[datetime | None] = mapped_column(Stamp)
    accepted_last_at: Mapped[datetime | None] = mapped_column(Stamp)
    accepted_entries: Mapped[int] = mapped_column(Integer, default=0)
    sql_first_at: Mapped[datetime | None] = mapped_column(Stamp)
    sql_last_at: Mapped[datetime | None] = mapped_column(Stamp)
    sql_entries: Mapped[int] = mapped_column(Integer, default=0)
    won_first_at: Mapped[datetime | None] = mapped_column(Stamp)
    won_last_at: Mapped[datetime | None] = mapped_column(Stamp)
    won_entries: Mapped[int] = mapped_column(Integer, default=0)
    lost_first_at: Mapped[datetime | None] = mapped_column(Stamp)
    lost_last_at: Mapped[datetime | None] = mapped_column(Stamp)
    lost_entries: Mapped[int] = mapped_column(Integer, default=0)
    recycled_first_at: Mapped[datetime | None] = mapped_column(Stamp)
    recycled_last_at: Mapped[datetime | None] = mapped_column(Stamp)
    recycled_entries: Mapped[int] = mapped_column(Integer, default=0)
    disqualified_first_at: Mapped[datetime | None] = mapped_column(Stamp)
    disqualified_last_at: Mapped[datetime | None] = mapped_column(Stamp)
    disqualified_entries: Mapped[int] = mapped_column(Integer, default=0)


class LeadContentSummary(Base):
    """A lead's touches of one call to action (``kind`` asset, form or campaign, and its name):
    first and last touch, first conversion and how many conversions."""

    __tablename__ = "lead_content_summary"

    lead_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    first_at: Mapped[datetime] = mapped_column(Stamp)
    last_at: Mapped[datetime] = mapped_column(Stamp)
    first_conversion_at: Mapped[datetime | None] = mapped_column(Stamp)
    conversions: Mapped[int] = mapped_column(Integer)

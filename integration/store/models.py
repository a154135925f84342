"""The system of record: leads, their events, every score and decision, and the CRM outbox.

A lead's whole timeline is these tables joined on ``lead_id`` (see ``integration.store.leads.lead_timeline``).
Schema changes go through Alembic (``integration/store/migrations``), never ``create_all``.
"""

from __future__ import annotations

from datetime import UTC, datetime
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

    __table_args__ = (
        UniqueConstraint("crm", "crm_id", name="uq_leads_crm_record"),
        Index("ix_leads_failures", "failures"),
        Index("ix_leads_email", "email"),
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
    #: None for ``ignored`` events (a company or deal change we store but do not act on).
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"))
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

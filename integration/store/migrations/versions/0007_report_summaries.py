"""report summaries: per lead its first touch and stage entries, and its call-to-action touches

Creates the tables ``integration.store.summaries`` keeps (and its one-row watermark), indexes the
leads merged away or erased (the refresh looks them up), and fills the summaries from the events
and transitions already stored (a full refresh), so an upgraded install has them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 20:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: The stages a lead enters by a transition (as of this revision), one column trio each.
ENTERED_STAGES = ("nurture", "mql", "accepted", "sql", "won", "lost", "recycled", "disqualified")


def upgrade() -> None:
    op.create_table("summary_watermark",
                    sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("transition_id", sa.Integer(), nullable=False),
                    sa.Column("event_id", sa.Integer(), nullable=False),
                    sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True))
    stage_columns = [sa.Column(f"{stage}_{what}", kind, nullable=nullable) for stage in ENTERED_STAGES
                     for what, kind, nullable in (("first_at", sa.DateTime(timezone=True), True),
                                                  ("last_at", sa.DateTime(timezone=True), True),
                                                  ("entries", sa.Integer(), False))]
    op.create_table("lead_summary",
                    sa.Column("lead_id", sa.Integer(), primary_key=True),
                    sa.Column("first_touch_at", sa.DateTime(timezone=True), nullable=True),
                    sa.Column("first_conversion_at", sa.DateTime(timezone=True), nullable=True),
                    *stage_columns)
    op.create_table("lead_content_summary",
                    sa.Column("lead_id", sa.Integer(), primary_key=True),
                    sa.Column("kind", sa.String(20), primary_key=True),
                    sa.Column("name", sa.Text(), primary_key=True),
                    sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
                    sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
                    sa.Column("first_conversion_at", sa.DateTime(timezone=True), nullable=True),
                    sa.Column("conversions", sa.Integer(), nullable=False))
    op.create_index("ix_leads_merged_into", "leads", ["merged_into_id"])
    op.create_index("ix_leads_erased", "leads", ["erased_at"])
    from integration.store.summaries import refresh

    refresh(Session(bind=op.get_bind(), join_transaction_mode="create_savepoint"))


def downgrade() -> None:
    op.drop_index("ix_leads_erased", table_name="leads")
    op.drop_index("ix_leads_merged_into", table_name="leads")
    for table in ("lead_content_summary", "lead_summary", "summary_watermark"):
        op.drop_table(table)

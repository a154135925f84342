"""leads: the next time the verdict changes on its own (on-time rescoring)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 17:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("next_review_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("next_review_reason", sa.String(length=160), nullable=True))
        batch.create_index("ix_leads_next_review", ["next_review_at"])


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.drop_index("ix_leads_next_review")
        batch.drop_column("next_review_reason")
        batch.drop_column("next_review_at")
